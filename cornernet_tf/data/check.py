"""``cornernet data check``: validate a COCO-format dataset and print what is in it.

The summary answers the questions worth asking before a long training run: how many images
and boxes are usable, how the classes are balanced, what sizes the boxes have (CornerNet's
corner heatmaps are 4x smaller than the input, so tiny boxes matter), and which files or
annotations are broken -- each named, with the annotation id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from cornernet_tf.data.coco import CocoDataset, DatasetError, load_coco
from cornernet_tf.data.report import DatasetReport

# Box side sqrt(w * h) bins in pixels, and COCO's area ranges (small < 32^2 <= medium < 96^2).
SIZE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, float("inf"))


@dataclasses.dataclass
class CheckResult:
    dataset: CocoDataset | None
    report: DatasetReport
    text: str

    @property
    def fatal(self) -> bool:
        return self.dataset is None or self.report.fatal


def _bar(n: int, top: int, width: int = 40) -> str:
    return "#" * (int(round(width * n / top)) if top else 0)


def summarize(dataset: CocoDataset, input_size: Sequence[int] | None = None) -> str:
    """Images, boxes per class, box-size histogram, objects per image; with ``input_size``, the
    ``data.image_scale: auto`` factor these boxes give for that network input."""
    info, records = dataset.info, dataset.records
    classes = np.concatenate([r.classes for r in records]) if records else np.zeros(0, np.int32)
    boxes = np.concatenate([r.boxes for r in records]) if records else np.zeros((0, 4))
    per_image = np.array([r.num_objects for r in records])
    lines = [
        f"annotations: {dataset.annotation_file}",
        f"images:      {dataset.image_dir}",
        f"{len(records)} images, {len(classes)} boxes, {info.num_classes} classes; objects per image: "
        f"min {per_image.min() if len(per_image) else 0}, mean {per_image.mean() if len(per_image) else 0:.2f}, "
        f"max {per_image.max() if len(per_image) else 0}",
        "",
        "boxes per class:",
        f"  {'class':>5}  {'category id':>11}  {'name':<24} {'boxes':>8}",
    ]
    counts = np.bincount(classes, minlength=info.num_classes)
    top = counts.max() if len(counts) else 0
    for k, (name, cid) in enumerate(zip(info.class_names, info.category_ids)):
        lines.append(
            f"  {k:>5}  {cid:>11}  {name[:24]:<24} {counts[k]:>8}  {_bar(counts[k], top, 30)}"
        )
    empty = [info.class_names[k] for k in range(info.num_classes) if counts[k] == 0]
    if empty:
        lines.append(f"  classes without any box: {', '.join(empty)}")
    lines += ["", "box size sqrt(w*h) in pixels:"]
    sides = np.sqrt(
        np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    )
    hist, _ = np.histogram(sides, bins=np.array(SIZE_BINS))
    top = hist.max() if len(hist) else 0
    for lo, hi, n in zip(SIZE_BINS[:-1], SIZE_BINS[1:], hist):
        label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
        lines.append(f"  {label:>10}  {n:>8}  {_bar(n, top)}")
    area = sides**2
    lines.append(
        f"  COCO ranges: small {int((area < 32**2).sum())}, medium {int(((area >= 32**2) & (area < 96**2)).sum())}, "
        f"large {int((area >= 96**2).sum())}"
    )
    if input_size is not None:
        from cornernet_tf.data.image_scale import auto_image_scale

        lines += ["", auto_image_scale(boxes, input_size).describe()]
    return "\n".join(lines)


def check_dataset(
    annotations: str,
    images: str,
    scan: str = "decode",
    max_objects: int = 128,
    class_names: Sequence[str] | None = None,
    max_listed: int = 50,
    input_size: Sequence[int] | None = None,
) -> CheckResult:
    """Load with a full Pillow decode of every image by default, and build the printed summary."""
    report = DatasetReport("check")
    try:
        dataset = load_coco(
            annotations,
            images,
            class_names=class_names,
            scan=scan,
            max_objects=max_objects,
            report=report,
        )
    except DatasetError as exc:
        report = exc.report or report
        if not report.fatal:
            report.problem("bad_json", str(exc).splitlines()[0], file=str(annotations))
        text = f"FATAL: {str(exc).splitlines()[0]}\n\n{report.summary(max_listed)}"
        return CheckResult(None, report, text)
    text = summarize(dataset, input_size) + "\n\n" + report.summary(max_listed)
    if report.fatal:
        text = "FATAL problems found\n" + text
    return CheckResult(dataset, report, text)
