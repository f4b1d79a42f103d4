"""TFLite (LiteRT) export of the small CornerNet variants: SavedModel → ``TFLiteConverter.from_saved_model``.

The ``.tflite`` file holds the network only, at a fixed input size: input ``images`` uint8
``[1, S_h, S_w, 3]`` (RGB pixels on a zero canvas; normalised inside the model), outputs the six
maps of the last stack (``tl_heat``/``br_heat`` logits, ``tl_tag``/``br_tag``,
``tl_regr``/``br_regr``) in float32. Placing the image on the canvas, decoding and soft-NMS are done
in NumPy by :mod:`cornernet_tf.export.postprocess` (used by :mod:`cornernet_tf.export.litert_runner`),
described by a JSON file written beside the model (``FILE.tflite.json``: input size, output stride,
category ids, test settings).

Only TFLite builtin operators are allowed (``target_spec.supported_ops = [TFLITE_BUILTINS]``, plus
``TFLITE_BUILTINS_INT8`` for int8): conversion fails instead of producing a model that needs the
Flex delegate. Corner pooling is exported with the ``"tf"`` implementation (core ops, unrolled at
a static size), which maps to builtin operators.

Quantization: ``none`` (float32), ``fp16`` (float16 weights, float32 compute on CPU), ``int8``
(int8 weights and activations, calibrated on a representative set of training images placed on
the canvas exactly as at inference; input stays uint8 and outputs float32).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Sequence

import numpy as np

from cornernet_tf.atomic_files import write_bytes, write_json
from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.detection.settings import fixed_size_settings
from cornernet_tf.errors import InvalidValueError
from cornernet_tf.export.common import prepare_model, resolve_dataset_info
from cornernet_tf.export.litert_runner import METADATA_FORMAT, metadata_path, read_metadata  # noqa: F401
from cornernet_tf.export.postprocess import prepare_input, valid_input_size
from cornernet_tf.extras import require
from cornernet_tf.log_noise import drop_native_lines

QUANTIZATIONS = ("none", "fp16", "int8")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class ConversionError(RuntimeError):
    """The TFLite converter refused the model (e.g. it needs operators that are not TFLite builtins)."""


def tflite_input_size(config, input_size: Sequence[int] | None = None) -> tuple[int, int]:
    """The fixed input ``(S_h, S_w)``: ``input_size`` if given (checked), else the config's
    ``data.input_size`` padded like the test procedure pads images (``size | 127``), rounded up
    further when the model needs a coarser multiple (:func:`postprocess.valid_input_size`)."""
    from cornernet_tf.modeling.backbones import output_stride, stride_multiple

    multiple = stride_multiple(config.model)
    if input_size is None:
        return tuple(valid_input_size(s, multiple) for s in config.data.input_size)
    if len(input_size) != 2:
        raise InvalidValueError(f"input size must be [height, width], got {list(input_size)}")
    stride = output_stride(config.model)
    for s in input_size:
        out = -(-int(s) // stride)
        if int(s) < 1 or out % 2**config.model.depth:
            raise InvalidValueError(
                f"input size {list(input_size)}: {s} gives a {out}-pixel map, which must divide by "
                f"2**{config.model.depth} for this model; e.g. use {valid_input_size(s, multiple)}"
            )
    return int(input_size[0]), int(input_size[1])


# --------------------------------------------------------------------------- SavedModel of the network


def network_module(model, input_hw: Sequence[int]):
    """A ``tf.Module`` with a ``serve(images uint8 [1,H,W,3]) -> {six maps}`` signature.

    The module tracks the underlying ``tf.Variable`` objects directly: the converter freezes only
    variables it can see in the object graph this way (Keras 3 variables reached through the model
    would stay resource variables in the ``.tflite`` file).
    """
    import tensorflow as tf

    module = tf.Module()
    module.network_variables = [v.value for v in model.variables]

    def serve(images):
        outputs = model(images, training=False, stacks="last")
        return {name: tf.identity(outputs[name][-1], name=name) for name in OUTPUT_KEYS}

    spec = tf.TensorSpec([1, int(input_hw[0]), int(input_hw[1]), 3], tf.uint8, name="images")
    module.serve = tf.function(serve, input_signature=[spec])
    return module


def save_network(model, input_hw: Sequence[int], directory: str) -> str:
    import tensorflow as tf

    module = network_module(model, input_hw)
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(
        module,
        directory,
        signatures={"serving_default": module.serve.get_concrete_function()},
        options=options,
    )
    return directory


# --------------------------------------------------------------------------- conversion


def representative_images(
    paths: Iterable[str], input_hw: Sequence[int], output_stride: int, limit: int
) -> list:
    """Up to ``limit`` images from files, placed on the canvas as at inference (uint8 [1,H,W,3])."""
    from PIL import Image

    out = []
    for path in paths:
        if len(out) >= limit:
            break
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        out.append(prepare_input(pixels, input_hw, output_stride)[0])
    return out


def find_images(directory: str) -> list:
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"representative image folder not found: {directory}")
    files = sorted(
        p
        for p in glob.glob(os.path.join(directory, "**", "*"), recursive=True)
        if p.lower().endswith(IMAGE_SUFFIXES)
    )
    if not files:
        raise InvalidValueError(
            f"{directory}: no image files ({', '.join(IMAGE_SUFFIXES)}) for int8 calibration"
        )
    return files


# What the converter logs on every run and means nothing here: absl's note before its first line,
# options the converter passes itself, the int8 quantizer's echo of its own settings, and an
# attribute of Identity ops in the graph it builds that TensorFlow ignores (the E-level line says so).
HARMLESS_CONVERTER_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "] Ignored output_format.",
    "] Ignored drop_control_dependency.",
    "fully_quantize: 0, inference_type: 6, input_inference_type:",
    "NodeDef mentions attribute Truncate which is not in the op definition: Op<name=Identity;",
)


def convert_saved_model(
    saved_model_dir: str, quantize: str = "none", representative: list | None = None
) -> bytes:
    """Convert a SavedModel to TFLite with builtin operators only; returns the flatbuffer."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise InvalidValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    with _quiet_absl():
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=["serving_default"]
        )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if not representative:
            raise InvalidValueError(
                "int8 quantization needs representative images (--representative-images or data.train_images)"
            )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        converter.representative_dataset = lambda: ([x] for x in representative)
    try:
        with _quiet_absl(), drop_native_lines(HARMLESS_CONVERTER_LINES):
            return shorten_tensor_names(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and friends with long MLIR dumps
        message = str(exc).strip()
        lines = [
            line for line in message.splitlines() if "error" in line.lower()
        ] or message.splitlines()[:5]
        raise ConversionError(
            f"TFLite conversion of {saved_model_dir} ({quantize}) failed; only TFLite builtin operators are "
            "allowed (no Flex/Select TF ops, no custom ops):\n" + "\n".join(lines[:20])
        ) from exc


def shorten_tensor_names(tflite_model: bytes) -> bytes:
    """Keep the first of the ``;``-joined names the converter gives a fused tensor.

    A tensor produced by folding several TF ops is named after all of them; the row-by-row corner
    pooling makes that hundreds of names per tensor, over half of a small model's file. Names are
    informative only (signatures refer to tensor indices), so the model computes the same.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
    changed = False
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else (tensor.name or "")
            if ";" in name:
                tensor.name = name.split(";", 1)[0].encode()
                changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else tflite_model


@contextlib.contextmanager
def _quiet_absl():
    """The converter re-imports the SavedModel and warns that custom gradients were not saved;
    they are not needed for inference (only the forward pass is converted)."""
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(level)


def list_operators(tflite_model: bytes) -> dict:
    """``{operator name: count}`` of a TFLite flatbuffer; custom operators appear as ``CUSTOM:<name>``."""
    schema = require("ai_edge_litert.schema_py_generated", "TFLite export")

    model = schema.Model.GetRootAs(bytearray(tflite_model), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(f"CUSTOM:{code.CustomCode().decode()}")
        else:
            codes.append(names.get(builtin, str(builtin)))
    counts: dict = {}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for o in range(graph.OperatorsLength()):
            name = codes[graph.Operators(o).OpcodeIndex()]
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def convert(
    model_or_config,
    out_path: str,
    weights: str | None = None,
    quantize: str = "none",
    **kwargs,
) -> str:
    """Write ``out_path`` (``.tflite``) and ``out_path + ".json"``; returns ``out_path``.

    ``quantize`` is ``none`` | ``fp16`` | ``int8``; the other arguments are those of
    :func:`convert_variants`.
    """
    return convert_variants(model_or_config, {quantize: out_path}, weights=weights, **kwargs)[
        quantize
    ]


def convert_variants(
    model_or_config,
    out_paths: dict,
    weights: str | None = None,
    input_size: Sequence[int] | None = None,
    representative_images_dir: str | None = None,
    num_representative: int | None = None,
    category_ids: Sequence[int] | None = None,
    dataset_info: str | None = None,
    config=None,
) -> dict:
    """Convert one network to several quantizations (``{quantize: out_path}``), saving it once.

    Args:
      model_or_config: a CornerNet model or a config (YAML path, dict, Config).
      out_paths: ``{"none" | "fp16" | "int8": path.tflite}``; each gets its ``.json`` beside it.
      weights: weights to load (``.weights.h5``, ``.keras``, official checkpoint).
      input_size: fixed ``[height, width]``; default :func:`tflite_input_size`.
      representative_images_dir: images for int8 calibration; default ``data.train_images``.
      num_representative: images used for calibration (default ``export.representative_images``).
      category_ids, dataset_info: see :func:`cornernet_tf.export.common.resolve_dataset_info`.
      config: with a model, the config supplying the data/test/export sections.
    Returns ``{quantize: out_path}``.
    """
    from cornernet_tf.modeling.backbones import output_stride

    require("ai_edge_litert.schema_py_generated", "TFLite export")  # before the minutes of work

    unknown = sorted(set(out_paths) - set(QUANTIZATIONS))
    if unknown or not out_paths:
        raise InvalidValueError(
            f"quantize must be one of {QUANTIZATIONS}, got {unknown or 'nothing'}"
        )
    model, cfg = prepare_model(model_or_config, weights, config=config)
    if model.model_config.corner_pool_impl not in ("tf", "scan"):
        raise InvalidValueError(
            f"TFLite needs corner_pool_impl 'tf' (builtin operators), got {model.model_config.corner_pool_impl!r}"
        )
    input_hw = tflite_input_size(cfg, input_size)
    stride = output_stride(cfg.model)
    info = resolve_dataset_info(cfg, category_ids, dataset_info, weights)
    representative = None
    if "int8" in out_paths:
        folder = representative_images_dir or cfg.data.train_images
        if not folder:
            raise InvalidValueError(
                "int8 quantization needs --representative-images DIR or data.train_images in the config"
            )
        limit = int(num_representative or cfg.export.representative_images)
        representative = representative_images(find_images(folder), input_hw, stride, limit)
    out_hw = [-(-s // stride) for s in input_hw]
    channels = {"heat": cfg.model.num_classes, "tag": 1, "regr": 2}
    with tempfile.TemporaryDirectory(prefix="cornernet_tflite_") as tmp:
        saved_model = save_network(model, input_hw, os.path.join(tmp, "saved_model"))
        for quantize, out_path in out_paths.items():
            flatbuffer = convert_saved_model(saved_model, quantize, representative)
            write_bytes(out_path, flatbuffer)
            metadata = {
                "format": METADATA_FORMAT,
                "name": cfg.name,
                "backbone": cfg.model.backbone,
                "quantize": quantize,
                "input": {
                    "name": "images",
                    "dtype": "uint8",
                    "shape": [1, input_hw[0], input_hw[1], 3],
                },
                "outputs": {
                    name: [1, out_hw[0], out_hw[1], channels[name.split("_")[1]]]
                    for name in OUTPUT_KEYS
                },
                "output_stride": stride,
                "num_classes": cfg.model.num_classes,
                "class_names": list(info.class_names),
                "category_ids": list(info.category_ids),
                "postprocess": fixed_size_settings(cfg.test),
                "representative_images": len(representative or []) if quantize == "int8" else 0,
                "operators": list_operators(flatbuffer),
            }
            write_json(metadata_path(out_path), metadata, indent=1)
    return dict(out_paths)
