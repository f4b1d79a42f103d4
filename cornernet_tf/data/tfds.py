"""TensorFlow Datasets ``coco/2017`` (and other detection datasets of the same shape) as a source.

TFDS detection features: ``image`` (kept encoded with ``SkipDecoding`` so the pipeline's
fail-safe decoder handles it), ``image/id``, ``image/filename`` and ``objects`` with ``bbox``
normalised as ``(ymin, xmin, ymax, xmax)``, ``label`` (contiguous; for COCO 0..79 in category-id
order) and ``is_crowd``. Crowd objects are dropped, as in the official code; boxes become
``(x1, y1, x2, y2)`` in pixels once the image size is known, after decoding.
"""

from __future__ import annotations

from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.extras import require

# The 80 category ids of COCO 2014/2017 in ascending order: TFDS label k is COCO category
# COCO_CATEGORY_IDS[k] (TFDS assigns labels in the annotation file's category order).
COCO_CATEGORY_IDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)
COCO_CLASS_NAMES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
assert len(COCO_CATEGORY_IDS) == len(COCO_CLASS_NAMES) == 80


def tfds_dataset_info(name: str, builder_info) -> DatasetInfo:
    """Class names from the TFDS builder; COCO category ids for ``coco/*`` (else 1..C)."""
    label = builder_info.features["objects"]["label"]
    names = list(label.names)
    if name.split("/")[0] == "coco" and len(names) == 80:
        if all(n.isdigit() for n in names):  # metadata not downloaded: TFDS only knows the count
            names = list(COCO_CLASS_NAMES)
        return DatasetInfo(tuple(names), COCO_CATEGORY_IDS)
    return DatasetInfo.from_names(names, first_id=1)


def to_source_element(example: dict) -> dict:
    """A TFDS detection example -> source element (boxes still normalised, crowd removed)."""
    import tensorflow as tf

    objects = example["objects"]
    keep = tf.logical_not(tf.cast(objects["is_crowd"], tf.bool)) if "is_crowd" in objects else None
    bbox = tf.cast(tf.reshape(objects["bbox"], [-1, 4]), tf.float64)
    ymin, xmin, ymax, xmax = tf.unstack(bbox, 4, axis=1)
    boxes = tf.stack([xmin, ymin, xmax, ymax], axis=1)
    classes = tf.cast(objects["label"], tf.int32)
    if keep is not None:
        boxes, classes = tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)
    name = example.get("image/filename", tf.strings.as_string(example["image/id"]))
    return {
        "data": example["image"],
        "name": name,
        "image_id": tf.cast(example["image/id"], tf.int64),
        "height": tf.constant(0, tf.int32),  # unknown until decoded; boxes are normalised
        "width": tf.constant(0, tf.int32),
        "boxes": boxes,
        "classes": classes,
    }


def import_tfds():
    """``tensorflow_datasets`` (the ``[tfds]`` extra), or one line naming the extra."""
    return require("tensorflow_datasets", "a TensorFlow Datasets source (data.tfds_name, --tfds)")


def load_tfds(
    name: str,
    split: str,
    data_dir: str | None = None,
    input_context=None,
    shuffle_files: bool = False,
    seed: int | None = None,
    report=None,
):
    """``(source dataset, DatasetInfo)`` for a TFDS detection dataset, sharded per input pipeline.

    A truncated or corrupt TFDS shard ends that shard instead of the run (``ignore_errors``); TFDS
    reads its files internally, so the loss is reported per pass as the number of examples missing
    from the split (:func:`report_lost_examples`), not per file.
    """
    tfds = import_tfds()

    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=seed)
    ds, builder_info = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        with_info=True,
        shuffle_files=shuffle_files,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=read_config,
    )
    features = builder_info.features
    if (
        "objects" not in features
        or "bbox" not in features["objects"]
        or "label" not in features["objects"]
    ):
        raise ValueError(
            f"TFDS dataset {name} has no objects/bbox/label features: not a detection dataset"
        )
    info = tfds_dataset_info(name, builder_info)
    ds = ds.ignore_errors()
    if input_context is None or input_context.num_input_pipelines == 1:
        try:
            expected = int(builder_info.splits[split].num_examples)
        except (KeyError, ValueError, TypeError):
            expected = 0
        if expected > 0:
            ds = report_lost_examples(ds, expected, f"TFDS {name} split {split}", report)
    return ds.map(to_source_element, num_parallel_calls=-1), info


def report_lost_examples(ds, expected: int, where: str, report=None):
    """``ds`` unchanged, but at the end of each pass with fewer than ``expected`` elements the
    shortfall is logged and reported (once)."""
    import logging

    import numpy as np
    import tensorflow as tf

    def placeholder(spec):
        return tf.zeros([0 if d is None else d for d in spec.shape.as_list()], spec.dtype)

    marker = tf.data.Dataset.from_tensors(
        (tf.nest.map_structure(placeholder, ds.element_spec), tf.constant(True))
    )

    def tag(element):
        return element, tf.constant(False)

    def count(n, pair):
        n = n + tf.cast(~pair[1], tf.int64)
        return n, (pair[0], pair[1], n)

    reported: list = []

    def on_short(n) -> np.bool_:
        if not reported:
            reported.append(n)
            why = f"{expected - int(n)} of {expected} examples could not be read (corrupt shard)"
            logging.getLogger("cornernet_tf.data").warning("%s: %s; skipped", where, why)
            if report is not None:
                report.problem("bad_shard", why, file=where)
                report.count("runtime_tfds_examples_lost", expected - int(n))
        return np.bool_(False)

    def keep(element, is_end, n):
        def at_end():
            def short():
                return tf.ensure_shape(tf.numpy_function(on_short, [n], tf.bool, stateful=True), [])

            def complete():
                return tf.constant(False)

            return tf.cond(n < expected, short, complete)

        def kept():
            return tf.constant(True)

        return tf.cond(is_end, at_end, kept)

    def value(element, is_end, n):
        return element

    stream = ds.map(tag).concatenate(marker)
    return stream.scan(tf.constant(0, tf.int64), count).filter(keep).map(value)
