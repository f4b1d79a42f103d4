"""Pictures of detections and corner heatmaps (Pillow), for ``cornernet detect`` and debugging."""

from __future__ import annotations

import colorsys
import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cornernet_tf.atomic_files import write_bytes

# Corner heatmap colours of the overlay: top-left corners red, bottom-right corners blue.
TL_COLOUR = (255, 48, 48)
BR_COLOUR = (48, 96, 255)


def class_colour(index: int) -> tuple:
    """A bright colour per class, stable across runs (hues spaced by the golden ratio)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _to_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 RGB image, got dtype {array.dtype} with shape {array.shape}"
        )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an image of shape [H, W, 3], got {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), "RGB")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        return ImageFont.load_default()


def label_origin(
    x1: float, y1: float, label_w: float, label_h: float, width: int, height: int
) -> tuple[float, float]:
    """Top-left corner of a box's label: above the box's top-left corner, else just inside it,
    moved left or up where it would leave the image (boxes at the right or bottom edge)."""
    y = y1 - label_h if y1 - label_h >= 0 else y1 + 1
    x = min(x1, width - 1 - label_w)
    y = min(y, height - 1 - label_h)
    return max(0.0, x), max(0.0, y)


def draw_detections(
    image,
    boxes,
    scores,
    classes,
    class_names: Sequence[str] | None = None,
    score_threshold: float = 0.0,
    line_width: int = 2,
) -> Image.Image:
    """Draw boxes (x1, y1, x2, y2 pixels) labelled ``name score`` on a copy of ``image``.

    ``classes`` are 0-based indices into ``class_names`` (the index itself is shown when there
    are no names). Boxes below ``score_threshold`` are skipped. Returns a PIL image.
    """
    canvas = _to_pil(image).copy()
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(
            f"boxes, scores and classes differ in length: {len(boxes)}, {len(scores)}, {len(classes)}"
        )
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, canvas.height // 40))
    order = np.argsort(scores, kind="stable")  # best drawn last, on top
    for i in order:
        if scores[i] < score_threshold:
            continue
        cls = int(classes[i])
        name = (
            class_names[cls]
            if class_names is not None and 0 <= cls < len(class_names)
            else str(cls)
        )
        colour = class_colour(cls)
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        draw.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=colour, width=line_width)
        label = f"{name} {scores[i]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tw, th = right - left, bottom - top
        lx, ly = label_origin(x1, y1, tw + 4, th + 4, canvas.width, canvas.height)
        draw.rectangle([lx, ly, lx + tw + 4, ly + th + 4], fill=colour)
        draw.text((lx + 2 - left, ly + 2 - top), label, fill=(0, 0, 0), font=font)
    return canvas


def overlay_heatmaps(image, tl_heat, br_heat, alpha: float = 0.7) -> Image.Image:
    """Blend corner heatmaps ([H, W] in [0, 1], e.g. ``Detector.corner_heatmaps``) over ``image``:
    top-left corners in red, bottom-right in blue, the image dimmed underneath."""
    base = np.asarray(_to_pil(image), np.float32)
    maps = []
    for heat in (tl_heat, br_heat):
        heat = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)
        if heat.shape != base.shape[:2]:
            raise ValueError(
                f"heatmap shape {heat.shape} does not match the image {base.shape[:2]}"
            )
        maps.append(heat[:, :, None])
    colour = maps[0] * np.array(TL_COLOUR, np.float32) + maps[1] * np.array(BR_COLOUR, np.float32)
    weight = alpha * np.maximum(maps[0], maps[1])
    out = base * 0.6 * (1.0 - weight) + np.clip(colour, 0, 255) * weight
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def save_png(image: Image.Image, path: str | os.PathLike | None = None) -> bytes:
    """Encode a PIL image as PNG; write it to ``path`` when given. Returns the PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    if path is not None:
        write_bytes(os.fspath(path), data)  # creates the folder; atomic
    return data
