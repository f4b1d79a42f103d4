"""Run a model over a validation set and score it the COCO way (``cornernet eval`` and training).

:func:`evaluate` reads the validation data through the input pipeline
(:func:`cornernet_tf.data.pipeline.build_eval_dataset`, original images, no augmentation), so every
source the training reads works here too: COCO JSON + image folder, TFRecord shards, TFDS. Files
that cannot be read are skipped, logged and counted by that pipeline; they are left out of the
evaluated image set (a missing file says nothing about the detector) and listed in the metrics.
Grayscale, palette, RGBA and 16-bit images are converted to RGB.

Ground truth: for a COCO JSON source the file itself (crowd regions included, as COCO's own
evaluation uses them); for TFRecord / TFDS sources it is rebuilt from the decoded elements, which
have no crowd regions and use box areas for the small/medium/large split, so for published numbers
evaluate with the official ``instances_val2017.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

import numpy as np

from cornernet_tf.atomic_files import write_json
from cornernet_tf.config import Config
from cornernet_tf.errors import InvalidValueError
from cornernet_tf.eval.coco_eval import (
    evaluate_detections,
    format_metrics,
    load_ground_truth,
    to_coco_results,
)

logger = logging.getLogger("cornernet_tf.eval")

DETECTIONS_FILE = "detections.json"
METRICS_FILE = "metrics.json"
# Report counters (data/report.py) of images that never reach the detector.
SKIP_COUNTERS = (
    "images_missing_file",
    "images_unreadable",
    "images_unsupported_format",
    "images_too_large",
    "runtime_images_skipped",
    "runtime_records_skipped",
)
SKIP_KINDS = (
    "missing",
    "unreadable",
    "unsupported",
    "too_large",
    "undecodable",
    "bad_record",
    "bad_shard",
)


def eval_data_config(
    data_config,
    annotations=None,
    images=None,
    tfds=None,
    tfds_split=None,
    tfds_data_dir=None,
    tfrecords=None,
):
    """The validation part of ``data_config`` with an explicit source, in a fixed order, unaugmented."""
    if sum(bool(s) for s in (annotations or images, tfds, tfrecords)) > 1:
        raise InvalidValueError(
            "give one evaluation source: --annotations/--images, --tfds or --tfrecords"
        )
    if bool(annotations) != bool(images):
        raise InvalidValueError(
            "--annotations and --images go together (a COCO JSON and its image folder)"
        )
    changes = dict(augment=False, deterministic=True)
    if annotations:
        changes.update(
            val_annotations=os.fspath(annotations),
            val_images=os.fspath(images),
            val_tfrecords=None,
            tfds_name=None,
        )
    elif tfds:
        changes.update(tfds_name=tfds, val_annotations=None, val_images=None, val_tfrecords=None)
    elif tfrecords:
        changes.update(
            val_tfrecords=tfrecords, val_annotations=None, val_images=None, tfds_name=None
        )
    if tfds_split:
        changes["tfds_val_split"] = tfds_split
    if tfds_data_dir:
        changes["tfds_data_dir"] = tfds_data_dir
    return dataclasses.replace(data_config, **changes)


def _skipped_images(report) -> list[dict]:
    return [
        {"file": p.file, "reason": p.message, "kind": p.kind}
        for p in report.problems
        if p.kind in SKIP_KINDS
    ]


class _StreamGroundTruth:
    """COCO-format ground truth collected from decoded elements (TFRecord / TFDS sources)."""

    def __init__(self, info):
        self.info = info
        self.images, self.annotations = [], []

    def add(
        self, image_id: int, height: int, width: int, boxes: np.ndarray, classes: np.ndarray
    ) -> None:
        self.images.append({"id": int(image_id), "height": int(height), "width": int(width)})
        for (x1, y1, x2, y2), cls in zip(np.asarray(boxes, np.float64).reshape(-1, 4), classes):
            w, h = float(x2 - x1), float(y2 - y1)
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": int(image_id),
                    "category_id": int(self.info.category_ids[int(cls)]),
                    "bbox": [float(x1), float(y1), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )

    def coco(self):
        categories = [
            {"id": c, "name": n} for n, c in zip(self.info.class_names, self.info.category_ids)
        ]
        return load_ground_truth(
            {"images": self.images, "annotations": self.annotations, "categories": categories}
        )


def evaluate(
    model,
    config: Config,
    annotations: str | None = None,
    images: str | None = None,
    tfds: str | None = None,
    tfds_split: str | None = None,
    tfrecords: str | None = None,
    out_dir: str | None = None,
    max_images: int | None = None,
    oracle: str | None = None,
    quadrants: bool = False,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """Detect on every validation image and return the COCO metrics (see ``evaluate_detections``).

    The data source is ``annotations`` + ``images``, ``tfds``, ``tfrecords`` (a glob of shards),
    or else the config's validation data. ``oracle`` (``heatmaps`` | ``heatmaps+offsets``) uses
    ground-truth maps (:mod:`cornernet_tf.eval.oracle`); ``quadrants`` adds the corner-detection mAP per image
    quadrant (:mod:`cornernet_tf.eval.quadrants`) as ``metrics["quadrants"]``. With ``out_dir``,
    writes ``detections.json`` (COCO results) and ``metrics.json``. ``extra`` is copied into
    ``metrics.json`` (e.g. the weights file).
    """
    from cornernet_tf.data.image_scale import scaled_test_config
    from cornernet_tf.data.pipeline import build_eval_dataset, load_source
    from cornernet_tf.inference.detector import Detector

    if max_images is not None and max_images < 1:
        raise InvalidValueError(f"max_images must be >= 1, got {max_images}")
    data_config = eval_data_config(
        config.data, annotations, images, tfds, tfds_split, tfrecords=tfrecords
    )
    source = load_source(data_config, training=False)
    info = source.info
    num_classes = model.model_config.num_classes
    if info.num_classes > num_classes:
        raise InvalidValueError(
            f"the dataset has {info.num_classes} classes but the model predicts {num_classes}: "
            "set data.class_names to the classes the model was trained on"
        )
    if info.num_classes < num_classes:
        logger.warning(
            "the model predicts %d classes, the dataset has %d: detections of classes %d.. are ignored",
            num_classes,
            info.num_classes,
            info.num_classes,
        )
    dataset = build_eval_dataset(data_config, resize=False, source=source)
    if max_images:
        dataset = dataset.take(max_images)

    mean, std = tuple(data_config.mean), tuple(data_config.std)
    test_config = scaled_test_config(config)  # test.scales times data.image_scale
    if oracle:
        from cornernet_tf.eval.oracle import OracleDetector

        detector = OracleDetector(model, oracle, test_config, data_config, num_classes, mean, std)
    else:
        detector = Detector(model, test_config, mean=mean, std=std)
    corner_predictor = quadrant_eval = None
    if quadrants:
        from cornernet_tf.eval.quadrants import CornerPredictor, QuadrantCornerEvaluator

        corner_predictor = CornerPredictor(model, test_config, mean, std)
        quadrant_eval = QuadrantCornerEvaluator(num_classes, data_config.gaussian_iou)
    stream_gt = None if source.kind == "coco" else _StreamGroundTruth(info)

    total = (
        source.num_images if not max_images else min(max_images, source.num_images or max_images)
    )
    results, image_ids = [], []
    start = time.perf_counter()
    iterator = dataset.as_numpy_iterator()
    if progress:
        iterator = _progress(iterator, total)
    for element in iterator:
        image, image_id = element["image"], int(element["image_id"])
        boxes, classes = element["boxes"], element["classes"]
        if oracle:
            dets = detector.detect(image, boxes, classes)
        else:
            dets = detector.detect(image)
        keep = dets["classes"] < info.num_classes
        dets = {k: v[keep] for k, v in dets.items()}
        results.extend(to_coco_results(image_id, dets, info.category_ids))
        image_ids.append(image_id)
        if stream_gt is not None:
            stream_gt.add(image_id, image.shape[0], image.shape[1], boxes, classes)
        if quadrant_eval is not None:
            corners, geometry = corner_predictor(image)
            quadrant_eval.add_image(image.shape[:2], boxes, classes, corners, geometry)
    seconds = time.perf_counter() - start
    if not image_ids:
        raise InvalidValueError(
            f"no image could be read from the validation data\n{source.report.summary()}"
        )

    coco_gt = (
        load_ground_truth(data_config.val_annotations) if stream_gt is None else stream_gt.coco()
    )
    metrics = evaluate_detections(coco_gt, results, image_ids, info.category_ids, info.class_names)
    skipped = _skipped_images(source.report)
    metrics["images"] = {
        "evaluated": len(image_ids),
        "skipped": int(sum(source.report.counts.get(k, 0) for k in SKIP_COUNTERS)),
        "converted": int(source.report.counts.get("images_converted", 0)),
        "skipped_files": skipped,
    }
    metrics["seconds_per_image"] = seconds / len(image_ids)
    metrics["oracle"] = oracle
    metrics["source"] = {
        "kind": source.kind,
        "annotations": data_config.val_annotations,
        "images": data_config.val_images,
        "tfds": data_config.tfds_name if source.kind == "tfds" else None,
        "tfrecords": data_config.val_tfrecords if source.kind == "tfrecord" else None,
    }
    metrics["test"] = dataclasses.asdict(test_config)
    if quadrant_eval is not None:
        metrics["quadrants"] = quadrant_eval.result()
    if extra:
        metrics.update(extra)
    if out_dir:
        write_outputs(out_dir, results, metrics)
    return metrics


def write_outputs(out_dir: str, results: list, metrics: dict) -> dict:
    """``detections.json`` (COCO results) and ``metrics.json`` in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "detections": os.path.join(out_dir, DETECTIONS_FILE),
        "metrics": os.path.join(out_dir, METRICS_FILE),
    }
    write_json(paths["detections"], results)
    write_json(paths["metrics"], _json_ready(metrics), indent=1)
    return paths


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def format_report(metrics: dict) -> str:
    """What ``cornernet eval`` prints: the COCO table, per-class AP, quadrants, and skipped images."""
    lines = []
    if metrics.get("oracle"):
        lines.append(f" Oracle: ground-truth {metrics['oracle']} (embeddings predicted)")
    lines.append(format_metrics(metrics))
    if "quadrants" in metrics:
        from cornernet_tf.eval.quadrants import format_quadrants

        lines += ["", format_quadrants(metrics["quadrants"])]
    images = metrics.get("images", {})
    lines.append("")
    line = f" {images.get('evaluated', metrics.get('num_images', 0))} images evaluated"
    if images.get("converted"):
        line += f", {images['converted']} converted to RGB"
    if images.get("skipped"):
        line += f", {images['skipped']} skipped (unreadable or truncated):"
    lines.append(line)
    for item in images.get("skipped_files", [])[:20]:
        lines.append(f"   {item['file']}: {item['reason']}")
    if len(images.get("skipped_files", [])) > 20:
        lines.append(f"   ... and {len(images['skipped_files']) - 20} more (see metrics.json)")
    if "seconds_per_image" in metrics:
        lines.append(f" {metrics['seconds_per_image']:.3f} s per image")
    return "\n".join(lines)


def _progress(iterator, total: int | None):
    """A tqdm bar on a terminal; in redirected output (where tqdm's carriage returns would pile
    up) a plain line at every tenth of the images."""
    if getattr(sys.stderr, "isatty", None) and sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterator, total=total, desc="eval", unit="img", dynamic_ncols=True)
        return
    every = max((total or 0) // 10, 1) if total else 100
    start = time.perf_counter()
    for done, element in enumerate(iterator, 1):
        yield element
        if done % every == 0 and done != total:
            rate = done / max(time.perf_counter() - start, 1e-9)
            print(
                f"eval: {done}/{total or '?'} images ({rate:.2f} img/s)",
                file=sys.stderr,
                flush=True,
            )
