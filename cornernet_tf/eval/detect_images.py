"""Detection on image files: read robustly, detect, write a JSON and a drawn PNG per image.

What ``cornernet detect`` runs. Files are decoded with TensorFlow's decoder (the one training
uses), which turns grayscale, palette, RGBA and 16-bit images into RGB uint8; a file that cannot
be decoded (not an image, truncated, unsupported format) is reported with the reason and skipped,
and the run goes on with the next one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

import numpy as np

# Extensions picked up when a folder is given (a file named explicitly is always tried).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class ImageReadError(ValueError):
    """An image file could not be decoded."""


def list_images(paths: Sequence[str]) -> list[str]:
    """Files named in ``paths``, with folders expanded to their image files (sorted, not recursive).

    Raises :class:`FileNotFoundError` for a path that does not exist and :class:`ValueError` when
    no image file is found at all (an empty folder, say).
    """
    files: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            found = sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(path, name))
            )
            if not found:
                raise ValueError(
                    f"no image files in folder {path} (looked for {', '.join(IMAGE_EXTENSIONS)})"
                )
            files.extend(found)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"image or folder not found: {path}")
    if not files:
        raise ValueError("no images given")
    return files


def read_image(path: str) -> tuple[np.ndarray, str | None]:
    """``(RGB uint8 [H, W, 3], note)``; ``note`` says what was converted (e.g. ``"L -> RGB"``) or is None.

    Raises :class:`ImageReadError` naming the file and the reason when it cannot be decoded.
    """
    import tensorflow as tf

    from cornernet_tf.data.image_io import decode_image, failure_reason, probe_image

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc})") from None
    try:
        image = decode_image(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError):
        raise ImageReadError(f"{path}: {failure_reason(path)}") from None
    probe = probe_image(path)
    note = f"{probe.mode} -> RGB" if probe.ok and probe.mode not in (None, "RGB") else None
    return image, note


def unique_stem(path: str, taken: set) -> str:
    """The file's name without extension, made unique among ``taken`` (``a``, ``a_2``, ...)."""
    stem = os.path.splitext(os.path.basename(path))[0] or "image"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name


def detections_to_json(
    path: str, image: np.ndarray, dets: dict, class_names: Sequence[str], score_threshold: float
) -> dict:
    """The per-image JSON: boxes ``[x1, y1, x2, y2]`` in pixels, score, 0-based class and its name."""
    rows = []
    for box, score, cls in zip(dets["boxes"], dets["scores"], dets["classes"]):
        if score < score_threshold:
            continue
        cls = int(cls)
        rows.append(
            {
                "bbox": [round(float(v), 2) for v in box],
                "score": round(float(score), 5),
                "class": cls,
                "class_name": class_names[cls] if cls < len(class_names) else f"class_{cls}",
            }
        )
    return {
        "image": path,
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "score_threshold": score_threshold,
        "detections": rows,
    }


@dataclasses.dataclass
class DetectSummary:
    processed: list = dataclasses.field(default_factory=list)  # (input path, json path)
    skipped: list = dataclasses.field(default_factory=list)  # (input path, reason)
    converted: list = dataclasses.field(default_factory=list)  # (input path, note)
    num_detections: int = 0


def detect_files(
    detector,
    files: Iterable[str],
    out_dir: str,
    class_names: Sequence[str],
    score_threshold: float = 0.3,
    heatmaps: bool = False,
    on_message=print,
) -> DetectSummary:
    """For each file: ``<stem>.json`` and ``<stem>.png`` (boxes drawn) in ``out_dir``, and with
    ``heatmaps`` ``<stem>_heatmaps.png`` (corner heatmaps over the image, paper Fig. 10)."""
    from cornernet_tf.inference.draw import draw_detections, overlay_heatmaps

    os.makedirs(out_dir, exist_ok=True)
    summary, taken = DetectSummary(), set()
    for path in files:
        try:
            image, note = read_image(path)
        except ImageReadError as exc:
            summary.skipped.append((path, str(exc)))
            on_message(f"skipped {exc}")
            continue
        if note:
            summary.converted.append((path, note))
        dets = detector.detect(image)
        record = detections_to_json(path, image, dets, class_names, score_threshold)
        stem = unique_stem(path, taken)
        json_path = os.path.join(out_dir, f"{stem}.json")
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1)
        drawn = draw_detections(
            image,
            dets["boxes"],
            dets["scores"],
            dets["classes"],
            class_names,
            score_threshold=score_threshold,
        )
        drawn.save(os.path.join(out_dir, f"{stem}.png"))
        if heatmaps:
            maps = detector.corner_heatmaps(image)
            overlay_heatmaps(image, maps["tl"], maps["br"]).save(
                os.path.join(out_dir, f"{stem}_heatmaps.png")
            )
        summary.processed.append((path, json_path))
        summary.num_detections += len(record["detections"])
        on_message(
            f"{path}: {len(record['detections'])} detections"
            + (f" (converted {note})" if note else "")
        )
    return summary


def class_names_for(
    config, num_classes: int, names_file: str | None = None, weights: str | None = None
) -> list[str]:
    """Names of the model's classes: ``names_file`` (one per line, or a COCO JSON), else the
    dataset info saved beside ``weights`` (a training work directory has one), else
    ``data.class_names``, else the categories of the config's annotation files, else the COCO
    names for an 80-class model, else ``class_0, class_1, ...``."""
    from cornernet_tf.data.info import DatasetInfo, dataset_info_beside

    names: list | None = None
    if names_file:
        names = _names_from_file(names_file)
    elif info_path := dataset_info_beside(weights):
        names = list(DatasetInfo.load(info_path).class_names)
    elif config.data.class_names:
        names = list(config.data.class_names)
    else:
        for path in (config.data.val_annotations, config.data.train_annotations):
            if path and os.path.isfile(path):
                try:
                    names = _names_from_file(path)
                    break
                except ValueError:
                    continue
    if names is None and num_classes == 80:
        from cornernet_tf.data.tfds import COCO_CLASS_NAMES

        names = list(COCO_CLASS_NAMES)
    names = list(names or [])
    return names[:num_classes] + [f"class_{k}" for k in range(len(names), num_classes)]


def _names_from_file(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class names file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.lower().endswith(".json"):
        try:
            cats = json.loads(text)["categories"]
            return [str(c["name"]) for c in sorted(cats, key=lambda c: c["id"])]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}: expected a COCO JSON with categories (id, name): {exc}"
            ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]
