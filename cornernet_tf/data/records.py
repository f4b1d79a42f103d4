"""The in-memory form every file-based source is loaded into before it becomes a ``tf.data`` source.

An :class:`ImageRecord` is one image with its (already validated) boxes in pixel coordinates
``(x1, y1, x2, y2)`` as float64 -- float64 because the official sampler computes the corner
positions in float64 and truncates them, so the last bits decide a pixel now and then
(docs/method.md §8, "Targets").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass
class ImageRecord:
    image_id: int
    path: str  # where the file is read from
    file_name: str  # as named in the annotation file
    height: int  # 0 when unknown
    width: int
    boxes: np.ndarray  # float64 [N, 4] x1, y1, x2, y2 in pixels
    classes: np.ndarray  # int32 [N], contiguous 0-based
    annotation_ids: np.ndarray | None = None  # int64 [N]

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.classes = np.asarray(self.classes, np.int32).reshape(-1)
        if self.annotation_ids is None:
            self.annotation_ids = np.full(len(self.classes), -1, np.int64)
        self.annotation_ids = np.asarray(self.annotation_ids, np.int64).reshape(-1)
        if not len(self.boxes) == len(self.classes) == len(self.annotation_ids):
            raise ValueError(
                f"{self.file_name}: {len(self.boxes)} boxes, {len(self.classes)} classes, "
                f"{len(self.annotation_ids)} annotation ids"
            )

    @property
    def num_objects(self) -> int:
        return len(self.classes)


# Keys of a source element (before decoding): see pipeline.py for the full element spec.
SOURCE_KEYS = ("data", "name", "image_id", "height", "width", "boxes", "classes")


def records_to_dataset(records: Sequence[ImageRecord]):
    """A ``tf.data.Dataset`` of source elements from records; ``data`` is the file path.

    Boxes and classes are stored ragged so that the dataset holds only light tensors; the images
    are read later, in parallel, by the pipeline.
    """
    import tensorflow as tf

    lengths = np.array([r.num_objects for r in records], np.int64)
    boxes = np.concatenate([r.boxes for r in records], 0) if records else np.zeros((0, 4))
    classes = (
        np.concatenate([r.classes for r in records], 0) if records else np.zeros((0,), np.int32)
    )
    return tf.data.Dataset.from_tensor_slices(
        {
            "data": tf.constant([r.path for r in records], tf.string),
            "name": tf.constant([r.path for r in records], tf.string),
            "image_id": tf.constant([r.image_id for r in records], tf.int64),
            "height": tf.constant([r.height for r in records], tf.int32),
            "width": tf.constant([r.width for r in records], tf.int32),
            "boxes": tf.RaggedTensor.from_row_lengths(
                tf.constant(boxes, tf.float64, [len(boxes), 4]), lengths
            ),
            "classes": tf.RaggedTensor.from_row_lengths(tf.constant(classes, tf.int32), lengths),
        }
    )
