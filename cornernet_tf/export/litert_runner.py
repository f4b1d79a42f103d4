"""Run an exported CornerNet ``.tflite`` model with the LiteRT interpreter (``ai_edge_litert``).

Needs NumPy, ``ai-edge-litert`` and this package, not TensorFlow: the interpreter runs the network
at its fixed input size, :mod:`cornernet_tf.export.postprocess` does the rest (canvas placement,
decoding, soft-NMS, shared with the ONNX runner through
:class:`~cornernet_tf.export.fixed_size_runner.FixedSizeDetector`), configured by the JSON written
beside the model (its ``postprocess`` entry holds the ``TestConfig`` fields that apply).

    detector = LiteRTDetector("squeeze_int8.tflite", num_threads=2)
    result = detector.detect(rgb_uint8_image)   # boxes (x1, y1, x2, y2 pixels), scores, classes, category_ids
"""

from __future__ import annotations

import os

import numpy as np

from cornernet_tf.errors import InvalidValueError
from cornernet_tf.export.fixed_size_runner import FixedSizeDetector
from cornernet_tf.export.fixed_size_runner import metadata_path as metadata_path
from cornernet_tf.export.fixed_size_runner import read_metadata as _read_metadata
from cornernet_tf.extras import require
from cornernet_tf.log_noise import drop_native_lines

METADATA_FORMAT = "cornernet-tflite/1"
# LiteRT says at every first inference that it uses its default CPU delegate.
HARMLESS_LITERT_LINES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


def read_metadata(tflite_path: str) -> dict:
    """The JSON beside ``tflite_path`` (``FILE.tflite.json``)."""
    return _read_metadata(tflite_path, METADATA_FORMAT, "cornernet export-tflite")


class LiteRTDetector(FixedSizeDetector):
    """CornerNet detection with a ``.tflite`` file from ``cornernet export-tflite``.

    Args:
      model_path: the ``.tflite`` file (its ``.json`` must be beside it unless ``metadata`` is given).
      num_threads: interpreter threads.
      metadata: the metadata dict, to override or replace the JSON file.
    """

    def __init__(self, model_path: str, num_threads: int = 2, metadata: dict | None = None):
        Interpreter = require("ai_edge_litert.interpreter", "running a .tflite model").Interpreter

        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"TFLite model not found: {model_path}")
        super().__init__(model_path, metadata or read_metadata(model_path))
        self.interpreter = Interpreter(model_path=model_path, num_threads=int(num_threads))
        self._runner = self.interpreter.get_signature_runner("serving_default")
        self._started = False
        shape = self.metadata["input"]["shape"]
        actual = self._runner.get_input_details()["images"]
        if tuple(actual["shape"]) != tuple(shape) or actual["dtype"] != np.uint8:
            raise InvalidValueError(
                f"{model_path}: input is {tuple(actual['shape'])} {actual['dtype']}, "
                f"the metadata says {tuple(shape)} uint8"
            )

    def run_network(self, canvas: np.ndarray) -> dict:
        if self._started:
            return self._runner(images=canvas)
        with drop_native_lines(HARMLESS_LITERT_LINES):  # the delegate is created on the first run
            outputs = self._runner(images=canvas)
        self._started = True
        return outputs

    def __repr__(self) -> str:
        return (
            f"LiteRTDetector({self.model_path!r}, input={self.input_hw}, quantize={self.metadata.get('quantize')!r}, "
            f"classes={len(self.category_ids)})"
        )
