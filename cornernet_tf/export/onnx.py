"""ONNX export of the network with ``tf2onnx``, for onnxruntime and other ONNX runtimes.

The ``.onnx`` file holds the network at a fixed input size, like the TFLite export
(:mod:`cornernet_tf.export.tflite`): input ``images`` uint8 ``[1, S_h, S_w, 3]`` (RGB pixels on a
zero canvas; normalised inside the model), outputs the six maps of the last stack (``tl_heat`` /
``br_heat`` logits, ``tl_tag`` / ``br_tag``, ``tl_regr`` / ``br_regr``) in float32, NHWC. Placing the
image on the canvas, decoding and soft-NMS run in NumPy (:mod:`cornernet_tf.export.postprocess`,
used by :class:`cornernet_tf.export.onnx_runner.OnnxDetector`), described by ``FILE.onnx.json``
written beside the model (input size, output stride, category ids, test settings, opset).

Corner pooling is exported with the ``"tf"`` implementation (core ops, unrolled at the static
size), which becomes ONNX ``Max``/``Squeeze``/``Unsqueeze`` nodes. The default opset is
:data:`DEFAULT_OPSET` (17, run by onnxruntime >= 1.13).

Why the network only, not the whole test procedure: tf2onnx converts the decoding, but not
soft-NMS faithfully. Soft-NMS is ``tf.image.non_max_suppression_with_scores`` with a Gaussian
``soft_nms_sigma`` (``NonMaxSuppressionV5``); ONNX ``NonMaxSuppression`` is hard NMS only. tf2onnx
1.17 means to refuse a non-zero sigma, but tests ``int(sigma) == 0``, so our sigma (0.25) passes
and the op becomes hard NMS at ``iou_threshold=1.0``: no score is ever decayed, and the detections
differ from the test procedure's without any error. (The category-id lookup, a constant captured
by the serving function, also surfaces as an extra graph input.) See :data:`FULL_GRAPH_BLOCKER`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence

from cornernet_tf import extras
from cornernet_tf.atomic_files import write_bytes, write_text
from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.detection.settings import fixed_size_settings
from cornernet_tf.errors import InvalidValueError, MissingDependencyError
from cornernet_tf.export.common import prepare_model, resolve_dataset_info
from cornernet_tf.export.fixed_size_runner import metadata_path
from cornernet_tf.export.onnx_runner import (  # noqa: F401
    METADATA_FORMAT,
    read_onnx_metadata,
)

DEFAULT_OPSET = 17
FULL_GRAPH_BLOCKER = (
    "soft-NMS (TF NonMaxSuppressionV5 with soft_nms_sigma > 0) has no ONNX equivalent: ONNX "
    "NonMaxSuppression is hard NMS only, and tf2onnx turns a sigma below 1 into hard NMS silently"
)


class MissingPackageError(MissingDependencyError):
    """An optional package of the ``[onnx]`` extra is not installed (one line naming the extra)."""


def require(module: str, purpose: str):
    """Import ``module`` or raise :class:`MissingPackageError` naming the ``[onnx]`` extra."""
    try:
        return extras.require(module, purpose)
    except MissingDependencyError as exc:
        raise MissingPackageError(str(exc)) from exc.__cause__


def list_onnx_operators(model_proto) -> dict:
    """``{op_type: count}`` of an ONNX graph (main graph and nested subgraphs)."""
    counts: dict = {}

    def visit(graph):
        for node in graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
            for attribute in node.attribute:
                if attribute.g is not None and attribute.g.node:
                    visit(attribute.g)
                for sub in attribute.graphs:
                    visit(sub)

    visit(model_proto.graph)
    return dict(sorted(counts.items()))


def network_to_onnx(model, input_hw: Sequence[int], opset: int = DEFAULT_OPSET):
    """The network (uint8 ``images [1,H,W,3]`` -> six maps) as an ONNX ``ModelProto``."""
    import tensorflow as tf

    from cornernet_tf.export.tflite import network_module

    tf2onnx = require("tf2onnx", "ONNX export")
    require("onnx", "ONNX export")
    module = network_module(model, input_hw)
    spec = tf.TensorSpec([1, int(input_hw[0]), int(input_hw[1]), 3], tf.uint8, name="images")
    with _quiet_tf2onnx():
        model_proto, _ = tf2onnx.convert.from_function(
            module.serve, input_signature=[spec], opset=int(opset)
        )
    return model_proto


def export_onnx(
    model_or_config,
    out_path: str,
    weights: str | None = None,
    input_size: Sequence[int] | None = None,
    opset: int = DEFAULT_OPSET,
    category_ids: Sequence[int] | None = None,
    dataset_info: str | None = None,
    config=None,
) -> str:
    """Write ``out_path`` (``.onnx``) and ``out_path + ".json"``; returns ``out_path``.

    Args:
      model_or_config: a CornerNet model or a config (YAML path, dict, Config).
      weights: weights to load (``.weights.h5``, ``.keras``, official checkpoint).
      input_size: fixed ``[height, width]``; default as TFLite (``data.input_size`` padded to
        ``size | 127``, see :func:`cornernet_tf.export.tflite.tflite_input_size`).
      opset: ONNX opset (default :data:`DEFAULT_OPSET`).
      category_ids, dataset_info: see :func:`cornernet_tf.export.common.resolve_dataset_info`.
      config: with a model, the config supplying the data/test/export sections.
    """
    from cornernet_tf.export.tflite import tflite_input_size
    from cornernet_tf.modeling.backbones import output_stride

    if not os.fspath(out_path).endswith(".onnx"):
        raise InvalidValueError(f"the ONNX output must end with .onnx, got {out_path}")
    require("tf2onnx", "ONNX export")
    onnx = require("onnx", "ONNX export")
    model, cfg = prepare_model(model_or_config, weights, config=config)
    if model.model_config.corner_pool_impl not in ("tf", "scan"):
        raise InvalidValueError(
            "ONNX needs corner_pool_impl 'tf' (core operators), got "
            f"{model.model_config.corner_pool_impl!r}"
        )
    input_hw = tflite_input_size(cfg, input_size)
    stride = output_stride(cfg.model)
    info = resolve_dataset_info(cfg, category_ids, dataset_info, weights)
    model_proto = network_to_onnx(model, input_hw, opset)
    onnx.checker.check_model(model_proto)
    out_hw = [-(-s // stride) for s in input_hw]
    channels = {"heat": cfg.model.num_classes, "tag": 1, "regr": 2}
    metadata = {
        "format": METADATA_FORMAT,
        "name": cfg.name,
        "backbone": cfg.model.backbone,
        "opset": int(opset),
        "producer": f"{model_proto.producer_name} {model_proto.producer_version}",
        "input": {"name": "images", "dtype": "uint8", "shape": [1, input_hw[0], input_hw[1], 3]},
        "outputs": {
            name: [1, out_hw[0], out_hw[1], channels[name.split("_")[1]]] for name in OUTPUT_KEYS
        },
        "output_stride": stride,
        "num_classes": cfg.model.num_classes,
        "class_names": list(info.class_names),
        "category_ids": list(info.category_ids),
        "postprocess": fixed_size_settings(cfg.test),
        "operators": list_onnx_operators(model_proto),
        "full_graph": f"not exported: {FULL_GRAPH_BLOCKER}",
    }
    write_bytes(out_path, model_proto.SerializeToString())
    write_text(metadata_path(out_path), json.dumps(metadata, indent=1) + "\n")
    return out_path


@contextlib.contextmanager
def _quiet_tf2onnx():
    """tf2onnx logs every optimisation pass at INFO; keep its warnings and errors only."""
    import logging

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
