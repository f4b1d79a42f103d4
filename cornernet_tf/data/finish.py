"""Compact training batches and the step that finishes them (``data.batch_format``).

A dense batch carries float32 normalised images and two float32 ``[h, w, C]`` heatmaps per
image, mostly zeros: 13.6 MB per image at COCO size, built, batched and copied by the CPU. A
compact batch carries the uint8 image with its per-image colour map (``pixel_affine``) and the
few numbers each object's bumps are drawn from; :func:`finish_batch` turns it into the dense
batch inside the train step, on the accelerator when there is one. Both formats go through
the same two functions (``augment.apply_pixel_affine`` and the bump drawing of
``targets``), so the finished batch is bit for bit the dense one -- apart from objects past
``data.max_heatmap_objects``, which a compact batch leaves off its heatmaps and counts in
``num_undrawn``.
"""

from __future__ import annotations

import tensorflow as tf

from cornernet_tf.config import BATCH_FORMATS, ConfigError
from cornernet_tf.data.augment import apply_pixel_affine
from cornernet_tf.targets import draw_batch_heatmaps

PIXEL_AFFINE_KEY = "pixel_affine"
# What a compact batch has instead of the dense images' normalisation and the heatmaps.
SPARSE_HEATMAP_KEYS = ("heatmap_corners", "heatmap_radii", "heatmap_classes")
COMPACT_KEYS = (PIXEL_AFFINE_KEY, *SPARSE_HEATMAP_KEYS)


def resolve_batch_format(batch_format: str, jit_compile: bool) -> str:
    """``dense`` or ``compact`` for training from ``data.batch_format`` and ``train.jit_compile``.

    ``auto`` is compact, except under XLA: drawing the heatmaps has data-dependent sizes (the
    pixels of the objects' bumps), which XLA cannot compile, so the heatmaps then come dense
    from the input pipeline.
    """
    if batch_format not in BATCH_FORMATS:
        raise ConfigError(
            f"data.batch_format must be {'|'.join(BATCH_FORMATS)}, got {batch_format!r}"
        )
    if batch_format == "auto":
        return "dense" if jit_compile else "compact"
    if batch_format == "compact" and jit_compile:
        raise ConfigError(
            "data.batch_format=compact needs train.jit_compile=false (the heatmaps drawn in the "
            "train step have data-dependent sizes); use batch_format auto or dense"
        )
    return batch_format


def is_compact(images, targets) -> bool:
    """Whether ``(images, targets)`` is a compact batch (uint8 images or a ``pixel_affine``)."""
    return PIXEL_AFFINE_KEY in targets or tf.as_dtype(images.dtype) == tf.uint8


def finish_images(images, targets) -> tf.Tensor:
    """The normalised float32 images of a compact batch."""
    return apply_pixel_affine(images, targets[PIXEL_AFFINE_KEY])


def finish_targets(targets, height, width, num_classes: int) -> dict:
    """The dense targets of a compact batch: heatmaps ``[B, height, width, num_classes]`` drawn,
    the compact-only fields dropped (``num_undrawn`` stays, as ``num_dropped`` does)."""
    tl, br = draw_batch_heatmaps(
        targets["heatmap_corners"],
        targets["heatmap_radii"],
        targets["heatmap_classes"],
        height,
        width,
        num_classes,
    )
    dense = {k: v for k, v in targets.items() if k not in COMPACT_KEYS}
    return {"tl_heatmap": tl, "br_heatmap": br, **dense}


def finish_batch(images, targets, height, width, num_classes: int):
    """``(images, targets)`` of a compact batch as the dense batch (see the module docstring)."""
    return finish_images(images, targets), finish_targets(targets, height, width, num_classes)
