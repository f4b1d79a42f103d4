"""Deployment: TF Serving SavedModels and TFLite (LiteRT) models.

* :mod:`cornernet_tf.export.saved_model`: ``export_saved_model(model_or_config, weights, out_dir,
  version, category_ids)``, the whole test procedure in one graph (``cornernet export``);
* :mod:`cornernet_tf.export.tflite`: ``convert(...)`` / ``convert_variants(...)``, the network at a
  fixed input size, builtin operators only, float32 / fp16 / int8 (``cornernet export-tflite``);
* :mod:`cornernet_tf.export.litert_runner`: ``LiteRTDetector``, runs a ``.tflite`` file with
  ``ai_edge_litert`` and :mod:`cornernet_tf.export.postprocess` (NumPy decode + soft-NMS);
* :mod:`cornernet_tf.export.common`: the export model (``corner_pool_impl="tf"``) and category ids.

Submodules are imported on demand so that the LiteRT runner works without TensorFlow.
"""
