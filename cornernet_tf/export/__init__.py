"""Deployment: TF Serving SavedModels, TFLite (LiteRT) and ONNX models.

* ``saved_model``: :func:`export_saved_model`, the whole test procedure in one graph
  (``cornernet export``);
* ``tflite``: ``convert`` / ``convert_variants``, the network at a fixed input size, builtin
  operators only, float32 / fp16 / int8 (``cornernet export-tflite``);
* ``litert_runner``: :class:`LiteRTDetector`, runs a ``.tflite`` file with ``ai_edge_litert`` and
  ``postprocess`` (NumPy decode + soft-NMS);
* ``onnx``: :func:`export_onnx`, the network at a fixed input size as ONNX via tf2onnx
  (``cornernet export-onnx``);
* ``onnx_runner``: :class:`OnnxDetector`, runs a ``.onnx`` file with onnxruntime and the same
  NumPy post-processing (``fixed_size_runner``);
* ``common``: the export model (``corner_pool_impl="tf"``) and category ids.

Names are imported on first use, so that the LiteRT and ONNX runners work without TensorFlow.
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "export_saved_model": "cornernet_tf.export.saved_model",
        "LiteRTDetector": "cornernet_tf.export.litert_runner",
        "export_onnx": "cornernet_tf.export.onnx",
        "OnnxDetector": "cornernet_tf.export.onnx_runner",
    },
)
