"""Datasets, augmentation and the ``tf.data`` input pipeline.

Modules: ``coco`` (COCO JSON + folder, validated), ``tfds`` (TensorFlow Datasets), ``tfrecord``
(shards), ``shapes`` (synthetic data), ``augment`` (the official sampler in TF ops),
``pipeline`` (``build_dataset``), ``check`` (``cornernet data check``), ``image_io`` (robust
reading), ``report`` (what was repaired or dropped), ``info`` (class <-> category id).
Names are imported lazily so that the NumPy-only parts (shapes, check) do not load TensorFlow.
"""

_EXPORTS = {
    "build_dataset": "cornernet_tf.data.pipeline",
    "build_eval_dataset": "cornernet_tf.data.pipeline",
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
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cornernet_tf.data' has no attribute {name!r}")


def dataset_info(data_config, training: bool = True):
    """The :class:`DatasetInfo` (class names, category ids) of the configured data."""
    from cornernet_tf.data.pipeline import load_source

    return load_source(data_config, training).info
