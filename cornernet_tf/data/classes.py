"""``model.num_classes`` from the dataset: filled in when null, checked when given.

A 3-class model trained on a 2-class set used to train without complaint (an always-empty
heatmap channel) and only ``export`` refused it, after training. So the count is settled before
training starts: ``null`` takes the dataset's number of categories (after ``data.class_names``),
and a stated number that differs is an error naming both numbers and the annotation file.
"""

from __future__ import annotations

import dataclasses

from cornernet_tf.config import Config, ConfigError
from cornernet_tf.data.info import DatasetInfo, dataset_info_beside


def data_source_name(data_config, training: bool = True) -> str:
    """The configured annotation file, shard glob or TFDS name (for messages)."""
    prefix = "train" if training else "val"
    return (
        getattr(data_config, f"{prefix}_annotations")
        or getattr(data_config, f"{prefix}_tfrecords")
        or (f"tfds:{data_config.tfds_name}" if data_config.tfds_name else None)
        or getattr(data_config, f"{prefix}_images")
        or "the dataset"
    )


def resolve_num_classes(config: Config, info: DatasetInfo, source: str) -> Config:
    """``config`` with ``model.num_classes`` = the categories of ``info`` (read from ``source``).

    A null ``num_classes`` is filled in (a new Config; the argument is not changed); a stated
    one must equal the dataset's count, else :class:`ConfigError` names both and ``source``.
    """
    stated = config.model.num_classes
    if stated is None:
        model = dataclasses.replace(config.model, num_classes=info.num_classes)
        return dataclasses.replace(config, model=model)
    if stated != info.num_classes:
        shown = ", ".join(info.class_names[:10]) + (", ..." if info.num_classes > 10 else "")
        raise ConfigError(
            f"model.num_classes is {stated} but {source} has {info.num_classes} categories "
            f"({shown}); set model.num_classes to {info.num_classes}, or to null to take the "
            "dataset's count, or choose classes with data.class_names"
        )
    return config


def num_classes_for_weights(config: Config, weights: str | None = None) -> Config:
    """``config`` with a null ``model.num_classes`` filled in for a trained model: from the
    dataset info saved beside ``weights`` (``cornernet train`` writes it), else from the
    configured training (or validation) data. A stated number is returned unchanged."""
    if config.model.num_classes is not None:
        return config
    beside = dataset_info_beside(weights)
    if beside:
        return resolve_num_classes(config, DatasetInfo.load(beside), beside)
    from cornernet_tf.data.pipeline import _selected_sources, load_source

    for training in (True, False):
        if _selected_sources(config.data, training):
            info = load_source(config.data, training, scan="none").info
            return resolve_num_classes(config, info, data_source_name(config.data, training))
    raise ConfigError(
        "model.num_classes is null (the dataset's number of categories), but there is no "
        "dataset_info.json beside the weights and no data configured to read it from: set "
        "model.num_classes, or use the config.yaml of the training work directory"
    )
