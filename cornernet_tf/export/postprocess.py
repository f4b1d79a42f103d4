"""Pre- and post-processing for CornerNet models with a fixed input size (TFLite / LiteRT), in NumPy.

A TFLite model exported by :mod:`cornernet_tf.export.tflite` maps one uint8 RGB canvas
``[1, S_h, S_w, 3]`` to the six raw maps (heatmap logits, embeddings, offsets). Everything around
it lives here so that a device needs only NumPy and the LiteRT interpreter (no TensorFlow):

1. :func:`prepare_input`: the image keeps its size when it fits the canvas (as in the official test
   at scale 1) and is otherwise shrunk with OpenCV's bilinear resizing to fit, then centred like
   the official ``crop_image`` (:func:`cornernet_tf.detection.geometry.canvas_geometry`);
2. :func:`cornernet_tf.detection.decode_np.decode`: the official ``_decode`` in NumPy;
3. :func:`postprocess`: boxes mapped back to image pixels, rejected pairs dropped, per-class
   Gaussian soft-NMS (the official algorithm) keeping the live boxes, the ``max_per_image`` best.

Single scale and no flip: the deployment path runs the network once per image. Its settings are a
:class:`~cornernet_tf.config.TestConfig` (the fields in ``detection.settings.FIXED_SIZE_FIELDS``
apply).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cornernet_tf.config import TestConfig
from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.detection.decode_np import decode, heatmap_nms  # noqa: F401
from cornernet_tf.detection.finalise import finalise_live
from cornernet_tf.detection.geometry import (  # noqa: F401
    ScaleGeometry,
    canvas_geometry,
    place_in_canvas,
    rows_to_image,
    valid_input_size,
)
from cornernet_tf.detection.settings import decode_settings

# NumPy-only modules of the reference test procedure (no TensorFlow import).
from cornernet_tf.inference.preprocess import as_rgb_uint8, resize_bilinear

# Former names, kept for existing imports: the fixed canvas uses the one placement geometry, the
# maps are the network's outputs and the final step is the live-box variant of ``finalise``.
CanvasGeometry = ScaleGeometry
MAP_NAMES = OUTPUT_KEYS
select = finalise_live


def prepare_input(image, input_hw: Sequence[int], output_stride: int):
    """One RGB uint8 image → (network input uint8 ``[1, S_h, S_w, 3]``, :class:`ScaleGeometry`)."""
    image = as_rgb_uint8(image)
    geometry = canvas_geometry(image.shape[0], image.shape[1], input_hw, output_stride)
    canvas = place_in_canvas(resize_bilinear(image, *geometry.new_hw), geometry)
    return canvas[None], geometry


def rescale(rows: np.ndarray, geometry: ScaleGeometry) -> np.ndarray:
    """Output-map rows → original-image pixels (a copy; see ``detection.geometry.rows_to_image``)."""
    return rows_to_image(np.array(rows, np.float32, copy=True), geometry)


def postprocess(
    maps: Mapping[str, np.ndarray],
    geometry: ScaleGeometry,
    config: TestConfig | None = None,
) -> dict:
    """Raw maps of one image (batch 1) → ``{"boxes" [N,4] x1 y1 x2 y2 pixels, "scores" [N],
    "classes" [N] 0-based}``, best first."""
    config = config or TestConfig()
    missing = [name for name in OUTPUT_KEYS if name not in maps]
    if missing:
        raise ValueError(f"postprocess: maps {missing} are missing; got {sorted(maps)}")
    heat_hw = tuple(np.shape(maps["tl_heat"])[1:3])
    if heat_hw != tuple(geometry.out_hw):
        raise ValueError(
            f"postprocess: maps are {heat_hw} but the geometry expects {geometry.out_hw} "
            "(wrong output stride or input size)"
        )
    dets = decode(*(maps[name] for name in OUTPUT_KEYS), **decode_settings(config))
    return finalise_live(rows_to_image(dets[0], geometry), config)
