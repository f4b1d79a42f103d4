"""evaluate(): a tiny model over a small shapes dataset with broken, grayscale and RGBA files."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from cornernet_tf.config import load_config
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.eval.coco_eval import SUMMARY_KEYS, evaluate_detections
from cornernet_tf.eval.runner import evaluate, format_report
from cornernet_tf.modeling.cornernet import build_model

TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "cornernet_tiny.yaml")
# Category ids that are neither contiguous nor in class order: contiguous class k is the k-th
# category by ascending id, and detections must come back with these ids.
CATEGORY_IDS = {1: 9, 2: 2, 3: 5}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """6 listed images: 2 plain, 1 grayscale, 1 RGBA, 1 truncated, 1 missing file."""
    root = tmp_path_factory.mktemp("shapes")
    ann = generate_shapes(str(root), seed=3, size=(64, 80), splits={"val": 5})["val"]
    images = os.path.join(root, "val", "images")
    data = json.load(open(ann))
    for cat in data["categories"]:
        cat["id"] = CATEGORY_IDS[cat["id"]]
    for a in data["annotations"]:
        a["category_id"] = CATEGORY_IDS[a["category_id"]]
    files = [img["file_name"] for img in data["images"]]
    gray, rgba, truncated = (os.path.join(images, f) for f in files[1:4])
    Image.open(gray).convert("L").save(gray)
    Image.open(rgba).convert("RGBA").save(rgba)
    raw = open(truncated, "rb").read()
    open(truncated, "wb").write(raw[: len(raw) // 2])
    data["images"].append({"id": 99, "file_name": "missing.png", "height": 64, "width": 80})
    json.dump(data, open(ann, "w"))
    return {
        "annotations": ann,
        "images": images,
        "truncated": truncated,
        "gray": gray,
        "rgba": rgba,
        "data": data,
    }


@pytest.fixture(scope="module")
def model_and_config():
    keras.utils.set_random_seed(0)
    config = load_config(TINY)
    return build_model(config.model), config


@pytest.fixture(scope="module")
def run(dataset, model_and_config, tmp_path_factory):
    model, config = model_and_config
    out = str(tmp_path_factory.mktemp("eval_out"))
    metrics = evaluate(
        model,
        config,
        dataset["annotations"],
        dataset["images"],
        out_dir=out,
        quadrants=True,
        progress=False,
        extra={"weights": "random"},
    )
    return metrics, out


def test_broken_files_are_skipped_and_counted(run, dataset):
    metrics, _ = run
    images = metrics["images"]
    assert images["evaluated"] == 4 and metrics["num_images"] == 4
    assert images["skipped"] == 2
    skipped = {os.path.basename(item["file"]) for item in images["skipped_files"]}
    assert skipped == {"missing.png", os.path.basename(dataset["truncated"])}
    assert images["converted"] == 2  # grayscale + RGBA
    text = format_report(metrics)
    assert "4 images evaluated, 2 converted to RGB, 2 skipped" in text
    assert os.path.basename(dataset["truncated"]) in text


def test_outputs_are_written_and_consistent(run, dataset):
    metrics, out = run
    results = json.load(open(os.path.join(out, "detections.json")))
    saved = json.load(open(os.path.join(out, "metrics.json")))
    evaluated_ids = {
        img["id"]
        for img in dataset["data"]["images"]
        if img["file_name"] not in ("missing.png", os.path.basename(dataset["truncated"]))
    }
    assert results, "a random model still returns up to 100 boxes per image"
    assert {r["image_id"] for r in results} <= evaluated_ids
    assert {r["category_id"] for r in results} <= set(CATEGORY_IDS.values())
    assert all(r["bbox"][2] >= 0 and r["bbox"][3] >= 0 for r in results)
    assert (
        max(sum(r["image_id"] == i for r in results) for i in evaluated_ids) <= 100 + 10
    )  # ties may keep more
    for key in SUMMARY_KEYS + ("AP60", "AP70", "AP80", "AP90"):
        assert saved[key] == pytest.approx(metrics[key])
        assert -1 <= metrics[key] <= 1
    assert list(saved["per_class"]) == ["ellipse", "triangle", "rectangle"]  # ascending category id
    assert saved["weights"] == "random" and saved["test"]["flip"] is True
    # re-scoring the written file over the evaluated images gives the same numbers
    again = evaluate_detections(
        dataset["annotations"], os.path.join(out, "detections.json"), image_ids=evaluated_ids
    )
    assert [again[k] for k in SUMMARY_KEYS] == pytest.approx([metrics[k] for k in SUMMARY_KEYS])


def test_quadrant_table_is_reported(run):
    metrics, _ = run
    quadrants = metrics["quadrants"]
    assert quadrants["num_images"] == 4
    for corner in ("tl", "br"):
        assert set(quadrants[corner]) == {
            "top-left",
            "top-right",
            "bottom-left",
            "bottom-right",
            "all",
        }
        assert all(-1 <= v <= 1 for v in quadrants[corner].values())
        assert (
            sum(
                quadrants["num_gt"][corner][q]
                for q in ("top-left", "top-right", "bottom-left", "bottom-right")
            )
            == quadrants["num_gt"][corner]["all"]
        )
    assert "Corner detection mAP per image quadrant" in format_report(metrics)


def test_source_arguments_are_checked(model_and_config, dataset):
    model, config = model_and_config
    with pytest.raises(ValueError, match="go together"):
        evaluate(model, config, annotations=dataset["annotations"], progress=False)
    with pytest.raises(ValueError, match="one evaluation source"):
        evaluate(
            model,
            config,
            dataset["annotations"],
            dataset["images"],
            tfds="coco/2017",
            progress=False,
        )
    with pytest.raises(ValueError, match="max_images"):
        evaluate(
            model, config, dataset["annotations"], dataset["images"], max_images=0, progress=False
        )


def test_more_dataset_classes_than_model_classes_is_an_error(dataset, tmp_path):
    config = load_config(TINY, ["model.num_classes=2"])
    model = build_model(config.model)
    with pytest.raises(ValueError, match="3 classes but the model predicts 2"):
        evaluate(model, config, dataset["annotations"], dataset["images"], progress=False)


def test_tfrecord_source_gives_the_same_ap(dataset, model_and_config, run, tmp_path):
    """TFRecord shards carry no crowd flags or areas, so the ground truth is rebuilt from the
    decoded boxes: overall AP must equal the JSON run on the same images (only the size split,
    which uses areas, may differ)."""
    from cornernet_tf.data.coco import load_coco
    from cornernet_tf.data.tfrecord import write_shards

    loaded = load_coco(dataset["annotations"], dataset["images"])
    good = [r for r in loaded.records if r.path != dataset["truncated"]]
    write_shards(good, loaded.info, str(tmp_path / "val"), num_shards=1)
    model, config = model_and_config
    m = evaluate(model, config, tfrecords=str(tmp_path / "val*.tfrecord*"), progress=False)
    reference, _ = run
    assert m["source"]["kind"] == "tfrecord"
    assert m["images"]["evaluated"] == 4
    for key in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100", "AP60", "AP70", "AP80", "AP90"):
        assert m[key] == pytest.approx(reference[key], abs=1e-9), key
    assert np.allclose(list(m["per_class"].values()), list(reference["per_class"].values()))
