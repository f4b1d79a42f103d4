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

from cornernet_tf.atomic_files import write_json, write_with
from cornernet_tf.errors import (
    InputNotFoundError,
    InvalidValueError,
    OutputPathError,
    UserError,
)

# Extensions picked up when a folder is given (a file named explicitly is always tried).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# The COCO results of all images together (as ``cornernet eval`` names its own).
RESULTS_STEM = "detections"


class ImageReadError(UserError, ValueError):
    """An image file could not be decoded."""


def list_image_sources(paths: Sequence[str], recursive: bool = False) -> list[tuple[str, str]]:
    """``(image file, output stem)`` for every image in ``paths``, folders expanded (sorted).

    A file named explicitly is always tried, and its stem is its base name. A folder contributes
    its image files (by extension); with ``recursive`` also those of its sub-folders, whose stems
    keep the path below the folder (``sub/dir/name``), so the results mirror the input tree.
    Stems are made unique (``a``, ``a_2``...). Raises :class:`InputNotFoundError` for a missing
    path and :class:`InvalidValueError` when a folder holds no image file.
    """
    sources: list[tuple[str, str]] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            found = _folder_images(path, recursive)
            if not found:
                where = "folder tree" if recursive else "folder"
                raise InvalidValueError(
                    f"no image files in {where} {path} (looked for {', '.join(IMAGE_EXTENSIONS)})"
                )
            sources.extend((f, os.path.splitext(os.path.relpath(f, path))[0]) for f in found)
        elif os.path.isfile(path):
            sources.append((path, os.path.splitext(os.path.basename(path))[0]))
        else:
            raise InputNotFoundError(f"image or folder not found: {path}")
    if not sources:
        raise InvalidValueError("no images given")
    taken: set = {RESULTS_STEM}  # an image named like the combined results file gets a suffix
    return [(f, unique_name(stem or "image", taken)) for f, stem in sources]


def _folder_images(folder: str, recursive: bool) -> list[str]:
    if not recursive:
        names = sorted(os.listdir(folder))
        return [
            os.path.join(folder, n)
            for n in names
            if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, n))
        ]
    found = []
    for root, dirs, names in os.walk(folder):  # symlinked folders are not followed: no loops
        dirs.sort()
        found.extend(
            os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)
        )
    return found


def list_images(paths: Sequence[str], recursive: bool = False) -> list[str]:
    """The image files of :func:`list_image_sources` (folders expanded, sorted)."""
    return [f for f, _ in list_image_sources(paths, recursive)]


def check_output_apart(out_dir: str, inputs: Sequence[str], recursive: bool = False) -> None:
    """Refuse an output folder that could overwrite an input.

    ``detect`` writes ``<stem>.json`` and ``<stem>.png`` into ``out_dir``, so ``out_dir`` must not
    be an input folder nor contain any input (file or folder); with ``recursive`` it must not lie
    inside an input folder either (a later run would read the results as inputs). Paths are
    compared after resolving symbolic links. Raises :class:`OutputPathError` naming both paths.
    """
    out = os.path.realpath(out_dir)
    for path in inputs:
        real = os.path.realpath(path)
        if real == out or _is_inside(real, out):
            raise OutputPathError(
                f"--out {out_dir} is or contains the input {path}: results written there could "
                "overwrite the inputs; choose an output folder outside them"
            )
        if recursive and os.path.isdir(real) and _is_inside(out, real):
            raise OutputPathError(
                f"--out {out_dir} is inside the input folder {path}, which --recursive reads: "
                "choose an output folder outside it"
            )


def _is_inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def read_image(path: str) -> tuple[np.ndarray, str | None]:
    """``(RGB uint8 [H, W, 3], note)``; ``note`` says what was converted (e.g. ``"L -> RGB"``) or is None.

    Raises :class:`ImageReadError` naming the file and the reason when it cannot be decoded or its
    header declares more than ``MAX_INPUT_PIXELS`` pixels (checked before decoding).
    """
    import tensorflow as tf

    from cornernet_tf.data.image_io import decode_image, failure_reason, probe_image
    from cornernet_tf.data.pixel_limit import ImageTooLargeError, check_image_bytes

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc})") from None
    try:
        check_image_bytes(data, path)
    except ImageTooLargeError as exc:
        raise ImageReadError(str(exc)) from None
    try:
        image = decode_image(tf.constant(data)).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError):
        raise ImageReadError(f"{path}: {failure_reason(path)}") from None
    probe = probe_image(path)
    note = f"{probe.mode} -> RGB" if probe.ok and probe.mode not in (None, "RGB") else None
    return image, note


def unique_stem(path: str, taken: set) -> str:
    """The file's name without extension, made unique among ``taken`` (``a``, ``a_2``, ...)."""
    return unique_name(os.path.splitext(os.path.basename(path))[0] or "image", taken)


def unique_name(stem: str, taken: set) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... whichever is not in ``taken`` yet (then added)."""
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name


def image_ids_for(stems: Sequence[str]) -> list[int]:
    """COCO image ids for the images: the numbers their base names are (COCO's own files,
    ``000000397133.jpg`` -> 397133) when every name is a distinct number, else 1, 2, 3... in order."""
    bases = [os.path.basename(stem) for stem in stems]
    if bases and all(b.isdigit() for b in bases) and len({int(b) for b in bases}) == len(bases):
        return [int(b) for b in bases]
    return list(range(1, len(stems) + 1))


def detections_to_json(
    path: str,
    image: np.ndarray,
    dets: dict,
    class_names: Sequence[str],
    score_threshold: float,
    category_ids: Sequence[int] | None = None,
    image_id: int = 1,
) -> dict:
    """The per-image JSON; each detection is a COCO result (``category_id``, ``bbox`` x, y, w, h
    in pixels, ``score``) plus its ``class_name``. ``category_ids[k]`` is the dataset id of the
    network's class ``k`` (default ``k + 1``)."""
    rows = []
    for box, score, cls in zip(dets["boxes"], dets["scores"], dets["classes"]):
        if score < score_threshold:
            continue
        cls = int(cls)
        x1, y1, x2, y2 = (float(v) for v in box)
        rows.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[cls]) if category_ids is not None else cls + 1,
                "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                "score": round(float(score), 5),
                "class_name": class_names[cls] if cls < len(class_names) else f"class_{cls}",
            }
        )
    return {
        "image": path,
        "image_id": int(image_id),
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
    stems: Sequence[str] | None = None,
    category_ids: Sequence[int] | None = None,
) -> DetectSummary:
    """For each file: ``<stem>.json`` and ``<stem>.png`` (boxes drawn) in ``out_dir``, and with
    ``heatmaps`` ``<stem>_heatmaps.png`` (corner heatmaps over the image, paper Fig. 10); then
    ``detections.json``, the COCO results of all images (``image_id`` from :func:`image_ids_for`,
    ``file_name``, ``category_id``, ``bbox`` x y w h, ``score``).

    ``stems`` (one per file, e.g. ``sub/name`` from :func:`list_image_sources`) default to the
    files' unique base names. ``category_ids[k]`` is the dataset id of class ``k`` (default
    ``k + 1``). A result that would replace its own input file is refused."""
    from cornernet_tf.inference.draw import draw_detections, overlay_heatmaps

    files = list(files)
    if stems is None:
        taken: set = {RESULTS_STEM}
        stems = [unique_stem(path, taken) for path in files]
    os.makedirs(out_dir, exist_ok=True)
    summary = DetectSummary()
    results: list = []
    for path, stem, image_id in zip(files, stems, image_ids_for(stems)):
        try:
            image, note = read_image(path)
        except ImageReadError as exc:
            summary.skipped.append((path, str(exc)))
            on_message(f"skipped {exc}")
            continue
        if note:
            summary.converted.append((path, note))
        dets = detector.detect(image)
        record = detections_to_json(
            path, image, dets, class_names, score_threshold, category_ids, image_id
        )
        base = os.path.join(out_dir, stem)
        targets = [f"{base}.json", f"{base}.png"] + ([f"{base}_heatmaps.png"] if heatmaps else [])
        _refuse_overwriting_input(path, targets)
        os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
        write_json(targets[0], record, indent=1)
        drawn = draw_detections(
            image,
            dets["boxes"],
            dets["scores"],
            dets["classes"],
            class_names,
            score_threshold=score_threshold,
        )
        write_with(targets[1], drawn.save)
        if heatmaps:
            maps = detector.corner_heatmaps(image)
            write_with(targets[2], overlay_heatmaps(image, maps["tl"], maps["br"]).save)
        summary.processed.append((path, targets[0]))
        summary.num_detections += len(record["detections"])
        results += [
            {k: d[k] for k in ("image_id", "category_id", "bbox", "score")} | {"file_name": path}
            for d in record["detections"]
        ]
        on_message(
            f"{path}: {len(record['detections'])} detections"
            + (f" (converted {note})" if note else "")
        )
    if summary.processed:
        with open(os.path.join(out_dir, f"{RESULTS_STEM}.json"), "w", encoding="utf-8") as fh:
            json.dump(results, fh)
    return summary


def _refuse_overwriting_input(path: str, targets: Sequence[str]) -> None:
    real = os.path.realpath(path)
    for target in targets:
        if os.path.realpath(target) == real:
            raise OutputPathError(f"{target} would overwrite the input {path}; nothing written")


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
