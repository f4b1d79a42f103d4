"""Inference: the official test procedure (:class:`Detector`), its in-graph version for export
(:class:`GraphDetector`), the official soft-NMS (``inference.soft_nms``) and drawing helpers
(``inference.draw``)."""

__all__ = ["Detector", "GraphDetector", "detect_images"]


def __getattr__(name):
    # Lazy, so that importing soft-NMS or the drawing helpers does not load TensorFlow.
    if name == "Detector":
        from cornernet_tf.inference.detector import Detector

        return Detector
    if name in ("GraphDetector", "detect_images"):
        from cornernet_tf.inference import graph_detector

        return getattr(graph_detector, name)
    raise AttributeError(f"module 'cornernet_tf.inference' has no attribute {name!r}")
