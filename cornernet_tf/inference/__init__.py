"""Inference: the official test procedure (:class:`Detector`), its in-graph version for export
(:class:`GraphDetector`), the official soft-NMS (``soft_nms``) and drawing helpers (``draw``).

Names are imported on first use, so that soft-NMS and drawing do not load TensorFlow.
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "Detector": "cornernet_tf.inference.detector",
        "Detections": "cornernet_tf.inference.detections",
        "ImageDetector": "cornernet_tf.inference.image_detector",
        "GraphDetector": "cornernet_tf.inference.graph_detector",
        "detect_images": "cornernet_tf.inference.graph_detector",
    },
)
