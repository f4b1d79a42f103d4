"""CornerNet-Lite checkpoints: CornerNet-Squeeze reproduces the official outputs from its official
state_dict, and both of Lite's models (CornerNet-Squeeze, CornerNet) load under Lite's key names.

The reference data is in tests/data/lite (README there); a second squeeze configuration is
checked against the independent NumPy version of the official layers (official_squeeze_reference.py).
"""

import json
import re

import numpy as np
import pytest
from golden import (
    GOLDEN_MODEL_CONFIG,
    GOLDEN_SQUEEZE_CONFIG,
    LITE_DIR,
    load_golden,
    load_lite_golden,
)
from official_reference import OfficialArch
from official_squeeze_reference import (
    CORNERNET_SQUEEZE,
    squeeze_forward,
    squeeze_official_shapes,
    squeeze_state_dict,
)

from cornernet_tf.config import load_config
from cornernet_tf.convert import (
    WeightMismatchError,
    expected_official_shapes,
    load_official_weights,
)
from cornernet_tf.decode import decode
from cornernet_tf.modeling.cornernet import OUTPUT_KEYS, build_model

ATOL = 2e-4  # tests/data/lite/README.md: maps within 2e-4
SQUEEZE_TENSORS = 845  # the reduced model's state_dict without num_batches_tracked
SQUEEZE_PARAMETERS = 31_771_852  # the official CornerNet-Squeeze
DECODE = dict(K=20, kernel=3, ae_threshold=0.5, num_dets=100)  # CornerNet_Squeeze.json


def _json(name: str) -> dict:
    return json.loads((LITE_DIR / name).read_text())


def _without_buffers(shapes: dict) -> dict:
    return {k: tuple(s) for k, s in shapes.items() if not k.endswith(".num_batches_tracked")}


def _nhwc_rgb(nchw_bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(nchw_bgr, (0, 2, 3, 1))[..., ::-1])


@pytest.fixture(scope="module")
def weights():
    return load_lite_golden("squeeze_model_weights.npz")


@pytest.fixture(scope="module")
def io():
    return load_lite_golden("squeeze_model_io.npz")


@pytest.fixture(scope="module")
def squeeze(weights):
    model = build_model(dict(GOLDEN_SQUEEZE_CONFIG))
    report = load_official_weights(model, weights)
    return model, report


def _max_errors(outputs, expected: dict, stacks: int) -> list:
    """Max abs error per stack over the six maps (expected NCHW, keys ``{map}_s{stack}``)."""
    worst = []
    for stack in range(stacks):
        errors = []
        for key in OUTPUT_KEYS:
            want = np.transpose(expected[f"{key}_s{stack}"], (0, 2, 3, 1))
            got = outputs[key][stack].numpy()
            assert got.shape == want.shape, (key, stack)
            errors.append(float(np.max(np.abs(got - want))))
        worst.append(max(errors))
    return worst


# --------------------------------------------------------------------------- the golden reduced model


def test_reduced_config_is_the_golden_one(squeeze):
    config = _json("squeeze_model_config.json")
    official = config["config"]
    fields = GOLDEN_SQUEEZE_CONFIG
    assert (official["stacks"], official["n"]) == (fields["num_stacks"], len(fields["dims"]) - 1)
    assert official["dims"] == fields["dims"] and official["modules"] == fields["modules"]
    assert official["pre"] == fields["stem_dims"] and official["cnv"] == fields["cnv_dim"]
    assert official["classes"] == fields["num_classes"]
    model, _ = squeeze
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == config["trainable_params"] == 345_112


def test_official_state_dict_loads_completely(squeeze, weights):
    _, report = squeeze
    assert report["naming"] == "cornernet_lite"
    assert report["tensors"] == len(weights) == SQUEEZE_TENSORS
    assert report["parameters"] == sum(v.size for v in weights.values())


def test_every_map_of_every_stack_matches(squeeze, io):
    model, _ = squeeze
    outputs = model(_nhwc_rgb(io["input"]), training=False)
    worst = _max_errors(outputs, io, stacks=2)
    print(f"max abs error per stack: {', '.join(f'{e:.2e}' for e in worst)}")
    assert max(worst) <= ATOL


def test_decode_forms_the_official_pairs(squeeze, io):
    """The official K=20 decode of the last stack: every pair is rejected with these random
    weights, so the rows match by count, and each official row (box, corner scores, class) is
    one of the K*K pairs our decode forms."""
    model, _ = squeeze
    last = model(_nhwc_rgb(io["input"]), training=False, stacks="last")
    maps = [
        last[key][0] for key in ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")
    ]
    expected = io["decode_K20"][0]
    dets = decode(*maps, **DECODE).numpy()[0]
    assert dets.shape == expected.shape == (100, 8)
    np.testing.assert_array_equal(dets[:, 4] > -1, expected[:, 4] > -1)
    valid = expected[:, 4] > -1
    np.testing.assert_allclose(dets[valid], expected[valid], atol=1e-5)
    pairs = decode(*maps, **dict(DECODE, num_dets=DECODE["K"] ** 2)).numpy()[0]
    for row in expected[~valid]:
        box = np.max(np.abs(pairs[:, :4] - row[:4]), axis=1) <= 1e-5
        scores = np.max(np.abs(pairs[:, 4:7] - row[4:7]), axis=1) <= 1e-6
        assert np.any(box & scores & (pairs[:, 7] == row[7])), row


def test_checkpoint_prefix_and_buffers_are_accepted(weights, io):
    model = build_model(dict(GOLDEN_SQUEEZE_CONFIG))
    state = {f"module.{k}": v for k, v in weights.items()}
    state["module.hg.pre.0.bn.num_batches_tracked"] = np.array(500000)
    assert load_official_weights(model, state)["tensors"] == SQUEEZE_TENSORS
    outputs = model(_nhwc_rgb(io["input"]), training=False)
    assert max(_max_errors(outputs, io, stacks=2)) <= ATOL


def test_squeeze_refuses_original_cornernet_names():
    model = build_model(dict(GOLDEN_SQUEEZE_CONFIG))
    before = [v.numpy().copy() for v in model.weights]
    with pytest.raises(
        WeightMismatchError, match="original CornerNet names .*CornerNet-Lite names"
    ):
        load_official_weights(model, load_golden("model_weights.npz"))
    for variable, value in zip(model.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_missing_and_misshaped_lite_keys_are_listed(weights):
    model = build_model(dict(GOLDEN_SQUEEZE_CONFIG))
    state = dict(weights)
    del state["hg.hgs.1.low2.up2.weight"]
    state["tl_offs.0.1.bias"] = np.zeros(3, np.float32)
    with pytest.raises(WeightMismatchError) as info:
        load_official_weights(model, state)
    message = str(info.value)
    assert "missing from the checkpoint (1): hg.hgs.1.low2.up2.weight" in message
    assert "tl_offs.0.1.bias (3,) -> model (2,)" in message


# --------------------------------------------------------------------------- full-size models


def test_full_squeeze_maps_one_to_one_onto_the_official_names():
    official = _without_buffers(
        _json("squeeze_model_config.json")["full_model"]["state_dict_shapes"]
    )
    model = build_model(load_config("configs/cornernet_squeeze.yaml").model)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == SQUEEZE_PARAMETERS
    mapping = model.official_variables()
    assert len({id(v) for _, v, _ in mapping}) == len(mapping) == len(model.weights)
    assert expected_official_shapes(model) == official
    assert len(official) == SQUEEZE_TENSORS  # 990 less 145 BatchNorm num_batches_tracked


def test_numpy_reference_names_the_official_full_squeeze():
    """The independent reference generates exactly the official 990 names and shapes."""
    official = _json("squeeze_model_config.json")["full_model"]["state_dict_shapes"]
    assert squeeze_official_shapes(CORNERNET_SQUEEZE) == {k: tuple(s) for k, s in official.items()}


def test_lite_cornernet_names_are_those_our_hourglass104_expects():
    """CornerNet (Hourglass-104) of the CornerNet-Lite repository: same tensors, other names."""
    keys = _json("lite_cornernet_keys.json")
    assert len(keys["state_dict_shapes"]) == 1128 and keys["trainable_params"] == 201_035_212
    model = build_model("configs/cornernet_hg104_coco.yaml")
    assert model.official_namings == ("cornernet", "cornernet_lite")
    assert expected_official_shapes(model, "cornernet_lite") == _without_buffers(
        keys["state_dict_shapes"]
    )


# Lite's names for the original repository's top-level modules (CornerNet-Lite core/models).
_LITE_RENAMES = [
    (r"^pre\.", "hg.pre."),
    (r"^kps\.", "hg.hgs."),
    (r"^(cnvs|inters|inters_|cnvs_)\.", r"hg.\1."),
    (r"^(tl|br)_cnvs\.", r"\1_modules."),
    (r"^(tl|br)_regrs\.", r"\1_offs."),
]


def _to_lite_names(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        for pattern, repl in _LITE_RENAMES:
            key, hits = re.subn(pattern, repl, key)
            if hits:
                break
        out[f"module.{key}"] = value
    return out


def test_hourglass_loads_a_lite_named_checkpoint_and_reproduces_the_golden_outputs():
    """The golden reduced CornerNet's official weights under Lite's names give the same maps."""
    state = _to_lite_names(load_golden("model_weights.npz"))
    assert any(k.startswith("module.hg.hgs.1.") for k in state)
    assert any(k.startswith("module.br_offs.0.") for k in state)
    model = build_model(dict(GOLDEN_MODEL_CONFIG))
    report = load_official_weights(model, state)
    assert report["naming"] == "cornernet_lite" and report["tensors"] == 948
    io = load_golden("model_io.npz")
    outputs = model(_nhwc_rgb(io["input"]), training=False)
    for stack in range(2):
        for key in OUTPUT_KEYS:
            want = np.transpose(io[f"train_{key}_map_s{stack}"], (0, 2, 3, 1))
            np.testing.assert_allclose(outputs[key][stack].numpy(), want, atol=ATOL)


# --------------------------------------------------------------------------- a second squeeze


# Another shape: 3 stacks, depth 2, unequal module counts, cnv and head widths of their own, a
# non-square input whose map is not a power of two.
OTHER_SQUEEZE = OfficialArch(
    n=2, nstack=3, dims=(12, 20, 28), modules=(1, 3, 2), out_dim=4,
    pre_dims=(6, 12), cnv_dim=10, pool_dim=8, head_dim=14,
)  # fmt: skip
OTHER_FIELDS = dict(
    backbone="squeeze",
    num_classes=4,
    num_stacks=3,
    dims=[12, 20, 28],
    modules=[1, 3, 2],
    stem_dims=[6, 12],
    cnv_dim=10,
    pool_dim=8,
    head_dim=14,
    corner_pool_impl="tf",
)


def test_second_squeeze_matches_the_numpy_reference():
    rng = np.random.default_rng(17)
    calibration = rng.normal(size=(2, 3, 96, 160))
    state = squeeze_state_dict(OTHER_SQUEEZE, seed=5, calibration_images=calibration)
    image = rng.normal(size=(1, 3, 64, 96))  # maps 8 x 12
    expected = squeeze_forward(state, image, OTHER_SQUEEZE)
    model = build_model(OTHER_FIELDS)
    report = load_official_weights(model, {f"module.{k}": v for k, v in state.items()})
    assert report["tensors"] == sum(1 for k in state if not k.endswith("num_batches_tracked"))
    outputs = model(_nhwc_rgb(image.astype(np.float32)), training=False)
    flat = {f"{k}_s{s}": v[s] for k, v in expected.items() for s in range(3)}
    worst = _max_errors(outputs, flat, stacks=3)
    scale = max(float(np.max(np.abs(v))) for v in flat.values())
    print(f"second squeeze: max abs error per stack {worst}, largest map value {scale:.2f}")
    assert 0.5 < scale < 50  # the calibrated weights keep the maps O(1)
    assert max(worst) <= ATOL


def test_convert_command_takes_a_lite_checkpoint(tmp_path, capsys, io):
    import yaml

    from cornernet_tf.cli import main

    config = tmp_path / "squeeze_golden.yaml"
    config.write_text(yaml.safe_dump({"name": "squeeze_golden", "model": GOLDEN_SQUEEZE_CONFIG}))
    out = tmp_path / "squeeze.weights.h5"
    official = str(LITE_DIR / "squeeze_model_weights.npz")
    assert (
        main(["convert", "--official", official, "--config", str(config), "--out", str(out)]) == 0
    )
    assert f"loaded {SQUEEZE_TENSORS} tensors" in (printed := capsys.readouterr().out)
    assert "cornernet_lite names" in printed
    fresh = build_model(config)
    fresh.load_weights(out)
    outputs = fresh(_nhwc_rgb(io["input"]), training=False)
    assert max(_max_errors(outputs, io, stacks=2)) <= ATOL
