"""The native per-pixel passes of the training pipeline (``kernels/image_ops.cc``).

``fixed_point_resize`` runs OpenCV's integer INTER_LINEAR arithmetic in one C++ pass, given the
taps that ``cornernet_tf.data.augment`` computes; its result is bit-identical to the TensorFlow
integer ops there (the pipeline's crop + resize costs ~2 instead of ~13 CPU-ms per 511x511
image). ``pixel_affine`` applies each image's colour map (jitter, lighting, normalisation) in one
pass, bit-identical to ``augment.apply_pixel_affine``'s TensorFlow ops, which make about ten
passes. Both live in the corner-pool op library and use that library's loader
(``corner_pool.load_native``), so the library is loaded once. Both are CPU-only: tf.data runs
on the CPU, and a train step on an accelerator uses the TensorFlow ops.

``native_resize_available()`` / ``native_pixel_affine_available()`` say whether each can be
used: the library loads, defines the op (a library built before the op existed does not), and
``$CORNERNET_NATIVE_RESIZE`` is not ``0`` (set it to force the TensorFlow ops for these two and
for ``heatmap_ops``, e.g. to compare them in a benchmark).
"""

from __future__ import annotations

import os

import tensorflow as tf

from cornernet_tf.ops.corner_pool import NativeOpUnavailableError, load_native

# Set to "0" to force the TensorFlow ops even when the native library is built.
SWITCH_ENV = "CORNERNET_NATIVE_RESIZE"
OP_NAME = "corner_net_fixed_point_resize"
PIXEL_AFFINE_OP_NAME = "corner_net_pixel_affine"


def native_op_available(op_name: str) -> tuple[bool, str | None]:
    """(whether the native pipeline op ``op_name`` can be used, the reason when not)."""
    if os.environ.get(SWITCH_ENV, "").strip() == "0":
        return False, f"${SWITCH_ENV}=0"
    try:
        module = load_native()
    except NativeOpUnavailableError as exc:
        return False, str(exc)
    if not hasattr(module, op_name):
        return False, (
            f"the op library predates {op_name}; rebuild it with `python -m cornernet_tf.ops.build`"
        )
    return True, None


def native_resize_available() -> tuple[bool, str | None]:
    """(whether the native resize can be used, the reason when not)."""
    return native_op_available(OP_NAME)


def native_pixel_affine_available() -> tuple[bool, str | None]:
    """(whether the native colour map can be used, the reason when not)."""
    return native_op_available(PIXEL_AFFINE_OP_NAME)


def fixed_point_resize(image, rows, cols) -> tf.Tensor:
    """uint8 ``[len(rows[0]), len(cols[0]), C]`` from uint8 ``image`` ``[h, w, C]`` and int32
    ``rows = (y0, b0, y1, b1)``, ``cols = (x0, a0, x1, a1)`` (indices and 11-bit weights)."""
    op = getattr(load_native(), OP_NAME)
    taps = [tf.cast(t, tf.int32) for t in (*rows, *cols)]
    return op(tf.convert_to_tensor(image, tf.uint8), *taps)


def pixel_affine(images, affine) -> tf.Tensor:
    """float32 ``[..., H, W, 3]``: uint8 ``images`` ``[..., H, W, 3]`` through float32 ``affine``
    ``[..., 3, 4]`` (one map per image; ``augment.pixel_affine``)."""
    op = getattr(load_native(), PIXEL_AFFINE_OP_NAME)
    return op(tf.convert_to_tensor(images, tf.uint8), tf.cast(affine, tf.float32))
