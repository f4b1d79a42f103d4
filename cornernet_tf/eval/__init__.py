"""Evaluation and analysis.

``coco_eval`` (COCO metrics), ``runner`` (the dataset loop behind ``cornernet eval``), ``oracle``
(the paper's ground-truth-map oracle, Table 6), ``quadrants`` (corner AP per image quadrant,
Table 3) and ``detect_images`` (detection on image files for ``cornernet detect``).
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "evaluate": "cornernet_tf.eval.runner",
        "format_report": "cornernet_tf.eval.runner",
        "evaluate_detections": "cornernet_tf.eval.coco_eval",
        "detect_files": "cornernet_tf.eval.detect_images",
    },
)
