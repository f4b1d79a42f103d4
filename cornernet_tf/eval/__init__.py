"""Evaluation and analysis: COCO metrics (coco_eval), the dataset runner behind ``cornernet eval``
(runner), the paper's ground-truth-map oracle (oracle, Table 6) and corner AP per image quadrant
(quadrants, Table 3), and detection on image files for ``cornernet detect`` (detect_images)."""
