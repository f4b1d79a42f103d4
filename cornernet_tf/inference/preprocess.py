"""Test-time pre-processing of the official code (test/coco.py), in NumPy.

For every scale the image is resized to ``int(H·s) x int(W·s)`` with OpenCV's bilinear arithmetic,
placed in the centre of a zero canvas of ``size | 127`` per axis (the placement of
:mod:`cornernet_tf.detection.geometry`), scaled to [0, 1] and normalised. The geometry needed to
map boxes back is returned with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB

# The placement geometry has its home in detection/; these names stay importable from here.
from cornernet_tf.detection.geometry import (  # noqa: F401
    SIZE_MASK,
    ScaleGeometry,
    place_in_canvas,
    scale_geometry,
)


def model_output_stride(model) -> int:
    """The down-sampling of ``model`` (4 unless its config says otherwise, e.g. 8 for Squeeze)."""
    return int(getattr(getattr(model, "model_config", None), "output_stride", 4))


# OpenCV's fixed-point bilinear resize of 8-bit images: coefficients carry 11 fractional bits.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _linear_taps(dst_size: int, src_size: int, clamp: bool):
    """Source indices and fixed-point weights per output pixel, as OpenCV computes them: the
    pixel-centre position is evaluated in double and stored as float before splitting."""
    scale = 1.0 / (dst_size / src_size)
    pos = ((np.arange(dst_size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    idx = np.floor(pos).astype(np.int64)
    frac = (pos - idx.astype(np.float32)).astype(np.float32)
    if clamp:  # OpenCV clamps the horizontal taps, but not the vertical ones (rows are clipped)
        low, high = idx < 0, idx >= src_size - 1
        frac[low | high] = 0
        idx[low] = 0
        idx[high] = src_size - 1
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    return np.clip(idx, 0, src_size - 1), np.clip(idx + 1, 0, src_size - 1), w0, w1


def resize_bilinear(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Resize a uint8 ``[H, W, C]`` image exactly as ``cv2.resize(image, (new_w, new_h))`` does.

    The official test feeds the network ``cv2.resize`` (INTER_LINEAR) output, and the network is
    sensitive to single grey levels, so this reproduces OpenCV's 8-bit path bit for bit: pixel-
    centre taps with 11-bit weights, an exact integer horizontal pass, and the vertical pass of its
    SIMD kernel (inputs >> 4, high half of 16-bit products, rounding shift by 2). An exact 2x
    reduction is a 2x2 box average with rounding (OpenCV switches to INTER_AREA there). Plain
    float bilinear interpolation differs by one grey level on some pixels; tests/test_detector.py
    checks this function against the official pipeline's outputs at five scales.
    """
    height, width = image.shape[:2]
    if (height, width) == (new_h, new_w):
        return image.copy()
    pixels = image.astype(np.int64)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if width == 2 * new_w and height == 2 * new_h:
        total = pixels[0::2, 0::2] + pixels[0::2, 1::2] + pixels[1::2, 0::2] + pixels[1::2, 1::2]
        out = (total + 2) >> 2
    else:
        x0, x1, a0, a1 = _linear_taps(new_w, width, clamp=True)
        y0, y1, b0, b1 = _linear_taps(new_h, height, clamp=False)
        rows = pixels[:, x0] * a0[None, :, None] + pixels[:, x1] * a1[None, :, None]
        top = (rows[y0] >> 4) * b0[:, None, None] >> 16
        bottom = (rows[y1] >> 4) * b1[:, None, None] >> 16
        out = (top + bottom + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8).reshape((new_h, new_w) + image.shape[2:])


def normalise(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 → float32 ``(x / 255 - mean) / std`` (computed in float64 like the official code)."""
    out = image.astype(np.float64) / 255.0
    out -= np.asarray(mean, np.float32)
    out /= np.asarray(std, np.float32)
    return out.astype(np.float32)


def prepare_image(
    image: np.ndarray,
    scale: float,
    mean: Sequence[float] = COCO_MEAN_RGB,
    std: Sequence[float] = COCO_STD_RGB,
    output_stride: int = 4,
):
    """One RGB uint8 image → (network input float32 [inp_h, inp_w, 3], :class:`ScaleGeometry`)."""
    geometry = scale_geometry(image.shape[0], image.shape[1], scale, output_stride)
    resized = resize_bilinear(image, *geometry.new_hw)
    return normalise(place_in_canvas(resized, geometry), mean, std), geometry


def as_rgb_uint8(image) -> np.ndarray:
    """Validate one image for detection: uint8 ``[H, W, 3]``; ``[H, W]`` grey and ``[H, W, 1]`` are
    repeated to RGB and the alpha channel of ``[H, W, 4]`` is dropped. Anything else is an error."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(
            f"detect() expects a uint8 RGB image [H, W, 3], got dtype {array.dtype} with shape {array.shape}; "
            "convert with np.clip(x, 0, 255).astype(np.uint8) if it holds 0-255 values"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"detect() expects an image of shape [H, W, 3] (or [H, W] grey, [H, W, 4] RGBA), got {array.shape}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"detect() got an empty image of shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = array[:, :, :3]
    return np.ascontiguousarray(array)
