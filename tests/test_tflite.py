"""TFLite export of the tiny hourglass: builtin operators only, float32 parity with Keras, fp16/int8 run.

The float32 ``.tflite`` model must reproduce the Keras maps (heatmap logits within 1e-4) and, through
the shipped NumPy post-processor, the same detections on the shapes images. fp16 and int8 are
compared with float32 and the agreement is printed; only sane bounds are asserted for them.
(CornerNet-Squeeze: tests/test_tflite_squeeze.py.)
"""

import contextlib
import json
import os
import sys

import keras
import numpy as np
import pytest

from cornernet_tf.detection.decode_np import sigmoid
from cornernet_tf.export import postprocess as pp
from cornernet_tf.export.litert_runner import LiteRTDetector
from cornernet_tf.export.tflite import (
    ConversionError,
    convert_saved_model,
    convert_variants,
    list_operators,
)

CONFIG = "configs/cornernet_tiny.yaml"
HEAT_ATOL = 1e-4


# ----------------------------------------------------------------------------- shared helpers
def random_model(config_path, overrides=(), seed=0):
    """Random weights; zero embedding heads so that corners pair into detections."""
    from cornernet_tf.config import load_config
    from cornernet_tf.modeling.cornernet import build_model

    keras.utils.set_random_seed(seed)
    config = load_config(config_path, ["model.corner_pool_impl=tf", *overrides])
    model = build_model(config.model)
    for stack in model.stacks:
        for corner in ("tl", "br"):
            for var in stack[f"{corner}_tag"].out.weights:
                var.assign(np.zeros(var.shape, np.float32))
    return model, config


def shapes_images(root, count=4, seed=21, size=(192, 192)):
    from PIL import Image

    from cornernet_tf.data.shapes import generate_shapes

    generate_shapes(str(root), seed=seed, size=size, splits={"train": count, "val": count})
    val = sorted((root / "val" / "images").glob("*.png"))
    return str(root / "train" / "images"), [np.asarray(Image.open(p).convert("RGB")) for p in val]


def keras_maps(model, canvas):
    out = model(canvas, training=False, stacks="last")
    return {name: out[name][-1].numpy() for name in pp.MAP_NAMES}


def assert_builtin_only(path):
    meta = json.load(open(path + ".json"))
    ops = list_operators(open(path, "rb").read())
    assert ops == meta["operators"] and ops
    assert not [name for name in ops if name.startswith("CUSTOM") or "FLEX" in name.upper()], ops
    return meta


def assert_same_detections(a, b, label):
    assert len(a["scores"]) == len(b["scores"]), label
    np.testing.assert_array_equal(a["classes"], b["classes"], err_msg=label)
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-5, err_msg=label)
    np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-3, err_msg=label)


def box_agreement(reference, other, top=10, iou=0.7):
    """Fraction of the reference's ``top`` detections found in ``other`` (same class, IoU >= iou)."""
    n = min(top, len(reference["scores"]))
    if n == 0:
        return 1.0
    hits = 0
    for box, cls in zip(reference["boxes"][:n], reference["classes"][:n]):
        same = other["boxes"][other["classes"] == cls]
        if len(same) == 0:
            continue
        x1 = np.maximum(box[0], same[:, 0])
        y1 = np.maximum(box[1], same[:, 1])
        x2 = np.minimum(box[2], same[:, 2])
        y2 = np.minimum(box[3], same[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = (
            (box[2] - box[0]) * (box[3] - box[1])
            + (same[:, 2] - same[:, 0]) * (same[:, 3] - same[:, 1])
            - inter
        )
        hits += bool(np.any(inter / np.maximum(union, 1e-9) >= iou))
    return hits / n


def check_variants(model, paths, images, name):
    """float32 parity (maps and detections) with Keras; fp16/int8 sane and compared with float32."""
    reference = LiteRTDetector(paths["none"], num_threads=2)
    report = {}
    for image_index, image in enumerate(images):
        canvas, geometry = pp.prepare_input(image, reference.input_hw, reference.output_stride)
        expected_maps = keras_maps(model, canvas)
        expected = pp.postprocess(expected_maps, geometry, reference.config)
        got_maps = reference.maps(canvas)
        for key in pp.MAP_NAMES:
            err = float(np.max(np.abs(got_maps[key] - expected_maps[key])))
            assert err <= (HEAT_ATOL if "heat" in key else 1e-3), f"{name} float32 {key}: {err:.2e}"
        fp32 = reference.detect(image)
        assert_same_detections(fp32, expected, f"{name} image {image_index}")
        for quantize in ("fp16", "int8"):
            runner = LiteRTDetector(paths[quantize], num_threads=2)
            maps = runner.maps(canvas)
            for key, value in maps.items():
                assert value.shape == expected_maps[key].shape and np.all(np.isfinite(value)), (
                    quantize,
                    key,
                )
            heat_err = max(
                float(np.max(np.abs(sigmoid(maps[k]) - sigmoid(expected_maps[k]))))
                for k in ("tl_heat", "br_heat")
            )
            agreement = box_agreement(fp32, runner.detect(image))
            report.setdefault(quantize, []).append((heat_err, agreement))
    for quantize, rows in report.items():
        heat = max(r[0] for r in rows)
        agree = float(np.mean([r[1] for r in rows]))
        print(
            f"{name} {quantize} vs float32: max |sigmoid(heat) diff| {heat:.4f}, top-10 box agreement {agree:.2f}"
        )
        assert heat < (0.05 if quantize == "fp16" else 0.5), (quantize, heat)
    return report


@contextlib.contextmanager
def stderr_to_file(path):
    """File descriptor 2 (where the converter's C++ logging goes) written to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# ----------------------------------------------------------------------------- tiny hourglass
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite_tiny")
    train_dir, images = shapes_images(root / "shapes")
    model, config = random_model(CONFIG)
    with stderr_to_file(root / "stderr.txt"):
        paths = convert_variants(
            model,
            {q: str(root / f"tiny_{q}.tflite") for q in ("none", "fp16", "int8")},
            representative_images_dir=train_dir,
            num_representative=4,
            config=config,
        )
    np.save(root / "image.npy", images[0])
    return {
        "model": model,
        "config": config,
        "paths": paths,
        "images": images,
        "image_file": root / "image.npy",
        "conversion_stderr": (root / "stderr.txt").read_text(errors="replace"),
    }


def test_conversion_keeps_the_converters_routine_lines_off_stderr(tiny):
    """float32, fp16 and int8 conversions: none of the lines the converter prints on every run."""
    from cornernet_tf.export.tflite import HARMLESS_CONVERTER_LINES

    for fragment in HARMLESS_CONVERTER_LINES:
        assert fragment not in tiny["conversion_stderr"], fragment


def test_files_metadata_and_builtin_operators(tiny):
    sizes = {}
    for quantize, path in tiny["paths"].items():
        meta = assert_builtin_only(path)
        sizes[quantize] = os.path.getsize(path)
        assert meta["quantize"] == quantize
        side = tiny["config"].data.input_size[0] | 127  # the test procedure's padding
        assert meta["input"] == {"name": "images", "dtype": "uint8", "shape": [1, side, side, 3]}
        assert (
            meta["outputs"]["tl_heat"] == [1, (side + 1) // 4, (side + 1) // 4, 3]
            and meta["output_stride"] == 4
        )
        assert meta["category_ids"] == [1, 2, 3]
        assert "CONV_2D" in meta["operators"] and "MAXIMUM" in meta["operators"]  # corner pooling
    assert json.load(open(tiny["paths"]["int8"] + ".json"))["representative_images"] == 4
    assert sizes["int8"] < sizes["fp16"] < sizes["none"]


def test_float32_matches_keras_and_quantized_variants_run(tiny):
    check_variants(tiny["model"], tiny["paths"], tiny["images"], "tiny hourglass")


def test_runner_rejects_wrong_canvas(tiny):
    runner = LiteRTDetector(tiny["paths"]["none"])
    with pytest.raises(ValueError, match="uint8 canvas"):
        runner.maps(np.zeros((1, 255, 255, 3), np.float32))
    large = np.zeros((400, 300, 3), np.uint8)  # larger than the canvas: shrunk to fit
    result = runner.detect(large)
    assert result["boxes"].shape[1] == 4 and np.all(result["boxes"][:, [0, 2]] <= 300.0)
    assert np.all(result["boxes"][:, [1, 3]] <= 400.0)


def test_conversion_refuses_operators_outside_the_builtins(tmp_path):
    """Proof that builtins-only is enforced: a graph that needs a TF (Flex) op converts only when
    Select TF ops are allowed, and our converter refuses it."""
    import tensorflow as tf

    module = tf.Module()
    module.serve = tf.function(
        lambda x: {"s": tf.linalg.inv(x)},
        input_signature=[tf.TensorSpec([4, 4], tf.float32, name="x")],
    )
    path = str(tmp_path / "inverse")
    tf.saved_model.save(
        module, path, signatures={"serving_default": module.serve.get_concrete_function()}
    )
    with pytest.raises(ConversionError, match="builtin"):
        convert_saved_model(path, "none")
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    assert any(name.startswith("CUSTOM:Flex") for name in list_operators(converter.convert()))


def test_tflite_input_size_is_checked():
    from cornernet_tf.config import load_config
    from cornernet_tf.export.tflite import tflite_input_size

    config = load_config(CONFIG)
    side = config.data.input_size[0] | 127
    assert tflite_input_size(config) == (side, side)
    assert tflite_input_size(config, [127, 383]) == (127, 383)
    with pytest.raises(ValueError, match="divide by 2\\*\\*3"):
        tflite_input_size(config, [200, 255])


def test_litert_runner_needs_no_tensorflow(tiny):
    """On a device: NumPy, ai-edge-litert and this package, TensorFlow and Keras unavailable."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        f"sys.path.insert(0, {root!r})\n"
        "import json, numpy as np\n"
        "from cornernet_tf.export.litert_runner import LiteRTDetector\n"
        f"image = np.load({str(tiny['image_file'])!r})\n"
        f"result = LiteRTDetector({tiny['paths']['none']!r}).detect(image)\n"
        "print(json.dumps({k: np.asarray(v).tolist() for k, v in result.items()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = LiteRTDetector(tiny["paths"]["none"]).detect(tiny["images"][0])
    np.testing.assert_allclose(np.array(got["boxes"]).reshape(-1, 4), expected["boxes"], atol=1e-4)
    np.testing.assert_array_equal(got["category_ids"], expected["category_ids"])
