"""Oracle (paper Table 6): ground-truth heatmaps / offsets replace the predictions, embeddings stay."""

import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cornernet_tf.config import load_config
from cornernet_tf.eval.oracle import (
    OracleDetector,
    boxes_in_input,
    ground_truth_maps,
    probability_to_logit,
)
from cornernet_tf.eval.runner import evaluate
from cornernet_tf.inference.preprocess import place_in_canvas, scale_geometry

NUM_CLASSES = 3
TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "cornernet_tiny.yaml")


class FakeModel:
    """Stands in for CornerNet: background heatmaps, constant embeddings, zero offsets.

    With equal embeddings every same-class corner pair groups, so what the oracle detects depends
    only on the maps it substitutes. ``tl_tag`` / ``br_tag`` set the constant embeddings.
    """

    def __init__(self, tl_tag=0.0, br_tag=0.0, num_classes=NUM_CLASSES):
        self.model_config = types.SimpleNamespace(num_classes=num_classes)
        self.tl_tag, self.br_tag = tl_tag, br_tag
        self.calls = 0

    def __call__(self, images, training=False, stacks="all"):
        self.calls += 1
        shape = tf.shape(images)
        b, h, w = shape[0], (shape[1] + 1) // 4, (shape[2] + 1) // 4
        heat = tf.fill([b, h, w, self.model_config.num_classes], -5.0)
        out = {
            "tl_heat": heat,
            "br_heat": heat,
            "tl_tag": tf.fill([b, h, w, 1], self.tl_tag),
            "br_tag": tf.fill([b, h, w, 1], self.br_tag),
            "tl_regr": tf.zeros([b, h, w, 2]),
            "br_regr": tf.zeros([b, h, w, 2]),
        }
        return {k: [v] for k, v in out.items()}


IMAGE = np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8)
BOXES = np.array([[10.3, 12.7, 60.2, 71.9], [70.55, 5.25, 121.8, 40.4]])
CLASSES = np.array([2, 0])


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def best_match(dets, box, cls):
    same = np.flatnonzero(dets["classes"] == cls)
    ious = [iou(dets["boxes"][i], box) for i in same]
    k = same[int(np.argmax(ious))]
    return dets["boxes"][k], dets["scores"][k], max(ious)


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_boxes_follow_the_test_placement_and_flip(scale):
    """A pixel's box lands on that pixel of the network input, and of its mirror when flipped."""
    geometry = scale_geometry(90, 130, scale)
    y, x = 7, 11
    marker = np.zeros(geometry.new_hw + (1,), np.uint8)
    marker[y, x] = 1
    canvas = place_in_canvas(marker, geometry)
    (cy,), (cx,) = np.nonzero(canvas[..., 0])
    box = np.array([[x, y, x + 1, y + 1]]) / scale  # the pixel, in original-image coordinates
    np.testing.assert_allclose(
        boxes_in_input(box, geometry)[0], [cx, cy, cx + 1, cy + 1], atol=1e-9
    )
    (fy,), (fx,) = np.nonzero(canvas[:, ::-1, 0])
    np.testing.assert_allclose(
        boxes_in_input(box, geometry, flipped=True)[0], [fx, fy, fx + 1, fy + 1], atol=1e-9
    )


def test_ground_truth_maps_are_the_training_targets():
    geometry = scale_geometry(90, 130, 1.0)
    gt = ground_truth_maps(BOXES, CLASSES, geometry, NUM_CLASSES)
    assert gt["tl_heatmap"].shape == geometry.out_hw + (NUM_CLASSES,)
    ratio = np.array(geometry.out_hw[::-1]) / np.array(geometry.inp_hw[::-1])  # (x, y)
    boxes_in = boxes_in_input(BOXES, geometry)
    for k, cls in enumerate(CLASSES):
        corner = boxes_in[k, :2] * ratio
        px, py = np.floor(corner).astype(int)
        assert gt["tl_heatmap"][py, px, cls] == 1.0
        np.testing.assert_allclose(gt["tl_regr"][k], corner - [px, py], atol=1e-5)
        assert int(gt["tl_tag"][k]) == py * geometry.out_hw[1] + px


def test_logits_keep_order_and_peaks():
    p = tf.constant([0.0, 1e-9, 0.3, 0.99955, 1.0])
    back = tf.sigmoid(probability_to_logit(p)).numpy()
    assert np.all(np.diff(back[1:]) > 0) and back[0] == back[1]
    assert back[-1] > back[-2]  # the peak stays above its Gaussian neighbours
    np.testing.assert_allclose(back[2:4], [0.3, 0.99955], atol=1e-6)


@pytest.mark.parametrize("flip", [True, False])
def test_heatmaps_and_offsets_give_the_exact_boxes(flip):
    model = FakeModel()
    oracle = OracleDetector(model, "heatmaps+offsets", {"flip": flip})
    dets = oracle.detect(IMAGE, BOXES, CLASSES)
    assert model.calls >= 1  # the network runs: its embeddings are used
    for box, cls in zip(BOXES, CLASSES):
        found, score, overlap = best_match(dets, box, cls)
        np.testing.assert_allclose(found, box, atol=2e-3)
        assert score > 0.999
    assert dets["scores"][0] > 0.999 and dets["scores"][1] > 0.999
    assert set(dets["classes"][:2]) == set(CLASSES)


def test_heatmaps_alone_are_quantised_to_the_output_map():
    oracle = OracleDetector(FakeModel(), "heatmaps", {"flip": False})
    dets = oracle.detect(IMAGE, BOXES, CLASSES)
    geometry = scale_geometry(90, 130, 1.0)
    step = geometry.inp_hw[1] / geometry.out_hw[1]  # one output pixel in image pixels
    errors = []
    for box, cls in zip(BOXES, CLASSES):
        found, score, overlap = best_match(dets, box, cls)
        errors.append(np.abs(found - box))
        assert score > 0.999 and overlap > 0.8
    errors = np.concatenate(errors)
    assert errors.max() <= step + 1e-3
    assert errors.max() > 0.1  # without the offsets the sub-pixel part is lost


def test_embeddings_stay_predicted():
    """Embeddings 10 apart (> ae_threshold 0.5) reject every pair, ground-truth heatmaps or not."""
    oracle = OracleDetector(FakeModel(tl_tag=0.0, br_tag=10.0), "heatmaps+offsets")
    dets = oracle.detect(IMAGE, BOXES, CLASSES)
    assert len(dets["boxes"]) == 0


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="heatmaps\\|heatmaps\\+offsets"):
        OracleDetector(FakeModel(), "offsets")


def test_oracle_evaluation_reaches_ap_one(tmp_path):
    """End to end through evaluate(): one object per class per image, ground-truth heatmaps and
    offsets, grouping embeddings -> every true box ranks first, exactly placed: AP = 1. Any slip
    in the category-id mapping, the bbox format or the image ids would show here."""
    rng = np.random.default_rng(1)
    images, annotations = [], []
    ids = {0: 4, 1: 11, 2: 7}  # contiguous class k -> category id (ascending ids: 4, 7, 11)
    for i in range(3):
        h, w = int(rng.integers(60, 100)), int(rng.integers(60, 120))
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        images.append({"id": 100 + i, "file_name": f"{i}.png", "height": h, "width": w})
        for cls in rng.permutation(3)[: 1 + i % 3]:
            bw, bh = rng.uniform(12, w / 2), rng.uniform(12, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 100 + i,
                    "category_id": ids[int(cls)],
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c, "name": f"c{c}"} for c in (11, 4, 7)]
    ann = tmp_path / "gt.json"
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    config = load_config(TINY)
    m = evaluate(
        FakeModel(), config, str(ann), str(tmp_path), oracle="heatmaps+offsets", progress=False
    )
    assert m["AP"] == pytest.approx(1.0, abs=1e-9)
    assert m["AP90"] == pytest.approx(1.0, abs=1e-9)
    heat_only = evaluate(
        FakeModel(), config, str(ann), str(tmp_path), oracle="heatmaps", progress=False
    )
    assert heat_only["AP50"] == pytest.approx(1.0, abs=1e-9)
    assert heat_only["AP"] < m["AP"]
