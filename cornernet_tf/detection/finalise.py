"""Decoded rows of all scales and views → final detections: per-class soft-NMS and the cap.

Two variants, both NumPy over the official soft-NMS port:

* :func:`finalise` is the official test (docs/method.md §8 "Test"): each class keeps *all* its rows
  after the in-place soft-NMS, stale rows included, and the cap keeps every row scoring at least
  the ``max_per_image``-th score (ties keep more). AP on converted checkpoints depends on it.
* :func:`finalise_live` keeps only the live rows of soft-NMS and exactly the ``max_per_image``
  best: what the fixed-size (TFLite) path reports.
"""

from __future__ import annotations

import numpy as np

from cornernet_tf.config import TestConfig
from cornernet_tf.detection.contract import (
    BOX,
    BOX_SCORE,
    CLASS,
    REJECTED_SCORE,
    SCORE,
    SOFT_NMS_COLUMNS,
)
from cornernet_tf.detection.soft_nms import soft_nms, soft_nms_merge


def _soft_nms_kwargs(config: TestConfig) -> dict:
    return {
        "sigma": config.nms_sigma,
        "Nt": config.nms_threshold,
        "threshold": config.score_threshold,
        "method": config.nms_algorithm,
    }


def per_class_soft_nms(rows: np.ndarray, config: TestConfig) -> list:
    """Official per-class soft-NMS on [M, 8] rows (rejected rows already dropped).

    Returns ``[(class, rows [n, 5])]`` in class order. Each class keeps **all** its rows after the
    in-place soft-NMS, including the stale rows past the live count: the official test ignores
    the returned keep list.
    """
    out = []
    classes = rows[:, CLASS]
    for cls in np.unique(classes):
        boxes = np.ascontiguousarray(rows[classes == cls, SOFT_NMS_COLUMNS], np.float32)
        if config.merge_bbox:
            soft_nms_merge(boxes, weight_exp=config.weight_exp, **_soft_nms_kwargs(config))
        else:
            soft_nms(boxes, **_soft_nms_kwargs(config))
        out.append((int(cls), boxes[:, BOX_SCORE]))
    return out


def keep_top(per_class: list, max_per_image: int) -> list:
    """Official cap: keep rows whose score is >= the ``max_per_image``-th largest (ties keep more)."""
    if not per_class:
        return per_class
    scores = np.concatenate([rows[:, SCORE] for _, rows in per_class])
    if len(scores) <= max_per_image:
        return per_class
    kth = len(scores) - max_per_image
    thresh = np.partition(scores, kth)[kth]
    return [(cls, rows[rows[:, SCORE] >= thresh]) for cls, rows in per_class]


def _as_result(per_class: list, limit: int | None = None) -> dict:
    """``[(class, rows [n, 5])]`` → ``{"boxes", "scores", "classes"}``, best score first."""
    if per_class:
        rows = np.concatenate([r for _, r in per_class])
        classes = np.concatenate([np.full(len(r), c, np.int64) for c, r in per_class])
    else:
        rows, classes = np.zeros((0, BOX_SCORE.stop), np.float32), np.zeros((0,), np.int64)
    order = np.argsort(-rows[:, SCORE], kind="stable")[:limit]
    return {
        "boxes": rows[order, BOX].astype(np.float32),
        "scores": rows[order, SCORE].astype(np.float32),
        "classes": classes[order],
    }


def finalise(rows: np.ndarray, config: TestConfig) -> dict:
    """All scales' rows [M, 8] in image pixels → the official final detections (see the module
    docstring): ``boxes`` [N, 4] x1 y1 x2 y2, ``scores`` [N], ``classes`` [N] 0-based."""
    rows = rows[rows[:, SCORE] > REJECTED_SCORE]
    return _as_result(keep_top(per_class_soft_nms(rows, config), config.max_per_image))


def finalise_live(rows: np.ndarray, config: TestConfig) -> dict:
    """Rows [M, 8] in image pixels → per-class soft-NMS keeping its live rows, then the
    ``max_per_image`` best (same dict as :func:`finalise`)."""
    rows = rows[rows[:, SCORE] > REJECTED_SCORE]
    per_class = []
    for cls in np.unique(rows[:, CLASS]):
        boxes = np.ascontiguousarray(rows[rows[:, CLASS] == cls, BOX_SCORE], np.float32)
        live = soft_nms(boxes, **_soft_nms_kwargs(config))
        per_class.append((int(cls), boxes[:live]))
    return _as_result(per_class, config.max_per_image)
