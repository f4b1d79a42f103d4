"""Datasets, augmentation and the ``tf.data`` input pipeline.

Modules: ``coco`` (COCO JSON + folder, validated), ``tfds`` (TensorFlow Datasets), ``tfrecord``
(shards), ``shapes`` (synthetic data), ``augment`` (the official sampler in TF ops),
``pipeline`` (``build_dataset``), ``finish`` (compact batches, finished in the train step or,
for dense batches, per batch in the pipeline), ``check`` (``cornernet data check``),
``image_io`` (robust reading), ``pixel_limit`` (input size limits, read from headers),
``report`` (what was repaired or dropped), ``info`` (class <-> category id).
Names are imported lazily so that the NumPy-only parts (shapes, check) do not load TensorFlow.
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "build_dataset": "cornernet_tf.data.pipeline",
        "build_eval_dataset": "cornernet_tf.data.pipeline",
        "dataset_info": "cornernet_tf.data.pipeline",
        "load_source": "cornernet_tf.data.pipeline",
        "DataSource": "cornernet_tf.data.pipeline",
        "load_coco": "cornernet_tf.data.coco",
        "CocoDataset": "cornernet_tf.data.coco",
        "DatasetError": "cornernet_tf.data.coco",
        "DatasetInfo": "cornernet_tf.data.info",
        "DatasetReport": "cornernet_tf.data.report",
        "ImageRecord": "cornernet_tf.data.records",
        "generate_shapes": "cornernet_tf.data.shapes",
        "check_dataset": "cornernet_tf.data.check",
    },
)
