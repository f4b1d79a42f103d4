"""The detection contract: names and layouts that the model, losses, decoders and exporters share.

Declared once so that the network's outputs, the training targets, the decoded rows and the box
conventions cannot drift apart between the TF path, the NumPy (on-device) path and the exports.
NumPy only: the TensorFlow-free LiteRT path imports it.

Boxes are pixels ``x1, y1, x2, y2`` everywhere inside the package; normalised
``ymin, xmin, ymax, xmax`` (the TF Object Detection API convention) appear only at the serving
boundary, through the helpers below. Classes are 0-based inside.
"""

from __future__ import annotations

import numpy as np

CORNERS = ("tl", "br")
# The network's outputs per stack, in the argument order of ``decode``: heatmap logits
# [B,H,W,C], embeddings [B,H,W,1] and offsets (dx, dy) [B,H,W,2], top-left then bottom-right.
OUTPUT_KEYS = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")
# What ``targets.encode_targets`` produces: ground-truth heatmaps, flat corner indices
# (``y * W + x``) for gathering tags and offsets, offsets, and the mask of real objects.
TARGET_KEYS = ("tl_heatmap", "br_heatmap", "tl_tag", "br_tag", "tl_regr", "br_regr", "tag_mask")

# Score of a rejected corner pair (classes differ, embeddings too far apart, or the
# bottom-right corner lies left of or above the top-left one), as in the official decoder.
REJECTED_SCORE = -1.0
# Class reported for the padded slots of fixed-size outputs (no detection).
PAD_CLASS = -1

# One decoded detection: ``[x1, y1, x2, y2, score, tl_score, br_score, class]``.
ROW_COLUMNS = ("x1", "y1", "x2", "y2", "score", "tl_score", "br_score", "class")
X1, Y1, X2, Y2, SCORE, TL_SCORE, BR_SCORE, CLASS = range(len(ROW_COLUMNS))
ROW_SIZE = len(ROW_COLUMNS)
BOX = slice(X1, Y2 + 1)  # x1, y1, x2, y2
BOX_XS = slice(X1, Y2 + 1, 2)  # x1, x2
BOX_YS = slice(Y1, Y2 + 1, 2)  # y1, y2
BOX_SCORE = slice(X1, SCORE + 1)  # what the final detections keep
SOFT_NMS_COLUMNS = slice(X1, BR_SCORE + 1)  # the rows the official soft-NMS works on

# x1, y1, x2, y2 <-> y1, x1, y2, x2: the same permutation in both directions.
YXYX_ORDER = (Y1, X1, Y2, X2)


def pixels_to_normalised_yxyx(boxes, height: float, width: float) -> np.ndarray:
    """Pixel boxes ``[..., 4]`` (x1, y1, x2, y2) → ``ymin, xmin, ymax, xmax`` in [0, 1] of the image."""
    boxes = np.asarray(boxes, np.float32)
    size = np.array([height, width, height, width], np.float32)
    return boxes[..., list(YXYX_ORDER)] / size


def normalised_yxyx_to_pixels(boxes, height: float, width: float) -> np.ndarray:
    """Normalised ``ymin, xmin, ymax, xmax`` boxes ``[..., 4]`` → pixels x1, y1, x2, y2."""
    boxes = np.asarray(boxes, np.float32)
    size = np.array([width, height, width, height], np.float32)
    return boxes[..., list(YXYX_ORDER)] * size
