"""Corner heatmaps → scored boxes in NumPy: the twin of :mod:`cornernet_tf.detection.decode` for the
TensorFlow-free on-device path (LiteRT). The official ``_decode`` (docs/method.md §5): sigmoid, max-pool
NMS, top-K corners over classes and pixels in the official NCHW order, offsets, K x K pairing with
class / embedding / geometry checks, the top ``num_dets``; tests/test_detection.py checks it against
the TF decoder on the golden decoder inputs.
"""

from __future__ import annotations

import numpy as np

from cornernet_tf.config import TestConfig
from cornernet_tf.detection.contract import REJECTED_SCORE, ROW_SIZE, SCORE

# The official test settings are TestConfig's defaults (docs/method.md §5).
_TEST = TestConfig()


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function, as the TF decoder applies it to the heatmap logits."""
    x = x.astype(np.float32)
    return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def heatmap_nms(heat: np.ndarray, kernel: int = _TEST.nms_kernel) -> np.ndarray:
    """Keep pixels equal to the max of their ``kernel x kernel`` window (-inf padding): [B,H,W,C]."""
    if kernel == 1:
        return heat
    pad = (kernel - 1) // 2
    padded = np.pad(heat, [(0, 0), (pad, pad), (pad, pad), (0, 0)], constant_values=-np.inf)
    h, w = heat.shape[1:3]
    hmax = np.full_like(heat, -np.inf)
    for dy in range(kernel):
        for dx in range(kernel):
            np.maximum(hmax, padded[:, dy : dy + h, dx : dx + w], out=hmax)
    return heat * (hmax == heat)


def _topk(heat: np.ndarray, k: int):
    """Top-k over C·H·W in the official NCHW flatten order; ties keep the lower index first."""
    b, h, w, c = heat.shape
    flat = np.transpose(heat, (0, 3, 1, 2)).reshape(b, c * h * w)
    flat = np.concatenate([flat, np.full((b, k), REJECTED_SCORE, flat.dtype)], axis=1)
    inds = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(flat, inds, axis=1)
    valid = inds < c * h * w
    inds = np.where(valid, inds, 0)
    pixel = inds % (h * w)
    return (
        scores,
        pixel,
        inds // (h * w),
        (pixel // w).astype(np.float32),
        (pixel % w).astype(np.float32),
        valid,
    )


def _gather(feature: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    b, h, w, d = feature.shape
    return np.take_along_axis(feature.reshape(b, h * w, d), pixel[..., None], axis=1)


def decode(
    tl_heat,
    br_heat,
    tl_tag,
    br_tag,
    tl_regr,
    br_regr,
    K: int = _TEST.top_k,
    kernel: int = _TEST.nms_kernel,
    ae_threshold: float = _TEST.ae_threshold,
    num_dets: int = _TEST.num_dets,
) -> np.ndarray:
    """Corner maps (NHWC, heatmaps as logits) → [B, num_dets, 8] rows
    ``[x1, y1, x2, y2, score, tl_score, br_score, class]`` in output-map pixels, best first; rejected
    pairs score -1. Same algorithm, tie order and defaults (TestConfig's) as
    :func:`cornernet_tf.detection.decode.decode`."""
    K, num_dets = int(K), int(num_dets)
    if K < 1 or num_dets < 1:
        raise ValueError(f"decode: K and num_dets must be >= 1, got K={K}, num_dets={num_dets}")
    tl_heat = heatmap_nms(sigmoid(np.asarray(tl_heat)), kernel)
    br_heat = heatmap_nms(sigmoid(np.asarray(br_heat)), kernel)
    b = tl_heat.shape[0]
    tl_s, tl_i, tl_c, tl_y, tl_x, tl_v = _topk(tl_heat, K)
    br_s, br_i, br_c, br_y, br_x, br_v = _topk(br_heat, K)
    if tl_regr is not None and br_regr is not None:
        tl_off = _gather(np.asarray(tl_regr, np.float32), tl_i)
        br_off = _gather(np.asarray(br_regr, np.float32), br_i)
        tl_x, tl_y = tl_x + tl_off[..., 0], tl_y + tl_off[..., 1]
        br_x, br_y = br_x + br_off[..., 0], br_y + br_off[..., 1]
    tl_e = _gather(np.asarray(tl_tag, np.float32), tl_i)[..., 0]
    br_e = _gather(np.asarray(br_tag, np.float32), br_i)[..., 0]

    scores = (tl_s[:, :, None] + br_s[:, None, :]) / np.float32(2)
    rejected = (
        (tl_c[:, :, None] != br_c[:, None, :])
        | (np.abs(tl_e[:, :, None] - br_e[:, None, :]) > np.float32(ae_threshold))
        | (br_x[:, None, :] < tl_x[:, :, None])
        | (br_y[:, None, :] < tl_y[:, :, None])
        | ~(tl_v[:, :, None] & br_v[:, None, :])
    )
    scores = np.where(rejected, np.float32(REJECTED_SCORE), scores).astype(np.float32)
    shape = (b, K, K)
    pairs = np.stack(
        [
            np.broadcast_to(tl_x[:, :, None], shape),
            np.broadcast_to(tl_y[:, :, None], shape),
            np.broadcast_to(br_x[:, None, :], shape),
            np.broadcast_to(br_y[:, None, :], shape),
            scores,
            np.broadcast_to(tl_s[:, :, None], shape),
            np.broadcast_to(br_s[:, None, :], shape),
            np.broadcast_to(tl_c[:, :, None], shape).astype(np.float32),
        ],
        axis=-1,
    ).reshape(b, K * K, ROW_SIZE)
    n = min(num_dets, K * K)
    order = np.argsort(-scores.reshape(b, K * K), axis=1, kind="stable")[:, :n]
    dets = np.take_along_axis(pairs, order[..., None], axis=1).astype(np.float32)
    if n < num_dets:
        filler = np.zeros((b, num_dets - n, ROW_SIZE), np.float32)
        filler[..., SCORE] = REJECTED_SCORE
        dets = np.concatenate([dets, filler], axis=1)
    return dets
