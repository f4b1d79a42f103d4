"""`cornernet detect` and `cornernet eval` from the command line: outputs, bad files, bad weights."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from cornernet_tf.cli import main
from cornernet_tf.config import load_config
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.eval.detect_images import (
    class_names_for,
    image_ids_for,
    list_image_sources,
    list_images,
    read_image,
    unique_stem,
)
from cornernet_tf.modeling.cornernet import build_model

TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "cornernet_tiny.yaml")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    keras.utils.set_random_seed(1)
    root = tmp_path_factory.mktemp("weights")
    model = build_model(load_config(TINY).model)
    # Constant embeddings group every same-class corner pair, so a random network still returns
    # boxes (with random embeddings it may return none).
    for stack in model.stacks:
        for corner in ("tl", "br"):
            head = stack[f"{corner}_tag"].out
            head.kernel.assign(np.zeros(head.kernel.shape, np.float32))
    path = str(root / "tiny.weights.h5")
    model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """RGB PNG, grayscale JPEG, RGBA PNG, 16-bit PNG, a truncated JPEG and a text file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(root / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (60, 50), dtype=np.uint8)).save(root / "gray.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 64, 4), dtype=np.uint8)).save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (30, 40), dtype=np.uint16)).save(root / "deep.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "broken.jpg")
    raw = (root / "broken.jpg").read_bytes()
    (root / "broken.jpg").write_bytes(raw[: len(raw) // 3])
    (root / "notes.txt").write_text("not an image")
    return root


def test_read_image_converts_and_reports(images):
    for name, shape, note in (
        ("rgb.png", (70, 90, 3), None),
        ("gray.jpg", (60, 50, 3), "L -> RGB"),
        ("rgba.png", (40, 64, 3), "RGBA -> RGB"),
        ("deep.png", (30, 40, 3), "I;16 -> RGB"),
    ):
        image, got = read_image(str(images / name))
        assert image.shape == shape and image.dtype == np.uint8, name
        assert got == note, name
    rgba = np.asarray(Image.open(images / "rgba.png"))
    np.testing.assert_array_equal(read_image(str(images / "rgba.png"))[0], rgba[..., :3])
    with pytest.raises(ValueError, match="broken.jpg: .*truncated"):
        read_image(str(images / "broken.jpg"))


def test_list_images(images, tmp_path):
    files = [os.path.basename(p) for p in list_images([str(images)])]
    assert files == [
        "broken.jpg",
        "deep.png",
        "gray.jpg",
        "rgb.png",
        "rgba.png",
    ]  # sorted, .txt left out
    assert list_images([str(images / "notes.txt")]) == [
        str(images / "notes.txt")
    ]  # named files are tried
    with pytest.raises(ValueError, match="no image files in folder"):
        list_images([str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="image or folder not found"):
        list_images([str(tmp_path / "nope.png")])
    taken = set()
    assert [unique_stem(p, taken) for p in ("a/x.png", "b/x.jpg", "x.png")] == ["x", "x_2", "x_3"]


def test_detect_writes_json_png_and_heatmaps(weights, images, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("rectangle\nellipse\ntriangle\n")
    out = tmp_path / "out"
    # fewer pairs per view keep the soft-NMS of a grouping-everything network quick
    rc = main(
        [
            "detect",
            "--config",
            TINY,
            "--set",
            "test.num_dets=100",
            "--weights",
            weights,
            str(images),
            "--out",
            str(out),
            "--score-threshold",
            "0.05",
            "--heatmaps",
            "--class-names",
            str(names),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert "1 skipped" in captured.err and "broken.jpg" in captured.err
    assert "converted to RGB" in captured.out
    for stem, (h, w) in {
        "rgb": (70, 90),
        "gray": (60, 50),
        "rgba": (40, 64),
        "deep": (30, 40),
    }.items():
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["height"], record["width"]) == (h, w)
        assert record["image"].endswith(stem + (".jpg" if stem == "gray" else ".png"))
        scores = [d["score"] for d in record["detections"]]
        assert scores == sorted(scores, reverse=True) and all(s >= 0.05 for s in scores)
        for d in record["detections"]:
            x, y, bw, bh = d["bbox"]  # COCO: x y w h
            assert 0 <= x <= x + bw <= w + 0.01 and 0 <= y <= y + bh <= h + 0.01
            # no dataset info: category ids 1..3 in the order of the names
            assert d["class_name"] == ["rectangle", "ellipse", "triangle"][d["category_id"] - 1]
            assert d["image_id"] == record["image_id"]
        assert Image.open(out / f"{stem}.png").size == (w, h)
        assert Image.open(out / f"{stem}_heatmaps.png").size[1] >= h
    assert not (out / "broken.json").exists()
    # all images' COCO results together; ids 1.. in the sorted input order (names are not numbers)
    results = json.loads((out / "detections.json").read_text())
    ids = {os.path.basename(r["file_name"]): r["image_id"] for r in results}
    assert set(ids) <= {"deep.png", "gray.jpg", "rgb.png", "rgba.png"}
    assert all(
        ids[name] == ["broken.jpg", "deep.png", "gray.jpg", "rgb.png", "rgba.png"].index(name) + 1
        for name in ids
    )
    assert len(results) == sum(
        len(json.loads((out / f"{s}.json").read_text())["detections"])
        for s in ("rgb", "gray", "rgba", "deep")
    )
    assert (
        sum(len(json.loads((out / f"{s}.json").read_text())["detections"]) for s in ("rgb", "gray"))
        > 0
    )


def test_image_ids_follow_coco_file_names(tmp_path):
    assert image_ids_for(["000000397133", "sub/000000000139"]) == [397133, 139]
    assert image_ids_for(["000000397133", "dog"]) == [1, 2]  # not all numbers: input order
    assert image_ids_for(["7", "007"]) == [1, 2]  # the same number twice
    # an image named like the combined results file does not overwrite it
    (tmp_path / "detections.png").write_bytes(b"")
    assert [stem for _, stem in list_image_sources([str(tmp_path)])] == ["detections_2"]


def test_class_names_come_from_the_dataset_info_beside_the_weights(tmp_path):
    config = load_config(TINY, ["data.train_annotations=null", "data.val_annotations=null"])
    weights = tmp_path / "run" / "last.weights.h5"
    weights.parent.mkdir()
    assert class_names_for(config, 3, weights=str(weights)) == ["class_0", "class_1", "class_2"]
    DatasetInfo(("cat", "dog", "cow"), (3, 7, 9)).save(str(weights.parent / "dataset_info.json"))
    assert class_names_for(config, 3, weights=str(weights)) == ["cat", "dog", "cow"]
    names_file = tmp_path / "names.txt"
    names_file.write_text("a\nb\nc\n")
    assert class_names_for(config, 3, str(names_file), weights=str(weights)) == ["a", "b", "c"]


def test_detect_empty_folder_fails_clearly(weights, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(
        ["detect", "--config", TINY, "--weights", weights, str(empty), "--out", str(tmp_path / "o")]
    )
    assert rc != 0
    assert "no image files in folder" in capsys.readouterr().err


def test_detect_only_unreadable_files_fails(weights, images, tmp_path, capsys):
    rc = main(
        [
            "detect",
            "--config",
            TINY,
            "--weights",
            weights,
            str(images / "broken.jpg"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 1
    assert "broken.jpg" in capsys.readouterr().err


def test_weights_of_another_architecture(weights, images, tmp_path, capsys):
    rc = main(
        [
            "detect",
            "--config",
            TINY,
            "--set",
            "model.num_classes=7",
            "--weights",
            weights,
            str(images / "rgb.png"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc != 0
    assert weights in err and "cornernet_tiny.yaml" in err and "num_classes=7" in err


def test_eval_command(weights, tmp_path, capsys):
    from cornernet_tf.data.shapes import generate_shapes

    ann = generate_shapes(str(tmp_path / "shapes"), seed=2, size=(48, 64), splits={"val": 3})["val"]
    out = tmp_path / "eval"
    rc = main(
        [
            "eval",
            "--config",
            TINY,
            "--set",
            "test.num_dets=100",
            "--weights",
            weights,
            "--annotations",
            ann,
            "--images",
            str(tmp_path / "shapes" / "val" / "images"),
            "--out",
            str(out),
            "--max-images",
            "2",
            "--no-progress",
            "--oracle",
            "heatmaps+offsets",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0
    assert (
        "Average Precision  (AP) @[ IoU=0.90" in printed
        and "Oracle: ground-truth heatmaps+offsets" in printed
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"]["evaluated"] == 2 and metrics["weights"] == weights
    # ground-truth heatmaps and offsets, grouping embeddings: the true boxes come back
    assert metrics["oracle"] == "heatmaps+offsets" and metrics["AP50"] > 0.5
    assert set(metrics["per_class"]) == {"rectangle", "ellipse", "triangle"}
    results = json.loads((out / "detections.json").read_text())
    assert {r["image_id"] for r in results} <= {1, 2, 3}
