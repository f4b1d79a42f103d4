"""Corner pooling (SPEC.md section 2): running maxima along H or W of an NHWC tensor.

top:    out[i, j] = max_{k >= i} x[k, j]   (looks down)
left:   out[i, j] = max_{k >= j} x[i, k]   (looks right)
bottom: out[i, j] = max_{k <= i} x[k, j]
right:  out[i, j] = max_{k <= j} x[i, k]
"""

from __future__ import annotations

import tensorflow as tf

DIRECTIONS = ("top", "left", "bottom", "right")
IMPLS = ("auto", "native", "tf", "scan")

# direction -> (axis in NHWC, whether the running max runs towards higher indices)
_AXIS = {"top": (1, True), "left": (2, True), "bottom": (1, False), "right": (2, False)}


def _shift_pad(x: tf.Tensor, shift: int, axis: int, reverse: bool) -> tf.Tensor:
    """x shifted by ``shift`` along ``axis``; vacated slots are filled with x's own edge so that
    max(x, shifted) stays exact and finite (no -inf padding: it breaks under TFLite)."""
    n = x.shape[axis]
    begin = [0, 0, 0, 0]
    size = [-1, -1, -1, -1]
    if reverse:  # looking towards higher indices: out[i] = max(x[i], x[i + shift])
        begin[axis] = shift
        head = tf.slice(x, begin, size)
        begin[axis] = n - shift
        tail = tf.slice(x, begin, size)
        return tf.concat([head, tail], axis=axis)
    size[axis] = n - shift
    body = tf.slice(x, begin, size)
    size[axis] = shift
    lead = tf.slice(x, begin, size)
    return tf.concat([lead, body], axis=axis)


def _corner_pool_tf(x: tf.Tensor, direction: str) -> tf.Tensor:
    """Hillis-Steele doubling: ceil(log2 n) steps of slice + concat + maximum (TFLite builtins)."""
    axis, reverse = _AXIS[direction]
    n = x.shape[axis]
    if n is None:
        raise ValueError(f"corner_pool impl='tf' needs a static size along axis {axis}, got shape {x.shape}")
    shift = 1
    while shift < n:
        x = tf.maximum(x, _shift_pad(x, shift, axis, reverse))
        shift *= 2
    return x


def _corner_pool_scan(x: tf.Tensor, direction: str) -> tf.Tensor:
    """Reference: tf.scan of the running maximum along the pooled axis."""
    axis, reverse = _AXIS[direction]
    perm = [axis] + [a for a in range(4) if a != axis]
    moved = tf.transpose(x, perm)
    out = tf.scan(tf.maximum, moved, reverse=reverse)
    inverse = [perm.index(a) for a in range(4)]
    return tf.transpose(out, inverse)


def corner_pool(x, direction: str, impl: str = "auto") -> tf.Tensor:
    """Corner pooling of NHWC ``x`` in ``direction`` (top | left | bottom | right)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"corner_pool: unknown direction {direction!r}; expected one of {DIRECTIONS}")
    if impl not in IMPLS:
        raise ValueError(f"corner_pool: unknown impl {impl!r}; expected one of {IMPLS}")
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise ValueError(f"corner_pool expects a 4-D NHWC tensor, got shape {x.shape}")
    if not x.dtype.is_floating:
        raise TypeError(f"corner_pool expects a floating-point tensor, got {x.dtype.name}")
    if impl == "scan":
        return _corner_pool_scan(x, direction)
    return _corner_pool_tf(x, direction)
