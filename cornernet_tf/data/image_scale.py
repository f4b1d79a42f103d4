"""``data.image_scale``: bring photos to the scale the network works at, in training and at test.

A small model with a 127-pixel input trains on random crops of ``127 * rand_scale`` pixels; on a
640-pixel photo with 300-pixel objects those crops cut most objects, while the test runs on the
whole photo. ``image_scale`` treats every photo as if resized by that factor first: training crops
cover ``input_size * rand_scale / image_scale`` original pixels (then resized to the input), and
the test multiplies ``test.scales`` by it. 1 is the paper's procedure.

``auto`` derives the factor from the training boxes at load time: objects whose median longer
side already lies in a workable band of the network input (:data:`BAND`) are left alone;
larger ones are brought down to the band's top, smaller ones up to its bottom (at most
:data:`MAX_SCALE`). The factor is then snapped to a readable value of :data:`LADDER`.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from cornernet_tf.config import Config, ConfigError, DataConfig, TestConfig

logger = logging.getLogger("cornernet_tf.data")

AUTO = "auto"
# Median longer box side as a fraction of the network input (its shorter side) that needs no
# rescaling. The top: objects must fit whole in most random crops (rand_scales go down to 0.6).
# The bottom: a box must span a few pixels of the 4x-smaller corner maps.
BAND = (0.15, 0.6)
MIN_SCALE, MAX_SCALE = 0.1, 2.0
LADDER = (0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 2.0)


@dataclasses.dataclass(frozen=True)
class AutoScale:
    """The ``auto`` decision and what it was derived from (printed and reported)."""

    scale: float
    median_side: float | None
    input_side: int
    num_boxes: int

    def describe(self) -> str:
        if self.median_side is None:
            return f"image_scale auto -> {self.scale:g} (no training boxes to measure)"
        return (
            f"image_scale auto -> {self.scale:g} (median box {self.median_side:.0f} px, "
            f"input {self.input_side}, {self.num_boxes} boxes)"
        )


def snap(scale: float) -> float:
    """The :data:`LADDER` value nearest to ``scale`` on a log scale."""
    return min(LADDER, key=lambda v: abs(math.log(v / scale)))


def auto_image_scale(boxes, input_size) -> AutoScale:
    """The ``auto`` rule on boxes ``[N, 4]`` (x1, y1, x2, y2 pixels) for a network input ``(h, w)``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    input_side = int(min(input_size))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    valid = np.isfinite(widths) & np.isfinite(heights) & (widths > 0) & (heights > 0)
    sides = np.maximum(widths, heights)[valid]
    if len(sides) == 0:
        return AutoScale(1.0, None, input_side, 0)
    median = float(np.median(sides))
    low, high = BAND[0] * input_side, BAND[1] * input_side
    raw = 1.0 if low <= median <= high else (high if median > high else low) / median
    scale = snap(min(max(raw, MIN_SCALE), MAX_SCALE))
    return AutoScale(scale, median, input_side, len(sides))


def is_auto(data_config: DataConfig) -> bool:
    return isinstance(data_config.image_scale, str)


def numeric_image_scale(data_config: DataConfig) -> float:
    """The number the pipeline uses; ``auto`` must have been resolved before."""
    if is_auto(data_config):
        raise ConfigError(
            "data.image_scale is still 'auto': resolve it with the training annotations first "
            "(cornernet_tf.data.image_scale.resolve_image_scale)"
        )
    return float(data_config.image_scale)


def training_boxes(data_config: DataConfig) -> np.ndarray | None:
    """All training boxes of a file-based (COCO JSON or VOC XML) source, or None without one."""
    if not (data_config.train_annotations and data_config.train_images):
        return None
    from cornernet_tf.data.coco import load_coco

    loaded = load_coco(
        data_config.train_annotations,
        data_config.train_images,
        class_names=data_config.class_names,
        scan="none",
        max_objects=data_config.max_objects,
    )
    return records_boxes(loaded.records)


def records_boxes(records) -> np.ndarray:
    return np.concatenate([r.boxes for r in records]) if records else np.zeros((0, 4))


def resolve_data_config(data_config: DataConfig, boxes=None, announce: bool = True) -> DataConfig:
    """``data_config`` with ``auto`` replaced by its number (others unchanged), printing it once.

    ``boxes``: the training boxes when already loaded; else they are read from the training
    annotations. Without any (TFRecord, TFDS or no training set) ``auto`` means 1 (logged only)."""
    if not is_auto(data_config):
        return data_config
    if boxes is None:
        boxes = training_boxes(data_config)
    decision = auto_image_scale(
        np.zeros((0, 4)) if boxes is None else boxes, data_config.input_size
    )
    if announce and decision.median_side is not None:
        print(decision.describe())
    else:
        logger.info("%s", decision.describe())
    resolved = dataclasses.replace(data_config, image_scale=decision.scale)
    if getattr(data_config, "_derived_output_size", False):
        resolved._derived_output_size = True
    return resolved


def resolve_image_scale(config: Config, announce: bool = True) -> Config:
    """``config`` with ``data.image_scale`` resolved (a copy when it was ``auto``)."""
    if not is_auto(config.data):
        return config
    return dataclasses.replace(config, data=resolve_data_config(config.data, announce=announce))


def scaled_test_config(config: Config) -> TestConfig:
    """``config.test`` with every test scale multiplied by ``data.image_scale``.

    A training work directory's config.yaml holds the number; a config still saying ``auto``
    derives it from its training annotations as training did (logged, not printed)."""
    factor = numeric_image_scale(resolve_image_scale(config, announce=False).data)
    if factor == 1.0:
        return config.test
    return dataclasses.replace(config.test, scales=[s * factor for s in config.test.scales])
