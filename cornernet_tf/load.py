"""One call from a config or a training work directory to a ready detector.

``load_detector("runs/shapes")`` reads ``config.yaml``, the best (else last) weights and the
dataset's class names and category ids that ``cornernet train`` saved there, and returns an
:class:`~cornernet_tf.inference.image_detector.ImageDetector`; ``load_detector(config, weights)``
does the same from a config (a shipped name, a YAML path, a dict or a Config). It sits above
``export`` because the class names and category ids are resolved exactly as the SavedModel export
resolves them, and :func:`build_inference_model` wraps the export's graph as a Keras model.
"""

from __future__ import annotations

import json
import os
import warnings

from cornernet_tf.config import Config, ConfigError, load_config
from cornernet_tf.data.info import DatasetInfo, dataset_info_beside
from cornernet_tf.errors import InputNotFoundError

# What `cornernet train` writes into its work directory (cornernet_tf/training/workdir.py).
WORKDIR_CONFIG = "config.yaml"
WORKDIR_WEIGHTS = ("best.weights.h5", "last.weights.h5")
WORKDIR_DATASET_INFO = "dataset_info.json"


def _from_workdir(workdir: str, weights: str | None) -> tuple[Config, str, str]:
    config_path = os.path.join(workdir, WORKDIR_CONFIG)
    if not os.path.isfile(config_path):
        raise InputNotFoundError(
            f"{workdir} is a folder without {WORKDIR_CONFIG}: give a training work directory "
            "or a config file"
        )
    if weights is None:
        found = [os.path.join(workdir, n) for n in WORKDIR_WEIGHTS]
        weights = next((p for p in found if os.path.isfile(p)), None)
        if weights is None:
            raise InputNotFoundError(
                f"{workdir}: no trained weights ({' or '.join(WORKDIR_WEIGHTS)}); "
                "pass weights= to use other ones"
            )
    return load_config(config_path), weights, config_path


def dataset_info_for(
    config: Config, weights: str | None = None, workdir: str | None = None
) -> DatasetInfo:
    """Class names and category ids of the model's classes: the dataset info saved beside the
    weights or in the work directory, else as the SavedModel export finds them (the config's
    annotation file, TFDS COCO), else the COCO classes for an 80-class model, else
    ``class_0..`` with ids ``1..C``."""
    from cornernet_tf.export.common import resolve_dataset_info

    path = dataset_info_beside(weights)
    if path is None and workdir is not None:
        candidate = os.path.join(workdir, WORKDIR_DATASET_INFO)
        path = candidate if os.path.isfile(candidate) else None
    info = resolve_dataset_info(config, dataset_info=path)
    num_classes = config.model.num_classes
    default = DatasetInfo.from_names([f"class_{k}" for k in range(num_classes)])
    if info == default and num_classes == 80 and path is None:
        from cornernet_tf.data.tfds import COCO_CATEGORY_IDS, COCO_CLASS_NAMES

        info = DatasetInfo(COCO_CLASS_NAMES, COCO_CATEGORY_IDS)
    return info


def category_ids_for(config: Config, weights: str | None, names_file: str | None = None) -> list:
    """The dataset category ids of the model's classes: from ``names_file`` when it is a COCO
    JSON with one category per class, else :func:`dataset_info_for`'s."""
    if names_file and names_file.lower().endswith(".json") and os.path.isfile(names_file):
        with open(names_file, encoding="utf-8") as fh:
            try:
                cats = json.load(fh).get("categories") or []
                ids = sorted(int(c["id"]) for c in cats)
            except (ValueError, AttributeError, KeyError, TypeError):
                ids = []  # the names reader reports what is wrong with the file
        if len(ids) == config.model.num_classes:
            return ids
    return list(dataset_info_for(config, weights).category_ids)


def load_detector(
    config,
    weights: str | os.PathLike | None = None,
    dataset_info: DatasetInfo | str | None = None,
    jit_compile: bool = False,
):
    """A ready :class:`~cornernet_tf.inference.image_detector.ImageDetector`.

    Args:
      config: a training work directory (``config.yaml`` + ``best``/``last.weights.h5`` +
        ``dataset_info.json``), or a config: a shipped name, a YAML path, a dict or a Config.
      weights: the weights (``.weights.h5``, ``.keras`` or an official checkpoint). Default: the
        work directory's best, else last weights; with a plain config, none (an untrained model,
        with a warning).
      dataset_info: class names and category ids (a DatasetInfo or its JSON), when neither the
        weights' folder nor the config tells them.
      jit_compile: compile the network and decoder with XLA.

    ``detector(image_or_path)`` returns :class:`~cornernet_tf.inference.detections.Detections`;
    a list of images gives a list.
    """
    from cornernet_tf.data.image_scale import scaled_test_config
    from cornernet_tf.inference.detector import Detector
    from cornernet_tf.inference.image_detector import ImageDetector
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    weights = os.fspath(weights) if weights is not None else None
    workdir = None
    if isinstance(config, (str, os.PathLike)) and os.path.isdir(config):
        workdir = os.fspath(config)
        cfg, weights, config_name = _from_workdir(workdir, weights)
    else:
        config_name = os.fspath(config) if isinstance(config, (str, os.PathLike)) else None
        cfg = load_config(config)
    if dataset_info is None:
        info = dataset_info_for(cfg, weights, workdir)
    elif isinstance(dataset_info, DatasetInfo):
        info = dataset_info
    else:
        info = DatasetInfo.load(os.fspath(dataset_info))
    if info.num_classes != cfg.model.num_classes:
        raise ConfigError(
            f"dataset info gives {info.num_classes} classes but model.num_classes is "
            f"{cfg.model.num_classes}"
        )
    model = build_model(cfg.model)
    if weights is not None:
        load_weights(model, weights, config_name=config_name)
    else:
        warnings.warn(
            f"load_detector: no weights given for {config_name or cfg.name}; the model is "
            "untrained and its detections are meaningless",
            UserWarning,
            stacklevel=2,
        )
    detector = Detector(
        model,
        scaled_test_config(cfg),  # test.scales times data.image_scale
        mean=cfg.data.mean,
        std=cfg.data.std,
        jit_compile=jit_compile,
    )
    return ImageDetector(detector, info, config=cfg)


def build_inference_model(
    config, weights: str | os.PathLike | None = None, max_detections: int | None = None
):
    """A Keras model whose ``predict(images)`` returns the SavedModel's outputs
    (:class:`~cornernet_tf.export.keras_model.CornerNetInferenceModel`).

    ``config`` is what :func:`load_detector` takes, or a detector it returned (its network is
    shared, nothing is loaded again).
    """
    from cornernet_tf.export.keras_model import CornerNetInferenceModel
    from cornernet_tf.inference.image_detector import ImageDetector

    if isinstance(config, ImageDetector):
        if weights is not None:
            raise ValueError("build_inference_model: a detector already has its weights")
        detector = config
    else:
        detector = load_detector(config, weights)
    procedure = detector.detector  # the same test settings and normalisation as the detector
    if max_detections is None:
        max_detections = (
            detector.config.export.max_detections
            if detector.config is not None
            else procedure.config.max_per_image
        )
    return CornerNetInferenceModel(
        detector.model,
        procedure.config,
        detector.category_ids,
        detector.class_names,
        max_detections,
        procedure.mean,
        procedure.std,
        name=f"{detector.model.name}_inference",
    )
