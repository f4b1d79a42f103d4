"""Synthetic shapes: tight visible boxes, partial occlusion, variety, determinism, COCO output."""

import json

import numpy as np
import pytest

from cornernet_tf.data import shapes
from cornernet_tf.data.coco import load_coco


def test_boxes_are_the_tight_visible_extent_and_occlusion_is_partial():
    config = shapes.ShapesConfig(size=(96, 128), noise=0.0)
    overlaps = 0
    for i in range(40):
        image, objects, masks = shapes.render_image(
            np.random.default_rng([3, i]), config, return_masks=True
        )
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8
        assert 1 <= len(objects) <= config.max_objects
        union = np.zeros((96, 128), bool)
        for obj, mask in zip(objects, masks):
            ys, xs = np.nonzero(mask)
            x, y, w, h = obj.bbox
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert obj.area == mask.sum() >= config.min_visible * obj.full_area
            # With no noise a shape's visible pixels all carry its single colour.
            assert len(np.unique(image[mask], axis=0)) == 1
            assert not (union & mask).any()  # visible masks partition the painted pixels
            union |= mask
            assert 0 <= obj.category < config.num_classes
        overlaps += any(
            _overlap(a.bbox, b.bbox) for j, a in enumerate(objects) for b in objects[j + 1 :]
        )
    assert overlaps >= 5  # overlapping boxes do occur


def _overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_variety_of_classes_sizes_and_counts():
    config = shapes.ShapesConfig()
    cats, sides, counts = [], [], []
    for i in range(60):
        _, objects = shapes.render_image(np.random.default_rng([9, i]), config)
        counts.append(len(objects))
        for obj in objects:
            cats.append(obj.category)
            sides.append(max(obj.bbox[2], obj.bbox[3]) / 192)
    assert set(cats) == {0, 1, 2}
    assert min(np.bincount(cats)) > 0.15 * len(cats)  # roughly balanced
    assert min(sides) < 0.2 and max(sides) > 0.5 and max(sides) <= 0.75
    assert len(set(counts)) >= 4


def test_four_classes_include_the_cross():
    config = shapes.ShapesConfig(num_classes=4, noise=0)
    seen = set()
    for i in range(30):
        _, objects = shapes.render_image(np.random.default_rng([1, i]), config)
        seen |= {o.category for o in objects}
    assert seen == {0, 1, 2, 3}
    cross = shapes._shape_mask("cross", 30, 20, np.random.default_rng(0))
    assert (
        cross.any(axis=0).all()
        and cross.any(axis=1).all()
        and not cross[0, 0]
        and not cross[-1, -1]
    )


def test_generate_is_deterministic_per_seed_and_writes_coco(tmp_path):
    a = shapes.generate_shapes(
        str(tmp_path / "a"), 6, seed=4, size=(64, 80), splits="train=0.5,val=0.5"
    )
    b = shapes.generate_shapes(
        str(tmp_path / "b"), 6, seed=4, size=(64, 80), splits="train=0.5,val=0.5"
    )
    c = shapes.generate_shapes(
        str(tmp_path / "c"), 6, seed=5, size=(64, 80), splits="train=0.5,val=0.5"
    )
    for split in ("train", "val"):
        ja, jb, jc = (json.load(open(x[split])) for x in (a, b, c))
        assert ja == jb and ja["annotations"] != jc["annotations"]
        for img in ja["images"]:
            pa = tmp_path / "a" / split / "images" / img["file_name"]
            pb = tmp_path / "b" / split / "images" / img["file_name"]
            assert pa.read_bytes() == pb.read_bytes()
    train, val = json.load(open(a["train"])), json.load(open(a["val"]))
    assert [c["id"] for c in train["categories"]] == [1, 2, 3]
    assert [c["name"] for c in train["categories"]] == ["rectangle", "ellipse", "triangle"]
    ids = [i["id"] for i in train["images"] + val["images"]]
    ann_ids = [x["id"] for x in train["annotations"] + val["annotations"]]
    assert len(set(ids)) == 6 and len(set(ann_ids)) == len(ann_ids)
    for ann in train["annotations"]:
        assert (
            ann["iscrowd"] == 0
            and ann["area"] > 0
            and ann["area"] <= ann["bbox"][2] * ann["bbox"][3]
        )
    # It loads cleanly with our reader: no problem at all.
    ds = load_coco(a["train"], tmp_path / "a" / "train" / "images", scan="decode")
    assert not ds.report.problems and len(ds) == 3


def test_splits_do_not_change_the_images(tmp_path):
    one = shapes.generate_shapes(str(tmp_path / "one"), 4, seed=2, size=(32, 32))
    shapes.generate_shapes(str(tmp_path / "two"), 4, seed=2, size=(32, 32), splits={"x": 1, "y": 3})
    assert set(one) == {"train"}
    assert (tmp_path / "one/train/images/000002.png").read_bytes() == (
        tmp_path / "two/y/images/000002.png"
    ).read_bytes()


def test_parallel_workers_give_the_same_dataset(tmp_path):
    one = shapes.generate_shapes(str(tmp_path / "one"), 5, seed=8, size=(32, 40), workers=1)
    two = shapes.generate_shapes(str(tmp_path / "two"), 5, seed=8, size=(32, 40), workers=2)
    assert json.load(open(one["train"])) == json.load(open(two["train"]))
    for k in range(1, 6):
        name = f"train/images/{k:06d}.png"
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_jpeg_output(tmp_path):
    out = shapes.generate_shapes(str(tmp_path), 2, seed=0, size=(48, 64), image_format="jpeg")
    data = json.load(open(out["train"]))
    assert all(i["file_name"].endswith(".jpg") for i in data["images"])
    assert (tmp_path / "train/images/000001.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_parse_splits():
    assert shapes.parse_splits("train=0.8,val=0.2", 10) == {"train": 8, "val": 2}
    assert shapes.parse_splits("train=0.5,val=0.25,test=0.25", 7) == {
        "train": 4,
        "val": 1,
        "test": 2,
    }
    assert shapes.parse_splits("train=8,val=2", None) == {"train": 8, "val": 2}
    assert shapes.parse_splits(None, 5) == {"train": 5}
    for bad, n in [
        ("train=0.5,val=0.2", 10),
        ("train", 10),
        ("train=x", 10),
        ("train=8,val=2", 11),
        (None, None),
    ]:
        with pytest.raises(ValueError):
            shapes.parse_splits(bad, n)


def test_config_validation():
    for bad in [
        dict(size=(8, 8)),
        dict(num_classes=5),
        dict(min_size=0.7, max_size=0.6),
        dict(max_objects=0),
    ]:
        with pytest.raises(ValueError):
            shapes.ShapesConfig(**bad).validate()
