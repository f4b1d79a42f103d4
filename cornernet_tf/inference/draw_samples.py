"""Pictures of training samples with their ground truth, for ``cornernet data browse``.

One picture per sample, two panels side by side at the same scale: left, the augmented image with
the target boxes and class names (in the class colours of :func:`draw.class_colour`); right, the
top-left (red) and bottom-right (blue) corner heatmaps over the dimmed image
(:func:`draw.overlay_heatmaps`), with the same boxes as thin outlines so that each Gaussian can be
matched to its corner. Small network inputs are enlarged by a whole factor (``zoom``) so that the
labels stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cornernet_tf.inference.draw import class_colour, overlay_heatmaps

# Enlarge inputs below this many pixels (shorter side) by a whole factor; see default_zoom.
READABLE_SIDE = 256
PANEL_GAP = 4


def default_zoom(image_hw: Sequence[int]) -> int:
    """The whole factor that brings the shorter side to at least :data:`READABLE_SIDE` pixels."""
    return max(1, -(-READABLE_SIDE // max(1, min(int(image_hw[0]), int(image_hw[1])))))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        return ImageFont.load_default()


def _heat_at_image_size(heat: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    """Max over classes of an ``[h, w, C]`` map, resized (nearest) to ``hw`` so each map pixel
    stays a visible square."""
    plane = np.max(np.asarray(heat, np.float32), axis=-1)
    picture = Image.fromarray(plane, mode="F").resize((int(hw[1]), int(hw[0])), Image.NEAREST)
    return np.asarray(picture, np.float32)


def draw_boxes(
    picture: Image.Image,
    boxes: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str] | None,
    zoom: int,
    offset_x: int = 0,
    labels: bool = True,
    line_width: int = 2,
) -> None:
    """Draw ``boxes`` (input pixels) scaled by ``zoom`` and shifted by ``offset_x`` onto ``picture``,
    labelled with class names that stay inside the panel."""
    draw = ImageDraw.Draw(picture)
    font = _font(max(11, picture.height // 24))
    panel_right = offset_x + (picture.width - PANEL_GAP) // 2
    for box, cls in zip(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes)):
        cls = int(cls)
        colour = class_colour(cls)
        x1, y1, x2, y2 = (float(v) * zoom for v in box)
        x1, x2 = x1 + offset_x, x2 + offset_x
        draw.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=colour, width=line_width)
        if not labels:
            continue
        name = class_names[cls] if class_names and 0 <= cls < len(class_names) else str(cls)
        left, top, right, bottom = draw.textbbox((0, 0), name, font=font)
        tw, th = right - left + 4, bottom - top + 4
        tx = min(max(x1, offset_x), panel_right - tw)  # kept inside the panel
        ty = y1 - th if y1 - th >= 0 else y1 + line_width
        draw.rectangle([tx, ty, tx + tw - 1, ty + th - 1], fill=colour)
        draw.text((tx + 2 - left, ty + 2 - top), name, fill=(0, 0, 0), font=font)


def sample_picture(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    tl_heat: np.ndarray,
    br_heat: np.ndarray,
    class_names: Sequence[str] | None = None,
    zoom: int | None = None,
) -> Image.Image:
    """The two-panel picture of one sample (see the module docstring); ``image`` uint8 ``[H, W, 3]``,
    heatmaps ``[h, w, C]`` in [0, 1]. Its size is ``(H * zoom, 2 * W * zoom + PANEL_GAP)``."""
    image = np.asarray(image, np.uint8)
    zoom = int(zoom or default_zoom(image.shape[:2]))
    if zoom < 1:
        raise ValueError(f"zoom must be >= 1, got {zoom}")
    h, w = image.shape[0] * zoom, image.shape[1] * zoom
    enlarged = Image.fromarray(image, "RGB").resize((w, h), Image.NEAREST)
    heat = overlay_heatmaps(
        enlarged, _heat_at_image_size(tl_heat, (h, w)), _heat_at_image_size(br_heat, (h, w))
    )
    picture = Image.new("RGB", (2 * w + PANEL_GAP, h), (255, 255, 255))
    picture.paste(enlarged, (0, 0))
    picture.paste(heat, (w + PANEL_GAP, 0))
    draw_boxes(
        picture,
        boxes,
        classes,
        class_names,
        zoom,
        offset_x=w + PANEL_GAP,
        labels=False,
        line_width=1,
    )
    draw_boxes(picture, boxes, classes, class_names, zoom)
    return picture
