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

The dense pipeline finishes the same way, in the pipeline and on the CPU: with the native op
library built it batches compact elements and :func:`finish_dense_on_cpu` turns each batch into
the dense one with the native colour-map and heatmap ops (the same bits as the TensorFlow ops).
"""

from __future__ import annotations

import tensorflow as tf

from cornernet_tf.config import BATCH_FORMATS, ConfigError
from cornernet_tf.data.augment import apply_pixel_affine
from cornernet_tf.ops import heatmap_ops, image_ops
from cornernet_tf.targets import draw_batch_heatmaps

PIXEL_AFFINE_KEY = "pixel_affine"
# What a compact batch has instead of the dense images' normalisation and the heatmaps.
SPARSE_HEATMAP_KEYS = ("heatmap_corners", "heatmap_radii", "heatmap_classes")
COMPACT_KEYS = (PIXEL_AFFINE_KEY, *SPARSE_HEATMAP_KEYS)


def resolve_batch_format(batch_format: str, jit_compile: bool, on_accelerator: bool) -> str:
    """``dense`` or ``compact`` for training, from ``data.batch_format``, ``train.jit_compile`` and
    whether the train step runs on an accelerator.

    ``auto`` is compact when a GPU or TPU finishes the batches: the input pipeline then does less
    than half the CPU work per image and hands over 0.8 MB instead of 13.6. On a CPU-only
    machine the same CPU would do the finishing inside the train step, where it costs more than
    in the pipeline (one elementwise pass per batch instead of fused per-image work;
    ``benchmarks/input_pipeline.py``), so ``auto`` stays dense. Under XLA it is dense too:
    drawing the heatmaps has data-dependent sizes (the pixels of the objects' bumps), which XLA
    cannot compile.
    """
    if batch_format not in BATCH_FORMATS:
        raise ConfigError(
            f"data.batch_format must be {'|'.join(BATCH_FORMATS)}, got {batch_format!r}"
        )
    if batch_format == "auto":
        return "compact" if on_accelerator and not jit_compile else "dense"
    if batch_format == "compact" and jit_compile:
        raise ConfigError(
            "data.batch_format=compact needs train.jit_compile=false (the heatmaps drawn in the "
            "train step have data-dependent sizes); use batch_format auto or dense"
        )
    return batch_format


def accelerator_visible() -> bool:
    """Whether TensorFlow sees a GPU or TPU (where a compact batch would be finished)."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def is_compact(images, targets) -> bool:
    """Whether ``(images, targets)`` is a compact batch (uint8 images or a ``pixel_affine``)."""
    return PIXEL_AFFINE_KEY in targets or tf.as_dtype(images.dtype) == tf.uint8


def finish_images(images, targets) -> tf.Tensor:
    """The normalised float32 images of a compact batch (TensorFlow ops: the train step may run
    on an accelerator, where the native CPU op has no kernel)."""
    return apply_pixel_affine(images, targets[PIXEL_AFFINE_KEY], impl="tf")


def finish_targets(targets, height, width, num_classes: int) -> dict:
    """The dense targets of a compact batch: heatmaps ``[B, height, width, num_classes]`` drawn,
    the compact-only fields dropped (``num_undrawn`` stays, as ``num_dropped`` does)."""
    return _drawn_targets(draw_batch_heatmaps, targets, height, width, num_classes)


def _drawn_targets(draw, targets, height, width, num_classes: int, drop=()) -> dict:
    """``targets`` with the heatmaps ``draw`` makes from its sparse fields instead of them (and
    of ``PIXEL_AFFINE_KEY`` and ``drop``)."""
    tl, br = draw(*(targets[k] for k in SPARSE_HEATMAP_KEYS), height, width, num_classes)
    dense = {k: v for k, v in targets.items() if k not in (*COMPACT_KEYS, *drop)}
    return {"tl_heatmap": tl, "br_heatmap": br, **dense}


def finish_batch(images, targets, height, width, num_classes: int):
    """``(images, targets)`` of a compact batch as the dense batch (see the module docstring)."""
    return finish_images(images, targets), finish_targets(targets, height, width, num_classes)


def native_finish_available() -> tuple[bool, str | None]:
    """(whether :func:`finish_dense_on_cpu` can run, the reason when not): both native ops."""
    usable, reason = image_ops.native_pixel_affine_available()
    return heatmap_ops.native_heatmaps_available() if usable else (usable, reason)


def describe_batches(batch_format: str) -> str:
    """One line for the training log: which batches the pipeline builds and who finishes them
    (and, when the native ops are missing, why and what that costs)."""
    if batch_format == "compact":
        return "batches: compact (uint8 images and corner lists; the train step finishes them)"
    usable, reason = native_finish_available()
    if usable:
        return "batches: dense, finished per batch in the input pipeline by the native CPU ops"
    return (
        f"batches: dense, built image by image in TensorFlow ops ({reason}); with the native "
        f"ops the input pipeline takes about half the CPU time per image"
    )


def finish_dense_on_cpu(images, targets, height: int, width: int, num_classes: int):
    """The dense batch, finished in the input pipeline by the native CPU ops.

    The dense pipeline on a CPU batches compact elements whose heatmap slots hold every object
    (``max_heatmap_objects=None``, ``padded_batch``) and finishes them here, once per batch:
    the per-image float32 images and heatmaps are never built and copied into a batch, which
    saves 40 % of the pipeline's CPU time per image. The result is that of
    :func:`finish_batch` (the same arithmetic) with the dense batch's fields: no object is
    left off the heatmaps, so there is no ``num_undrawn``.
    """
    images = image_ops.pixel_affine(images, targets[PIXEL_AFFINE_KEY])
    draw = heatmap_ops.draw_batch_heatmaps
    return images, _drawn_targets(draw, targets, height, width, num_classes, ("num_undrawn",))
