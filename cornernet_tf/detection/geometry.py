"""Where an image sits in the network input, and how boxes map back: the one placement geometry.

The official test (docs/method.md §5, §8 "Test") resizes the image by ``scale`` to
``int(H·s) x int(W·s)`` and centres it on a zero canvas of ``size | 127`` per axis with
``crop_image``; decoded boxes come back by ``÷ ratio``, ``− border``, clipping to the resized
size and ``÷ scale``. The fixed-size (TFLite) path uses the same placement on a canvas of a given
size. NumPy only; :mod:`cornernet_tf.detection.geometry_tf` is the TF twin used in graphs, and
tests/test_detection.py checks the two against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cornernet_tf.detection.contract import BOX, BOX_XS, BOX_YS, X1, X2

# Input sizes are padded to ``size | SIZE_MASK`` (docs/method.md §2: 128k - 1).
SIZE_MASK = 127


@dataclass(frozen=True)
class ScaleGeometry:
    """Where a resized image sits in the network input."""

    scale: float  # resized / original
    new_hw: tuple  # resized image (int(H·s), int(W·s))
    inp_hw: tuple  # network input
    out_hw: tuple  # output maps, ceil(inp / stride)
    border: tuple  # top, bottom, left, right of the image inside the input (ints)
    copy_hw: tuple  # rows / columns of the resized image that are copied (the official crop)

    @property
    def ratios(self) -> np.ndarray:
        """float32 (out_h / inp_h, out_w / inp_w), as the official code stores them."""
        return np.array(
            [self.out_hw[0] / self.inp_hw[0], self.out_hw[1] / self.inp_hw[1]], np.float32
        )

    @property
    def sizes(self) -> np.ndarray:
        """float32 resized size (h, w): the clip limits of the mapped-back boxes."""
        return np.array(self.new_hw, np.float32)


def place_axis(new: int, inp: int) -> tuple[int, int, int]:
    """Official ``crop_image`` at test time along one axis: ``new`` pixels centred in ``inp``.

    Returns (offset of the image, end of the image, copied length). When ``new == new | 127`` the
    official code copies one pixel less; kept on purpose.
    """
    centre = new // 2
    lo, hi = max(0, centre - inp // 2), min(centre + inp // 2, new)
    return inp // 2 - (centre - lo), inp // 2 + (hi - centre), hi - lo


def _placed(scale, new_hw, inp_hw, output_stride: int) -> ScaleGeometry:
    (top, bottom, copy_h), (left, right, copy_w) = (
        place_axis(new, inp) for new, inp in zip(new_hw, inp_hw)
    )
    stride = int(output_stride)
    return ScaleGeometry(
        scale=float(scale),
        new_hw=tuple(new_hw),
        inp_hw=tuple(inp_hw),
        out_hw=(-(-inp_hw[0] // stride), -(-inp_hw[1] // stride)),
        border=(top, bottom, left, right),
        copy_hw=(copy_h, copy_w),
    )


def scale_geometry(height: int, width: int, scale: float, output_stride: int = 4) -> ScaleGeometry:
    """The official test geometry of one scale: resize by ``scale``, pad to ``size | 127``.

    ``output_stride`` is the network's down-sampling (``ModelConfig.output_stride``)."""
    new_h, new_w = int(height * scale), int(width * scale)
    if new_h < 1 or new_w < 1:
        raise ValueError(f"scale {scale} makes the {height}x{width} image empty ({new_h}x{new_w})")
    return _placed(scale, (new_h, new_w), (new_h | SIZE_MASK, new_w | SIZE_MASK), output_stride)


def canvas_geometry(
    height: int, width: int, input_hw: Sequence[int], output_stride: int
) -> ScaleGeometry:
    """The geometry on a fixed ``input_hw`` canvas: the image keeps its size when it fits and is
    otherwise shrunk to fit; placed like the official test (so an image whose ``size | 127`` is the
    canvas gets exactly the official geometry)."""
    inp_h, inp_w = int(input_hw[0]), int(input_hw[1])
    if height < 1 or width < 1:
        raise ValueError(f"image must not be empty, got {height}x{width}")
    scale = min(1.0, inp_h / height, inp_w / width)
    if scale == 1.0:
        new_hw = (height, width)
    else:
        new_hw = (max(1, int(height * scale)), max(1, int(width * scale)))
    return _placed(scale, new_hw, (inp_h, inp_w), output_stride)


def valid_input_size(size: int, multiple: int) -> int:
    """Smallest ``n >= size`` of the form ``k * m - 1`` with ``m = max(multiple, 128)``: what the test
    procedure pads ``size`` to (``size | 127``), coarser when the model needs larger multiples."""
    m = max(int(multiple), SIZE_MASK + 1)
    return -(-(int(size) + 1) // m) * m - 1


def place_in_canvas(image: np.ndarray, geometry: ScaleGeometry) -> np.ndarray:
    """The resized ``image`` copied into a zero canvas of ``geometry.inp_hw`` (official ``crop_image``)."""
    canvas = np.zeros(tuple(geometry.inp_hw) + image.shape[2:], image.dtype)
    top, left = geometry.border[0], geometry.border[2]
    ch, cw = geometry.copy_hw
    canvas[top : top + ch, left : left + cw] = image[:ch, :cw]
    return canvas


def rows_to_image(rows: np.ndarray, geometry: ScaleGeometry) -> np.ndarray:
    """Detection rows [M, 8] float32 in output-map pixels → original-image pixels, **in place**.

    The official ``_rescale_dets`` then ÷ scale: ÷ ratio, minus the border, clipped to
    ``[0, resized size]`` (not ``size - 1``), ÷ scale.
    """
    ratios, sizes = geometry.ratios, geometry.sizes
    xs, ys = rows[:, BOX_XS], rows[:, BOX_YS]
    xs /= ratios[1]
    ys /= ratios[0]
    xs -= geometry.border[2]
    ys -= geometry.border[0]
    np.clip(xs, 0, sizes[1], out=xs)
    np.clip(ys, 0, sizes[0], out=ys)
    rows[:, BOX] /= np.float32(geometry.scale)
    return rows


def merge_flip(rows: np.ndarray, out_width: int) -> np.ndarray:
    """Decoded rows [2, n, 8] of (image, mirror) → [2n, 8]; the mirror's x are reflected with
    ``out_w - x`` (not ``out_w - 1 - x``), as the official test does."""
    rows = np.array(rows, np.float32, copy=True)
    x1, x2 = rows[1, :, X1].copy(), rows[1, :, X2].copy()
    rows[1, :, X1] = out_width - x2
    rows[1, :, X2] = out_width - x1
    return rows.reshape(-1, rows.shape[-1])


def boxes_to_input(boxes, geometry: ScaleGeometry, flipped: bool = False) -> np.ndarray:
    """Boxes ``x1, y1, x2, y2`` in original-image pixels → pixels of the network input (the view
    mirrored left-right when ``flipped``): the inverse of :func:`rows_to_image` without clipping."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * geometry.scale
    top, left = float(geometry.border[0]), float(geometry.border[2])
    out = boxes + np.array([left, top, left, top])
    if flipped:
        width = float(geometry.inp_hw[1])
        out = np.stack([width - out[:, 2], out[:, 1], width - out[:, 0], out[:, 3]], axis=1)
    return out
