"""Corner heatmaps → scored boxes: the official ``_decode`` (docs/method.md §5) in pure TF.

Everything here is a plain TF op on batched NHWC tensors with static ``K`` and ``num_dets``, so the
same function runs eagerly, in a ``tf.function`` with unknown H/W, under XLA and inside a
SavedModel. The order of operations follows the official code, because the order of the
top-K over ``C·H·W`` (class-major, like the NCHW flatten) decides which corners survive ties.
"""

from __future__ import annotations

import tensorflow as tf

from cornernet_tf.config import TestConfig
from cornernet_tf.detection.contract import OUTPUT_KEYS, REJECTED_SCORE, ROW_SIZE, SCORE

# The official test settings are TestConfig's defaults (docs/method.md §5).
_TEST = TestConfig()


def heatmap_nms(heat: tf.Tensor, kernel: int = _TEST.nms_kernel) -> tf.Tensor:
    """Keep only local maxima of ``heat`` [B,H,W,C]; every pixel equal to its window's max survives.

    The official ``_nms`` pads max-pooling with -inf, which is what TF's SAME max-pooling does
    (padded cells never win), so plateaus of equal neighbours survive together.
    """
    if kernel < 1 or kernel % 2 != 1:
        raise ValueError(f"heatmap_nms: kernel must be a positive odd integer, got {kernel}")
    if kernel == 1:
        return heat
    hmax = tf.nn.max_pool2d(heat, ksize=kernel, strides=1, padding="SAME")
    return heat * tf.cast(tf.equal(hmax, heat), heat.dtype)


def topk_corners(heat: tf.Tensor, k: int = _TEST.top_k):
    """Top-``k`` entries of ``heat`` [B,H,W,C] over all classes and pixels, ordered like the official
    NCHW flatten (``ind = c·H·W + y·W + x``).

    Returns ``(scores, pixel_inds, classes, ys, xs, valid)``, each [B,k]: ``pixel_inds`` is the
    index within one map (``y·W + x``) used to gather tags and offsets; ``ys``/``xs`` are floats;
    ``valid`` is False for slots beyond ``C·H·W`` (tiny maps), which never pair.
    """
    shape = tf.shape(heat)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    hw = height * width
    flat = tf.reshape(tf.transpose(heat, [0, 3, 1, 2]), [batch, channels * hw])
    # Pad with k entries below any sigmoid output so that top_k(k) is valid on maps with
    # C·H·W < k; padded entries sort after every real one and are marked invalid.
    flat = tf.concat([flat, tf.fill([batch, k], tf.constant(REJECTED_SCORE, heat.dtype))], axis=1)
    scores, inds = tf.math.top_k(flat, k=k, sorted=True)
    valid = inds < channels * hw
    inds = tf.where(valid, inds, tf.zeros_like(inds))
    classes = inds // hw
    pixel_inds = inds % hw
    ys = tf.cast(pixel_inds // width, heat.dtype)
    xs = tf.cast(pixel_inds % width, heat.dtype)
    return scores, pixel_inds, classes, ys, xs, valid


def _gather_pixels(feature: tf.Tensor, pixel_inds: tf.Tensor) -> tf.Tensor:
    """feature [B,H,W,D] at flat pixel indices [B,K] → [B,K,D]."""
    shape = tf.shape(feature)
    flat = tf.reshape(feature, [shape[0], shape[1] * shape[2], shape[3]])
    return tf.gather(flat, pixel_inds, axis=1, batch_dims=1)


def decode(
    tl_heat: tf.Tensor,
    br_heat: tf.Tensor,
    tl_tag: tf.Tensor,
    br_tag: tf.Tensor,
    tl_regr: tf.Tensor,
    br_regr: tf.Tensor,
    K: int = _TEST.top_k,
    kernel: int = _TEST.nms_kernel,
    ae_threshold: float = _TEST.ae_threshold,
    num_dets: int = _TEST.num_dets,
) -> tf.Tensor:
    """Pair top-left and bottom-right corners into boxes, as the official ``_decode`` does.

    Args:
      tl_heat, br_heat: heatmap logits [B,H,W,C] (any float dtype; decoding runs in float32).
      tl_tag, br_tag: embeddings [B,H,W,1].
      tl_regr, br_regr: offsets [B,H,W,2] as (dx, dy); ``None`` skips the offsets.
      K: corners kept per corner type (over classes and pixels); ``TestConfig.top_k``.
      kernel: max-pool window of the heatmap NMS (odd); ``TestConfig.nms_kernel``.
      ae_threshold: largest accepted L1 distance between the two embeddings.
      num_dets: pairs returned per image.
      (Defaults: the official settings, :class:`~cornernet_tf.config.TestConfig`'s.)

    Returns:
      [B, num_dets, 8] float32 rows ``[x1, y1, x2, y2, score, tl_score, br_score, class]`` in
      output-map pixels, best first. Rejected pairs (different classes, embeddings too far apart,
      bottom-right left of or above top-left) have score -1; the class is 0-based. When
      ``num_dets > K·K`` the tail is filled with rejected all-zero rows.
    """
    K = int(K)
    num_dets = int(num_dets)
    if K < 1 or num_dets < 1:
        raise ValueError(f"decode: K and num_dets must be >= 1, got K={K}, num_dets={num_dets}")
    # Decoding stays float32 under mixed precision (docs/method.md §7).
    dtype = tf.float32
    tl_heat = tf.cast(tl_heat, dtype)
    batch = tf.shape(tl_heat)[0]

    tl_heat = heatmap_nms(tf.sigmoid(tl_heat), kernel)
    br_heat = heatmap_nms(tf.sigmoid(tf.cast(br_heat, dtype)), kernel)
    tl_scores, tl_inds, tl_cls, tl_ys, tl_xs, tl_valid = topk_corners(tl_heat, K)
    br_scores, br_inds, br_cls, br_ys, br_xs, br_valid = topk_corners(br_heat, K)

    if tl_regr is not None and br_regr is not None:
        tl_off = _gather_pixels(tf.cast(tl_regr, dtype), tl_inds)
        br_off = _gather_pixels(tf.cast(br_regr, dtype), br_inds)
        tl_xs = tl_xs + tl_off[..., 0]
        tl_ys = tl_ys + tl_off[..., 1]
        br_xs = br_xs + br_off[..., 0]
        br_ys = br_ys + br_off[..., 1]

    tl_e = _gather_pixels(tf.cast(tl_tag, dtype), tl_inds)[..., 0]
    br_e = _gather_pixels(tf.cast(br_tag, dtype), br_inds)[..., 0]

    # All K x K pairs: rows index the top-left corner, columns the bottom-right one.
    pair_tl_s = tf.broadcast_to(tl_scores[:, :, None], [batch, K, K])
    pair_br_s = tf.broadcast_to(br_scores[:, None, :], [batch, K, K])
    scores = (pair_tl_s + pair_br_s) / 2
    rejected = tf.logical_or(
        tf.logical_or(
            tf.not_equal(tl_cls[:, :, None], br_cls[:, None, :]),
            tf.abs(tl_e[:, :, None] - br_e[:, None, :]) > ae_threshold,
        ),
        tf.logical_or(br_xs[:, None, :] < tl_xs[:, :, None], br_ys[:, None, :] < tl_ys[:, :, None]),
    )
    rejected = tf.logical_or(rejected, tf.logical_not(tl_valid[:, :, None] & br_valid[:, None, :]))
    scores = tf.where(rejected, tf.constant(REJECTED_SCORE, dtype), scores)

    pairs = tf.stack(
        [
            tf.broadcast_to(tl_xs[:, :, None], [batch, K, K]),
            tf.broadcast_to(tl_ys[:, :, None], [batch, K, K]),
            tf.broadcast_to(br_xs[:, None, :], [batch, K, K]),
            tf.broadcast_to(br_ys[:, None, :], [batch, K, K]),
            scores,
            pair_tl_s,
            pair_br_s,
            tf.cast(tf.broadcast_to(tl_cls[:, :, None], [batch, K, K]), dtype),
        ],
        axis=-1,
    )
    pairs = tf.reshape(pairs, [batch, K * K, ROW_SIZE])
    n = min(num_dets, K * K)
    _, order = tf.math.top_k(tf.reshape(scores, [batch, K * K]), k=n, sorted=True)
    dets = tf.gather(pairs, order, axis=1, batch_dims=1)
    if n < num_dets:
        filler = tf.concat(
            [
                tf.zeros([batch, num_dets - n, SCORE], dtype),
                tf.fill([batch, num_dets - n, 1], tf.constant(REJECTED_SCORE, dtype)),
                tf.zeros([batch, num_dets - n, ROW_SIZE - SCORE - 1], dtype),
            ],
            axis=-1,
        )
        dets = tf.concat([dets, filler], axis=1)
    return dets


def decode_outputs(outputs: dict, **kwargs) -> tf.Tensor:
    """:func:`decode` on the last stack of a model's output dict (lists of per-stack maps)."""
    maps = [
        outputs[name][-1] if isinstance(outputs[name], (list, tuple)) else outputs[name]
        for name in OUTPUT_KEYS
    ]
    return decode(*maps, **kwargs)
