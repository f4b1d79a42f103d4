"""The test procedure as one TensorFlow graph, for export (SavedModel, TF Serving).

Same steps as :class:`~cornernet_tf.inference.detector.Detector`, written with core TF ops only so
that a SavedModel runs them for images of any size: bilinear resize, padding to ``size | 127``,
normalisation, the mirrored copy, the network, :func:`~cornernet_tf.detection.decode.decode`,
the flip merge, mapping back to image pixels (:mod:`cornernet_tf.detection.geometry_tf`), and
soft-NMS over all classes at once. :class:`GraphDetector` is what the SavedModel export runs.

Differences from the official (NumPy) procedure, by design (docs/method.md §7):

* soft-NMS is ``tf.image.non_max_suppression_with_scores``: the official Gaussian
  ``exp(-iou²/σ)`` is TF's ``exp(-iou²/(2σ'))`` with ``σ' = σ/2``; ``iou_threshold=1.0`` so no
  box is hard-suppressed; IoU has no ``+1`` pixel convention unless ``plus_one_iou=True``
  (without it, zero-width boxes clipped at the image border never suppress each other); there
  are no stale rows; boxes whose score is below ``score_threshold`` are discarded up front;
* classes are separated by shifting each class's boxes far apart (IoU 0 across classes means a
  Gaussian weight of 1), so one NMS call handles every class;
* ``merge_bbox`` (box merging of the multi-scale test) and linear soft-NMS have no TF op; merging
  is skipped with a warning, linear is refused;
* the resize is TF's float bilinear rounded to integers, which can differ from OpenCV's
  fixed-point result by one grey level on some pixels.

The returned detections are the ``max_detections`` best after soft-NMS, padded.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import tensorflow as tf

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, TestConfig
from cornernet_tf.detection import geometry_tf
from cornernet_tf.detection.contract import (
    BOX,
    CLASS,
    PAD_CLASS,
    REJECTED_SCORE,
    SCORE,
    X1,
    X2,
    Y1,
    Y2,
)
from cornernet_tf.detection.decode import decode_outputs
from cornernet_tf.detection.settings import as_test_config, decode_settings
from cornernet_tf.inference.preprocess import model_output_stride
from cornernet_tf.modeling.precision import model_in_precision


def preprocess_batch(images: tf.Tensor, scale: float, mean, std, output_stride: int = 4):
    """uint8 [B,H,W,3] → (normalised input [B,inp_h,inp_w,3], geometry dict) for one scale;
    the geometry is :func:`cornernet_tf.detection.geometry_tf.scale_geometry`'s."""
    shape = tf.shape(images)
    geometry = geometry_tf.scale_geometry(shape[1], shape[2], scale, output_stride)
    resized = tf.image.resize(
        tf.cast(images, tf.float32), geometry["new_hw"], method="bilinear", antialias=False
    )
    resized = tf.clip_by_value(tf.floor(resized + 0.5), 0.0, 255.0)  # OpenCV returns uint8
    copy_h, copy_w = geometry["copy_hw"][0], geometry["copy_hw"][1]
    inp_h, inp_w = geometry["inp_hw"][0], geometry["inp_hw"][1]
    top, left = geometry["border"][0], geometry["border"][2]
    canvas = tf.image.pad_to_bounding_box(resized[:, :copy_h, :copy_w], top, left, inp_h, inp_w)
    normalised = (canvas / 255.0 - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
    return normalised, geometry


def soft_nms_all_classes(
    dets: tf.Tensor,
    config: TestConfig,
    max_detections: int,
    class_offset: tf.Tensor,
    plus_one_iou: bool = False,
):
    """One image's rows [M, 8] (image pixels) → padded (boxes, scores, classes, count).

    Rejected rows (score -1) get score 0 and are discarded by the score threshold. With
    ``plus_one_iou`` the boxes given to TF's IoU are ``x2 + 1, y2 + 1``, which reproduces the
    official ``(x2 - x1 + 1)`` areas and intersections (zero-width boxes then overlap too).
    """
    scores = tf.where(
        dets[:, SCORE] > REJECTED_SCORE, dets[:, SCORE], tf.zeros_like(dets[:, SCORE])
    )
    classes = tf.cast(dets[:, CLASS], tf.int32)
    shift = tf.cast(classes, tf.float32)[:, None] * class_offset
    one = 1.0 if plus_one_iou else 0.0
    yx = tf.stack([dets[:, Y1], dets[:, X1], dets[:, Y2] + one, dets[:, X2] + one], -1) + shift
    if config.nms_algorithm == "exp":
        iou_threshold, sigma = 1.0, config.nms_sigma / 2.0
    else:  # hard NMS
        iou_threshold, sigma = config.nms_threshold, 0.0
    keep, kept_scores = tf.image.non_max_suppression_with_scores(
        yx,
        scores,
        max_output_size=max_detections,
        iou_threshold=iou_threshold,
        score_threshold=config.score_threshold,
        soft_nms_sigma=sigma,
    )
    count = tf.shape(keep)[0]
    pad = max_detections - count
    boxes = tf.pad(tf.gather(dets[:, BOX], keep), [[0, pad], [0, 0]])
    kept_scores = tf.pad(kept_scores, [[0, pad]])
    kept_classes = tf.pad(tf.gather(classes, keep), [[0, pad]], constant_values=PAD_CLASS)
    boxes.set_shape([max_detections, 4])
    kept_scores.set_shape([max_detections])
    kept_classes.set_shape([max_detections])
    return boxes, kept_scores, kept_classes, count


def _check_graph_config(config: TestConfig) -> None:
    if config.nms_algorithm == "linear":
        raise ValueError(
            "test.nms_algorithm 'linear' has no TensorFlow op; use 'exp' (soft-NMS) or 'hard'"
        )
    if config.merge_bbox:
        warnings.warn(
            "test.merge_bbox is not available in the graph detector (no TF op for box merging); "
            "plain soft-NMS is used instead",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_images(images: tf.Tensor) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise ValueError(
            f"detect_images expects uint8 images [B, H, W, 3], got dtype {images.dtype.name}"
        )
    if images.shape.rank is not None and (
        images.shape.rank != 4 or images.shape[-1] not in (None, 3)
    ):
        raise ValueError(f"detect_images expects images of shape [B, H, W, 3], got {images.shape}")
    return images


class GraphDetector(tf.Module):
    """The test procedure in TF ops on uint8 RGB ``[B, H, W, 3]`` of any size (equal sizes per batch).

    :meth:`detect` traces into any graph (the SavedModel export builds its signatures on it);
    ``__call__`` is the same as a ``tf.function`` with an unknown-size input signature, ready for
    ``tf.saved_model.save(detector, path, signatures={"serving_default": detector.__call__})``.

    Returns ``boxes`` [B, max_detections, 4] (x1, y1, x2, y2 image pixels), ``scores``
    [B, max_detections], ``classes`` [B, max_detections] int32 (0-based, -1 for padding) and
    ``num_detections`` [B] int32, best first.
    """

    def __init__(
        self,
        model,
        test_config: TestConfig | dict | None = None,
        max_detections: int | None = None,
        mean: Sequence[float] = COCO_MEAN_RGB,
        std: Sequence[float] = COCO_STD_RGB,
        plus_one_iou: bool = False,
        name: str = "cornernet_detector",
    ):
        super().__init__(name=name)
        self.config = as_test_config(test_config)
        # The network in test.precision (float32 maps out whatever it computes in).
        self.model = model_in_precision(model, self.config.precision)
        _check_graph_config(self.config)
        self.max_detections = int(max_detections or self.config.max_per_image)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.plus_one_iou = bool(plus_one_iou)

    def detect(self, images: tf.Tensor) -> dict:
        """The whole procedure on a batch (see the class docstring)."""
        images = _check_images(images)
        config, max_detections = self.config, self.max_detections
        batch = tf.shape(images)[0]
        per_scale = []
        for scale in config.scales:
            inputs, geometry = preprocess_batch(
                images, float(scale), self.mean, self.std, model_output_stride(self.model)
            )
            if config.flip:
                inputs = tf.concat([inputs, tf.reverse(inputs, axis=[2])], axis=0)
            outputs = self.model(inputs, training=False, stacks="last")
            dets = decode_outputs(outputs, **decode_settings(config))
            if config.flip:
                dets = geometry_tf.merge_flip(dets, batch, geometry["out_hw"][1])
            per_scale.append(geometry_tf.rows_to_image(dets, geometry, float(scale)))
        dets = tf.concat(per_scale, axis=1)
        # Classes are moved this far apart so that boxes of different classes never overlap.
        class_offset = tf.cast(tf.reduce_max(tf.shape(images)[1:3]), tf.float32) + 2.0
        boxes, scores, classes, counts = tf.map_fn(
            lambda d: soft_nms_all_classes(
                d, config, max_detections, class_offset, self.plus_one_iou
            ),
            dets,
            fn_output_signature=(
                tf.TensorSpec([max_detections, 4], tf.float32),
                tf.TensorSpec([max_detections], tf.float32),
                tf.TensorSpec([max_detections], tf.int32),
                tf.TensorSpec([], tf.int32),
            ),
        )
        return {"boxes": boxes, "scores": scores, "classes": classes, "num_detections": counts}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def __call__(self, images):
        return self.detect(images)


def detect_images(
    model,
    images: tf.Tensor,
    test_config: TestConfig | dict | None = None,
    max_detections: int | None = None,
    mean: Sequence[float] = COCO_MEAN_RGB,
    std: Sequence[float] = COCO_STD_RGB,
    plus_one_iou: bool = False,
) -> dict:
    """``GraphDetector(model, ...).detect(images)``: the procedure once, eagerly or while tracing."""
    detector = GraphDetector(model, test_config, max_detections, mean, std, plus_one_iou)
    return detector.detect(images)
