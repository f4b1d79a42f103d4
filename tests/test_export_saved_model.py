"""`cornernet export`: a TF Serving SavedModel that runs the whole test procedure with core TF ops.

The exported model is loaded in a fresh Python process that never imports cornernet_tf, and must give
the detections of the in-memory graph detector; its best detection must also be the official NumPy
procedure's (same pre-processing, flip merge and mapping back to pixels).
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image
from small_models import SMALL_TF_POOL

from cornernet_tf.cli import main as cli_main
from cornernet_tf.config import ConfigError, load_config
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.export.common import resolve_dataset_info
from cornernet_tf.export.saved_model import OUTPUT_KEYS, next_version

CONFIG = "configs/cornernet_tiny.yaml"
SMALL = SMALL_TF_POOL
CATEGORY_IDS = [5, 7, 9]


def pair_all_corners(model):
    """Random networks rarely give two corners close embeddings; zero embedding heads make every
    geometrically valid pair of one class a detection, so the procedure has work to do."""
    for stack in model.stacks:
        for corner in ("tl", "br"):
            for var in stack[f"{corner}_tag"].out.weights:
                var.assign(np.zeros(var.shape, np.float32))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Shapes images of two sizes (PNG files and decoded arrays)."""
    from PIL import Image

    from cornernet_tf.data.shapes import generate_shapes

    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(str(root / "a"), seed=11, size=(192, 192), splits={"val": 2})
    generate_shapes(str(root / "b"), seed=12, size=(97, 131), splits={"val": 1})
    paths = sorted(str(p) for p in root.glob("*/val/images/*.png"))
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return paths, arrays


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Random weights saved to a file, exported through the command line as version 3."""
    root = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    config = load_config(CONFIG, SMALL)
    from cornernet_tf.modeling.cornernet import build_model

    model = build_model(config.model)
    pair_all_corners(model)
    weights = str(root / "model.weights.h5")
    model.save_weights(weights)
    args = [
        "export",
        "--config",
        CONFIG,
        "--weights",
        weights,
        "--out",
        str(root / "cornernet"),
        "--version",
        "3",
        "--category-ids",
        ",".join(map(str, CATEGORY_IDS)),
    ]
    for item in SMALL:
        args += ["--set", item]
    assert cli_main(args) == 0
    return {
        "dir": str(root / "cornernet"),
        "version_dir": str(root / "cornernet" / "3"),
        "model": model,
        "config": config,
    }


def test_layout_and_signatures(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    version_dir = exported["version_dir"]
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isfile(os.path.join(version_dir, "variables", "variables.index"))
    assert os.path.isfile(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))
    meta = json.load(open(os.path.join(version_dir, "assets.extra", "cornernet_export.json")))
    assert meta["category_ids"] == CATEGORY_IDS
    assert next_version(exported["dir"]) == 4

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(open(os.path.join(version_dir, "saved_model.pb"), "rb").read())
    sigs = saved.meta_graphs[0].signature_def
    assert {"serving_default", "serving_bytes"} <= set(sigs)
    images = sigs["serving_default"].inputs["images"]
    assert images.dtype == 4  # DT_UINT8
    assert [d.size for d in images.tensor_shape.dim] == [-1, -1, -1, 3]
    image_bytes = sigs["serving_bytes"].inputs["image_bytes"]
    assert image_bytes.dtype == 7 and [d.size for d in image_bytes.tensor_shape.dim] == [
        -1
    ]  # DT_STRING
    for key in ("serving_default", "serving_bytes"):
        outputs = sigs[key].outputs
        assert set(outputs) == set(OUTPUT_KEYS)
        assert [d.size for d in outputs["detection_boxes"].tensor_shape.dim] == [-1, 100, 4]
        assert [d.size for d in outputs["detection_classes"].tensor_shape.dim] == [-1, 100]
        assert [d.size for d in outputs["num_detections"].tensor_shape.dim] == [-1]
    # No custom op may appear anywhere in the graph (TF Serving could not load it).
    ops = {node.op for node in saved.meta_graphs[0].graph_def.node}
    ops |= {node.op for f in saved.meta_graphs[0].graph_def.library.function for node in f.node_def}
    assert "CornerPool" not in ops and "NonMaxSuppressionV5" in ops and "DecodeImage" in ops


SUBPROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    spec = json.load(open(sys.argv[1]))
    model = tf.saved_model.load(spec["model"])
    out = {}
    images = [np.load(p) for p in spec["arrays"]]
    same = tf.constant(np.stack(images[:2]))  # two images of one size in one batch
    for key, value in model.signatures["serving_default"](images=same).items():
        out["batch_" + key] = value.numpy()
    for key, value in model.signatures["serving_default"](images=tf.constant(images[2][None])).items():
        out["single_" + key] = value.numpy()
    data = [open(p, "rb").read() for p in spec["files"]]  # mixed sizes in one batch
    for key, value in model.signatures["serving_bytes"](image_bytes=tf.constant(data)).items():
        out["bytes_" + key] = value.numpy()
    np.savez(spec["out"], **out)
    print(json.dumps({"cornernet_tf_imported": any(m.split(".")[0] == "cornernet_tf" for m in sys.modules)}))
""")


@pytest.fixture(scope="module")
def fresh_process_outputs(exported, images, tmp_path_factory):
    root = tmp_path_factory.mktemp("fresh")
    paths, arrays = images
    array_files = []
    for i, array in enumerate(arrays):
        array_files.append(str(root / f"image{i}.npy"))
        np.save(array_files[-1], array)
    spec = {
        "model": exported["version_dir"],
        "arrays": array_files,
        "files": paths,
        "out": str(root / "out.npz"),
    }
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "run.py").write_text(SUBPROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, str(root / "run.py"), str(root / "spec.json")],
        cwd=str(root),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(spec["out"]) as data:
        return report, {k: data[k] for k in data.files}


def _in_memory(exported, array_batch):
    """The graph detector run in this process, outputs in the exported convention."""
    import tensorflow as tf

    from cornernet_tf.inference.graph_detector import detect_images

    config = exported["config"]
    out = detect_images(
        exported["model"],
        tf.constant(array_batch),
        config.test,
        100,
        config.data.mean,
        config.data.std,
    )
    h, w = array_batch.shape[1:3]
    boxes = out["boxes"].numpy()[..., [1, 0, 3, 2]] / np.array([h, w, h, w], np.float32)
    lookup = np.array([0] + CATEGORY_IDS, np.float32)
    return {
        "detection_boxes": boxes,
        "detection_scores": out["scores"].numpy(),
        "detection_classes": lookup[out["classes"].numpy() + 1],
        "num_detections": out["num_detections"].numpy().astype(np.float32),
    }


def test_fresh_process_without_cornernet_tf_matches_in_memory_detector(
    exported, images, fresh_process_outputs
):
    report, got = fresh_process_outputs
    assert report == {"cornernet_tf_imported": False}
    _, arrays = images
    expected = {
        "batch": _in_memory(exported, np.stack(arrays[:2])),
        "single": _in_memory(exported, arrays[2][None]),
    }
    for prefix, reference in expected.items():
        np.testing.assert_array_equal(got[f"{prefix}_num_detections"], reference["num_detections"])
        np.testing.assert_array_equal(
            got[f"{prefix}_detection_classes"], reference["detection_classes"]
        )
        np.testing.assert_allclose(
            got[f"{prefix}_detection_scores"], reference["detection_scores"], atol=1e-5
        )
        np.testing.assert_allclose(
            got[f"{prefix}_detection_boxes"], reference["detection_boxes"], atol=1e-5
        )
    assert got["batch_num_detections"].min() > 0
    assert set(np.unique(got["batch_detection_classes"])) <= {0.0, 5.0, 7.0, 9.0}
    # The bytes signature decodes the PNGs in the graph: same results, mixed sizes in one batch.
    for key in OUTPUT_KEYS:
        merged = np.concatenate([got[f"batch_{key}"], got[f"single_{key}"]])
        np.testing.assert_allclose(got[f"bytes_{key}"], merged, atol=1e-6)


def test_best_detection_matches_the_official_numpy_procedure(
    exported, images, fresh_process_outputs
):
    """The best box is never decayed by soft-NMS, so both procedures must agree on it exactly;
    the agreement over the top 20 is printed (soft-NMS details differ by design, docs/method.md §7)."""
    from cornernet_tf.inference.detector import Detector

    _, got = fresh_process_outputs
    _, arrays = images
    config = exported["config"]
    detector = Detector(exported["model"], config.test, mean=config.data.mean, std=config.data.std)
    rows = [("batch", 0), ("batch", 1), ("single", 0)]
    for array, (prefix, index) in zip(arrays, rows):
        official = detector.detect(array)
        h, w = array.shape[:2]
        boxes = got[f"{prefix}_detection_boxes"][index][:, [1, 0, 3, 2]] * np.array([w, h, w, h])
        np.testing.assert_allclose(boxes[0], official["boxes"][0], atol=1e-3)
        np.testing.assert_allclose(
            got[f"{prefix}_detection_scores"][index][0], official["scores"][0], atol=1e-5
        )
        assert got[f"{prefix}_detection_classes"][index][0] == CATEGORY_IDS[official["classes"][0]]
        top = min(20, len(official["scores"]))
        matched = sum(
            np.any(np.all(np.abs(boxes[:100] - official["boxes"][k]) < 1e-2, axis=1))
            for k in range(top)
        )
        print(
            f"image {h}x{w}: {matched}/{top} of the official top-{top} boxes are in the exported top-100"
        )


def test_bad_inputs_fail_with_a_message(exported):
    import tensorflow as tf

    model = tf.saved_model.load(exported["version_dir"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch is empty"):
        model.signatures["serving_default"](images=tf.zeros([0, 32, 32, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image file format"):
        model.signatures["serving_bytes"](image_bytes=tf.constant([b"not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch is empty"):
        model.signatures["serving_bytes"](image_bytes=tf.constant([], tf.string))
    ok = model.signatures["serving_default"](images=tf.zeros([1, 40, 50, 3], tf.uint8))
    assert ok["detection_boxes"].shape == (1, 100, 4)


def test_existing_version_is_not_overwritten(exported):
    from cornernet_tf.export.saved_model import export_saved_model

    with pytest.raises(FileExistsError, match="--overwrite"):
        export_saved_model(exported["config"], out_dir=exported["dir"], version=3)


# ----------------------------------------------------------------------------- category ids


def test_category_ids_come_from_the_first_source_that_has_them(tmp_path):
    config = load_config(CONFIG, ["data.train_annotations=null", "data.val_annotations=null"])
    assert resolve_dataset_info(config).category_ids == (1, 2, 3)
    assert resolve_dataset_info(config, category_ids=[4, 2, 9]).category_ids == (4, 2, 9)

    annotations = tmp_path / "val.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [],
                "annotations": [],
                "categories": [
                    {"id": 13, "name": "c"},
                    {"id": 11, "name": "a"},
                    {"id": 12, "name": "b"},
                ],
            }
        )
    )
    from_file = load_config(CONFIG, [f"data.val_annotations={annotations}"])
    assert resolve_dataset_info(from_file).category_ids == (11, 12, 13)
    named = load_config(CONFIG, [f"data.val_annotations={annotations}", "data.class_names=[c,a,b]"])
    assert resolve_dataset_info(named).category_ids == (13, 11, 12)

    weights = tmp_path / "run" / "best.weights.h5"
    weights.parent.mkdir()
    DatasetInfo(("x", "y", "z"), (21, 22, 23)).save(str(tmp_path / "run" / "dataset_info.json"))
    assert resolve_dataset_info(from_file, weights=str(weights)).category_ids == (21, 22, 23)

    with pytest.raises(ConfigError, match="num_classes"):
        resolve_dataset_info(config, category_ids=[1, 2])


def test_oversized_images_are_refused_in_both_signatures(exported):
    """More than MAX_INPUT_PIXELS: INVALID_ARGUMENT from the header (bytes) or the shape (pixels),
    before anything is decoded or run; a normal image still works afterwards."""
    import tensorflow as tf
    from crafted_images import encoded, jpeg_declaring, png_header

    from cornernet_tf.data.pixel_limit import MAX_INPUT_PIXELS

    loaded = tf.saved_model.load(exported["version_dir"])
    by_bytes = loaded.signatures["serving_bytes"]
    by_pixels = loaded.signatures["serving_default"]
    for data in (png_header(20000, 20000), jpeg_declaring(20000, 20000)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="MAX_INPUT_PIXELS"):
            by_bytes(image_bytes=tf.constant([data]))
    side = int(np.ceil(np.sqrt(MAX_INPUT_PIXELS + 1)))  # 8193 x 8193: just over, 201 MB
    with pytest.raises(tf.errors.InvalidArgumentError, match="MAX_INPUT_PIXELS"):
        by_pixels(images=tf.zeros([1, side, side, 3], tf.uint8))
    ok = by_bytes(image_bytes=tf.constant([encoded(np.full((30, 40, 3), 9, np.uint8), "PNG")]))
    assert ok["detection_boxes"].shape[0] == 1


def test_a_long_image_is_downscaled_in_the_graph_with_the_same_normalised_boxes(exported, images):
    import tensorflow as tf

    from cornernet_tf.data.pixel_limit import MAX_NETWORK_SIDE

    serve = tf.saved_model.load(exported["version_dir"]).signatures["serving_default"]
    shapes = images[1][0]  # 192 x 192 shapes image, repeated into a 192 x 2148 strip
    long = np.tile(shapes, (1, 12, 1))[None, :, : MAX_NETWORK_SIDE + 100]
    small_hw = [round(long.shape[1] * MAX_NETWORK_SIDE / long.shape[2]), MAX_NETWORK_SIDE]
    reference = tf.image.resize(long, small_hw, method="bilinear", antialias=True)
    reference = tf.cast(tf.clip_by_value(tf.round(reference), 0, 255), tf.uint8)
    got, want = serve(images=tf.constant(long)), serve(images=reference)
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-6, err_msg=key)


def test_fit_network_side_downscales_only_long_images():
    import tensorflow as tf

    from cornernet_tf.export.saved_model import fit_network_side

    rng = np.random.default_rng(2)
    small = tf.constant(rng.integers(0, 255, (2, 30, 64, 3), np.uint8))
    assert fit_network_side(small, max_side=64) is small or np.array_equal(
        fit_network_side(small, max_side=64), small
    )
    long = tf.constant(rng.integers(0, 255, (1, 50, 200, 3), np.uint8))
    out = fit_network_side(long, max_side=64).numpy()
    assert out.shape == (1, 16, 64, 3) and out.dtype == np.uint8
    # The antialiased reference in NumPy: a 50 x 200 -> 16 x 64 box-like average stays close.
    pil = np.asarray(
        Image.fromarray(long.numpy()[0]).resize((64, 16), Image.Resampling.BILINEAR), np.int16
    )
    assert np.abs(out[0].astype(np.int16) - pil).mean() < 3
