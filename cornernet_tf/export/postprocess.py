"""Pre- and post-processing for CornerNet models with a fixed input size (TFLite / LiteRT), in NumPy.

A TFLite model exported by :mod:`cornernet_tf.export.tflite` maps one uint8 RGB canvas
``[1, S_h, S_w, 3]`` to the six raw maps (heatmap logits, embeddings, offsets). Everything around
it lives here so that a device needs only NumPy and the LiteRT interpreter (no TensorFlow):

1. :func:`prepare_input`: the image keeps its size when it fits the canvas (as in the official test
   at scale 1) and is otherwise shrunk with bilinear resizing to fit; it is centred on a zero canvas
   exactly like the official ``crop_image`` (so an image whose ``size | 127`` equals the canvas
   gets the official test geometry); resizing is OpenCV's bilinear, as in the official test;
2. :func:`decode`: the official ``_decode`` (sigmoid, 3x3 max-pool NMS, top-K corners over classes
   and pixels, offsets, K x K pairing with class / embedding / geometry checks, top ``num_dets``),
   a NumPy twin of :func:`cornernet_tf.decode.decode` with the same tie order;
3. :func:`postprocess`: map the boxes back to image pixels, drop rejected pairs, per-class Gaussian
   soft-NMS (the official algorithm, :mod:`cornernet_tf.inference.soft_nms`) keeping the live
   boxes, and the ``max_per_image`` best.

Single scale and no flip: the deployment path runs the network once per image. The ``TestConfig``
fields that apply (``top_k``, ``ae_threshold``, ``nms_kernel``, ``num_dets``, ``max_per_image``,
``nms_*``, ``score_threshold``) keep their meaning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

# NumPy-only modules of the reference test procedure (no TensorFlow import).
from cornernet_tf.inference.preprocess import SIZE_MASK, as_rgb_uint8, resize_bilinear
from cornernet_tf.inference.soft_nms import soft_nms

REJECTED = -1.0
MAP_NAMES = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")


@dataclasses.dataclass(frozen=True)
class PostprocessConfig:
    """The test settings the fixed-size path uses (defaults: the official ones, docs/method.md §5)."""

    top_k: int = 100
    ae_threshold: float = 0.5
    nms_kernel: int = 3
    num_dets: int = 1000
    max_per_image: int = 100
    nms_algorithm: str = "exp"
    nms_sigma: float = 0.5
    nms_threshold: float = 0.5
    score_threshold: float = 0.001

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> PostprocessConfig:
        """From a TestConfig-like mapping (unknown keys such as ``scales``/``flip`` are ignored)."""
        if values is None:
            return cls()
        if dataclasses.is_dataclass(values):
            values = dataclasses.asdict(values)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclasses.dataclass(frozen=True)
class CanvasGeometry:
    """Where the (possibly resized) image sits on the fixed network input."""

    scale: float  # resized / original
    new_hw: tuple  # resized image size
    inp_hw: tuple  # network input (canvas) size
    out_hw: tuple  # output map size
    border: tuple  # top, bottom, left, right of the image on the canvas
    copy_hw: tuple  # rows / columns of the resized image copied (official crop)

    @property
    def ratios(self) -> np.ndarray:
        return np.array(
            [self.out_hw[0] / self.inp_hw[0], self.out_hw[1] / self.inp_hw[1]], np.float32
        )


def valid_input_size(size: int, multiple: int) -> int:
    """Smallest ``n >= size`` of the form ``k * m - 1`` with ``m = max(multiple, 128)``: what the test
    procedure pads ``size`` to (``size | 127``), coarser when the model needs larger multiples."""
    m = max(int(multiple), SIZE_MASK + 1)
    return -(-(int(size) + 1) // m) * m - 1


def canvas_geometry(
    height: int, width: int, input_hw: Sequence[int], output_stride: int
) -> CanvasGeometry:
    """Geometry of an ``height x width`` image on a fixed ``input_hw`` canvas (see module docstring)."""
    inp_h, inp_w = int(input_hw[0]), int(input_hw[1])
    if height < 1 or width < 1:
        raise ValueError(f"image must not be empty, got {height}x{width}")
    scale = min(1.0, inp_h / height, inp_w / width)
    new_h, new_w = (
        (height, width)
        if scale == 1.0
        else (max(1, int(height * scale)), max(1, int(width * scale)))
    )
    rows = []
    for new, inp in ((new_h, inp_h), (new_w, inp_w)):  # official crop_image, test-time branch
        centre = new // 2
        lo, hi = max(0, centre - inp // 2), min(centre + inp // 2, new)
        rows.append((inp // 2 - (centre - lo), inp // 2 + (hi - centre), hi - lo))
    (top, bottom, copy_h), (left, right, copy_w) = rows
    stride = int(output_stride)
    return CanvasGeometry(
        scale=float(scale),
        new_hw=(new_h, new_w),
        inp_hw=(inp_h, inp_w),
        out_hw=(-(-inp_h // stride), -(-inp_w // stride)),
        border=(top, bottom, left, right),
        copy_hw=(copy_h, copy_w),
    )


def prepare_input(image, input_hw: Sequence[int], output_stride: int):
    """One RGB uint8 image → (network input uint8 ``[1, S_h, S_w, 3]``, :class:`CanvasGeometry`)."""
    image = as_rgb_uint8(image)
    geometry = canvas_geometry(image.shape[0], image.shape[1], input_hw, output_stride)
    resized = resize_bilinear(image, *geometry.new_hw)
    canvas = np.zeros(geometry.inp_hw + (3,), np.uint8)
    top, left = geometry.border[0], geometry.border[2]
    ch, cw = geometry.copy_hw
    canvas[top : top + ch, left : left + cw] = resized[:ch, :cw]
    return canvas[None], geometry


# --------------------------------------------------------------------------- decoding


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def heatmap_nms(heat: np.ndarray, kernel: int = 3) -> np.ndarray:
    """Keep pixels equal to the max of their ``kernel x kernel`` window (-inf padding): [B,H,W,C]."""
    if kernel == 1:
        return heat
    pad = (kernel - 1) // 2
    padded = np.pad(heat, [(0, 0), (pad, pad), (pad, pad), (0, 0)], constant_values=-np.inf)
    h, w = heat.shape[1:3]
    hmax = np.full_like(heat, -np.inf)
    for dy in range(kernel):
        for dx in range(kernel):
            np.maximum(hmax, padded[:, dy : dy + h, dx : dx + w], out=hmax)
    return heat * (hmax == heat)


def _topk(heat: np.ndarray, k: int):
    """Top-k over C·H·W in the official NCHW flatten order; ties keep the lower index first."""
    b, h, w, c = heat.shape
    flat = np.transpose(heat, (0, 3, 1, 2)).reshape(b, c * h * w)
    flat = np.concatenate([flat, np.full((b, k), REJECTED, flat.dtype)], axis=1)
    inds = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(flat, inds, axis=1)
    valid = inds < c * h * w
    inds = np.where(valid, inds, 0)
    pixel = inds % (h * w)
    return (
        scores,
        pixel,
        inds // (h * w),
        (pixel // w).astype(np.float32),
        (pixel % w).astype(np.float32),
        valid,
    )


def _gather(feature: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    b, h, w, d = feature.shape
    return np.take_along_axis(feature.reshape(b, h * w, d), pixel[..., None], axis=1)


def decode(
    tl_heat,
    br_heat,
    tl_tag,
    br_tag,
    tl_regr,
    br_regr,
    K: int = 100,
    kernel: int = 3,
    ae_threshold: float = 0.5,
    num_dets: int = 1000,
) -> np.ndarray:
    """Corner maps (NHWC, heatmaps as logits) → [B, num_dets, 8] rows
    ``[x1, y1, x2, y2, score, tl_score, br_score, class]`` in output-map pixels, best first; rejected
    pairs score -1. Same algorithm and tie order as :func:`cornernet_tf.decode.decode`."""
    tl_heat = heatmap_nms(_sigmoid(np.asarray(tl_heat)), kernel)
    br_heat = heatmap_nms(_sigmoid(np.asarray(br_heat)), kernel)
    b = tl_heat.shape[0]
    tl_s, tl_i, tl_c, tl_y, tl_x, tl_v = _topk(tl_heat, K)
    br_s, br_i, br_c, br_y, br_x, br_v = _topk(br_heat, K)
    tl_off = _gather(np.asarray(tl_regr, np.float32), tl_i)
    br_off = _gather(np.asarray(br_regr, np.float32), br_i)
    tl_x, tl_y = tl_x + tl_off[..., 0], tl_y + tl_off[..., 1]
    br_x, br_y = br_x + br_off[..., 0], br_y + br_off[..., 1]
    tl_e = _gather(np.asarray(tl_tag, np.float32), tl_i)[..., 0]
    br_e = _gather(np.asarray(br_tag, np.float32), br_i)[..., 0]

    scores = (tl_s[:, :, None] + br_s[:, None, :]) / np.float32(2)
    rejected = (
        (tl_c[:, :, None] != br_c[:, None, :])
        | (np.abs(tl_e[:, :, None] - br_e[:, None, :]) > np.float32(ae_threshold))
        | (br_x[:, None, :] < tl_x[:, :, None])
        | (br_y[:, None, :] < tl_y[:, :, None])
        | ~(tl_v[:, :, None] & br_v[:, None, :])
    )
    scores = np.where(rejected, np.float32(REJECTED), scores).astype(np.float32)
    shape = (b, K, K)
    pairs = np.stack(
        [
            np.broadcast_to(tl_x[:, :, None], shape),
            np.broadcast_to(tl_y[:, :, None], shape),
            np.broadcast_to(br_x[:, None, :], shape),
            np.broadcast_to(br_y[:, None, :], shape),
            scores,
            np.broadcast_to(tl_s[:, :, None], shape),
            np.broadcast_to(br_s[:, None, :], shape),
            np.broadcast_to(tl_c[:, :, None], shape).astype(np.float32),
        ],
        axis=-1,
    ).reshape(b, K * K, 8)
    n = min(num_dets, K * K)
    order = np.argsort(-scores.reshape(b, K * K), axis=1, kind="stable")[:, :n]
    dets = np.take_along_axis(pairs, order[..., None], axis=1).astype(np.float32)
    if n < num_dets:
        filler = np.zeros((b, num_dets - n, 8), np.float32)
        filler[..., 4] = REJECTED
        dets = np.concatenate([dets, filler], axis=1)
    return dets


# --------------------------------------------------------------------------- boxes


def rescale(rows: np.ndarray, geometry: CanvasGeometry) -> np.ndarray:
    """Output-map rows → original-image pixels (official ``_rescale_dets``, then ÷ scale)."""
    rows = np.array(rows, np.float32, copy=True)
    ratios = geometry.ratios
    rows[:, 0:4:2] = np.clip(
        rows[:, 0:4:2] / ratios[1] - np.float32(geometry.border[2]), 0, geometry.new_hw[1]
    )
    rows[:, 1:4:2] = np.clip(
        rows[:, 1:4:2] / ratios[0] - np.float32(geometry.border[0]), 0, geometry.new_hw[0]
    )
    rows[:, 0:4] /= np.float32(geometry.scale)
    return rows


def select(rows: np.ndarray, config: PostprocessConfig) -> dict:
    """Image-pixel rows [M, 8] → final detections: per-class soft-NMS (live boxes), best ``max_per_image``."""
    rows = rows[rows[:, 4] > REJECTED]
    kept, kept_cls = [], []
    for cls in np.unique(rows[:, 7]):
        boxes = np.ascontiguousarray(rows[rows[:, 7] == cls, 0:5], np.float32)
        live = soft_nms(
            boxes,
            sigma=config.nms_sigma,
            Nt=config.nms_threshold,
            threshold=config.score_threshold,
            method=config.nms_algorithm,
        )
        kept.append(boxes[:live])
        kept_cls.append(np.full(live, int(cls), np.int64))
    if kept:
        boxes = np.concatenate(kept)
        classes = np.concatenate(kept_cls)
    else:
        boxes, classes = np.zeros((0, 5), np.float32), np.zeros((0,), np.int64)
    order = np.argsort(-boxes[:, 4], kind="stable")[: config.max_per_image]
    return {"boxes": boxes[order, 0:4], "scores": boxes[order, 4], "classes": classes[order]}


def postprocess(
    maps: Mapping[str, np.ndarray],
    geometry: CanvasGeometry,
    config: PostprocessConfig | None = None,
) -> dict:
    """Raw maps of one image (batch 1) → ``{"boxes" [N,4] x1 y1 x2 y2 pixels, "scores" [N],
    "classes" [N] 0-based}``, best first."""
    config = config or PostprocessConfig()
    missing = [name for name in MAP_NAMES if name not in maps]
    if missing:
        raise ValueError(f"postprocess: maps {missing} are missing; got {sorted(maps)}")
    heat_hw = tuple(np.shape(maps["tl_heat"])[1:3])
    if heat_hw != tuple(geometry.out_hw):
        raise ValueError(
            f"postprocess: maps are {heat_hw} but the geometry expects {geometry.out_hw} "
            "(wrong output stride or input size)"
        )
    dets = decode(
        *(maps[name] for name in MAP_NAMES),
        K=config.top_k,
        kernel=config.nms_kernel,
        ae_threshold=config.ae_threshold,
        num_dets=config.num_dets,
    )
    return select(rescale(dets[0], geometry), config)
