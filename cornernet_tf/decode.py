"""The TF decoder lives in :mod:`cornernet_tf.detection.decode`; ``cornernet_tf.decode.decode`` stays
importable under this name."""

from cornernet_tf.detection.contract import REJECTED_SCORE
from cornernet_tf.detection.decode import decode, decode_outputs, heatmap_nms, topk_corners

__all__ = ["REJECTED_SCORE", "decode", "decode_outputs", "heatmap_nms", "topk_corners"]
