"""The official CornerNet test procedure (test/coco.py ``kp_detection``), quirks included.

Per scale: resize, pad to ``size | 127``, normalise, run the network on the image and its mirror,
decode, merge the mirror's boxes, map back to image pixels. Then, over all scales: drop rejected
pairs, per-class soft-NMS (the official NumPy port), keep the ``max_per_image`` best. Results equal
the official code's on the same weights, so AP from converted checkpoints is comparable with the
paper. The network and the decoder run in one ``tf.function`` traced once for any input size
and shared by every Detector of the same model and decode settings.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, TestConfig
from cornernet_tf.data.pixel_limit import MAX_INPUT_PIXELS, MAX_NETWORK_SIDE, check_pixels
from cornernet_tf.detection.contract import CORNERS
from cornernet_tf.detection.decode import decode_outputs
from cornernet_tf.detection.finalise import finalise, keep_top, per_class_soft_nms  # noqa: F401
from cornernet_tf.detection.geometry import ScaleGeometry, merge_flip, rows_to_image
from cornernet_tf.detection.settings import as_test_config, decode_settings
from cornernet_tf.inference.preprocess import as_rgb_uint8, model_output_stride, prepare_image
from cornernet_tf.modeling.precision import model_in_precision

# The official map-back under its former name, for existing imports.
rescale_detections = rows_to_image

_FORWARD_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


def forward_decode_fn(model, config: TestConfig, jit_compile: bool = False):
    """``images [N, H, W, 3] float32 → decoded rows [N, num_dets, 8]`` as one ``tf.function``.

    Traced once with unknown sizes (every test scale and image size reuses it; with XLA, once per
    size) and cached per model and decode settings, so several Detectors on one model share it.
    """
    settings = decode_settings(config)
    key = (*settings.values(), bool(jit_compile))
    per_model = _FORWARD_FUNCTIONS.setdefault(model, {})
    if key not in per_model:
        model_ref = weakref.ref(model)

        def forward_decode(images):
            outputs = model_ref()(images, training=False, stacks="last")
            return decode_outputs(outputs, **settings)

        if jit_compile:  # XLA wants static shapes: one compiled program per input size
            per_model[key] = tf.function(forward_decode, jit_compile=True)
        else:
            per_model[key] = tf.function(forward_decode, input_signature=[_IMAGES_SPEC])
    return per_model[key]


class Detector:
    """Run the official CornerNet test procedure with a Keras model.

    Args:
      model: a CornerNet model; called as ``model(images, training=False, stacks="last")``.
      test_config: :class:`~cornernet_tf.config.TestConfig` or a dict of its fields (official
        single-scale settings by default; ``scales=[0.5, 0.75, 1, 1.25, 1.5]``, ``merge_bbox=True``,
        ``weight_exp=10`` for the multi-scale test).
      mean, std: RGB normalisation of the network input (COCO by default).
      jit_compile: compile the network + decoder with XLA.
      max_side: an image whose longer side is over this is downscaled (aspect kept) before the
        test procedure, and its boxes mapped back to the original pixels
        (``pixel_limit.MAX_NETWORK_SIDE`` by default).

    The network computes in ``test.precision`` (float32 by default; a copy of ``model`` in
    bfloat16 or float16 otherwise, see :mod:`cornernet_tf.modeling.precision`); its maps and the
    decoding are float32 whatever the precision.

    ``detect(image)`` takes one RGB uint8 image ``[H, W, 3]`` (``[H, W]`` grey and ``[H, W, 4]``
    RGBA are converted) and returns ``{"boxes": [N, 4] x1 y1 x2 y2 in pixels, "scores": [N],
    "classes": [N] 0-based int}``, best first. An image of more than ``MAX_INPUT_PIXELS`` pixels
    is refused (:class:`~cornernet_tf.data.pixel_limit.ImageTooLargeError`).
    """

    def __init__(
        self,
        model,
        test_config: TestConfig | dict | None = None,
        mean: Sequence[float] = COCO_MEAN_RGB,
        std: Sequence[float] = COCO_STD_RGB,
        jit_compile: bool = False,
        max_side: int = MAX_NETWORK_SIDE,
    ):
        self.max_side = int(max_side)
        self.config = as_test_config(test_config)
        self.model = model_in_precision(model, self.config.precision)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(
                f"Detector: mean and std need 3 values (RGB) with std > 0, got {mean} and {std}"
            )
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.output_stride = model_output_stride(model)
        self._forward = forward_decode_fn(self.model, self.config, jit_compile)

    # ------------------------------------------------------------------ network
    def _network_batch(self, inputs: list) -> np.ndarray:
        """Inputs [inp_h, inp_w, 3] of one size → decoded rows [n, (1 or 2), num_dets, 8]."""
        views = 2 if self.config.flip else 1
        batch = np.stack([v for x in inputs for v in ((x, x[:, ::-1]) if views == 2 else (x,))])
        dets = self._forward(tf.constant(batch)).numpy()
        return dets.reshape(len(inputs), views, *dets.shape[1:])

    def _map_back(self, dets: np.ndarray, geometry: ScaleGeometry) -> np.ndarray:
        rows = merge_flip(dets, geometry.out_hw[1]) if dets.shape[0] == 2 else dets[0].copy()
        return rows_to_image(rows, geometry)

    # ------------------------------------------------------------------ public API
    def detect_scale(self, image, scale: float) -> dict:
        """One scale of the procedure, with its intermediates (for debugging and tests):
        ``net_input`` [views, inp_h, inp_w, 3], ``decoded`` [views, num_dets, 8] in output-map
        pixels, ``detections`` [views·num_dets, 8] in image pixels, and ``geometry``."""
        image = checked_image(image)
        net_input, geometry = prepare_image(image, scale, self.mean, self.std, self.output_stride)
        decoded = self._network_batch([net_input])[0]
        views = [net_input, net_input[:, ::-1]] if self.config.flip else [net_input]
        return {
            "net_input": np.stack(views),
            "decoded": decoded,
            "detections": self._map_back(decoded, geometry),
            "geometry": geometry,
        }

    def raw_detections(self, image) -> np.ndarray:
        """All scales' rows [M, 8] in image pixels, before soft-NMS (rejected rows included)."""
        return next(self._iter_raw([checked_image(image)], batch_size=1))

    def detect(self, image) -> dict:
        """Detections for one image (see the class docstring)."""
        return finalise(self.raw_detections(image), self.config)

    def detect_batch(self, images: Iterable, batch_size: int = 4) -> list:
        """:meth:`detect` on several images; images whose padded sizes agree share a forward pass."""
        return list(self.iter_detect(images, batch_size=batch_size))

    def iter_detect(self, images: Iterable, batch_size: int = 4) -> Iterator[dict]:
        """Lazily yield :meth:`detect` results in input order, ``batch_size`` images at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chunk: list = []
        for image in images:
            chunk.append(checked_image(image))
            if len(chunk) == batch_size:
                yield from (
                    finalise(rows, self.config) for rows in self._iter_raw(chunk, batch_size)
                )
                chunk = []
        if chunk:
            yield from (finalise(rows, self.config) for rows in self._iter_raw(chunk, batch_size))

    def _iter_raw(self, images: list, batch_size: int) -> Iterator[np.ndarray]:
        """Rows in original pixels; images over ``max_side`` run downscaled (boxes scaled back)."""
        factors = []
        for k, image in enumerate(images):
            small, factor = downscale_for_network(image, self.max_side)
            images[k] = small
            factors.append(factor)
        for rows, (fy, fx) in zip(self._iter_raw_unscaled(images, batch_size), factors):
            if (fy, fx) != (1.0, 1.0):
                rows = rows.copy()
                rows[:, 0:4] *= np.array([fx, fy, fx, fy], rows.dtype)
            yield rows

    def _iter_raw_unscaled(self, images: list, batch_size: int) -> Iterator[np.ndarray]:
        per_image: list = [[] for _ in images]
        for scale in self.config.scales:
            prepared = [
                prepare_image(image, scale, self.mean, self.std, self.output_stride)
                for image in images
            ]
            groups: dict = {}
            for index, (_, geometry) in enumerate(prepared):
                groups.setdefault(geometry.inp_hw, []).append(index)
            for indices in groups.values():
                for start in range(0, len(indices), batch_size):
                    part = indices[start : start + batch_size]
                    decoded = self._network_batch([prepared[i][0] for i in part])
                    for k, i in enumerate(part):
                        per_image[i].append(self._map_back(decoded[k], prepared[i][1]))
        for rows in per_image:
            yield np.concatenate(rows, axis=0)

    def corner_heatmaps(self, image, scale: float = 1.0) -> dict:
        """Top-left / bottom-right corner probabilities (max over classes) resized onto the image:
        ``{"tl": [H, W], "br": [H, W]}`` float32 in [0, 1], e.g. for :func:`draw.overlay_heatmaps`."""
        image = checked_image(image)
        small, _ = downscale_for_network(image, self.max_side)
        net_input, geometry = prepare_image(small, scale, self.mean, self.std, self.output_stride)
        # Eager on purpose: a visualisation aid should not cost a second trace of the network.
        outputs = self.model(tf.constant(net_input[None]), training=False, stacks="last")
        top, bottom, left, right = (float(v) for v in geometry.border)
        out = {}
        for name in CORNERS:
            heat = tf.sigmoid(tf.cast(outputs[f"{name}_heat"][-1], tf.float32))
            full = tf.image.resize(
                tf.reduce_max(heat, axis=-1, keepdims=True), geometry.inp_hw, method="bilinear"
            )
            crop = full[0, int(top) : int(bottom), int(left) : int(right)]
            out[name] = tf.image.resize(crop, image.shape[:2], method="bilinear")[..., 0].numpy()
        return out

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config)
        )
        return f"Detector({fields})"


def checked_image(image, max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """:func:`as_rgb_uint8`, after refusing more than ``max_pixels`` pixels (on the shape alone,
    before any copy or conversion)."""
    shape = np.shape(image)
    if len(shape) >= 2:
        check_pixels(shape[1], shape[0], f"detect(): image of shape {tuple(shape)}", max_pixels)
    return as_rgb_uint8(image)


def downscale_for_network(image: np.ndarray, max_side: int = MAX_NETWORK_SIDE):
    """``(image, (fy, fx))``: the image with its longer side brought to ``max_side`` (area-averaging
    resize, aspect kept) and the factors that map its pixels back; unchanged when small enough."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, (1.0, 1.0)
    from PIL import Image

    scale = max_side / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    small = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    return small, (height / new_h, width / new_w)


def detect(model, image, test_config: TestConfig | dict | None = None) -> dict:
    """Convenience: ``Detector(model, test_config).detect(image)``."""
    return Detector(model, test_config).detect(image)
