"""COCO box evaluation with pycocotools, plus the numbers the paper reports beyond its summary.

:func:`evaluate_detections` runs the standard ``COCOeval`` (the 12 summary numbers: AP, AP50, AP75,
APs/m/l, AR1/10/100, ARs/m/l) and reads two more things from the same precision array
``eval["precision"]`` of shape ``[T IoU, R recall, K class, A area, M maxDets]``:

* AP at single IoU thresholds 0.6 / 0.7 / 0.8 / 0.9 (the paper's Table 5, which shows that
  CornerNet's advantage grows with the IoU), computed exactly as pycocotools computes AP50/AP75;
* AP of each class (area "all", 100 detections), averaged over the 10 IoU thresholds.

A value of -1 means "undefined" (no ground truth of that kind among the evaluated images), as in
pycocotools.

Detections are COCO result dicts ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``;
:func:`to_coco_results` builds them from a detector's output (contiguous 0-based classes mapped
back to the dataset's category ids, boxes from corners to ``[x, y, w, h]``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cornernet_tf.atomic_files import write_json
from cornernet_tf.errors import InvalidValueError

# Names of COCOeval.stats, in its order.
SUMMARY_KEYS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
# Single-IoU APs of the paper's Table 5 (the summary already holds 0.5 and 0.75).
EXTRA_IOUS = (0.6, 0.7, 0.8, 0.9)
UNDEFINED = -1.0


def _quiet():
    """pycocotools prints progress on stdout; keep it out of our output."""
    return contextlib.redirect_stdout(io.StringIO())


# --------------------------------------------------------------------------- ground truth


def load_ground_truth(source: str | os.PathLike | Mapping | Any):
    """A pycocotools ``COCO`` index from a JSON path, a COCO-format dict, or an existing ``COCO``.

    Fields pycocotools needs but small hand-made datasets often omit are filled in on a copy:
    ``area`` (``w * h`` of the bbox) and ``iscrowd`` (0). The caller's dict is not modified.
    """
    from pycocotools.coco import COCO

    if isinstance(source, COCO):
        data = source.dataset
    elif isinstance(source, Mapping):
        data = source
    else:
        from cornernet_tf.data.coco import read_json

        data = read_json(source)
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise InvalidValueError(f"ground truth needs an '{key}' list (COCO format)")
    annotations = []
    for ann in data.get("annotations") or []:
        ann = dict(ann)
        if "bbox" not in ann or len(ann["bbox"]) != 4:
            raise InvalidValueError(f"annotation {ann.get('id')!r} has no [x, y, w, h] bbox")
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
        annotations.append(ann)
    dataset = {
        "images": list(data["images"]),
        "categories": list(data["categories"]),
        "annotations": annotations,
    }
    coco = COCO()
    coco.dataset = dataset
    with _quiet():
        coco.createIndex()
    return coco


# --------------------------------------------------------------------------- detections


def to_coco_results(
    image_id: int,
    detections: Mapping[str, np.ndarray],
    category_ids: Sequence[int],
    min_score: float = 0.0,
) -> list[dict]:
    """One image's detector output → COCO result dicts.

    ``detections`` holds ``boxes`` [N, 4] ``x1, y1, x2, y2`` in pixels, ``scores`` [N] and
    ``classes`` [N] 0-based contiguous; ``category_ids[k]`` is the dataset id of class ``k``.
    """
    boxes = np.asarray(detections["boxes"], np.float64).reshape(-1, 4)
    scores = np.asarray(detections["scores"], np.float64).reshape(-1)
    classes = np.asarray(detections["classes"]).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(
            f"image {image_id}: {len(boxes)} boxes, {len(scores)} scores, {len(classes)} classes"
        )
    if len(classes) and (classes.min() < 0 or classes.max() >= len(category_ids)):
        raise ValueError(
            f"image {image_id}: class index {int(classes.max())} outside the {len(category_ids)} known classes"
        )
    out = []
    for (x1, y1, x2, y2), score, cls in zip(boxes, scores, classes):
        if score < min_score:
            continue
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[int(cls)]),
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "score": float(score),
            }
        )
    return out


def write_results(path: str, results: Sequence[dict]) -> None:
    """Write COCO results JSON (what the COCO evaluation server accepts)."""
    write_json(path, list(results))


def read_results(path: str) -> list[dict]:
    """Read COCO results JSON, checking each entry has the four fields evaluation needs."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"results file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        results = json.load(fh)
    if not isinstance(results, list):
        raise InvalidValueError(f"{path}: COCO results must be a list of objects")
    for i, r in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r]
        if missing:
            raise InvalidValueError(f"{path}: result {i} lacks {', '.join(missing)}")
    return results


# --------------------------------------------------------------------------- evaluation


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else UNDEFINED


def ap_at_iou(coco_eval, iou: float) -> float:
    """AP at one IoU threshold (area all, the largest maxDets), as pycocotools computes AP50."""
    params = coco_eval.params
    matches = np.where(np.isclose(params.iouThrs, iou))[0]
    if not matches.size:
        raise ValueError(f"IoU {iou} is not one of the evaluated thresholds {list(params.iouThrs)}")
    area = params.areaRngLbl.index("all")
    return _mean_defined(coco_eval.eval["precision"][matches[0], :, :, area, -1])


def per_class_ap(coco_eval) -> list[float]:
    """AP (IoU 0.5:0.95, area all, the largest maxDets) of each evaluated category, in catIds order."""
    area = coco_eval.params.areaRngLbl.index("all")
    precision = coco_eval.eval["precision"]
    return [_mean_defined(precision[:, :, k, area, -1]) for k in range(precision.shape[2])]


def run_cocoeval(coco_gt, detections: str | Sequence[dict], image_ids=None, category_ids=None):
    """Run ``COCOeval`` (bbox) and return it, evaluated and accumulated; ``summarize`` not yet run.

    ``image_ids`` / ``category_ids`` restrict the evaluation (default: all of ``coco_gt``). No
    detections at all is a valid input (everything scores 0), unlike ``COCO.loadRes``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(detections, (str, os.PathLike)):
        detections = read_results(os.fspath(detections))
    detections = copy.deepcopy(list(detections))  # loadRes adds fields in place
    known = set(coco_gt.getImgIds())
    stray = sorted({d["image_id"] for d in detections} - known)
    if stray:
        raise ValueError(f"detections refer to image ids not in the ground truth: {stray[:10]}")
    if detections:
        with _quiet():
            coco_dt = coco_gt.loadRes(detections)
    else:
        coco_dt = COCO()
        coco_dt.dataset = {
            "images": list(coco_gt.dataset["images"]),
            "categories": [],
            "annotations": [],
        }
        with _quiet():
            coco_dt.createIndex()
    coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
    if image_ids is not None:
        coco_eval.params.imgIds = sorted(int(i) for i in image_ids)
    if category_ids is not None:
        coco_eval.params.catIds = [int(c) for c in category_ids]
    with _quiet():
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


def evaluate_detections(
    coco_gt,
    detections: str | Sequence[dict],
    image_ids: Iterable[int] | None = None,
    category_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict:
    """COCO box metrics of ``detections`` against ``coco_gt`` (a ``COCO``, a dict or a JSON path).

    Returns a dict with the 12 summary numbers (:data:`SUMMARY_KEYS`), ``AP60``, ``AP70``,
    ``AP80``, ``AP90``, ``per_class`` (class name → AP), ``summary`` (pycocotools' printed table)
    and ``num_images`` / ``num_detections``. ``category_ids`` (default: every category of the
    ground truth, ascending) fixes the classes and the order of ``class_names``.
    """
    from pycocotools.coco import COCO

    if not isinstance(coco_gt, COCO):
        coco_gt = load_ground_truth(coco_gt)
    if category_ids is None:
        category_ids = sorted(coco_gt.getCatIds())
    category_ids = [int(c) for c in category_ids]
    if class_names is None:
        cats = coco_gt.cats
        class_names = [str(cats[c].get("name", c)) if c in cats else str(c) for c in category_ids]
    if len(class_names) != len(category_ids):
        raise ValueError(f"{len(class_names)} class names for {len(category_ids)} category ids")
    image_ids = (
        sorted(coco_gt.getImgIds()) if image_ids is None else sorted(int(i) for i in image_ids)
    )
    if isinstance(detections, (str, os.PathLike)):
        detections = read_results(os.fspath(detections))
    if not image_ids:
        raise ValueError("no image to evaluate")
    stray = sorted({d["image_id"] for d in detections} - set(coco_gt.getImgIds()))
    if stray:
        raise ValueError(f"detections refer to image ids not in the ground truth: {stray[:10]}")
    selected = set(image_ids)
    detections = [d for d in detections if d["image_id"] in selected]

    coco_eval = run_cocoeval(coco_gt, detections, image_ids, category_ids)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        coco_eval.summarize()
    metrics: dict[str, Any] = {key: float(v) for key, v in zip(SUMMARY_KEYS, coco_eval.stats)}
    for iou in EXTRA_IOUS:
        metrics[f"AP{int(round(iou * 100))}"] = ap_at_iou(coco_eval, iou)
    metrics["per_class"] = dict(zip(class_names, per_class_ap(coco_eval)))
    metrics["num_images"] = len(image_ids)
    metrics["num_detections"] = len(detections)
    metrics["summary"] = buffer.getvalue().rstrip("\n")
    return metrics


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """pycocotools' table, the single-IoU APs of Table 5 in the same style, and per-class AP."""
    lines = [metrics["summary"]] if metrics.get("summary") else []
    template = " Average Precision  (AP) @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
    for iou in EXTRA_IOUS:
        key = f"AP{int(round(iou * 100))}"
        if key in metrics:
            lines.append(template.format(f"{iou:0.2f}", "all", 100, metrics[key]))
    per_class = metrics.get("per_class") or {}
    if per_class:
        width = max(10, max(len(n) for n in per_class))
        lines.append("")
        lines.append(f" {'class':<{width}}  AP")
        for name, ap in per_class.items():
            shown = f"{ap:0.3f}" if ap > UNDEFINED else "  -  (no ground truth)"
            lines.append(f" {name:<{width}}  {shown}")
    return "\n".join(lines)
