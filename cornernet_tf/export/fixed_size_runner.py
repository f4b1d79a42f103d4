"""What every fixed-input-size runtime shares: the JSON beside the model and the NumPy test procedure.

A ``.tflite`` or ``.onnx`` file from our exporters maps one uint8 canvas ``[1, S_h, S_w, 3]`` to
the six raw maps. :class:`FixedSizeDetector` reads the JSON written beside it (input size, output
stride, category ids, test settings) and runs everything around the network with
:mod:`cornernet_tf.export.postprocess` (canvas placement, decoding, soft-NMS), so that each
runtime only supplies :meth:`FixedSizeDetector.run_network`. No TensorFlow is imported.
"""

from __future__ import annotations

import json
import os

import numpy as np

from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.detection.settings import as_test_config
from cornernet_tf.errors import InvalidValueError
from cornernet_tf.export import postprocess as pp


def metadata_path(model_path: str) -> str:
    """The JSON written beside an exported model (``FILE.tflite.json``, ``FILE.onnx.json``)."""
    return f"{os.fspath(model_path)}.json"


def read_metadata(model_path: str, expected_format: str, command: str) -> dict:
    """The JSON beside ``model_path``, checked to be of ``expected_format`` (written by ``command``)."""
    path = metadata_path(model_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: it is written by `{command}` beside {model_path}"
        )
    with open(path, encoding="utf-8") as fh:
        meta = json.load(fh)
    if meta.get("format") != expected_format:
        raise InvalidValueError(f"{path}: format {meta.get('format')!r} is not {expected_format!r}")
    return meta


class FixedSizeDetector:
    """Detection with an exported fixed-size network; subclasses run the network itself.

    Attributes read from the metadata: ``input_hw``, ``output_stride``, ``category_ids``,
    ``class_names`` and ``config`` (the recorded test settings, a ``TestConfig``).
    """

    def __init__(self, model_path: str, metadata: dict):
        self.model_path = model_path
        self.metadata = metadata
        shape = metadata["input"]["shape"]
        self.input_hw = (int(shape[1]), int(shape[2]))
        self.output_stride = int(metadata["output_stride"])
        self.category_ids = np.asarray(metadata["category_ids"], np.int64)
        self.class_names = list(metadata.get("class_names") or [])
        # The test settings the export recorded (a TestConfig; defaults for fields it lacks).
        self.config = as_test_config(metadata.get("postprocess") or {})

    def run_network(self, canvas: np.ndarray) -> dict:
        """``{map name: array}`` for a checked canvas; implemented by each runtime."""
        raise NotImplementedError

    def maps(self, canvas: np.ndarray) -> dict:
        """The six raw maps (float32 NHWC, batch 1) for a prepared uint8 canvas ``[1, S_h, S_w, 3]``."""
        canvas = np.asarray(canvas)
        if canvas.dtype != np.uint8 or canvas.shape != (1,) + self.input_hw + (3,):
            raise InvalidValueError(
                f"expected a uint8 canvas of shape {(1,) + self.input_hw + (3,)}, "
                f"got {canvas.dtype} {canvas.shape}"
            )
        outputs = self.run_network(canvas)
        return {name: np.array(outputs[name], np.float32) for name in OUTPUT_KEYS}

    def detect(self, image) -> dict:
        """Detections for one RGB uint8 image: ``boxes`` [N, 4] (x1, y1, x2, y2 pixels), ``scores``,
        ``classes`` (0-based) and ``category_ids`` (the dataset's), best first."""
        canvas, geometry = pp.prepare_input(image, self.input_hw, self.output_stride)
        result = pp.postprocess(self.maps(canvas), geometry, self.config)
        result["category_ids"] = self.category_ids[result["classes"]]
        return result
