"""Run an exported CornerNet ``.tflite`` model with the LiteRT interpreter (``ai_edge_litert``).

Needs NumPy, ``ai-edge-litert`` and this package, not TensorFlow: the interpreter runs the network
at its fixed input size, :mod:`cornernet_tf.export.postprocess` does the rest (canvas placement,
decoding, soft-NMS), configured by the JSON written beside the model (its ``postprocess`` entry
holds the ``TestConfig`` fields that apply).

    detector = LiteRTDetector("squeeze_int8.tflite", num_threads=2)
    result = detector.detect(rgb_uint8_image)   # boxes (x1, y1, x2, y2 pixels), scores, classes, category_ids
"""

from __future__ import annotations

import json
import os

import numpy as np

from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.detection.settings import as_test_config
from cornernet_tf.export import postprocess as pp

METADATA_FORMAT = "cornernet-tflite/1"


def metadata_path(tflite_path: str) -> str:
    """The JSON written beside a ``.tflite`` file."""
    return f"{os.fspath(tflite_path)}.json"


def read_metadata(tflite_path: str) -> dict:
    """The JSON beside ``tflite_path`` (``FILE.tflite.json``)."""
    path = metadata_path(tflite_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: it is written by `cornernet export-tflite` beside {tflite_path}"
        )
    with open(path, encoding="utf-8") as fh:
        meta = json.load(fh)
    if meta.get("format") != METADATA_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r} is not {METADATA_FORMAT!r}")
    return meta


class LiteRTDetector:
    """CornerNet detection with a ``.tflite`` file from ``cornernet export-tflite``.

    Args:
      model_path: the ``.tflite`` file (its ``.json`` must be beside it unless ``metadata`` is given).
      num_threads: interpreter threads.
      metadata: the metadata dict, to override or replace the JSON file.
    """

    def __init__(self, model_path: str, num_threads: int = 2, metadata: dict | None = None):
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"TFLite model not found: {model_path}")
        self.model_path = model_path
        self.metadata = metadata or read_metadata(model_path)
        self.interpreter = Interpreter(model_path=model_path, num_threads=int(num_threads))
        self._runner = self.interpreter.get_signature_runner("serving_default")
        shape = self.metadata["input"]["shape"]
        self.input_hw = (int(shape[1]), int(shape[2]))
        self.output_stride = int(self.metadata["output_stride"])
        self.category_ids = np.asarray(self.metadata["category_ids"], np.int64)
        self.class_names = list(self.metadata.get("class_names") or [])
        # The test settings the export recorded (a TestConfig; defaults for fields it lacks).
        self.config = as_test_config(self.metadata.get("postprocess") or {})
        actual = self._runner.get_input_details()["images"]
        if tuple(actual["shape"]) != tuple(shape) or actual["dtype"] != np.uint8:
            raise ValueError(
                f"{model_path}: input is {tuple(actual['shape'])} {actual['dtype']}, "
                f"the metadata says {tuple(shape)} uint8"
            )

    def maps(self, canvas: np.ndarray) -> dict:
        """The six raw maps (float32 NHWC, batch 1) for a prepared uint8 canvas ``[1, S_h, S_w, 3]``."""
        canvas = np.asarray(canvas)
        if canvas.dtype != np.uint8 or canvas.shape != (1,) + self.input_hw + (3,):
            raise ValueError(
                f"expected a uint8 canvas of shape {(1,) + self.input_hw + (3,)}, "
                f"got {canvas.dtype} {canvas.shape}"
            )
        outputs = self._runner(images=canvas)
        return {name: np.array(outputs[name], np.float32) for name in OUTPUT_KEYS}

    def detect(self, image) -> dict:
        """Detections for one RGB uint8 image: ``boxes`` [N, 4] (x1, y1, x2, y2 pixels), ``scores``,
        ``classes`` (0-based) and ``category_ids`` (the dataset's), best first."""
        canvas, geometry = pp.prepare_input(image, self.input_hw, self.output_stride)
        result = pp.postprocess(self.maps(canvas), geometry, self.config)
        result["category_ids"] = self.category_ids[result["classes"]]
        return result

    def __repr__(self) -> str:
        return (
            f"LiteRTDetector({self.model_path!r}, input={self.input_hw}, quantize={self.metadata.get('quantize')!r}, "
            f"classes={len(self.category_ids)})"
        )
