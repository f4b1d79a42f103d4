"""Run an exported CornerNet ``.onnx`` model with onnxruntime, without TensorFlow.

The same NumPy test procedure as the LiteRT runner
(:class:`~cornernet_tf.export.fixed_size_runner.FixedSizeDetector`: canvas placement, decoding,
soft-NMS), configured by ``FILE.onnx.json`` written by ``cornernet export-onnx``; onnxruntime
runs only the network.

    detector = OnnxDetector("tiny.onnx", num_threads=2)
    result = detector.detect(rgb_uint8_image)   # boxes (x1, y1, x2, y2 pixels), scores, classes, category_ids
"""

from __future__ import annotations

import os

import numpy as np

from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.errors import InvalidValueError
from cornernet_tf.export.fixed_size_runner import FixedSizeDetector, read_metadata
from cornernet_tf.extras import require

METADATA_FORMAT = "cornernet-onnx/1"


def read_onnx_metadata(onnx_path: str) -> dict:
    """The JSON beside ``onnx_path`` (``FILE.onnx.json``)."""
    return read_metadata(onnx_path, METADATA_FORMAT, "cornernet export-onnx")


def _onnxruntime():
    return require("onnxruntime", "running ONNX models")


class OnnxDetector(FixedSizeDetector):
    """CornerNet detection with a ``.onnx`` file from ``cornernet export-onnx``.

    Args:
      model_path: the ``.onnx`` file (its ``.json`` must be beside it unless ``metadata`` is given).
      num_threads: onnxruntime intra-op threads.
      metadata: the metadata dict, to override or replace the JSON file.
      providers: onnxruntime execution providers (default CPU).
    """

    def __init__(
        self,
        model_path: str,
        num_threads: int = 2,
        metadata: dict | None = None,
        providers: list | None = None,
    ):
        ort = _onnxruntime()
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"ONNX model not found: {model_path}")
        super().__init__(model_path, metadata or read_onnx_metadata(model_path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            model_path, options, providers=providers or ["CPUExecutionProvider"]
        )
        inputs = {i.name: i for i in self.session.get_inputs()}
        shape = [1, self.input_hw[0], self.input_hw[1], 3]
        actual = inputs.get("images")
        if len(inputs) != 1 or actual is None or list(actual.shape) != shape:
            described = {name: (i.shape, i.type) for name, i in inputs.items()}
            raise InvalidValueError(
                f"{model_path}: inputs are {described}, the metadata says images {shape}"
            )
        if actual.type != "tensor(uint8)":
            raise InvalidValueError(
                f"{model_path}: input images is {actual.type}, expected tensor(uint8)"
            )
        missing = sorted(set(OUTPUT_KEYS) - {o.name for o in self.session.get_outputs()})
        if missing:
            raise InvalidValueError(f"{model_path}: outputs {missing} are missing")

    def run_network(self, canvas: np.ndarray) -> dict:
        values = self.session.run(list(OUTPUT_KEYS), {"images": canvas})
        return dict(zip(OUTPUT_KEYS, values))

    def __repr__(self) -> str:
        return (
            f"OnnxDetector({self.model_path!r}, input={self.input_hw}, opset={self.metadata.get('opset')}, "
            f"classes={len(self.category_ids)})"
        )
