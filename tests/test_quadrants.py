"""Corner detection AP per image quadrant (paper Table 3): matching rule, AP, quadrant split."""

import types

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.config import TestConfig
from cornernet_tf.eval.quadrants import (
    QUADRANTS,
    CornerPredictor,
    QuadrantCornerEvaluator,
    format_quadrants,
    interpolated_ap,
    match_corners,
    quadrant_index,
)
from cornernet_tf.inference.preprocess import scale_geometry
from cornernet_tf.targets import object_radius


def test_interpolated_ap_hand_computed():
    # ranks: TP, FP, TP with 2 ground truths: precision 1 up to recall 0.5, then 2/3 up to 1.0
    ap = interpolated_ap(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
    assert ap == pytest.approx((51 * 1.0 + 50 * (2 / 3)) / 101)
    # the order comes from the scores, not the input order
    assert interpolated_ap(
        np.array([0.7, 0.9, 0.8]), np.array([True, True, False]), 2
    ) == pytest.approx(ap)
    assert interpolated_ap(np.array([0.5]), np.array([True]), 1) == 1.0
    assert interpolated_ap(np.array([0.5]), np.array([True]), 4) == pytest.approx(
        26 / 101
    )  # recall 0.25
    assert interpolated_ap(np.array([]), np.array([], bool), 3) == 0.0
    assert interpolated_ap(np.array([0.5]), np.array([False]), 0) == -1.0


def test_interpolated_ap_agrees_with_pycocotools_on_random_lists():
    """Same 101-point rule as COCOeval.accumulate: compare on random rankings via pycocotools."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(4)
    # one image per ground-truth box, detections either exactly on a box (TP) or far away (FP)
    num_gt = 7
    images = [{"id": i + 1, "width": 100, "height": 100} for i in range(num_gt)]
    anns = [
        {
            "id": i + 1,
            "image_id": i + 1,
            "category_id": 1,
            "bbox": [10, 10, 50, 50],
            "area": 2500,
            "iscrowd": 0,
        }
        for i in range(num_gt)
    ]
    scores = rng.uniform(size=12)
    tp = np.zeros(12, bool)
    tp[rng.choice(12, 5, replace=False)] = True
    dets, target = [], 0
    for s, t in zip(scores, tp):
        if t:
            target += 1
        dets.append(
            {
                "image_id": target if t else 1,
                "category_id": 1,
                "score": float(s),
                "bbox": [10, 10, 50, 50] if t else [60, 60, 30, 30],
            }
        )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
    expected = ev.eval["precision"][0, :, 0, 0, 2].mean()
    assert interpolated_ap(scores, tp, num_gt) == pytest.approx(expected, abs=1e-12)


def test_match_rule_class_radius_greedy():
    gt_xy = np.array([[10.0, 10.0], [30.0, 10.0], [50.0, 50.0]])
    gt_cls = np.array([0, 0, 1])
    radius = np.array([3.0, 3.0, 0.0])
    pred_xy = np.array(
        [
            [11.0, 11.0],  # near gt 0 (d=1.41), same class -> match 0
            [10.5, 10.0],  # nearer gt 0 but lower score -> gt 0 taken, gt 1 too far -> FP
            [30.0, 13.0],  # d=3 from gt 1 (on the radius) -> match 1
            [50.0, 50.5],  # gt 2 has radius 0: the 1-pixel floor lets d=0.5 match
            [50.0, 50.0],  # right place, wrong class -> FP
            [80.0, 80.0],  # nowhere -> FP
        ]
    )
    pred_cls = np.array([0, 0, 0, 1, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    np.testing.assert_array_equal(
        match_corners(pred_xy, scores, pred_cls, gt_xy, gt_cls, radius), [0, -1, 1, 2, -1, -1]
    )
    # a higher score wins the contested corner
    scores2 = np.array([0.8, 0.9, 0.7, 0.6, 0.5, 0.4])
    assert list(match_corners(pred_xy, scores2, pred_cls, gt_xy, gt_cls, radius)[:2]) == [-1, 0]
    # just outside the radius
    assert match_corners(np.array([[30.0, 13.01]]), [1.0], [0], gt_xy, gt_cls, radius)[0] == -1
    assert match_corners(np.zeros((0, 2)), [], [], gt_xy, gt_cls, radius).shape == (0,)


def test_quadrant_index_splits_at_the_centre():
    xs, ys = np.array([0, 49.9, 50, 99, 10]), np.array([0, 10, 10, 99, 50])
    np.testing.assert_array_equal(quadrant_index(xs, ys, 100, 100), [0, 0, 1, 3, 2])
    assert [QUADRANTS[i] for i in (0, 1, 2, 3)] == [
        "top-left",
        "top-right",
        "bottom-left",
        "bottom-right",
    ]


def _map_corners(boxes, geometry, cols):
    rx = geometry.out_hw[1] / geometry.inp_hw[1]
    ry = geometry.out_hw[0] / geometry.inp_hw[0]
    left, top = geometry.border[2], geometry.border[0]
    return (boxes[:, cols[0]] + left) * rx, (boxes[:, cols[1]] + top) * ry


def test_evaluator_per_quadrant():
    """Four objects, one per quadrant (by their top-left corner). Predictions find every corner
    except the top-left corner of the object in the bottom-right quadrant, and add one false
    top-left corner (low score) in the top-right quadrant."""
    h, w = 200, 240
    geometry = scale_geometry(h, w, 1.0)
    boxes = np.array(
        [[10, 12, 60, 70], [150, 20, 230, 90], [15, 120, 80, 190], [140, 130, 200, 195]], float
    )
    classes = np.array([0, 1, 0, 2])
    tl_x, tl_y = _map_corners(boxes, geometry, (0, 1))
    br_x, br_y = _map_corners(boxes, geometry, (2, 3))
    keep = np.array([True, True, True, False])
    ev = QuadrantCornerEvaluator(num_classes=3)
    corners = {
        "tl": {
            "xs": np.append(tl_x[keep] + 0.4, 45.0),
            "ys": np.append(tl_y[keep] - 0.3, 6.0),
            "scores": np.array([0.9, 0.8, 0.7, 0.95]),
            "classes": np.append(classes[keep], 1),
        },
        "br": {
            "xs": br_x,
            "ys": br_y,
            "scores": np.array([0.9, 0.8, 0.7, 0.6]),
            "classes": classes,
        },
    }
    ev.add_image((h, w), boxes, classes, corners, geometry)
    r = ev.result()
    assert r["tl"]["top-left"] == 1.0 and r["tl"]["bottom-left"] == 1.0
    assert r["tl"]["bottom-right"] == 0.0  # its only corner was missed
    # top-right: class 1 has a FP ranked above its TP -> precision 1/2 at recall 1
    assert r["tl"]["top-right"] == pytest.approx(0.5)
    assert r["per_class"]["tl"]["top-right"][1] == pytest.approx(0.5)
    assert r["per_class"]["tl"]["top-right"][0] == -1.0  # no class-0 corner there
    assert r["num_gt"]["tl"] == {
        "top-left": 1,
        "top-right": 1,
        "bottom-left": 1,
        "bottom-right": 1,
        "all": 4,
    }
    # br corners: quadrants of (x2, y2); all found
    assert all(v == 1.0 for k, v in r["br"].items() if r["num_gt"]["br"][k] > 0)
    assert r["br"]["top-left"] == 1.0  # the first object's br corner (60, 70) is still top-left
    text = format_quadrants(r)
    assert "top-left" in text and "100.0" in text and "0.0" in text


def test_matching_radius_is_the_training_radius():
    """A prediction just inside / outside the object's Gaussian radius on the output map."""
    h, w = 300, 300
    geometry = scale_geometry(h, w, 1.0)
    boxes = np.array([[20.0, 30.0, 220.0, 250.0]])
    left, top = geometry.border[2], geometry.border[0]
    r = float(
        object_radius(
            boxes + [left, top, left, top], geometry.inp_hw, geometry.out_hw, 0.3
        ).numpy()[0]
    )
    assert r >= 2
    tl_x, tl_y = _map_corners(boxes, geometry, (0, 1))
    for shift, expected in ((r - 0.01, 1.0), (r + 0.01, 0.0)):
        ev = QuadrantCornerEvaluator(num_classes=1)
        pred = {"xs": tl_x + shift, "ys": tl_y, "scores": np.array([0.5]), "classes": np.array([0])}
        ev.add_image((h, w), boxes, np.array([0]), {"tl": pred, "br": pred}, geometry)
        assert ev.result()["tl"]["all"] == expected


class PeakModel:
    """Heatmap logits with planted peaks; offsets (0.25, 0.5) everywhere."""

    def __init__(self, peaks):
        self.peaks = peaks  # list of (corner, y, x, class, logit)
        self.model_config = types.SimpleNamespace(num_classes=2)

    def __call__(self, images, training=False, stacks="all"):
        h, w = (int(images.shape[1]) + 1) // 4, (int(images.shape[2]) + 1) // 4
        out = {}
        for corner in ("tl", "br"):
            heat = np.full((1, h, w, 2), -8.0, np.float32)
            for c, y, x, cls, logit in self.peaks:
                if c == corner:
                    heat[0, y, x, cls] = logit
            out[f"{corner}_heat"] = [tf.constant(heat)]
            out[f"{corner}_regr"] = [tf.constant(np.tile(np.float32([0.25, 0.5]), (1, h, w, 1)))]
            out[f"{corner}_tag"] = [tf.zeros((1, h, w, 1))]
        return out


def test_corner_predictor_reads_peaks_and_offsets():
    model = PeakModel([("tl", 5, 7, 1, 3.0), ("tl", 20, 3, 0, 1.0), ("br", 9, 30, 0, 2.0)])
    predictor = CornerPredictor(model, TestConfig(nms_kernel=3, top_k=5))
    corners, geometry = predictor(np.zeros((100, 120, 3), np.uint8))
    assert geometry.out_hw == (32, 32)
    tl = corners["tl"]
    np.testing.assert_allclose(tl["scores"][:2], 1 / (1 + np.exp([-3.0, -1.0])), rtol=1e-6)
    np.testing.assert_allclose(tl["xs"][:2], [7.25, 3.25])
    np.testing.assert_allclose(tl["ys"][:2], [5.5, 20.5])
    np.testing.assert_array_equal(tl["classes"][:2], [1, 0])
    assert len(tl["scores"]) == 5  # top-K, as the decoder sees them
    assert corners["br"]["xs"][0] == pytest.approx(30.25) and corners["br"]["classes"][0] == 0
