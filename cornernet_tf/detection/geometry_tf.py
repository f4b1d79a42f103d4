"""The placement geometry of :mod:`cornernet_tf.detection.geometry` in TF ops, for graphs whose image
size is only known at run time (the SavedModel export). Same arithmetic, checked against the NumPy
version in tests/test_detection.py.
"""

from __future__ import annotations

import tensorflow as tf

from cornernet_tf.detection.contract import SCORE, X1, X2, Y1, Y2
from cornernet_tf.detection.geometry import SIZE_MASK


def scaled_size(size: tf.Tensor, scale: float) -> tf.Tensor:
    """``int(size * scale)`` as the official code computes it (float64 product, truncated), >= 1."""
    new = tf.cast(tf.floor(tf.cast(size, tf.float64) * scale), tf.int32)
    return tf.maximum(new, 1)


def place_axis(new: tf.Tensor, inp: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """:func:`geometry.place_axis` on int32 tensors: (offset, end, copied length)."""
    centre = new // 2
    lo = tf.maximum(0, centre - inp // 2)
    hi = tf.minimum(centre + inp // 2, new)
    return inp // 2 - (centre - lo), inp // 2 + (hi - centre), hi - lo


def scale_geometry(height: tf.Tensor, width: tf.Tensor, scale: float, output_stride: int = 4):
    """:func:`geometry.scale_geometry` as a dict of int32 tensors: ``new_hw``, ``inp_hw``,
    ``out_hw``, ``border`` (top, bottom, left, right) and ``copy_hw``; ``scale`` stays a float."""
    new_h, new_w = scaled_size(height, scale), scaled_size(width, scale)
    inp_h = tf.bitwise.bitwise_or(new_h, SIZE_MASK)
    inp_w = tf.bitwise.bitwise_or(new_w, SIZE_MASK)
    top, bottom, copy_h = place_axis(new_h, inp_h)
    left, right, copy_w = place_axis(new_w, inp_w)
    return {
        "new_hw": tf.stack([new_h, new_w]),
        "inp_hw": tf.stack([inp_h, inp_w]),
        "out_hw": tf.stack([-(-inp_h // output_stride), -(-inp_w // output_stride)]),
        "border": tf.stack([top, bottom, left, right]),
        "copy_hw": tf.stack([copy_h, copy_w]),
    }


def rows_to_image(rows: tf.Tensor, geometry: dict, scale: float) -> tf.Tensor:
    """:func:`geometry.rows_to_image` on rows [..., 8] float32 (not in place)."""
    ratio = tf.cast(geometry["out_hw"], tf.float32) / tf.cast(geometry["inp_hw"], tf.float32)
    sizes = tf.cast(geometry["new_hw"], tf.float32)
    top = tf.cast(geometry["border"][0], tf.float32)
    left = tf.cast(geometry["border"][2], tf.float32)
    xs = tf.stack([rows[..., X1], rows[..., X2]], -1) / ratio[1] - left
    ys = tf.stack([rows[..., Y1], rows[..., Y2]], -1) / ratio[0] - top
    xs = tf.clip_by_value(xs, 0.0, sizes[1]) / scale
    ys = tf.clip_by_value(ys, 0.0, sizes[0]) / scale
    boxes = tf.stack([xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]], -1)
    return tf.concat([boxes, rows[..., SCORE:]], -1)


def merge_flip(rows: tf.Tensor, batch: tf.Tensor, out_width: tf.Tensor) -> tf.Tensor:
    """Decoded rows of [images; mirrored images] [2B, n, 8] → [B, 2n, 8]; the mirror's x are
    reflected with ``out_w - x`` (:func:`geometry.merge_flip` for a batch)."""
    plain, mirrored = rows[:batch], rows[batch:]
    out_width = tf.cast(out_width, rows.dtype)
    mirrored = tf.concat(
        [
            out_width - mirrored[..., X2 : X2 + 1],
            mirrored[..., Y1 : Y1 + 1],
            out_width - mirrored[..., X1 : X1 + 1],
            mirrored[..., Y2:],
        ],
        -1,
    )
    return tf.concat([plain, mirrored], axis=1)
