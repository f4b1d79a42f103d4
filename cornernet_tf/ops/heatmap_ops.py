"""The corner heatmaps of a batch drawn by one native CPU op (``kernels/heatmap_ops.cc``).

``draw_batch_heatmaps`` gives the maps of ``cornernet_tf.targets.draw_batch_heatmaps`` (the same
float64 arithmetic, so the same float32 values) for ~10 % of its CPU time: the TensorFlow ops
build index lists of every bump pixel and fill, scatter into and split a zero tensor of both
maps, the op writes the zero maps once and touches only the bump pixels. The dense input
pipeline uses it; a train step on an accelerator keeps the TensorFlow ops (this op is CPU-only).
Whether it can be used: :func:`native_heatmaps_available` (the library is built, defines the
op, and ``$CORNERNET_NATIVE_RESIZE`` is not ``0``, the switch of all native pipeline ops).
"""

from __future__ import annotations

import tensorflow as tf

from cornernet_tf.ops.corner_pool import load_native
from cornernet_tf.ops.image_ops import native_op_available

OP_NAME = "corner_net_draw_heatmaps"


def native_heatmaps_available() -> tuple[bool, str | None]:
    """(whether the native heatmap drawing can be used, the reason when not)."""
    return native_op_available(OP_NAME)


def draw_batch_heatmaps(
    corners, radii, classes, height: int, width: int, num_classes: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(tl, br)`` float32 ``[B, height, width, num_classes]`` from int32 ``corners``
    ``[B, K, 4]``, float64 ``radii`` ``[B, K]`` and int32 ``classes`` ``[B, K]`` (-1: no object);
    arguments as ``cornernet_tf.targets.draw_batch_heatmaps``, sizes as Python ints."""
    op = getattr(load_native(), OP_NAME)
    return tuple(
        op(
            tf.convert_to_tensor(corners, tf.int32),
            tf.cast(radii, tf.float64),
            tf.convert_to_tensor(classes, tf.int32),
            height=int(height),
            width=int(width),
            num_classes=int(num_classes),
        )
    )
