"""The exported detector as a Keras model: ``predict(images)`` returns what the SavedModel returns.

keras-hub's object detectors (``ImageObjectDetector``) are Keras models whose ``predict`` gives a
dict of padded detections and whose ``bounding_box_format`` says how to read the boxes. This is
the same for CornerNet: the computation is the SavedModel's ``serving_default``
(:func:`cornernet_tf.export.saved_model.serving_detect_fn`: the whole test procedure in TF ops), so
a Keras user and a TF Serving client see the same numbers.

Outputs for ``images`` uint8 ``[B, H, W, 3]`` (one size per ``predict`` batch): ``detection_boxes``
``[B, N, 4]`` float32 ymin, xmin, ymax, xmax normalised by the image height/width
(``bounding_box_format = "rel_yxyx"``), ``detection_scores`` ``[B, N]``, ``detection_classes``
``[B, N]`` dataset category ids as float32 (0 for padding) and ``num_detections`` ``[B]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB
from cornernet_tf.export.saved_model import OUTPUT_KEYS, serving_detect_fn


class CornerNetInferenceModel(keras.Model):
    """A CornerNet network plus its test procedure; ``predict`` returns padded detections.

    Not meant for training or ``.keras`` saving (export a SavedModel for deployment).
    """

    bounding_box_format = "rel_yxyx"
    output_keys = OUTPUT_KEYS

    def __init__(
        self,
        network,
        test_config,
        category_ids: Sequence[int],
        class_names: Sequence[str],
        max_detections: int,
        mean: Sequence[float] = COCO_MEAN_RGB,
        std: Sequence[float] = COCO_STD_RGB,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.network = network
        self.category_ids = tuple(int(c) for c in category_ids)
        self.class_names = tuple(str(n) for n in class_names)
        self.max_detections = int(max_detections)
        self._detect = serving_detect_fn(
            network, test_config, self.category_ids, self.max_detections, mean, std
        )
        self.jit_compile = False  # soft-NMS and the per-image map have no XLA kernels
        self.built = True

    def call(self, images):
        images = tf.convert_to_tensor(images)
        if images.dtype != tf.uint8:  # e.g. 0-255 floats
            images = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
        return self._detect(images)
