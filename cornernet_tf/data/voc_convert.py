"""``cornernet data from-voc``: write a folder of Pascal VOC XML files as one COCO JSON file.

The file is written to a temporary name beside ``out`` and renamed, so an interrupted run never
leaves half a JSON file, and ``out`` may not be one of the inputs (an XML file or an image).
"""

from __future__ import annotations

import json
import os

from cornernet_tf.data.voc import list_xml_files, voc_to_coco
from cornernet_tf.errors import InputNotFoundError, OutputPathError


def _check_output(out: str, annotations: str, images: str) -> None:
    real = os.path.realpath(out)
    if os.path.isdir(real):
        raise OutputPathError(f"--out {out} is a folder; give the JSON file to write")
    inputs = {os.path.realpath(p) for p in list_xml_files(annotations)}
    if real in inputs or real == os.path.realpath(annotations):
        raise OutputPathError(f"--out {out} is one of the input annotation files")
    if os.path.dirname(real) == os.path.realpath(images) and os.path.exists(real):
        raise OutputPathError(f"--out {out} is a file of the input image folder")


def convert_voc(annotations: str, images: str, out: str) -> str:
    """Convert and write; returns a one-paragraph summary (images, boxes, classes, missing files)."""
    if not os.path.isdir(images):
        raise InputNotFoundError(f"image folder not found: {images}")
    _check_output(out, annotations, images)
    data = voc_to_coco(annotations)
    missing = [
        img["file_name"]
        for img in data["images"]
        if not os.path.exists(os.path.join(images, img["file_name"]))
    ]
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(out)}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, out)
    difficult = sum(a["iscrowd"] for a in data["annotations"])
    names = ", ".join(c["name"] for c in data["categories"])
    lines = [
        f"{len(data['images'])} images, {len(data['annotations'])} boxes "
        f"({difficult} difficult, kept as iscrowd), {len(data['categories'])} classes: {names}",
        f"wrote {out}",
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        lines.append(f"warning: {len(missing)} image files not found in {images}: {shown}")
    return "\n".join(lines)
