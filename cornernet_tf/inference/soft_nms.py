"""The official soft-NMS now lives in :mod:`cornernet_tf.detection.soft_nms`; this name stays for
existing imports."""

from cornernet_tf.detection.soft_nms import METHODS, method_code, soft_nms, soft_nms_merge

__all__ = ["METHODS", "method_code", "soft_nms", "soft_nms_merge"]
