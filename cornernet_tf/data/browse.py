"""Training samples as the network sees them, for ``cornernet data browse``.

Runs the real training pipeline (:func:`cornernet_tf.data.pipeline.build_dataset`: sampling,
random crop and scale, flip, colour jitter, lighting, target encoding) and turns each element back
into something to look at: the augmented image as uint8 pixels (normalisation undone), the corner
heatmaps, and the boxes *as the targets encode them*: each object's top-left and bottom-right tag
(a map pixel) plus its sub-pixel offset, divided by the map/input ratio (docs/method.md §3). So a
box drawn in the wrong place shows a real target problem, not a drawing one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from cornernet_tf.config import Config
from cornernet_tf.errors import InvalidValueError


@dataclasses.dataclass
class BrowseSample:
    """One augmented training sample: ``image`` uint8 ``[H, W, 3]`` (the network input size),
    ``boxes`` ``[N, 4]`` x1 y1 x2 y2 input pixels and ``classes`` ``[N]`` (0-based) from the targets,
    ``tl_heat`` / ``br_heat`` ``[H_out, W_out, C]`` in [0, 1], ``image_id`` of the source image and
    ``num_dropped``: objects past ``data.max_objects`` (on the heatmaps, without a box)."""

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    tl_heat: np.ndarray
    br_heat: np.ndarray
    image_id: int
    num_dropped: int


def denormalise(image: np.ndarray, mean, std) -> np.ndarray:
    """Undo the pipeline's ``(pixels / 255 - mean) / std``: float ``[H, W, 3]`` -> uint8 RGB."""
    pixels = (np.asarray(image, np.float32) * np.asarray(std, np.float32) + np.asarray(mean)) * 255
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def boxes_from_targets(targets: dict, input_hw, output_hw) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes [N, 4] input pixels, classes [N])`` of the objects that have a tag slot.

    A corner is ``(tag % W_out + dx, tag // W_out + dy)`` on the map, divided by the map/input
    ratio; the class is the heatmap channel that peaks (1.0) at both corner pixels.
    """
    (in_h, in_w), (out_h, out_w) = input_hw, output_hw
    count = int(targets["num_objects"])
    corners = []
    for corner in ("tl", "br"):
        tags = np.asarray(targets[f"{corner}_tag"][:count], np.int64)
        regr = np.asarray(targets[f"{corner}_regr"][:count], np.float64)
        xs, ys = tags % out_w, tags // out_w
        corners.append((xs, ys, (xs + regr[:, 0]) * in_w / out_w, (ys + regr[:, 1]) * in_h / out_h))
    (tl_x, tl_y, x1, y1), (br_x, br_y, x2, y2) = corners
    tl_peak = np.asarray(targets["tl_heatmap"])[tl_y, tl_x] >= 1.0  # [N, C]
    br_peak = np.asarray(targets["br_heatmap"])[br_y, br_x] >= 1.0
    classes = np.argmax(tl_peak & br_peak, axis=1) if count else np.zeros([0], np.int64)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32).reshape(-1, 4)
    return boxes, classes.astype(np.int64)


def browse_samples(config: Config, count: int) -> tuple[list[str], Iterator[BrowseSample]]:
    """``(class names, samples)``: ``count`` :class:`BrowseSample` from the configured training
    data, augmented as in training. With ``data.seed`` set they are repeatable: the pipeline's
    element order is then made deterministic (it changes the order only, not the augmentation)."""
    from cornernet_tf.data.pipeline import build_dataset, load_source

    if int(count) < 1:
        raise InvalidValueError(f"the number of samples must be >= 1, got {count}")
    data = config.data
    if data.seed is not None:  # the same seed gives the same samples in the same order
        data = dataclasses.replace(data, deterministic=True)
    source = load_source(data, training=True)
    ds = build_dataset(
        data, training=True, batch_size=None, model_config=config.model, source=source
    )
    return list(source.info.class_names), _samples(ds.take(int(count)), config)


def _samples(ds, config: Config) -> Iterator[BrowseSample]:
    data = config.data
    for image, targets in ds.as_numpy_iterator():
        boxes, classes = boxes_from_targets(targets, data.input_size, data.output_hw)
        yield BrowseSample(
            image=denormalise(image, data.mean, data.std),
            boxes=boxes,
            classes=classes,
            tl_heat=np.asarray(targets["tl_heatmap"], np.float32),
            br_heat=np.asarray(targets["br_heatmap"], np.float32),
            image_id=int(targets["image_id"]),
            num_dropped=int(targets["num_dropped"]),
        )
