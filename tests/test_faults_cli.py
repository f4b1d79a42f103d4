"""Fault suite, command line: every user error is one line on stderr and a non-zero exit, bugs keep
their traceback, ``--debug`` / ``CORNERNET_DEBUG=1`` show it for any error, and output locations
are checked before any long work (the model is never built when ``--out`` is unusable)."""

import os
import pickle
import sys

import pytest

import cornernet_tf.commands.convert as convert_command
import cornernet_tf.modeling.cornernet as cornernet_module
from cornernet_tf.cli import main, one_line
from cornernet_tf.config import ConfigError, load_config
from cornernet_tf.errors import (
    InputNotFoundError,
    InvalidValueError,
    MissingDependencyError,
    OutputPathError,
    UserError,
)

TINY = "configs/cornernet_tiny.yaml"
NPZ = "tests/data/model_weights.npz"


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cornernet {command}: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_model_build(monkeypatch):
    """Fail the test if a command gets as far as building the network (the long work)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was built before the output location was checked")

    monkeypatch.setattr(cornernet_module, "build_model", refuse)


def test_error_types_keep_the_builtin_types_callers_catch():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    assert issubclass(InvalidValueError, ValueError)
    assert issubclass(InputNotFoundError, FileNotFoundError)
    assert issubclass(OutputPathError, OSError)
    assert issubclass(MissingDependencyError, ImportError)
    from cornernet_tf.convert import WeightMismatchError
    from cornernet_tf.data.coco import DatasetError
    from cornernet_tf.weights import WeightsError

    for error in (WeightMismatchError, DatasetError, WeightsError):
        assert issubclass(error, UserError) and issubclass(error, ValueError), error


def test_config_path_that_is_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--config", str(tmp_path), "--official", NPZ, "--out", "w.weights.h5"])
    assert info.value.code == 2
    assert "is a folder, not a config file" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is a folder, not a YAML config file"):
        load_config(str(tmp_path))


def test_broken_yaml_in_set(tmp_path, capsys):
    out = str(tmp_path / "w.weights.h5")
    args = ["convert", "--config", TINY, "--official", NPZ, "--out", out]
    assert main(args + ["--set", "model.dims=[1,2"]) == 2
    line = _one_error_line(capsys, "convert")
    assert "configuration error: --set model.dims=[1,2: not valid YAML" in line
    assert "line 1, column" in line


def test_config_file_that_is_not_utf8(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("base: null\nmodel:\n  name: caf\xe9\n".encode("latin-1"))
    out = str(tmp_path / "w.weights.h5")
    assert main(["convert", "--config", str(config), "--official", NPZ, "--out", out]) == 2
    line = _one_error_line(capsys, "convert")
    assert str(config) in line and "not UTF-8 text (byte 0xe9" in line


def test_broken_yaml_file_is_one_line_naming_the_file(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("model:\n  dims: [1, 2\n  num_classes: 3\n")
    out = str(tmp_path / "w.weights.h5")
    assert main(["convert", "--config", str(config), "--official", NPZ, "--out", out]) == 2
    line = _one_error_line(capsys, "convert")
    assert f"{config}: not valid YAML" in line and "line " in line


def test_pickle_checkpoint_without_torch_hints_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    checkpoint = tmp_path / "official.pkl"
    checkpoint.write_bytes(pickle.dumps({"a": 1}))
    out = str(tmp_path / "w.weights.h5")
    assert main(["convert", "--config", TINY, "--official", str(checkpoint), "--out", out]) == 1
    line = _one_error_line(capsys, "convert")
    assert str(checkpoint) in line and "pip install 'cornernet-tf[convert]'" in line
    assert not os.path.exists(out)


def test_pickle_that_is_not_a_state_dict(tmp_path, capsys):
    pytest.importorskip("torch", reason="reading .pkl checkpoints needs PyTorch")
    checkpoint = tmp_path / "official.pkl"
    checkpoint.write_bytes(b"not a pickle at all")
    out = str(tmp_path / "w.weights.h5")
    assert main(["convert", "--config", TINY, "--official", str(checkpoint), "--out", out]) == 1
    assert "not a PyTorch state_dict checkpoint" in _one_error_line(capsys, "convert")


def _detect_args(tmp_path, out):
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir(exist_ok=True)
    from PIL import Image

    Image.new("RGB", (32, 24), (90, 20, 200)).save(image)
    return ["detect", "--config", TINY, "--weights", "w.weights.h5", str(image), "--out", out]


def test_detect_out_that_is_a_file(tmp_path, capsys, no_model_build):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    assert main(_detect_args(tmp_path, str(existing))) == 1
    assert f"--out {existing} is a file, not a folder" in _one_error_line(capsys, "detect")
    assert existing.read_text() == "keep me"


def test_detect_out_below_a_file(tmp_path, capsys, no_model_build):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    out = str(existing / "sub")
    assert main(_detect_args(tmp_path, out)) == 1
    assert f"--out {out}: cannot create the folder" in _one_error_line(capsys, "detect")


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_detect_out_not_writable(tmp_path, capsys, no_model_build):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(_detect_args(tmp_path, str(locked))) == 1
        assert "is not writable" in _one_error_line(capsys, "detect")
    finally:
        locked.chmod(0o700)


def test_eval_out_checked_before_the_evaluation(tmp_path, capsys, no_model_build):
    existing = tmp_path / "metrics"
    existing.write_text("a file")
    args = ["eval", "--config", TINY, "--weights", "w.weights.h5", "--out", str(existing)]
    assert main(args) == 1
    assert "is a file, not a folder" in _one_error_line(capsys, "eval")


def test_eval_out_that_would_overwrite_the_annotations(tmp_path, capsys, no_model_build):
    annotations = tmp_path / "metrics.json"
    annotations.write_text('{"images": [], "annotations": [], "categories": []}')
    args = ["eval", "--config", TINY, "--weights", "w.weights.h5", "--out", str(tmp_path)]
    args += ["--annotations", str(annotations), "--images", str(tmp_path)]
    assert main(args) == 1
    line = _one_error_line(capsys, "eval")
    assert "would overwrite the input --annotations" in line and str(annotations) in line
    assert annotations.read_text().startswith('{"images"')


def test_export_to_an_existing_version(tmp_path, capsys):
    (tmp_path / "model" / "3").mkdir(parents=True)
    args = ["export", "--config", TINY, "--weights", "w.weights.h5"]
    assert main(args + ["--out", str(tmp_path / "model"), "--version", "3"]) == 1
    line = _one_error_line(capsys, "export")
    assert "3 exists; choose another --version or pass --overwrite" in line


def test_bad_argument_values_are_one_line(tmp_path, capsys):
    args = _detect_args(tmp_path, str(tmp_path / "o"))
    assert main(args + ["--score-threshold", "2"]) == 1
    assert "--score-threshold must be in [0, 1], got 2.0" in _one_error_line(capsys, "detect")
    missing = str(tmp_path / "nope.png")
    assert main(args[:5] + [missing, "--out", str(tmp_path / "o")]) == 1
    assert f"image or folder not found: {missing}" in _one_error_line(capsys, "detect")


def test_debug_flag_and_variable_show_the_traceback(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "w.weights.h5")
    args = ["convert", "--config", TINY, "--official", NPZ, "--out", out, "--set", "model.dims=[1"]
    with pytest.raises(ConfigError, match="not valid YAML"):
        main(["--debug"] + args)
    with pytest.raises(ConfigError):
        main(args + ["--debug"])
    monkeypatch.setenv("CORNERNET_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(args)
    monkeypatch.setenv("CORNERNET_DEBUG", "0")
    assert main(args) == 2


@pytest.mark.parametrize("bug", [KeyError("weights"), ValueError("a bug"), TypeError("x")])
def test_internal_bugs_keep_their_traceback(monkeypatch, tmp_path, bug):
    def broken(args):
        raise bug

    monkeypatch.setattr(convert_command, "run", broken)
    args = ["convert", "--config", TINY, "--official", NPZ, "--out", str(tmp_path / "w.weights.h5")]
    with pytest.raises(type(bug)):
        main(args)


def test_interrupt_is_one_line(monkeypatch, tmp_path, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_command, "run", interrupted)
    args = ["convert", "--config", TINY, "--official", NPZ, "--out", str(tmp_path / "w.weights.h5")]
    assert main(args) == 130
    assert _one_error_line(capsys, "convert") == "cornernet convert: interrupted"


def test_one_line_joins_multi_line_messages():
    assert one_line(ValueError("first\n   second\n\n third ")) == "first second third"
    assert one_line(OSError()) == "OSError"


def test_full_disk_is_one_line_naming_the_file(monkeypatch, tmp_path, capsys):
    import errno

    target = str(tmp_path / "w.weights.h5")

    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", target)

    monkeypatch.setattr(convert_command, "run", disk_full)
    assert main(["convert", "--config", TINY, "--official", NPZ, "--out", target]) == 1
    line = _one_error_line(capsys, "convert")
    assert "No space left on device" in line and target in line


def test_dataset_info_that_is_not_json_is_one_line(tmp_path, capsys):
    info = tmp_path / "info.json"
    info.write_text("{broken")
    from cornernet_tf.data.info import DatasetInfo

    with pytest.raises(InvalidValueError, match=f"{info}: not valid JSON"):
        DatasetInfo.load(str(info))
    info.write_text('{"class_names": ["a", "b"], "category_ids": [1, 1]}')
    with pytest.raises(InvalidValueError, match="duplicate category ids"):
        DatasetInfo.load(str(info))


@pytest.mark.parametrize(
    "argv, command, expected",
    [
        (["data", "shapes", "--out", "{tmp}/s", "--num-images", "-5"], "data", "--num-images"),
        (["data", "shapes", "--out", "{tmp}/s", "--num-images", "0"], "data", "--num-images"),
        (
            ["export-onnx", "--config", TINY, "--weights", NPZ, "--out", "{tmp}/m.bin"],
            "export-onnx",
            ".onnx",
        ),
        (
            ["export-tflite", "--config", TINY, "--weights", NPZ, "--out", "{tmp}/m.bin"],
            "export-tflite",
            ".tflite",
        ),
    ],
)
def test_out_of_range_values_and_wrong_suffixes_are_one_line(
    tmp_path, capsys, no_model_build, argv, command, expected
):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    assert expected in _one_error_line(capsys, command)
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- numeric options


def _numeric_options(parser, path=()):
    """(sub-command path, dest) of every int/float option of every (nested) sub-command."""
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _numeric_options(sub, path + (name,))
        elif action.type in (int, float):
            found.append((path, action.dest))
    return found


def test_every_numeric_option_of_every_command_has_a_range():
    from cornernet_tf.cli import build_parser
    from cornernet_tf.commands._ranges import OPTION_RANGES

    options = _numeric_options(build_parser())
    assert len(options) >= 20
    missing = sorted(
        {(" ".join(path), dest) for path, dest in options if dest not in OPTION_RANGES}
    )
    assert not missing, f"numeric options without a rule in commands/_ranges.py: {missing}"


def test_every_option_range_refuses_values_outside_it():
    import argparse

    from cornernet_tf.commands._ranges import OPTION_RANGES, check_option_ranges, option_name

    for dest, rule in OPTION_RANGES.items():
        low = rule.low if rule.low_open else rule.low - 1
        for bad in (low, rule.high + 1, float("nan")):
            with pytest.raises(InvalidValueError, match=f"^{option_name(dest)} must be "):
                check_option_ranges(argparse.Namespace(**{dest: bad}))
        check_option_ranges(argparse.Namespace(**{dest: rule.high}))


@pytest.mark.parametrize(
    "argv, command, expected",
    [
        (
            [
                "export",
                "--config",
                TINY,
                "--weights",
                NPZ,
                "--out",
                "{tmp}/m",
                "--max-detections",
                "0",
            ],
            "export",
            "--max-detections must be in [1, 10000], got 0",
        ),
        (
            ["data", "shapes", "--out", "{tmp}/s", "--num-images", "-5"],
            "data",
            "--num-images must be in [1, 10000000], got -5",
        ),
        (["data", "shapes", "--out", "{tmp}/s", "--size", "64", "0"], "data", "--size"),
        (
            [
                "data",
                "to-tfrecord",
                "--annotations",
                "a",
                "--images",
                "i",
                "--out",
                "{tmp}/s",
                "--num-shards",
                "0",
            ],
            "data",
            "--num-shards",
        ),
        (["demo", "--out", "{tmp}/s", "--minutes", "nan"], "demo", "--minutes must be in (0,"),
        (["demo", "--out", "{tmp}/s", "--steps", "0"], "demo", "--steps must be in [1,"),
        (["serve-client", "a.png", "--port", "0"], "serve-client", "--port must be in [1, 65535]"),
        (
            [
                "export-tflite",
                "--config",
                TINY,
                "--weights",
                NPZ,
                "--out",
                "{tmp}/m.tflite",
                "--input-size",
                "128",
                "-1",
            ],
            "export-tflite",
            "--input-size must be in [1, 4096], got 128 -1",
        ),
    ],
)
def test_numeric_options_out_of_range_are_one_line(
    tmp_path, capsys, no_model_build, argv, command, expected
):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    assert expected in _one_error_line(capsys, command)
    assert not (tmp_path / "s").exists() and not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- non-finite weights


def _npz_with_nan(tmp_path):
    """The golden official checkpoint with one NaN, and a config it fits."""
    import numpy as np
    import yaml
    from golden import GOLDEN_MODEL_CONFIG

    with np.load(NPZ) as data:
        arrays = {key: data[key] for key in data.files}
    key = "pre.0.conv.weight"
    arrays[key] = arrays[key].copy()
    arrays[key].flat[3] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, **arrays)
    config = tmp_path / "golden.yaml"
    config.write_text(yaml.safe_dump({"name": "golden", "model": dict(GOLDEN_MODEL_CONFIG)}))
    return str(path), key, str(config)


def test_convert_refuses_weights_with_nan(tmp_path, capsys):
    checkpoint, key, config = _npz_with_nan(tmp_path)
    out = tmp_path / "w.weights.h5"
    assert main(["convert", "--config", config, "--official", checkpoint, "--out", str(out)]) == 1
    line = _one_error_line(capsys, "convert")
    assert "NaN or inf" in line and f"{key} (1 of 1176 values)" in line
    assert not out.exists()


def test_loading_keras_weights_with_inf_names_the_variable(tmp_path):
    import numpy as np

    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import WeightsError, load_weights

    micro = dict(  # the smallest hourglass: the test is about the file, not the network
        num_classes=2,
        num_stacks=1,
        dims=[8, 8],
        modules=[1, 1],
        stem_dims=[8, 8],
        cnv_dim=8,
        pool_dim=8,
        head_dim=8,
    )
    model = build_model(micro)
    variable = model.weights[5]
    value = variable.numpy()
    value.flat[0] = np.inf
    variable.assign(value)
    for name in ("inf.weights.h5", "inf.keras"):
        path = str(tmp_path / name)
        if name.endswith(".keras"):
            model.save(path)
        else:
            model.save_weights(path)
        with pytest.raises(WeightsError, match=rf"{path}: .*{variable.path} \(1 of"):
            load_weights(build_model(micro), path)


# --------------------------------------------------------------------------- detect inputs


def test_detect_never_writes_over_its_class_names_or_dataset_info(tmp_path, capsys, no_model_build):
    from PIL import Image

    images, out = tmp_path / "in", tmp_path / "out"
    images.mkdir()
    out.mkdir()
    Image.new("RGB", (32, 24)).save(images / "classes.png")
    names = out / "classes.json"  # detect would write out/classes.json for classes.png
    names.write_text('{"categories": [{"id": 1, "name": "a"}]}')
    args = ["detect", "--config", TINY, str(images), "--out", str(out)]
    assert main(args + ["--weights", "w.weights.h5", "--class-names", str(names)]) == 1
    line = _one_error_line(capsys, "detect")
    assert f"would overwrite the input --class-names {names}" in line
    # Without --class-names, the dataset info beside the weights is read: not overwritten either.
    Image.new("RGB", (32, 24)).save(images / "dataset_info.png")
    (out / "dataset_info.json").write_text('{"class_names": ["a"], "category_ids": [1]}')
    weights = str(out / "last.weights.h5")
    assert main(args + ["--weights", weights]) == 1
    assert "would overwrite the input dataset info" in _one_error_line(capsys, "detect")
