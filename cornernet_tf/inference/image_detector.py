"""The one-call detector: images or image files in, :class:`Detections` out.

:class:`ImageDetector` wraps a :class:`~cornernet_tf.inference.detector.Detector` (the official
test procedure, unchanged) with what a user otherwise writes around it: reading files, telling one
image from a batch, and turning the network's 0-based classes into the dataset's category ids and
names. :func:`cornernet_tf.load_detector` builds one from a config or a training work directory.
"""

from __future__ import annotations

import os

import numpy as np

from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.errors import InputNotFoundError, InvalidValueError
from cornernet_tf.inference.detections import Detections


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]`` (grey, palette, RGBA and 16-bit converted)."""
    import tensorflow as tf

    from cornernet_tf.data.image_io import decode_image, failure_reason

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputNotFoundError(f"image not found: {path}")
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return decode_image(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError):
        raise InvalidValueError(f"{path}: {failure_reason(path)}") from None


def _is_single(images) -> bool:
    if isinstance(images, (str, os.PathLike)):
        return True
    if isinstance(images, np.ndarray):
        if images.ndim not in (2, 3, 4):
            raise InvalidValueError(
                f"expected an image [H, W, 3] or a batch [B, H, W, 3], got an array of shape {images.shape}"
            )
        return images.ndim in (2, 3)
    if isinstance(images, (list, tuple)):
        return False
    raise InvalidValueError(
        f"expected an image (array or file path) or a list of them, got {type(images).__name__}"
    )


class ImageDetector:
    """``detector(image)`` → :class:`Detections`; ``detector([image, ...])`` → a list of them.

    An image is an RGB uint8 array ``[H, W, 3]`` (``[H, W]`` grey and ``[H, W, 4]`` RGBA are
    converted) or the path of an image file; a batch is a list of images or an array
    ``[B, H, W, 3]``. Boxes are in the pixels of each image as given.

    Args:
      detector: the :class:`~cornernet_tf.inference.detector.Detector` that runs the procedure.
      dataset_info: class names and dataset category ids of the network's classes (default:
        ``class_0, class_1, ...`` with ids ``1..C``).
    """

    def __init__(self, detector, dataset_info: DatasetInfo | None = None, config=None):
        model_config = getattr(detector.model, "model_config", None)
        num_classes = model_config.num_classes if model_config is not None else None
        if dataset_info is None and num_classes is None:
            raise InvalidValueError(
                "ImageDetector: give dataset_info for a model without model_config"
            )
        if dataset_info is None:
            dataset_info = DatasetInfo.from_names([f"class_{k}" for k in range(num_classes)])
        if num_classes is not None and dataset_info.num_classes != num_classes:
            raise InvalidValueError(
                f"{dataset_info.num_classes} class names/category ids for a model of {num_classes} classes"
            )
        self.detector = detector
        self.dataset_info = dataset_info
        self.config = config  # the whole Config the detector was built from, when known

    @property
    def model(self):
        """The CornerNet Keras model."""
        return self.detector.model

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.dataset_info.class_names

    @property
    def category_ids(self) -> tuple[int, ...]:
        return self.dataset_info.category_ids

    def _wrap(self, dets: dict, image: np.ndarray) -> Detections:
        info = self.dataset_info
        return Detections.from_detector(dets, info.category_ids, info.class_names, image)

    def __call__(self, images, batch_size: int = 4) -> Detections | list[Detections]:
        """Detect objects in one image or a batch (see the class docstring)."""
        from cornernet_tf.inference.preprocess import as_rgb_uint8

        if _is_single(images):
            image = as_rgb_uint8(
                read_image_file(images) if isinstance(images, (str, os.PathLike)) else images
            )
            return self._wrap(self.detector.detect(image), image)
        loaded = [
            as_rgb_uint8(read_image_file(x) if isinstance(x, (str, os.PathLike)) else x)
            for x in images
        ]
        results = self.detector.detect_batch(loaded, batch_size=batch_size)
        return [self._wrap(dets, image) for dets, image in zip(results, loaded)]

    def __repr__(self) -> str:
        return f"ImageDetector({self.model.name}, classes={list(self.class_names)!r})"
