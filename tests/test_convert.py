"""Official checkpoint -> Keras weights: all-or-nothing loading, clear errors, the ``convert`` command."""

import importlib.util

import numpy as np
import pytest
import yaml
from golden import GOLDEN_MODEL_CONFIG, load_golden

from cornernet_tf.convert import (
    WeightMismatchError,
    load_official_weights,
    read_official_checkpoint,
)
from cornernet_tf.modeling.cornernet import OUTPUT_KEYS, build_model

ATOL = 2e-4  # tests/data/GOLDEN_README.md: maps atol 2e-4
GOLDEN_TENSORS = 948  # 1128 state_dict keys less 180 num_batches_tracked


@pytest.fixture(scope="module")
def golden_weights():
    return load_golden("model_weights.npz")


@pytest.fixture(scope="module")
def golden_io():
    io = load_golden("model_io.npz")
    io["input_rgb"] = np.ascontiguousarray(np.transpose(io["input"], (0, 2, 3, 1))[..., ::-1])
    return io


@pytest.fixture(scope="module")
def model():
    """A golden-architecture model; failed loads must leave it untouched."""
    return build_model(dict(GOLDEN_MODEL_CONFIG))


def _snapshot(model) -> list:
    return [v.numpy().copy() for v in model.weights]


def _assert_unchanged(model, snapshot) -> None:
    for variable, before in zip(model.weights, snapshot):
        np.testing.assert_array_equal(
            variable.numpy(), before, err_msg=f"{variable.path} was modified"
        )


def _assert_matches_golden(model, golden_io) -> None:
    outputs = model(golden_io["input_rgb"], training=False)
    for stack in range(2):
        for key in OUTPUT_KEYS:
            expected = np.transpose(golden_io[f"train_{key}_map_s{stack}"], (0, 2, 3, 1))
            np.testing.assert_allclose(
                outputs[key][stack].numpy(), expected, atol=ATOL, err_msg=f"{key} s{stack}"
            )


def _mismatch(model, state) -> str:
    snapshot = _snapshot(model)
    with pytest.raises(WeightMismatchError) as info:
        load_official_weights(model, state)
    _assert_unchanged(model, snapshot)
    message = str(info.value)
    assert "nothing was loaded" in message
    return message


# --------------------------------------------------------------------------- load_official_weights


def test_golden_weights_load_completely(model, golden_weights, golden_io):
    report = load_official_weights(model, golden_weights)
    assert report["tensors"] == GOLDEN_TENSORS
    assert report["parameters"] == sum(
        v.size for k, v in golden_weights.items() if not k.endswith("num_batches_tracked")
    )
    _assert_matches_golden(model, golden_io)


def test_missing_key_is_named(model, golden_weights):
    state = dict(golden_weights)
    del state["kps.1.low2.low2.up1.0.bn2.running_var"]
    message = _mismatch(model, state)
    assert "missing from the checkpoint (1): kps.1.low2.low2.up1.0.bn2.running_var" in message
    assert "not in the model" not in message and "wrong shape" not in message


def test_extra_key_is_named(model, golden_weights):
    state = dict(golden_weights)
    state["kps.0.extra.conv.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    message = _mismatch(model, state)
    assert "not in the model (1): kps.0.extra.conv.weight" in message
    assert "missing" not in message


def test_wrong_shape_is_named_with_both_shapes(model, golden_weights):
    state = dict(golden_weights)
    state["tl_heats.1.1.weight"] = np.zeros((4, 16, 1, 1), np.float32)  # 4 classes instead of 3
    state["pre.0.bn.bias"] = np.zeros((9,), np.float32)
    message = _mismatch(model, state)
    assert "wrong shape (2)" in message
    assert "tl_heats.1.1.weight (4, 16, 1, 1) -> model (1, 1, 16, 3)" in message
    assert "pre.0.bn.bias (9,) -> model (8,)" in message


def test_checkpoint_of_another_architecture_is_refused(golden_weights):
    tiny = build_model("configs/cornernet_tiny.yaml")
    message = _mismatch(tiny, golden_weights)
    assert "missing from the checkpoint (" in message  # the tiny hourglass has other levels
    assert "not in the model (" in message  # e.g. the golden second stack and deeper levels
    assert (
        "wrong shape (" in message
        and "pre.0.conv.weight (8, 3, 7, 7) -> model (7, 7, 3, 16)" in message
    )
    assert "more)" in message  # long listings are shortened


def test_module_prefix_is_accepted(model, golden_weights, golden_io):
    prefixed = {f"module.{k}": v for k, v in golden_weights.items()}
    load_official_weights(model, prefixed)
    _assert_matches_golden(model, golden_io)


def test_num_batches_tracked_is_ignored(model, golden_weights, golden_io):
    without = {k: v for k, v in golden_weights.items() if not k.endswith("num_batches_tracked")}
    assert len(without) == GOLDEN_TENSORS
    assert load_official_weights(model, without)["tensors"] == GOLDEN_TENSORS
    odd = dict(without)
    odd["kps.0.up1.0.bn1.num_batches_tracked"] = np.array([1, 2, 3])  # any value, any shape
    odd["module.not_a_layer.num_batches_tracked"] = np.array(7)
    assert load_official_weights(model, odd)["tensors"] == GOLDEN_TENSORS
    _assert_matches_golden(model, golden_io)


# --------------------------------------------------------------------------- reading checkpoints


def test_read_npz_checkpoint(tmp_path, golden_weights):
    path = tmp_path / "weights.npz"
    np.savez(path, **{f"module.{k}": v for k, v in golden_weights.items()})
    state = read_official_checkpoint(str(path))
    assert set(state) == {f"module.{k}" for k in golden_weights}
    np.testing.assert_array_equal(
        state["module.pre.0.conv.weight"], golden_weights["pre.0.conv.weight"]
    )


def test_read_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pkl"):
        read_official_checkpoint(str(tmp_path / "nowhere.pkl"))


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed")
def test_torch_checkpoint_without_torch_says_what_to_install(tmp_path):
    path = tmp_path / "CornerNet_500000.pkl"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError, match=r"pip install 'cornernet-tf\[convert\]'"):
        read_official_checkpoint(str(path))


def test_torch_checkpoint_round_trip(tmp_path, model, golden_weights, golden_io):
    """Official checkpoints are torch.save(state_dict) pickles with a ``module.`` prefix."""
    torch = pytest.importorskip("torch")
    state = {f"module.{k}": torch.from_numpy(np.array(v)) for k, v in golden_weights.items()}
    plain = tmp_path / "CornerNet_500000.pkl"
    torch.save(state, plain)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state, "iteration": 500000}, wrapped)
    for path in (plain, wrapped):
        read = read_official_checkpoint(str(path))
        assert set(read) == set(state)
        np.testing.assert_array_equal(
            read["module.cnvs.1.conv.weight"], golden_weights["cnvs.1.conv.weight"]
        )
        load_official_weights(model, read)
        _assert_matches_golden(model, golden_io)


# --------------------------------------------------------------------------- cornernet convert


def _golden_yaml(tmp_path):
    path = tmp_path / "golden.yaml"
    path.write_text(yaml.safe_dump({"name": "golden", "model": dict(GOLDEN_MODEL_CONFIG)}))
    return path


def test_convert_command_writes_weights_that_reproduce_the_golden_outputs(
    tmp_path, capsys, golden_io
):
    from cornernet_tf.cli import main

    config = _golden_yaml(tmp_path)
    out = tmp_path / "w.weights.h5"
    rc = main(
        [
            "convert",
            "--official",
            "tests/data/model_weights.npz",
            "--config",
            str(config),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert f"loaded {GOLDEN_TENSORS} tensors" in capsys.readouterr().out
    assert out.exists()
    fresh = build_model(config)
    fresh.load_weights(out)
    _assert_matches_golden(fresh, golden_io)


def test_convert_command_applies_set_overrides(tmp_path, capsys):
    from cornernet_tf.cli import main

    config = _golden_yaml(tmp_path)
    out = tmp_path / "w.weights.h5"
    args = [
        "convert",
        "--official",
        "tests/data/model_weights.npz",
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    assert main(args + ["--set", "model.num_classes=4"]) == 1
    err = capsys.readouterr().err
    assert (
        "cornernet convert: error:" in err
        and "tl_heats.0.1.weight" in err
        and "nothing was loaded" in err
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "args, rc, fragment",
    [
        (
            ["--official", "tests/data/model_weights.npz", "--out", "w.h5"],
            1,
            "must end with .weights.h5",
        ),
        (
            ["--official", "missing.pkl", "--out", "w.weights.h5"],
            1,
            "checkpoint not found: missing.pkl",
        ),
        (
            [
                "--official",
                "tests/data/model_weights.npz",
                "--out",
                "w.weights.h5",
                "--set",
                "model.dims=[1]",
            ],
            2,
            "configuration error",
        ),
    ],
    ids=["bad_suffix", "missing_checkpoint", "bad_config"],
)
def test_convert_command_errors(tmp_path, capsys, args, rc, fragment):
    from cornernet_tf.cli import main

    args = [a if not a.startswith("w.") else str(tmp_path / a) for a in args]
    assert main(["convert", "--config", str(_golden_yaml(tmp_path))] + args) == rc
    assert fragment in capsys.readouterr().err
    assert not list(tmp_path.glob("w.*"))
