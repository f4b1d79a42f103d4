"""COCO-format annotations (any classes) plus an image folder -> validated :class:`ImageRecord` s.

Conventions, as the official ``db/coco.py``: a COCO ``bbox`` ``[x, y, w, h]`` becomes
``(x, y, x + w, y + h)`` in float64 pixels, crowd annotations are ignored, and contiguous class
``k`` is the ``k``-th category by ascending id (or the ``k``-th name of ``class_names`` when
given). Repairs and drops, all counted in the :class:`DatasetReport`:

* boxes partly outside the image are clipped to it; boxes entirely outside, of zero area after
  clipping, with a negative width/height or non-numeric values, or of an unknown category are
  dropped (with the annotation id);
* images whose file is missing, unreadable or in a format TF cannot decode are dropped; an image
  whose real size differs from the JSON keeps its boxes, rescaled to the real size;
* images without objects are kept (background is a lesson too);
* more than ``max_objects`` objects: all are kept on the heatmaps, only the first
  ``max_objects`` get tags (counted here, and per batch as ``num_dropped``);
* more than ``max_heatmap_objects``: compact training batches draw only the first ones on the
  heatmaps (counted here, and per batch as ``num_undrawn``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cornernet_tf.data.image_io import SCAN_MODES, ImageProbe, probe_images
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.data.records import ImageRecord
from cornernet_tf.data.report import DatasetReport
from cornernet_tf.errors import UserError


class DatasetError(UserError, ValueError):
    """The dataset cannot be used at all; ``report`` says why."""

    def __init__(self, message: str, report: DatasetReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class CocoDataset:
    """A loaded COCO-format dataset: the usable images, the class mapping, and what was repaired."""

    records: list[ImageRecord]
    info: DatasetInfo
    report: DatasetReport
    annotation_file: str
    image_dir: str
    coco: Any = None  # pycocotools COCO index of the well-formed annotations

    def __len__(self) -> int:
        return len(self.records)


def read_json(path: str) -> dict:
    """Load a COCO JSON file with errors that name it; a folder of Pascal VOC XML files (or one
    ``.xml`` file) is read into the same COCO-format dict (:mod:`cornernet_tf.data.voc`)."""
    path = os.fspath(path)
    from cornernet_tf.data.voc import is_voc_source, voc_to_coco

    if is_voc_source(path):
        return voc_to_coco(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path}: the top level must be an object with images/annotations/categories"
        )
    return data


def _categories(
    data: dict, path: str, class_names: Sequence[str] | None, report: DatasetReport
) -> DatasetInfo:
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        report.problem("no_categories", "no 'categories' list", file=path)
        raise DatasetError(f"{path}: a non-empty 'categories' list is required", report)
    by_id: dict[int, str] = {}
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            report.problem("bad_json", f"categories[{i}] has no integer 'id': {cat!r}", file=path)
            raise DatasetError(f"{path}: categories[{i}] has no integer 'id'", report)
        cid = int(cat["id"])
        if cid in by_id:
            report.problem("duplicate_category", f"category id {cid} appears twice", file=path)
            raise DatasetError(f"{path}: category id {cid} appears twice", report)
        by_id[cid] = str(cat.get("name", cid))
    if class_names is None:
        ids = sorted(by_id)
        return DatasetInfo(tuple(by_id[i] for i in ids), tuple(ids))
    name_to_id = {name: cid for cid, name in by_id.items()}
    missing = [n for n in class_names if n not in name_to_id]
    if missing:
        raise DatasetError(
            f"{path}: data.class_names {missing} are not categories of this file; it has {sorted(name_to_id)}",
            report,
        )
    return DatasetInfo(tuple(class_names), tuple(name_to_id[n] for n in class_names))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _build_index(data: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def load_coco(
    annotations: str,
    images: str,
    class_names: Sequence[str] | None = None,
    scan: str = "header",
    max_objects: int = 128,
    report: DatasetReport | None = None,
    max_heatmap_objects: int | None = None,
) -> CocoDataset:
    """Read, validate and repair a COCO-format dataset.

    Args:
      annotations: the JSON file; images: the folder that ``file_name`` is relative to.
      class_names: keep only these categories, in this order (``None``: all, by ascending id).
      scan: ``header`` (open every image header with Pillow: finds missing/unreadable files and
        wrong sizes), ``decode`` (full decode: also finds truncated files) or ``none``.
      max_objects: only used to count images that exceed it.
      max_heatmap_objects: likewise (``data.max_heatmap_objects``; None: not counted).
    Raises :class:`DatasetError` (with the report) when nothing usable remains.
    """
    if scan not in SCAN_MODES:
        raise ValueError(f"scan must be one of {'|'.join(SCAN_MODES)}, got {scan!r}")
    annotations, images = os.fspath(annotations), os.fspath(images)
    report = report or DatasetReport(annotations)
    if not os.path.isdir(images):
        raise FileNotFoundError(f"image folder not found: {images}")
    data = read_json(annotations)
    info = _categories(data, annotations, class_names, report)
    cat_to_class = info.category_to_class
    known_categories = {c["id"] for c in data["categories"]}

    image_entries = data.get("images")
    if not isinstance(image_entries, list):
        report.problem("bad_json", "no 'images' list", file=annotations)
        raise DatasetError(f"{annotations}: an 'images' list is required", report)
    ann_entries = data.get("annotations") or []
    if not isinstance(ann_entries, list):
        report.problem("bad_json", "'annotations' is not a list", file=annotations)
        raise DatasetError(f"{annotations}: 'annotations' must be a list", report)

    # Well-formed entries only go into the pycocotools index; the rest are reported.
    good_images, seen_ids = [], set()
    for i, img in enumerate(image_entries):
        report.count("images")
        if (
            not isinstance(img, dict)
            or not _is_int(img.get("id"))
            or not isinstance(img.get("file_name"), str)
        ):
            report.problem(
                "bad_image_entry",
                f"images[{i}] needs an integer 'id' and a 'file_name'",
                file=annotations,
                counter="images_invalid_entry",
            )
            continue
        if img["id"] in seen_ids:
            report.problem(
                "duplicate_image_id",
                f"image id {img['id']} listed again ({img['file_name']})",
                file=img["file_name"],
                image_id=img["id"],
                counter="images_duplicate_id",
            )
            continue
        seen_ids.add(img["id"])
        good_images.append(img)
    good_anns = []
    for i, ann in enumerate(ann_entries):
        report.count("boxes")
        if not isinstance(ann, dict) or not all(
            _is_int(ann.get(k)) for k in ("id", "image_id", "category_id")
        ):
            ann_id = ann.get("id") if isinstance(ann, dict) and _is_int(ann.get("id")) else None
            report.problem(
                "bad_annotation",
                f"annotations[{i}] needs integer id, image_id and category_id",
                file=annotations,
                annotation_id=ann_id,
                counter="boxes_dropped_invalid",
            )
            continue
        if ann["image_id"] not in seen_ids:
            report.problem(
                "unknown_image",
                f"image id {ann['image_id']} is not in the images list",
                file=annotations,
                annotation_id=ann["id"],
                counter="boxes_dropped_unknown_image",
            )
            continue
        good_anns.append(ann)
    coco = _build_index(
        {"images": good_images, "annotations": good_anns, "categories": data["categories"]}
    )

    paths = [os.path.join(images, img["file_name"]) for img in good_images]
    probes: list[ImageProbe | None] = (
        probe_images(paths, decode=(scan == "decode")) if scan != "none" else [None] * len(paths)
    )

    records = []
    for img, path, probe in zip(good_images, paths, probes):
        anns = coco.imgToAnns.get(img["id"], [])
        json_w = int(img["width"]) if _is_number(img.get("width")) and img["width"] > 0 else 0
        json_h = int(img["height"]) if _is_number(img.get("height")) and img["height"] > 0 else 0
        width, height, sx, sy = json_w, json_h, 1.0, 1.0
        if probe is not None:
            if not probe.ok:
                counter = {
                    "missing": "images_missing_file",
                    "unsupported": "images_unsupported_format",
                    "too_large": "images_too_large",
                }.get(probe.failure, "images_unreadable")
                report.problem(
                    probe.failure or "unreadable",
                    probe.message or "cannot be read",
                    file=path,
                    image_id=img["id"],
                    counter=counter,
                )
                report.count("boxes_dropped_image_dropped", len(anns))
                continue
            if probe.needs_conversion:
                report.problem(
                    "converted",
                    f"{probe.format} mode {probe.mode} converted to RGB",
                    file=path,
                    image_id=img["id"],
                    counter="images_converted",
                )
            if (json_w, json_h) not in ((0, 0), (probe.width, probe.height)):
                sx, sy = probe.width / json_w, probe.height / json_h
                report.problem(
                    "size_mismatch",
                    f"annotated as {json_w}x{json_h} but the file is {probe.width}x{probe.height}; "
                    "boxes rescaled to the real size",
                    file=path,
                    image_id=img["id"],
                    counter="images_size_repaired",
                )
            width, height = probe.width, probe.height
        record = _image_record(
            img, path, anns, width, height, (sx, sy), cat_to_class, known_categories, report
        )
        if record.num_objects == 0:
            report.count("images_without_objects")
        if record.num_objects > max_objects:
            report.problem(
                "too_many_objects",
                f"{record.num_objects} objects; only the first {max_objects} get tags and offsets",
                file=path,
                image_id=img["id"],
                counter="images_over_max_objects",
            )
        if max_heatmap_objects is not None and record.num_objects > max_heatmap_objects:
            report.problem(
                "too_many_heatmap_objects",
                f"{record.num_objects} objects; compact training batches draw only the first "
                f"{max_heatmap_objects} on the heatmaps",
                file=path,
                image_id=img["id"],
                counter="images_over_max_heatmap_objects",
            )
        report.count("images_kept")
        report.count("boxes_kept", record.num_objects)
        records.append(record)

    if not records:
        report.problem("no_images", "no usable image", file=annotations)
        raise DatasetError(
            f"{annotations}: no usable image (see the report)\n{report.summary()}", report
        )
    return CocoDataset(records, info, report, annotations, images, coco)


def _image_record(
    img, path, anns, width, height, scale_xy, cat_to_class, known_categories, report
) -> ImageRecord:
    boxes, classes, ann_ids = [], [], []
    sx, sy = scale_xy
    for ann in anns:
        ann_id = ann["id"]
        if ann.get("iscrowd", 0):
            report.count("boxes_crowd_ignored")
            continue
        cid = ann["category_id"]
        if cid not in known_categories:
            report.problem(
                "unknown_category",
                f"category id {cid} is not in the categories list",
                file=path,
                annotation_id=ann_id,
                counter="boxes_dropped_unknown_category",
            )
            continue
        if cid not in cat_to_class:
            report.count("boxes_other_class")
            continue
        bbox = ann.get("bbox")
        if not (
            isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
        ):
            report.problem(
                "invalid_bbox",
                f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}",
                file=path,
                annotation_id=ann_id,
                counter="boxes_dropped_invalid",
            )
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            report.problem(
                "invalid_bbox",
                f"negative width or height in bbox {bbox!r}",
                file=path,
                annotation_id=ann_id,
                counter="boxes_dropped_invalid",
            )
            continue
        x1, y1, x2, y2 = x, y, x + w, y + h
        if (sx, sy) != (1.0, 1.0):
            x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
        if width and height:
            if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
                report.problem(
                    "box_outside",
                    f"bbox {bbox!r} lies outside the {width}x{height} image",
                    file=path,
                    annotation_id=ann_id,
                    counter="boxes_dropped_outside",
                )
                continue
            cx1, cy1, cx2, cy2 = (
                max(x1, 0.0),
                max(y1, 0.0),
                min(x2, float(width)),
                min(y2, float(height)),
            )
            if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
                report.count("boxes_clipped")
                x1, y1, x2, y2 = cx1, cy1, cx2, cy2
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            report.problem(
                "zero_area",
                f"bbox {bbox!r} has zero area",
                file=path,
                annotation_id=ann_id,
                counter="boxes_dropped_zero_area",
            )
            continue
        boxes.append((x1, y1, x2, y2))
        classes.append(cat_to_class[cid])
        ann_ids.append(ann_id)
    return ImageRecord(
        image_id=int(img["id"]),
        path=path,
        file_name=img["file_name"],
        height=int(height),
        width=int(width),
        boxes=np.array(boxes, np.float64).reshape(-1, 4),
        classes=np.array(classes, np.int32),
        annotation_ids=np.array(ann_ids, np.int64),
    )
