"""The official training sampler's augmentation (``sample/coco.py``, ``sample/utils.py``,
``utils/image.py``) in TF ops, so it runs inside ``tf.data`` (docs/method.md §4).

Per image, in the official order:

1. random crop: scale from ``rand_scales``, centre drawn at least ``_get_border`` away from the
   edges, crop ``int(input * scale)`` with zero padding (``augment=False``: the centred
   full-image square crop instead, the official debug/validation path);
2. resize to the input size, reproducing OpenCV's fixed-point bilinear ``cv2.resize`` bit for bit
   (in training fused with the crop: the zero-padded canvas is never built);
3. clip boxes to ``[0, size - 1]`` and drop the degenerate ones;
4. horizontal flip with p = 0.5 (``x -> W - x - 1``);
5. pixels / 255, colour jitter (brightness, contrast, saturation in random order, alphas
   ``1 + U(-0.4, 0.4)``, grayscale computed once before), PCA lighting, mean/std normalisation
   (fused into one affine map per image by :func:`pixel_affine`, applied by
   :func:`apply_pixel_affine`; equal to the sequential ops to ~1e-6).

Every random step has a deterministic core taking its draws as arguments (tested against
tests/data/augment.npz) and a seeded wrapper drawing them with stateless random ops, so a seed
fixes the output whatever the parallelism. Images are RGB here; the official code is BGR, which
only changes the grayscale weights' order, the eigenvector rows and the mean/std order.
Boxes stay float64 like the official arrays, because the target encoder truncates them.

The resize's per-pixel integer arithmetic and the colour map of uint8 images run in C++ ops
(``cornernet_tf.ops.image_ops``, bit-identical, several times cheaper) when the native op
library is built and the image is on the CPU, and in TensorFlow ops otherwise. ``impl="tf"`` on
:func:`resize_uint8` / :func:`crop_resize_uint8` / :func:`apply_pixel_affine`, or
``CORNERNET_NATIVE_RESIZE=0`` in the environment (read when the pipeline is traced), forces the
TensorFlow ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import tensorflow as tf

from cornernet_tf.config import COCO_EIGVAL, COCO_EIGVEC_BGR, DataConfig
from cornernet_tf.ops import image_ops

# The official db keeps these as float32 arrays; the products are then taken in float64.
EIGVAL = np.asarray(COCO_EIGVAL, np.float32)
# Row c of the official eigenvector matrix is the offset added to BGR channel c; in RGB order the
# rows are reversed. The columns index eigen-components (paired with EIGVAL) and stay as they are.
EIGVEC_RGB = np.ascontiguousarray(np.asarray(COCO_EIGVEC_BGR, np.float32)[::-1])
# cv2.COLOR_BGR2GRAY weights (ITU-R BT.601), applied as B*0.114 + G*0.587 + R*0.299.
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)
# Colour-jitter operations in the official list order (before random.shuffle).
JITTER_OPS = ("brightness", "contrast", "saturation")

# OpenCV INTER_LINEAR fixed point: 11-bit coefficients (INTER_RESIZE_COEF_BITS).
_CV_COEF_SCALE = 2048


# --------------------------------------------------------------------------- geometry


def get_border(border: int, size) -> tf.Tensor:
    """The official ``_get_border``: halve ``border`` until ``size - border > border``."""
    candidates = []
    b, i = int(border), 1
    while True:
        candidates.append(b // i)
        if b // i == 0:
            break
        i *= 2
    cands = tf.constant(candidates, tf.int32)
    size = tf.cast(size, tf.int32)
    # The candidates decrease, so the first one that fits is the largest one that fits.
    return tf.reduce_max(tf.where(size - cands > cands, cands, tf.zeros_like(cands)))


def _crop_geometry(image_hw, center, size):
    im_h, im_w = (tf.cast(v, tf.int32) for v in image_hw)
    cty, ctx = (tf.cast(v, tf.int32) for v in center)
    height, width = (tf.cast(v, tf.int32) for v in size)
    x0, x1 = tf.maximum(0, ctx - width // 2), tf.minimum(ctx + width // 2, im_w)
    y0, y1 = tf.maximum(0, cty - height // 2), tf.minimum(cty + height // 2, im_h)
    left, right = ctx - x0, x1 - ctx
    top, bottom = cty - y0, y1 - cty
    cropped_cty, cropped_ctx = height // 2, width // 2
    return dict(
        x0=x0,
        x1=x1,
        y0=y0,
        y1=y1,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        cty=cropped_cty,
        ctx=cropped_ctx,
        height=height,
        width=width,
    )


def _paste(image: tf.Tensor, g: dict) -> tf.Tensor:
    """``canvas[cty-top:cty+bottom, ctx-left:ctx+right] = image[y0:y1, x0:x1]`` on a zero canvas."""
    patch = image[g["y0"] : g["y1"], g["x0"] : g["x1"]]
    pad_top, pad_left = g["cty"] - g["top"], g["ctx"] - g["left"]
    paddings = [
        [pad_top, g["height"] - pad_top - (g["y1"] - g["y0"])],
        [pad_left, g["width"] - pad_left - (g["x1"] - g["x0"])],
        [0, 0],
    ]
    return tf.pad(patch, paddings)


def crop_image(image, center, size):
    """The official ``crop_image``: a ``size = (h, w)`` window centred at ``center = (cy, cx)``.

    Returns ``(cropped, border, offset)``: ``border = [top, bottom, left, right]`` (float32) is
    where the image lies inside the crop, ``offset = [cy - h // 2, cx - w // 2]``. With an odd
    size the window ends one pixel early (``c + h // 2``), so the last row/column stay zero.
    """
    image = tf.convert_to_tensor(image)
    g = _crop_geometry(tf.unstack(tf.shape(image)[:2]), center, size)
    cropped = _paste(image, g)
    border = tf.cast(
        tf.stack(
            [
                g["cty"] - g["top"],
                g["cty"] + g["bottom"],
                g["ctx"] - g["left"],
                g["ctx"] + g["right"],
            ]
        ),
        tf.float32,
    )
    offset = tf.stack(
        [
            tf.cast(center[0], tf.int32) - g["height"] // 2,
            tf.cast(center[1], tf.int32) - g["width"] // 2,
        ]
    )
    return cropped, border, offset


def _shift_boxes(boxes: tf.Tensor, dx, dy) -> tf.Tensor:
    """``boxes[:, 0::2] += dx; boxes[:, 1::2] += dy`` in float64."""
    dx, dy = tf.cast(dx, tf.float64), tf.cast(dy, tf.float64)
    return boxes + tf.stack([dx, dy, dx, dy])


def random_crop_with_draws(image, boxes, scale, ctx, cty, view_size: Sequence[int]):
    """The official ``random_crop`` given its draws: ``scale`` (float64), centre ``(ctx, cty)``."""
    image = tf.convert_to_tensor(image)
    g, boxes = random_crop_geometry(tf.shape(image)[:2], boxes, scale, ctx, cty, view_size)
    return _paste(image, g), boxes


def random_crop_geometry(image_hw, boxes, scale, ctx, cty, view_size: Sequence[int]):
    """The random crop's window and canvas (``_crop_geometry``) and the boxes in canvas pixels."""
    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float64)
    scale = tf.cast(scale, tf.float64)
    height = tf.cast(tf.floor(float(view_size[0]) * scale), tf.int32)  # int(view_height * scale)
    width = tf.cast(tf.floor(float(view_size[1]) * scale), tf.int32)
    g = _crop_geometry(tf.unstack(image_hw), (cty, ctx), (height, width))
    # Official order: subtract the window origin, then add the paste offset.
    boxes = _shift_boxes(boxes, -g["x0"], -g["y0"])
    boxes = _shift_boxes(boxes, g["ctx"] - g["left"], g["cty"] - g["top"])
    return g, boxes


def draw_random_crop(seed, image_hw, rand_scales: Sequence[float], border: int):
    """Stateless draws for :func:`random_crop_with_draws`: ``(scale, ctx, cty)``."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    scales = tf.constant(list(rand_scales), tf.float64)
    index = tf.random.stateless_uniform([], seeds[0], 0, len(rand_scales), dtype=tf.int32)
    im_h, im_w = (tf.cast(v, tf.int32) for v in image_hw)
    w_border, h_border = get_border(border, im_w), get_border(border, im_h)
    ctx = tf.random.stateless_uniform([], seeds[1], w_border, im_w - w_border, dtype=tf.int32)
    cty = tf.random.stateless_uniform([], seeds[2], h_border, im_h - h_border, dtype=tf.int32)
    return scales[index], ctx, cty


def full_image_crop(image, boxes):
    """The official ``_full_image_crop``: centre the image in a ``max(h, w)`` square."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    max_hw = tf.maximum(shape[0], shape[1])
    cropped, border, _ = crop_image(image, (shape[0] // 2, shape[1] // 2), (max_hw, max_hw))
    boxes = _shift_boxes(tf.cast(tf.reshape(boxes, [-1, 4]), tf.float64), border[2], border[0])
    return cropped, boxes, border


def _cv2_linear_taps(src_size, dst_size: int, clamp_fraction: bool = True):
    """Source indices and 11-bit weights of OpenCV's INTER_LINEAR along one axis.

    OpenCV treats the axes differently at the borders: along x a tap before the first or past
    the last pixel becomes that pixel with weights (2048, 0) (``clamp_fraction=True``); along
    y only the row indices are clamped and the weights keep the fraction, so the first and last
    output rows of an upscale blend a row with itself, e.g. ``(411 * D >> 16) + (1637 * D >> 16)``
    (``clamp_fraction=False``), which can be one below ``2048 * D >> 16``.
    """
    src = tf.cast(src_size, tf.float64)
    scale = 1.0 / (tf.constant(float(dst_size), tf.float64) / src)  # cv2: 1 / inv_scale
    f = tf.cast((tf.range(dst_size, dtype=tf.float64) + 0.5) * scale - 0.5, tf.float32)
    s = tf.floor(f)
    f = f - s
    s = tf.cast(s, tf.int32)
    last = tf.cast(src_size, tf.int32) - 1
    if clamp_fraction:
        low, high = s < 0, s >= last
        f = tf.where(low | high, tf.zeros_like(f), f)
        s = tf.where(low, tf.zeros_like(s), tf.where(high, tf.fill(tf.shape(s), last), s))
        s1 = tf.minimum(s + 1, last)
    else:
        s, s1 = tf.clip_by_value(s, 0, last), tf.clip_by_value(s + 1, 0, last)
    w1 = tf.cast(tf.round(f * _CV_COEF_SCALE), tf.int32)  # saturate_cast<short>: round half to even
    w0 = tf.cast(tf.round((1.0 - f) * _CV_COEF_SCALE), tf.int32)
    return s, s1, w0, w1


def resize_uint8(image, size: Sequence[int], impl: str = "auto") -> tf.Tensor:
    """``cv2.resize(image, (w, h))`` (INTER_LINEAR) on a uint8 image, bit-exact.

    OpenCV interpolates uint8 in fixed point: 11-bit horizontal weights,
    ``D = (p0 * a0 + p1 * a1) >> 4`` per source row, then the vertical pass
    ``(((b0 * D0) >> 16) + ((b1 * D1) >> 16) + 2) >> 2``. ``tf.image.resize`` rounds differently
    (about one pixel value in ten differs by 1), so it is reproduced here with integer ops.
    Returns uint8 ``[h, w, C]``. ``impl``: "auto" (native op when usable), "native" or "tf".
    """
    image = tf.convert_to_tensor(image)
    out_h, out_w = int(size[0]), int(size[1])
    shape = tf.shape(image)
    ys0, ys1, b0, b1 = _cv2_linear_taps(shape[0], out_h, clamp_fraction=False)
    xs0, xs1, a0, a1 = _cv2_linear_taps(shape[1], out_w)
    rows, cols = (ys0, b0, ys1, b1), (xs0, a0, xs1, a1)
    return _resize_with_taps(image, rows, cols, out_h, out_w, impl)


_RESIZE_IMPLS = ("auto", "native", "tf")


def _use_native(image: tf.Tensor, impl: str, available=image_ops.native_resize_available) -> bool:
    """Whether a native image op runs: ``impl`` and, for "auto", ``available()`` and the device."""
    if impl not in _RESIZE_IMPLS:
        raise ValueError(f"impl must be one of {_RESIZE_IMPLS}, got {impl!r}")
    if impl == "native":
        return True
    if impl == "tf":
        return False
    device = getattr(image, "device", "") or ""  # empty while tracing: tf.data runs on the CPU
    return "GPU" not in device.upper() and available()[0]


def _resize_with_taps(image, rows, cols, out_h: int, out_w: int, impl: str) -> tf.Tensor:
    if _use_native(image, impl):
        return image_ops.fixed_point_resize(image, rows, cols)
    return _fixed_point_resize(image, rows, cols, out_h, out_w)


def _window_taps(taps, pad, length, origin):
    """Canvas taps -> taps into the pasted window: ``(index, weight)`` pairs.

    Canvas position ``i`` holds source pixel ``origin + i - pad`` when ``0 <= i - pad < length``
    and zero otherwise; a tap on zero padding keeps a valid index but gets weight 0, which
    adds exactly what the zero pixel would (``0``) in the integer arithmetic.
    """
    s0, s1, w0, w1 = taps
    out = []
    for s, w in ((s0, w0), (s1, w1)):
        local = s - pad
        inside = (local >= 0) & (local < length)
        out.append(origin + tf.clip_by_value(local, 0, tf.maximum(length - 1, 0)))
        out.append(tf.where(inside, w, tf.zeros_like(w)))
    return out


def _fixed_point_resize(image, rows, cols, out_h: int, out_w: int) -> tf.Tensor:
    """OpenCV's INTER_LINEAR in fixed point given per-axis ``(i0, w0, i1, w1)`` taps into ``image``.

    ``rows`` index the rows of ``image`` (after its horizontal pass), ``cols`` its columns.
    """
    y0, b0, y1, b1 = rows
    x0, a0, x1, a1 = cols
    shift = tf.bitwise.right_shift
    shape = tf.shape(image)
    channels = image.shape[2] if image.shape[2] is not None else shape[2]
    # Products are taken on [rows, out_w * channels] with weights broadcast along one axis of a
    # 2-D tensor: several times faster in TF than broadcasting over the middle of [h, w, c].
    a0, a1 = (tf.repeat(a, channels) for a in (a0, a1))
    # Horizontal pass (gathering uint8 first: a quarter of the memory traffic).
    p0 = tf.reshape(tf.cast(tf.gather(image, x0, axis=1), tf.int32), [shape[0], -1])
    p1 = tf.reshape(tf.cast(tf.gather(image, x1, axis=1), tf.int32), [shape[0], -1])
    d = shift(p0 * a0 + p1 * a1, 4)
    # Vertical pass on the rows each output row needs.
    v = shift(tf.gather(d, y0) * b0[:, None], 16) + shift(tf.gather(d, y1) * b1[:, None], 16)
    # No clip needed: every value is in [0, 255]. Per axis the two weights are roundings of
    # 2048 (1 - f) and 2048 f, so they sum to at most 2049; then d <= (255 * 2049) >> 4 = 32655
    # and v <= floor(2049 * 32655 / 65536) = 1020, (1020 + 2) >> 2 = 255 (cv2 saturates there).
    out = tf.cast(shift(v + 2, 2), tf.uint8)
    return tf.reshape(out, [out_h, out_w, channels])


def crop_resize_uint8(image, g: dict, size: Sequence[int], impl: str = "auto") -> tf.Tensor:
    """``resize_uint8(_paste(image, g), size)`` without building the zero-padded canvas.

    The random crop pastes a window of the image onto a zero canvas (up to 1.4 times the input
    size, mostly padding at large scales) that the resize then reads. Here the canvas's taps
    are mapped onto the window itself: only the window's rows go through the horizontal pass
    and padding taps get weight 0, so the output is bit-identical to resizing the canvas.
    ``impl`` as :func:`resize_uint8`.
    """
    image = tf.convert_to_tensor(image)
    out_h, out_w = int(size[0]), int(size[1])
    rows_n, cols_n = g["y1"] - g["y0"], g["x1"] - g["x0"]
    pad_top, pad_left = g["cty"] - g["top"], g["ctx"] - g["left"]
    rows = _window_taps(
        _cv2_linear_taps(g["height"], out_h, clamp_fraction=False), pad_top, rows_n, 0
    )
    cols = _window_taps(_cv2_linear_taps(g["width"], out_w), pad_left, cols_n, g["x0"])
    window_rows = image[g["y0"] : g["y1"]]

    def resized():
        return _resize_with_taps(window_rows, rows, cols, out_h, out_w, impl)

    def empty():  # a window of no pixels: the canvas is all zeros
        return tf.zeros([out_h, out_w, tf.shape(image)[2]], tf.uint8)

    return tf.cond((rows_n > 0) & (cols_n > 0), resized, empty)


def resize_image(image, boxes, size: Sequence[int]):
    """The official ``_resize_image``: resize, then scale boxes by ``new / old`` (ratio first, float64)."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    return resize_uint8(image, size), _resize_boxes(boxes, (shape[0], shape[1]), size)


def _resize_boxes(boxes, old_hw, size: Sequence[int]) -> tf.Tensor:
    """Boxes of an ``old_hw`` image resized to ``size``: times ``new / old`` (ratio first, float64)."""
    height_ratio = float(size[0]) / tf.cast(old_hw[0], tf.float64)
    width_ratio = float(size[1]) / tf.cast(old_hw[1], tf.float64)
    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float64)
    return boxes * tf.stack([width_ratio, height_ratio, width_ratio, height_ratio])


def clip_detections(boxes, classes, image_hw):
    """The official ``_clip_detections``: clip to ``[0, size - 1]``, keep boxes with positive w and h."""
    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float64)
    height, width = (tf.cast(v, tf.float64) for v in image_hw)
    x = tf.clip_by_value(boxes[:, 0::2], 0.0, width - 1.0)
    y = tf.clip_by_value(boxes[:, 1::2], 0.0, height - 1.0)
    boxes = tf.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
    return tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)


def flip_horizontal(image, boxes):
    """Training flip: mirror the image, ``x1, x2 = W - x2 - 1, W - x1 - 1`` (not the test-time ``W - x``)."""
    image = tf.convert_to_tensor(image)
    width = tf.cast(tf.shape(image)[1], tf.float64)
    boxes = tf.cast(tf.reshape(boxes, [-1, 4]), tf.float64)
    flipped = tf.stack(
        [width - boxes[:, 2] - 1.0, boxes[:, 1], width - boxes[:, 0] - 1.0, boxes[:, 3]], axis=1
    )
    return tf.reverse(image, [1]), flipped  # ~15x faster than the strided slice image[:, ::-1]


# --------------------------------------------------------------------------- colour


def grayscale(image) -> tf.Tensor:
    """``cv2.cvtColor(BGR2GRAY)`` of an RGB float image: ``[H, W]``."""
    r, g, b = tf.unstack(tf.convert_to_tensor(image, tf.float32), 3, axis=-1)
    wr, wg, wb = GRAY_WEIGHTS_RGB
    return b * wb + g * wg + r * wr


def color_jitter_with_draws(image, order, alphas) -> tf.Tensor:
    """The official ``color_jittering_`` given its draws.

    ``order[i]`` is the i-th operation applied (an index into :data:`JITTER_OPS`) and
    ``alphas[i]`` its alpha (``1 + U(-var, var)``, float64). Each operation is
    ``image * alpha + target * (1 - alpha)`` with target 0 (brightness), the grayscale mean
    (contrast) or the grayscale image computed once before the first operation (saturation).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    gray = grayscale(image)[..., None]
    gray_mean = tf.reduce_mean(gray)
    order = tf.cast(tf.reshape(order, [3]), tf.int32)
    alphas = tf.cast(tf.reshape(alphas, [3]), tf.float64)
    zero = tf.zeros_like(gray)
    for i in range(3):
        op = order[i]
        target = tf.where(op == 2, gray, tf.where(op == 1, zero + gray_mean, zero))
        alpha = tf.cast(alphas[i], tf.float32)
        rest = tf.cast(1.0 - alphas[i], tf.float32)
        image = image * alpha + target * rest
    return image


def draw_color_jitter(seed, strength: float):
    """Stateless draws for :func:`color_jitter_with_draws`: a random order and three alphas."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    order = tf.argsort(tf.random.stateless_uniform([3], seeds[0]))
    alphas = 1.0 + tf.random.stateless_uniform([3], seeds[1], -strength, strength, dtype=tf.float64)
    return tf.cast(order, tf.int32), alphas


def lighting_with_alpha(image, alpha) -> tf.Tensor:
    """The official ``lighting_`` given ``alpha`` (float64 [3], one per eigen-component), on RGB."""
    alpha = tf.cast(tf.reshape(alpha, [3]), tf.float64)
    offset = tf.linalg.matvec(
        tf.constant(EIGVEC_RGB, tf.float64), tf.constant(EIGVAL, tf.float64) * alpha
    )
    return tf.convert_to_tensor(image, tf.float32) + tf.cast(offset, tf.float32)


def draw_lighting(seed, std: float) -> tf.Tensor:
    return tf.random.stateless_normal([3], seed, stddev=std, dtype=tf.float64)


def normalize(image, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """``(image - mean) / std`` with RGB-ordered float32 statistics."""
    mean = tf.constant(np.asarray(mean, np.float32))
    std = tf.constant(np.asarray(std, np.float32))
    return (tf.convert_to_tensor(image, tf.float32) - mean) / std


def photometric(
    image, mean, std, order=None, alphas=None, light_alpha=None, scale: float = 1.0 / 255.0
):
    """Colour jitter, lighting and normalisation fused into one affine pass (the training path).

    ``apply_pixel_affine(image, pixel_affine(image, ...))``: see :func:`pixel_affine` for the
    arguments. Agrees with the sequential official operations to float32 rounding (~1e-6).
    """
    affine = pixel_affine(image, mean, std, order, alphas, light_alpha, scale)
    return apply_pixel_affine(image, affine)


def pixel_affine(
    image, mean, std, order=None, alphas=None, light_alpha=None, scale: float = 1.0 / 255.0
) -> tf.Tensor:
    """Colour jitter, lighting and normalisation of one image as a float32 ``[3, 4]`` affine map.

    Every jitter operation is ``x -> a * x + (1 - a) * t`` with ``t`` in {0, gray mean, gray}
    and the grayscale taken once before the first operation, so the whole chain is
    ``x * k1 + gray * k2 + k3`` with per-channel constants: a 3x3 colour mix and a bias
    (row ``c``: the weights of input channels 0, 1, 2 in output channel ``c``, then its bias)
    instead of about sixteen passes over the image. Only the channel means of ``image`` are
    needed (for the contrast target), a cheap reduction. ``image`` is ``scale`` times the
    [0, 1] pixel value (uint8 values with the default ``1/255``). ``order``/``alphas`` as
    :func:`color_jitter_with_draws` (None: no jitter, and ``image`` is not read),
    ``light_alpha`` as :func:`lighting_with_alpha` (None: no lighting).
    """
    mean = tf.constant(np.asarray(mean, np.float64))
    std = tf.constant(np.asarray(std, np.float64))
    gray_weights = tf.constant(GRAY_WEIGHTS_RGB, tf.float64)
    k_image = tf.constant(1.0, tf.float64)
    k_gray = tf.constant(0.0, tf.float64)
    offset = tf.constant(0.0, tf.float64)
    if order is not None:
        # mean(gray) = gray weights . per-channel means (the grayscale is linear).
        gray_mean = tf.tensordot(_channel_means(image), gray_weights, 1) * scale
        order = tf.cast(tf.reshape(order, [3]), tf.int32)
        alphas = tf.cast(tf.reshape(alphas, [3]), tf.float64)
        for i in range(3):
            a, op = alphas[i], order[i]
            k_image = k_image * a
            k_gray = k_gray * a + tf.where(op == 2, 1.0 - a, tf.zeros_like(a))
            offset = offset * a + tf.where(op == 1, (1.0 - a) * gray_mean, tf.zeros_like(a))
    light = tf.zeros([3], tf.float64)
    if light_alpha is not None:
        alpha = tf.cast(tf.reshape(light_alpha, [3]), tf.float64)
        light = tf.linalg.matvec(
            tf.constant(EIGVEC_RGB, tf.float64), tf.constant(EIGVAL, tf.float64) * alpha
        )
    k1 = k_image * scale / std
    k2 = k_gray * scale / std
    # out_c = sum_j x_j (k1_c [j == c] + w_j k2_c) + k3_c, with w the grayscale weights.
    mix = tf.linalg.diag(k1 * tf.ones([3], tf.float64)) + k2[:, None] * gray_weights[None, :]
    bias = (offset + light - mean) / std
    return tf.cast(tf.concat([mix, bias[:, None]], axis=1), tf.float32)


def _channel_means(image) -> tf.Tensor:
    """Per-channel means (float64 ``[3]``); exact for integer images (summed as integers)."""
    image = tf.convert_to_tensor(image)
    axes = list(range(image.shape.rank - 1))
    if image.dtype.is_integer:
        pixels = image.shape[:-1].num_elements()
        # int32 (cheaper) when no sum can overflow: a uint8 image below 8.4 Mpixels.
        small = image.dtype == tf.uint8 and pixels is not None and pixels * 255 < 2**31
        total = tf.reduce_sum(tf.cast(image, tf.int32 if small else tf.int64), axis=axes)
        count = tf.reduce_prod(tf.shape(image)[:-1])
        return tf.cast(total, tf.float64) / tf.cast(count, tf.float64)
    return tf.cast(tf.reduce_mean(tf.cast(image, tf.float32), axis=axes), tf.float64)


def apply_pixel_affine(images, affine, impl: str = "auto") -> tf.Tensor:
    """``out_c = x_0 m_c0 + x_1 m_c1 + x_2 m_c2 + b_c`` per pixel: float32 ``[..., H, W, 3]``.

    ``images``: ``[..., H, W, 3]`` (uint8 or float); ``affine``: float32 ``[..., 3, 4]`` from
    :func:`pixel_affine` (one per image). Written as explicit elementwise products and sums in a
    fixed order on channel planes, not a matrix product, so a batch finished in the train step is
    bit for bit the images the dense pipeline finishes one at a time. ``impl`` as for the resize:
    "auto" runs uint8 images on the CPU through the native op (one pass instead of about ten,
    the same bits); a train step passes "tf", since it may run on an accelerator.
    """
    uint8 = tf.as_dtype(getattr(images, "dtype", tf.float32)) == tf.uint8
    if uint8 and _use_native(images, impl, image_ops.native_pixel_affine_available):
        return image_ops.pixel_affine(images, affine)
    x = tf.cast(images, tf.float32)
    shape = tf.shape(x)
    planes = tf.reshape(x, tf.concat([shape[:-3], [-1, 3]], axis=0))  # [..., H * W, 3]
    x0, x1, x2 = tf.unstack(planes, 3, axis=-1)
    m = tf.expand_dims(tf.cast(affine, tf.float32), -3)  # [..., 1, 3, 4]: one value per plane
    out = [
        x0 * m[..., c, 0] + x1 * m[..., c, 1] + x2 * m[..., c, 2] + m[..., c, 3] for c in range(3)
    ]
    out = tf.reshape(tf.stack(out, axis=-1), shape)
    out.set_shape(x.shape)
    return out


# --------------------------------------------------------------------------- whole chains


def augment_for_training(image, boxes, classes, seed, config: DataConfig):
    """One training example through the official sampler, switched by ``config``.

    ``image``: uint8 RGB ``[H, W, 3]``; ``boxes``: ``[N, 4]`` pixels; ``classes``: ``[N]``;
    ``seed``: int ``[2]`` (all draws derive from it). ``config.augment=False`` gives the
    deterministic full-image path; otherwise random crop always, and flip / colour jitter /
    lighting each by their own switch (the official code applies lighting only together with
    colour jitter; both are on by default). Returns ``(image float32 [h, w, 3] normalised RGB,
    boxes float64 [K, 4] in input pixels, classes [K])``: :func:`augment_compact`, finished by
    :func:`apply_pixel_affine`.
    """
    image, affine, boxes, classes = augment_compact(image, boxes, classes, seed, config)
    return apply_pixel_affine(image, affine), boxes, classes


def augment_compact(image, boxes, classes, seed, config: DataConfig):
    """:func:`augment_for_training` before its last pass over the pixels.

    The geometric steps (crop, resize, flip) are exact uint8 operations; the colour steps and
    the normalisation are one affine map per image (:func:`pixel_affine`), left for
    :func:`apply_pixel_affine` to apply -- in the input pipeline (dense batches) or in the
    train step (compact batches). Returns ``(image uint8 [h, w, 3], affine float32 [3, 4],
    boxes float64 [K, 4], classes [K])``.
    """
    h, w = (int(v) for v in config.input_size)
    if not config.augment:
        image, boxes, classes, _ = resize_full_image(image, boxes, classes, config.input_size)
        return image, pixel_affine(image, config.mean, config.std), boxes, classes
    crop_seed, flip_seed, jitter_seed, light_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    image, boxes, classes = random_crop_resize(image, boxes, classes, crop_seed, config)
    if config.flip:
        do_flip = tf.random.stateless_uniform([], flip_seed, dtype=tf.float64) > 0.5
        image, boxes = tf.cond(
            do_flip, partial(flip_horizontal, image, boxes), partial(tuple, (image, boxes))
        )
    order = alphas = light_alpha = None
    if config.color_jitter:
        order, alphas = draw_color_jitter(jitter_seed, config.jitter_strength)
    if config.lighting:
        light_alpha = draw_lighting(light_seed, config.lighting_std)
    affine = pixel_affine(image, config.mean, config.std, order, alphas, light_alpha)
    return tf.ensure_shape(image, [h, w, 3]), affine, boxes, classes


def random_crop_resize(image, boxes, classes, crop_seed, config: DataConfig):
    """The geometric half of the training sampler: random crop, resize to ``input_size``, clip.

    Returns ``(image uint8 [h, w, 3], boxes float64 [K, 4], classes [K])``.
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    view_size, border = crop_view(config)
    scale, ctx, cty = draw_random_crop(crop_seed, (shape[0], shape[1]), config.rand_scales, border)
    g, boxes = random_crop_geometry(shape[:2], boxes, scale, ctx, cty, view_size)
    # = resize_image(random_crop_with_draws(...)), without the zero-padded canvas in between.
    image = crop_resize_uint8(image, g, config.input_size)
    boxes = _resize_boxes(boxes, (g["height"], g["width"]), config.input_size)
    boxes, classes = clip_detections(boxes, classes, config.input_size)
    return image, boxes, classes


def crop_view(config: DataConfig):
    """The random crop's base size and border in original pixels: ``input_size`` and ``border``
    (the official values) divided by ``data.image_scale``, as if the photo were resized by it first.
    """
    from cornernet_tf.data.image_scale import numeric_image_scale

    image_scale = numeric_image_scale(config)
    if image_scale == 1.0:
        return config.input_size, config.border
    view = [float(v) / image_scale for v in config.input_size]
    return view, int(round(config.border / image_scale))


def resize_full_image(image, boxes, classes, input_size: Sequence[int]):
    """The non-random path: full-image crop, resize to ``input_size``, clip (uint8 image).

    Returns ``(image uint8, boxes float64, classes, geometry)`` where ``geometry`` maps input
    pixels back to the original image: ``original = input / ratio - border`` with ``ratio``
    ``[ry, rx]`` and ``border`` ``[top, left]`` (float64).
    """
    image, boxes, border = full_image_crop(image, boxes)
    square = tf.cast(tf.shape(image)[0], tf.float64)
    image, boxes = resize_image(image, boxes, input_size)
    boxes, classes = clip_detections(boxes, classes, input_size)
    h, w = (int(v) for v in input_size)
    geometry = {
        "ratio": tf.stack([float(h) / square, float(w) / square]),
        "border": tf.cast(tf.stack([border[0], border[2]]), tf.float64),
    }
    return tf.ensure_shape(image, [h, w, 3]), boxes, classes, geometry
