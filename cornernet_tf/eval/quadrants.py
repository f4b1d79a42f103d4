"""Corner detection AP per image quadrant (the paper's Table 3).

The paper asks whether corner pooling helps everywhere in the image, not only near the borders
where a corner's "evidence" lies inside the image. It measures how well the heatmaps find the
corners of ground-truth objects, split by the quadrant of the image the corner lies in.

Definitions used here (the paper gives the idea, not the protocol):

* **Predicted corners** of one type (top-left or bottom-right): the network runs once on the
  un-augmented test input (scale 1, no flip, the test pre-processing); the heatmap goes through
  sigmoid, the 3x3 max-pool NMS and the top-K over classes and pixels, exactly the corners the
  decoder would pair (``test.nms_kernel``, ``test.top_k``); each has a class, a score (its heatmap
  value) and a position (pixel + predicted offset) on the output map.
* **Ground-truth corners**: ``(x1, y1)`` and ``(x2, y2)`` of every (non-crowd) object, mapped to
  the output map the way the decoder maps back (``(x + border) * out / inp``).
* **Match**: a predicted corner is a true positive when it has the same class as an unmatched
  ground-truth corner of the same type and lies within that object's Gaussian radius of it:
  Euclidean distance on the output map ``<= max(r, 1)``, where ``r`` is the radius of the training
  targets (``targets.object_radius``, IoU ``data.gaussian_iou``; a corner displaced by up to ``r``
  still gives a box with IoU >= 0.3). The floor of 1 pixel keeps radius-0 (tiny) objects matchable.
  Predictions are matched greedily by decreasing score, each to the nearest eligible
  ground-truth corner; each ground-truth corner matches at most once.
* **Quadrant**: a ground-truth corner belongs to the quadrant of the image (split at ``W/2``,
  ``H/2`` in image pixels) that contains it; a true positive counts in the quadrant of the corner
  it matched, a false positive in the quadrant where it lies.
* **AP**: per corner type, quadrant and class, over all images, with COCO's 101-point
  interpolated precision; **mAP** averages the classes that have ground-truth corners in that
  quadrant. ``all`` is the same without the split.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, DataConfig, TestConfig
from cornernet_tf.decode import heatmap_nms, topk_corners
from cornernet_tf.inference.preprocess import (
    ScaleGeometry,
    as_rgb_uint8,
    model_output_stride,
    prepare_image,
)
from cornernet_tf.modeling.precision import model_in_precision
from cornernet_tf.targets import object_radius

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
CORNER_TYPES = ("tl", "br")
ALL = "all"
# COCO's recall points for interpolated AP.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MIN_MATCH_RADIUS = 1.0  # output-map pixels; see the module docstring


def quadrant_index(xs: np.ndarray, ys: np.ndarray, width: float, height: float) -> np.ndarray:
    """0..3 in :data:`QUADRANTS` order for points in image pixels (split at the image centre)."""
    right = np.asarray(xs) >= width / 2.0
    bottom = np.asarray(ys) >= height / 2.0
    return right.astype(np.int64) + 2 * bottom.astype(np.int64)


def interpolated_ap(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """COCO 101-point interpolated AP of a ranked list (-1 when there is no ground truth)."""
    if num_gt <= 0:
        return -1.0
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.asarray(is_tp, bool)[order]
    tps, fps = np.cumsum(tp), np.cumsum(~tp)
    recall = tps / num_gt
    precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at recall >= r
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    values = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(np.mean(values))


def match_corners(
    pred_xy: np.ndarray,
    pred_scores: np.ndarray,
    pred_classes: np.ndarray,
    gt_xy: np.ndarray,
    gt_classes: np.ndarray,
    gt_radius: np.ndarray,
) -> np.ndarray:
    """Greedy matching of one image's corners of one type: for each prediction, the index of the
    ground-truth corner it matches, or -1 (see the module docstring for the rule)."""
    pred_xy = np.asarray(pred_xy, np.float64).reshape(-1, 2)
    gt_xy = np.asarray(gt_xy, np.float64).reshape(-1, 2)
    matched = np.full(len(pred_xy), -1, np.int64)
    if not len(gt_xy) or not len(pred_xy):
        return matched
    taken = np.zeros(len(gt_xy), bool)
    tolerance = np.maximum(np.asarray(gt_radius, np.float64), MIN_MATCH_RADIUS)
    distance = np.linalg.norm(pred_xy[:, None, :] - gt_xy[None, :, :], axis=-1)
    eligible = (np.asarray(pred_classes)[:, None] == np.asarray(gt_classes)[None, :]) & (
        distance <= tolerance
    )
    for p in np.argsort(-np.asarray(pred_scores), kind="mergesort"):
        candidates = np.flatnonzero(eligible[p] & ~taken)
        if candidates.size:
            g = candidates[np.argmin(distance[p, candidates])]
            taken[g] = True
            matched[p] = g
    return matched


class QuadrantCornerEvaluator:
    """Accumulates corner matches over images; :meth:`result` gives mAP per corner type and quadrant."""

    def __init__(self, num_classes: int, gaussian_iou: float = DataConfig().gaussian_iou):
        self.num_classes = int(num_classes)
        self.gaussian_iou = float(gaussian_iou)
        # (corner type, quadrant name, class) -> lists of scores / tp flags, and gt counts
        self._scores = collections.defaultdict(list)
        self._tp = collections.defaultdict(list)
        self._num_gt = collections.Counter()
        self.num_images = 0

    def add_image(
        self,
        image_hw: Sequence[int],
        gt_boxes: np.ndarray,
        gt_classes: np.ndarray,
        corners: dict,
        geometry: ScaleGeometry,
    ) -> None:
        """One image: ground-truth boxes in image pixels, and :func:`predict_corners` output."""
        height, width = float(image_hw[0]), float(image_hw[1])
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        gt_classes = np.asarray(gt_classes, np.int64).reshape(-1)
        scale = geometry.scale
        top, left = float(geometry.border[0]), float(geometry.border[2])
        ry, rx = (
            float(geometry.out_hw[0]) / geometry.inp_hw[0],
            float(geometry.out_hw[1]) / geometry.inp_hw[1],
        )
        boxes_in = gt_boxes * scale + np.array([left, top, left, top])
        radius = (
            object_radius(boxes_in, geometry.inp_hw, geometry.out_hw, self.gaussian_iou).numpy()
            if len(gt_boxes)
            else np.zeros((0,))
        )
        self.num_images += 1
        for corner in CORNER_TYPES:
            cols = [0, 1] if corner == "tl" else [2, 3]
            gt_img = gt_boxes[:, cols]
            gt_map = np.stack([boxes_in[:, cols[0]] * rx, boxes_in[:, cols[1]] * ry], axis=1)
            gt_quadrant = quadrant_index(gt_img[:, 0], gt_img[:, 1], width, height)
            pred = corners[corner]
            pred_map = np.stack([pred["xs"], pred["ys"]], axis=1).astype(np.float64)
            pred_img_x = (pred_map[:, 0] / rx - left) / scale
            pred_img_y = (pred_map[:, 1] / ry - top) / scale
            pred_quadrant = quadrant_index(pred_img_x, pred_img_y, width, height)
            match = match_corners(
                pred_map, pred["scores"], pred["classes"], gt_map, gt_classes, radius
            )
            for q, cls in zip(gt_quadrant, gt_classes):
                self._num_gt[(corner, QUADRANTS[q], int(cls))] += 1
                self._num_gt[(corner, ALL, int(cls))] += 1
            for i, (score, cls) in enumerate(zip(pred["scores"], pred["classes"])):
                tp = match[i] >= 0
                q = gt_quadrant[match[i]] if tp else pred_quadrant[i]
                for name in (QUADRANTS[q], ALL):
                    key = (corner, name, int(cls))
                    self._scores[key].append(float(score))
                    self._tp[key].append(bool(tp))

    def result(self) -> dict:
        """``{"tl": {quadrant: mAP, ..., "all": mAP}, "br": {...}, "per_class": {...}, "num_gt": {...}}``;
        -1 where no ground-truth corner lies in a quadrant."""
        out: dict = {"num_images": self.num_images}
        per_class: dict = {}
        num_gt: dict = {}
        for corner in CORNER_TYPES:
            out[corner], per_class[corner], num_gt[corner] = {}, {}, {}
            for name in QUADRANTS + (ALL,):
                aps = []
                per_class[corner][name] = {}
                num_gt[corner][name] = 0
                for cls in range(self.num_classes):
                    key = (corner, name, cls)
                    n = self._num_gt.get(key, 0)
                    num_gt[corner][name] += n
                    ap = interpolated_ap(
                        np.array(self._scores.get(key, [])), np.array(self._tp.get(key, [])), n
                    )
                    per_class[corner][name][cls] = ap
                    if n > 0:
                        aps.append(ap)
                out[corner][name] = float(np.mean(aps)) if aps else -1.0
        out["per_class"] = per_class
        out["num_gt"] = num_gt
        return out


class CornerPredictor:
    """Predicted corners of one image (see the module docstring): top-K heatmap peaks with offsets."""

    def __init__(
        self,
        model,
        test_config: TestConfig | None = None,
        mean: Sequence[float] = COCO_MEAN_RGB,
        std: Sequence[float] = COCO_STD_RGB,
    ):
        self.config = test_config or TestConfig()
        self.model = model_in_precision(model, self.config.precision)
        self.mean, self.std = tuple(mean), tuple(std)
        self._peaks = tf.function(self._peaks_fn, reduce_retracing=True)

    def _peaks_fn(self, images):
        outputs = self.model(images, training=False, stacks="last")
        result = {}
        for corner in CORNER_TYPES:
            heat = heatmap_nms(tf.sigmoid(outputs[f"{corner}_heat"][-1]), self.config.nms_kernel)
            scores, inds, classes, ys, xs, valid = topk_corners(heat, self.config.top_k)
            regr = outputs[f"{corner}_regr"][-1]
            shape = tf.shape(regr)
            flat = tf.reshape(regr, [shape[0], shape[1] * shape[2], 2])
            offsets = tf.gather(flat, inds, axis=1, batch_dims=1)
            result[corner] = {
                "xs": xs + offsets[..., 0],
                "ys": ys + offsets[..., 1],
                "scores": scores,
                "classes": classes,
                "valid": valid,
            }
        return result

    def __call__(self, image) -> tuple[dict, ScaleGeometry]:
        """``({"tl": {xs, ys, scores, classes}, "br": {...}}, geometry)``; positions on the output map."""
        image = as_rgb_uint8(image)
        net_input, geometry = prepare_image(
            image, 1.0, self.mean, self.std, model_output_stride(self.model)
        )
        peaks = self._peaks(tf.constant(net_input[None]))
        corners = {}
        for corner in CORNER_TYPES:
            p = {k: v.numpy()[0] for k, v in peaks[corner].items()}
            keep = p.pop("valid")
            corners[corner] = {k: v[keep] for k, v in p.items()}
        return corners, geometry


def format_quadrants(result: dict) -> str:
    """The Table 3 layout: one row per corner type, one column per quadrant (mAP in %)."""
    header = f" {'corners':<14}" + "".join(f"{q:>14}" for q in QUADRANTS + (ALL,))
    lines = [
        f" Corner detection mAP per image quadrant ({result.get('num_images', 0)} images)",
        header,
    ]
    for corner, label in (("tl", "top-left"), ("br", "bottom-right")):
        row = f" {label:<14}"
        for name in QUADRANTS + (ALL,):
            value = result[corner][name]
            row += f"{value * 100:>14.1f}" if value > -1 else f"{'-':>14}"
        lines.append(row)
    return "\n".join(lines)
