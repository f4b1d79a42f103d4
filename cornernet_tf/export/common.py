"""What every export needs: a model that uses only core TF ops, and the dataset's category ids.

Exported graphs run where our compiled corner-pool op does not exist (TF Serving, LiteRT), so
the model is rebuilt with ``corner_pool_impl="tf"`` (``export.corner_pool_impl``) and the weights
copied into it. Detections leave the graph with the dataset's category ids (COCO ids are not
contiguous), found in this order: an explicit list, a dataset-info JSON (``--dataset-info``, or one
saved beside the weights), the categories of the config's COCO annotation file, the COCO ids for
TFDS ``coco/*``, else ``1..C``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from cornernet_tf.config import Config, ConfigError, load_config
from cornernet_tf.data.info import DatasetInfo, dataset_info_beside
from cornernet_tf.errors import InvalidValueError


def prepare_model(
    model_or_config,
    weights: str | None = None,
    corner_pool_impl: str | None = None,
    config=None,
    config_name: str | None = None,
):
    """``(model, Config)`` ready for export.

    ``model_or_config`` is a CornerNet model (its weights are copied) or anything
    :func:`~cornernet_tf.config.load_config` accepts (a YAML path, a dict, a Config); ``weights``
    is loaded afterwards when given (``.weights.h5``, ``.keras`` or an official checkpoint).
    ``corner_pool_impl`` defaults to the config's ``export.corner_pool_impl`` ("tf"). With a model,
    ``config`` (optional) supplies the other sections (test, data, export); its model section is
    replaced by the model's own.
    """
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    # A CornerNet network or the training task around one: both carry their model config.
    if getattr(model_or_config, "model_config", None) is not None:
        source_model = model_or_config
        base = load_config(config) if config is not None else Config()
        config = dataclasses.replace(base, model=dataclasses.replace(source_model.model_config))
    else:
        source_model = None
        if config_name is None and isinstance(model_or_config, (str, os.PathLike)):
            config_name = os.fspath(model_or_config)
        config = load_config(model_or_config)
    impl = corner_pool_impl or config.export.corner_pool_impl
    model_cfg = dataclasses.replace(config.model, corner_pool_impl=impl)
    model_cfg.validate()
    config = dataclasses.replace(config, model=model_cfg)
    model = build_model(model_cfg)
    if source_model is not None:
        model.set_weights(source_model.get_weights())
    if weights is not None:
        load_weights(model, weights, config_name)
    return model, config


def _from_annotations(config: Config) -> DatasetInfo | None:
    for path in (config.data.val_annotations, config.data.train_annotations):
        if not path or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            try:
                cats = json.load(fh).get("categories") or []
            except (json.JSONDecodeError, AttributeError) as exc:
                raise InvalidValueError(f"{path}: cannot read categories ({exc})") from None
        by_name = {
            str(c.get("name", c["id"])): int(c["id"])
            for c in cats
            if isinstance(c, dict) and "id" in c
        }
        if not by_name:
            continue
        names = config.data.class_names or [
            n for n, _ in sorted(by_name.items(), key=lambda kv: kv[1])
        ]
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InvalidValueError(
                f"{path}: data.class_names {missing} are not categories of this file"
            )
        return DatasetInfo(tuple(names), tuple(by_name[n] for n in names))
    return None


def resolve_dataset_info(
    config: Config,
    category_ids: Sequence[int] | None = None,
    dataset_info: str | None = None,
    weights: str | None = None,
) -> DatasetInfo:
    """Class names and category ids of the model's classes (see the module docstring for the order)."""
    num_classes = config.model.num_classes
    names = config.data.class_names
    if category_ids is not None:
        ids = [int(i) for i in category_ids]
        if names is None or len(names) != len(ids):
            names = [f"class_{i}" for i in ids]
        info, source = DatasetInfo(tuple(names), tuple(ids)), "--category-ids"
    else:
        path = dataset_info or dataset_info_beside(weights)
        if path:
            info, source = DatasetInfo.load(path), path
        else:
            info, source = _from_annotations(config), "the config's annotation file"
            if (
                info is None
                and (config.data.tfds_name or "").split("/")[0] == "coco"
                and num_classes == 80
            ):
                from cornernet_tf.data.tfds import COCO_CATEGORY_IDS, COCO_CLASS_NAMES

                info, source = DatasetInfo(COCO_CLASS_NAMES, COCO_CATEGORY_IDS), "TFDS coco"
            if info is None:
                names = (
                    names
                    if names and len(names) == num_classes
                    else [f"class_{k}" for k in range(num_classes)]
                )
                info, source = DatasetInfo.from_names(names, first_id=1), "default 1..C"
    if info.num_classes != num_classes:
        raise ConfigError(
            f"{source} gives {info.num_classes} categories ({list(info.category_ids)}) but model.num_classes is "
            f"{num_classes}"
        )
    return info
