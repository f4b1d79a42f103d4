"""Error analysis with ground-truth maps (the paper's Table 6).

The paper asks how much of CornerNet's error comes from the heatmaps and how much from the
offsets: it replaces the predicted corner heatmaps with the ground truth (38.4 -> 73.1 AP on
COCO val for HG-104), and then also the offsets (-> 86.1 AP), while the embeddings stay
predicted. :class:`OracleDetector` runs the official test procedure of
:class:`~cornernet_tf.inference.detector.Detector` with that substitution.

How the ground-truth maps are made: for each test scale and view (image, and its mirror when
``test.flip``), the image's boxes are placed where the test pre-processing puts the image in the
network input (``x * scale + border``, mirrored as ``inp_w - x`` for the flipped view) and encoded
by :func:`cornernet_tf.targets.encode_targets` for that input and output size -- the targets the
network is trained to predict, on the un-augmented test geometry. Heatmaps enter the decoder as
logits, so the ground-truth probabilities ``p`` are given as ``log(p / (1 - p))`` with ``p``
clipped to ``[ORACLE_EPS, 1 - ORACLE_EPS]``: the order of all values, and hence the decoder's
choices, is unchanged. With ``heatmaps+offsets`` the ground-truth offset of each object is written
at its corner pixel of the predicted offset map (elsewhere the prediction stays; the decoder only
reads offsets at heatmap peaks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, DataConfig, TestConfig
from cornernet_tf.detection.contract import CORNERS, OUTPUT_KEYS
from cornernet_tf.detection.decode import decode
from cornernet_tf.detection.finalise import finalise
from cornernet_tf.detection.geometry import (
    ScaleGeometry,
    boxes_to_input,
    merge_flip,
    rows_to_image,
)
from cornernet_tf.detection.settings import as_test_config, decode_settings
from cornernet_tf.inference.preprocess import as_rgb_uint8, model_output_stride, prepare_image
from cornernet_tf.modeling.precision import model_in_precision
from cornernet_tf.targets import encode_targets

ORACLE_MODES = ("heatmaps", "heatmaps+offsets")
# Probabilities are clipped to [eps, 1 - eps] before the logit: float32 keeps 1 - 1e-6 apart
# from the Gaussian values next to a peak, so plateaus do not appear.
ORACLE_EPS = 1e-6

# The box placement of the test input; the name stays importable from here.
boxes_in_input = boxes_to_input


def ground_truth_maps(
    boxes: np.ndarray,
    classes: np.ndarray,
    geometry: ScaleGeometry,
    num_classes: int,
    flipped: bool = False,
    data_config: DataConfig | None = None,
) -> dict:
    """:func:`encode_targets` for one view of the test input (see the module docstring)."""
    data_config = data_config or DataConfig()
    boxes_in = boxes_to_input(boxes, geometry, flipped)
    classes = np.asarray(classes, np.int32).reshape(-1)
    return encode_targets(
        boxes_in,
        classes,
        geometry.inp_hw,
        geometry.out_hw,
        num_classes,
        max_objects=max(1, len(classes)),  # every object gets its offset
        gaussian_iou=data_config.gaussian_iou,
        radius_mode=data_config.radius_mode,
        fixed_radius=data_config.fixed_radius,
    )


def probability_to_logit(p: tf.Tensor) -> tf.Tensor:
    p = tf.clip_by_value(tf.cast(p, tf.float64), ORACLE_EPS, 1.0 - ORACLE_EPS)
    return tf.cast(tf.math.log(p) - tf.math.log1p(-p), tf.float32)


def _write_offsets(regr: tf.Tensor, tags: tf.Tensor, offsets: tf.Tensor, count) -> tf.Tensor:
    """Predicted offsets [H, W, 2] with the ground-truth ``offsets`` [M, 2] written at flat ``tags``."""
    shape = tf.shape(regr)
    flat = tf.reshape(regr, [shape[0] * shape[1], 2])
    flat = tf.tensor_scatter_nd_update(flat, tf.cast(tags[:count, None], tf.int32), offsets[:count])
    return tf.reshape(flat, shape)


class OracleDetector:
    """The official test procedure with ground-truth heatmaps (and optionally offsets).

    ``detect(image, boxes, classes)``: ``boxes`` [N, 4] ``x1, y1, x2, y2`` in image pixels and
    ``classes`` [N] 0-based are the image's ground truth; returns the same dict as
    :meth:`Detector.detect`.
    """

    def __init__(
        self,
        model,
        mode: str,
        test_config: TestConfig | None = None,
        data_config: DataConfig | None = None,
        num_classes: int | None = None,
        mean: Sequence[float] = COCO_MEAN_RGB,
        std: Sequence[float] = COCO_STD_RGB,
    ):
        if mode not in ORACLE_MODES:
            raise ValueError(f"oracle mode must be one of {'|'.join(ORACLE_MODES)}, got {mode!r}")
        self.mode = mode
        self.config = as_test_config(test_config)
        self.model = model_in_precision(model, self.config.precision)
        self.data_config = data_config or DataConfig()
        if num_classes is None:
            num_classes = model.model_config.num_classes
        self.num_classes = int(num_classes)
        self.mean, self.std = tuple(mean), tuple(std)
        self._forward = tf.function(self._forward_fn, reduce_retracing=True)
        self._decode = tf.function(self._decode_fn, reduce_retracing=True)

    def _forward_fn(self, images):
        outputs = self.model(images, training=False, stacks="last")
        return {key: outputs[key][-1] for key in OUTPUT_KEYS}

    def _decode_fn(self, maps):
        return decode(*(maps[key] for key in OUTPUT_KEYS), **decode_settings(self.config))

    def oracle_maps(self, predicted: dict, boxes, classes, geometry: ScaleGeometry) -> dict:
        """The predicted maps of all views with heatmaps (and offsets) replaced by ground truth."""
        views = int(predicted["tl_heat"].shape[0])
        maps = {key: [] for key in OUTPUT_KEYS}
        for view in range(views):
            gt = ground_truth_maps(
                boxes, classes, geometry, self.num_classes, view == 1, self.data_config
            )
            count = int(len(np.asarray(classes).reshape(-1)))
            for corner in CORNERS:
                maps[f"{corner}_heat"].append(probability_to_logit(gt[f"{corner}_heatmap"]))
                maps[f"{corner}_tag"].append(predicted[f"{corner}_tag"][view])
                regr = predicted[f"{corner}_regr"][view]
                if self.mode == "heatmaps+offsets" and count:
                    regr = _write_offsets(regr, gt[f"{corner}_tag"], gt[f"{corner}_regr"], count)
                maps[f"{corner}_regr"].append(regr)
        return {key: tf.stack(values) for key, values in maps.items()}

    def detect(self, image, boxes, classes) -> dict:
        image = as_rgb_uint8(image)
        rows = []
        for scale in self.config.scales:
            net_input, geometry = prepare_image(
                image, scale, self.mean, self.std, model_output_stride(self.model)
            )
            batch = (
                np.stack([net_input, net_input[:, ::-1]]) if self.config.flip else net_input[None]
            )
            predicted = self._forward(tf.constant(batch))
            decoded = self._decode(self.oracle_maps(predicted, boxes, classes, geometry)).numpy()
            merged = (
                merge_flip(decoded, geometry.out_hw[1]) if self.config.flip else decoded[0].copy()
            )
            rows.append(rows_to_image(merged, geometry))
        return finalise(np.concatenate(rows, axis=0), self.config)
