"""TFLite export of CornerNet-Squeeze (8x stem, fire modules, transposed convolutions, depthwise 3x3):
the same checks as tests/test_tflite.py, with the int8 model written by `cornernet export-tflite`."""

import json

import numpy as np
import pytest
from test_tflite import assert_builtin_only, check_variants, random_model, shapes_images

from cornernet_tf.cli import main as cli_main
from cornernet_tf.export.tflite import convert_variants

CONFIG = "configs/cornernet_squeeze_tiny.yaml"


@pytest.fixture(scope="module")
def squeeze(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite_squeeze")
    train_dir, images = shapes_images(root / "shapes", seed=33)
    model, config = random_model(CONFIG, seed=3)
    weights = str(root / "squeeze.weights.h5")
    model.save_weights(weights)
    paths = convert_variants(
        model, {q: str(root / f"squeeze_{q}.tflite") for q in ("none", "fp16")}, config=config
    )
    paths["int8"] = str(root / "squeeze_int8.tflite")
    code = cli_main(
        [
            "export-tflite",
            "--config",
            CONFIG,
            "--weights",
            weights,
            "--out",
            paths["int8"],
            "--quantize",
            "int8",
            "--representative-images",
            train_dir,
            "--num-representative",
            "4",
            "--category-ids",
            "10,20,30",
        ]
    )
    assert code == 0
    return {"model": model, "paths": paths, "images": images}


def test_squeeze_files_use_builtin_operators_only(squeeze):
    for quantize, path in squeeze["paths"].items():
        meta = assert_builtin_only(path)
        assert meta["input"]["shape"] == [1, 255, 255, 3] and meta["output_stride"] == 8
        assert meta["outputs"]["br_regr"] == [1, 32, 32, 2]
        for op in ("DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONCATENATION"):
            assert op in meta["operators"], (quantize, op)
    int8 = json.load(open(squeeze["paths"]["int8"] + ".json"))
    assert int8["category_ids"] == [10, 20, 30] and int8["representative_images"] == 4


def test_squeeze_float32_matches_keras_and_quantized_variants_run(squeeze):
    check_variants(squeeze["model"], squeeze["paths"], squeeze["images"], "squeeze")


def test_export_tflite_command_rejects_bad_arguments(tmp_path, capsys):
    weights = str(tmp_path / "none.weights.h5")
    assert (
        cli_main(["export-tflite", "--config", CONFIG, "--weights", weights, "--out", "x.bin"]) == 1
    )
    assert "must end with .tflite" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "export-tflite",
                "--config",
                CONFIG,
                "--weights",
                weights,
                "--out",
                str(tmp_path / "m.tflite"),
            ]
        )
        == 1
    )
    assert "weights file not found" in capsys.readouterr().err
    assert not np.any([p.suffix == ".tflite" for p in tmp_path.iterdir()])
