"""Broken datasets: every defect is repaired and counted, or reported with file and annotation id,
and the pipeline keeps going."""

import json

import numpy as np
import pytest
from PIL import Image

from cornernet_tf.config import DataConfig
from cornernet_tf.data import build_dataset, build_eval_dataset, load_coco, load_source
from cornernet_tf.data.coco import DatasetError

W, H = 64, 48


def _rgb(seed=0, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory):
    """A dataset with one of each defect. Returns (annotations, images folder, pixel references)."""
    root = tmp_path_factory.mktemp("bad")
    img_dir = root / "images"
    img_dir.mkdir()
    ref = {}
    ref["good.png"] = _rgb(1)
    Image.fromarray(ref["good.png"]).save(img_dir / "good.png")
    gray = _rgb(2)[..., 0]
    Image.fromarray(gray).save(img_dir / "gray.png")
    ref["gray.png"] = np.repeat(gray[..., None], 3, axis=2)
    rgba = np.dstack([_rgb(3), np.full((H, W), 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(img_dir / "rgba.png")
    ref["rgba.png"] = rgba[..., :3]
    deep = _rgb(4)[..., 0]
    Image.fromarray(deep.astype(np.uint16) * 257).save(img_dir / "deep16.png")  # 16-bit grayscale
    ref["deep16.png"] = np.repeat(deep[..., None], 3, axis=2)
    smooth = np.tile(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, 1, 3))
    Image.fromarray(smooth).convert("CMYK").save(img_dir / "cmyk.jpg", quality=95)
    ref["cmyk.jpg"] = smooth
    (img_dir / "corrupt.jpg").write_bytes(b"this is not an image at all" * 20)
    Image.fromarray(_rgb(5)).save(img_dir / "whole.jpg", quality=90)
    data = (img_dir / "whole.jpg").read_bytes()
    (img_dir / "truncated.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(_rgb(6, 24, 32)).save(img_dir / "small.png")  # the JSON claims 64x48
    Image.fromarray(_rgb(7)).save(img_dir / "crowded.png")
    Image.fromarray(_rgb(8)).save(img_dir / "boxes.png")

    names = [
        "good.png",
        "gray.png",
        "rgba.png",
        "deep16.png",
        "cmyk.jpg",
        "corrupt.jpg",
        "truncated.jpg",
        "missing.png",
        "small.png",
        "crowded.png",
        "boxes.png",
    ]
    images = [{"id": i + 1, "file_name": n, "width": W, "height": H} for i, n in enumerate(names)]
    ids = {n: i + 1 for i, n in enumerate(names)}
    anns = []

    def ann(image, bbox, cat=1, iscrowd=0):
        anns.append(
            dict(
                id=len(anns) + 1000,
                image_id=ids[image],
                category_id=cat,
                bbox=bbox,
                iscrowd=iscrowd,
            )
        )
        return anns[-1]["id"]

    for n in names[:9]:
        ann(n, [5, 6, 20, 15])
    for k in range(130):  # more than max_objects
        ann("crowded.png", [(k % 13) * 4, (k // 13) * 4, 3, 3], cat=2)
    special = {
        "negative": ann("boxes.png", [10, 10, -5, 8]),
        "outside": ann("boxes.png", [70, 50, 10, 10]),
        "unknown_cat": ann("boxes.png", [1, 1, 10, 10], cat=42),
        "zero": ann("boxes.png", [3, 3, 0, 9]),
        "clipped": ann("boxes.png", [50, 40, 30, 30]),
        "crowd": ann("boxes.png", [1, 1, 30, 30], iscrowd=1),
        "nan": ann("boxes.png", [1, "x", 3, 3]),
    }
    cats = [{"id": 1, "name": "thing"}, {"id": 2, "name": "dot"}]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, img_dir, ref, special


def _problems(report, kind):
    return report.problems_of(kind)


def test_load_time_repairs_and_reports(bad_dataset):
    path, img_dir, _, special = bad_dataset
    ds = load_coco(path, img_dir, scan="header")
    r = ds.report
    by_file = {rec.file_name: rec for rec in ds.records}
    # Dropped files, each named.
    assert "corrupt.jpg" not in by_file and "missing.png" not in by_file
    assert [p.file.endswith("missing.png") for p in _problems(r, "missing")] == [True]
    assert any(p.file.endswith("corrupt.jpg") for p in _problems(r, "unreadable"))
    assert r.counts["images_missing_file"] == 1 and r.counts["images_unreadable"] == 1
    # A header scan cannot see truncation: that file is caught at decode time (next test).
    assert "truncated.jpg" in by_file
    # Modes that the decoder converts are counted.
    converted = {p.file.split("/")[-1] for p in _problems(r, "converted")}
    assert {"gray.png", "rgba.png", "deep16.png", "cmyk.jpg"} <= converted
    assert r.counts["images_converted"] == len(converted)
    # Real size differs from the JSON: boxes rescaled to the file's size.
    small = by_file["small.png"]
    assert (small.width, small.height) == (32, 24)
    np.testing.assert_allclose(small.boxes, [[2.5, 3.0, 12.5, 10.5]])
    assert r.counts["images_size_repaired"] == 1
    # Annotation defects, each with its annotation id.
    for kind, key in [
        ("invalid_bbox", "negative"),
        ("box_outside", "outside"),
        ("unknown_category", "unknown_cat"),
        ("zero_area", "zero"),
        ("invalid_bbox", "nan"),
    ]:
        assert special[key] in [p.annotation_id for p in _problems(r, kind)], kind
    assert r.counts["boxes_dropped_invalid"] == 2
    assert r.counts["boxes_dropped_outside"] == 1
    assert r.counts["boxes_dropped_unknown_category"] == 1
    assert r.counts["boxes_dropped_zero_area"] == 1
    assert r.counts["boxes_crowd_ignored"] == 1
    assert r.counts["boxes_clipped"] == 1
    boxes = by_file["boxes.png"]
    np.testing.assert_array_equal(boxes.boxes, [[50, 40, 64, 48]])  # only the clipped one is left
    # Over max_objects: all kept here, counted and reported.
    assert by_file["crowded.png"].num_objects == 130
    assert r.counts["images_over_max_objects"] == 1
    assert "crowded.png" in _problems(r, "too_many_objects")[0].file
    # Every listed annotation is accounted for.
    accounted = sum(
        r.counts[k] for k in r.counts if k.startswith("boxes_") and k != "boxes_clipped"
    )
    assert accounted == r.counts["boxes"]
    summary = r.summary()
    assert "missing.png" in summary and "annotation id" in summary


def test_decode_scan_also_finds_truncated_files(bad_dataset):
    path, img_dir, _, _ = bad_dataset
    ds = load_coco(path, img_dir, scan="decode")
    assert "truncated.jpg" not in {rec.file_name for rec in ds.records}
    assert any(p.file.endswith("truncated.jpg") for p in ds.report.problems_of("unreadable"))


def _config(path, img_dir, **kw):
    fields = dict(
        val_annotations=str(path),
        val_images=str(img_dir),
        train_annotations=str(path),
        train_images=str(img_dir),
        input_size=[31, 31],
        border=8,
        seed=1,
        deterministic=True,
        num_parallel_calls=2,
    )
    fields.update(kw)
    return DataConfig(**fields)


def test_pipeline_converts_modes_to_rgb_and_skips_undecodable_with_a_count(bad_dataset):
    path, img_dir, ref, _ = bad_dataset
    config = _config(path, img_dir)
    source = load_source(config, training=False, scan="header")
    ds = build_eval_dataset(config, resize=False, source=source)
    out = {int(x["image_id"]): x for x in ds.as_numpy_iterator()}
    names = {rec.image_id: rec.file_name for rec in source.records}
    got = {names[i]: x for i, x in out.items()}
    assert "truncated.jpg" not in got and len(got) == len(source.records) - 1
    for name in ["good.png", "gray.png", "rgba.png", "deep16.png"]:
        assert got[name]["image"].dtype == np.uint8 and got[name]["image"].shape == (H, W, 3)
        np.testing.assert_array_equal(got[name]["image"], ref[name], err_msg=name)
    assert np.abs(got["cmyk.jpg"]["image"].astype(int) - ref["cmyk.jpg"]).mean() < 8
    assert source.report.counts["runtime_images_skipped"] == 1
    skipped = source.report.problems_of("undecodable")
    assert len(skipped) == 1 and skipped[0].file.endswith("truncated.jpg")


def test_training_goes_on_past_broken_files_without_a_scan(bad_dataset):
    """scan='none': missing and corrupt files reach the graph; they are skipped, named and counted."""
    path, img_dir, _, _ = bad_dataset
    config = _config(path, img_dir)
    source = load_source(config, training=True, scan="none")
    assert len(source.records) == 11  # without a scan nothing is dropped at load time
    ds = build_dataset(config, training=True, batch_size=4, source=source)
    batches = [b for b in ds.take(6)]  # 24 images: more than two epochs of the 8 readable ones
    ids = np.concatenate([t["image_id"].numpy() for _, t in batches])
    bad_ids = {
        r.image_id
        for r in source.records
        if r.file_name in ("missing.png", "corrupt.jpg", "truncated.jpg")
    }
    assert not set(ids) & bad_ids
    assert len(set(ids)) == 8
    skipped = {p.file.split("/")[-1] for p in source.report.problems_of("undecodable")}
    assert skipped == {"missing.png", "corrupt.jpg", "truncated.jpg"}
    # Reported once per file although about three epochs reached each (repeats counted apart).
    assert len(source.report.problems_of("undecodable")) == 3
    assert source.report.counts["runtime_images_skipped"] == 3
    assert source.report.counts["runtime_images_skipped_repeats"] >= 6
    missing = [
        p for p in source.report.problems_of("undecodable") if p.file.endswith("missing.png")
    ][0]
    assert "not found" in missing.message
    # The 16-bit, CMYK... images made it through augmentation and encoding.
    assert all(np.isfinite(im.numpy()).all() for im, _ in batches)


def test_runtime_size_mismatch_rescales_boxes(bad_dataset):
    path, img_dir, _, _ = bad_dataset
    config = _config(path, img_dir)
    source = load_source(config, training=False, scan="none")
    ds = build_eval_dataset(config, resize=False, source=source)
    small_id = [r.image_id for r in source.records if r.file_name == "small.png"][0]
    small = [x for x in ds.as_numpy_iterator() if x["image_id"] == small_id][0]
    assert small["image"].shape == (24, 32, 3)
    np.testing.assert_allclose(small["boxes"], [[2.5, 3.0, 12.5, 10.5]])
    assert source.report.counts["runtime_images_size_repaired"] == 1
    assert source.report.problems_of("size_mismatch")[0].file.endswith("small.png")


def test_more_than_max_objects_keeps_the_first_ones_and_counts_the_rest(bad_dataset):
    path, img_dir, _, _ = bad_dataset
    config = _config(path, img_dir, input_size=[47, 63])  # resize 64 -> 63 keeps every 3x3 box
    source = load_source(config, training=False)
    crowded = [r.image_id for r in source.records if r.file_name == "crowded.png"][0]
    ds = build_dataset(config, training=False, source=source)
    targets = [t for _, t in ds.as_numpy_iterator() if t["image_id"] == crowded][0]
    assert targets["num_objects"] == 128 and targets["num_dropped"] == 2
    assert targets["tag_mask"].sum() == 128


def test_unusable_dataset_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "img").mkdir()
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "nope.png"}],
                "annotations": [],
                "categories": [{"id": 1, "name": "x"}],
            }
        )
    )
    with pytest.raises(DatasetError, match="no usable image") as info:
        load_coco(path, tmp_path / "img")
    assert info.value.report.problems_of("missing")[0].file.endswith("nope.png")
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="a.json: not valid JSON"):
        load_coco(path, tmp_path / "img")
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DatasetError, match="categories"):
        load_coco(path, tmp_path / "img")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_coco(tmp_path / "missing.json", tmp_path / "img")
