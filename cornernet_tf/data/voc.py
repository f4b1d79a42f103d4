"""Pascal VOC XML annotations -> the COCO-format dict that :mod:`cornernet_tf.data.coco` reads.

Many labelling tools write one VOC XML file per image. Converting them to the same in-memory
COCO dict lets every place that reads COCO JSON (training, evaluation, ``data check``,
``data browse``) read a folder of VOC XML as well, and ``cornernet data from-voc`` writes it out.

Conventions (those of common VOC readers, e.g. Detectron2's):

* images: one per XML file, in sorted file-name order, ids 1..N; ``file_name`` is the XML's
  ``<filename>`` (or ``<stem>.jpg`` when it has none), width/height from ``<size>``;
* classes: the ``<name>`` values sorted alphabetically, category ids 1..C, so a training and a
  validation folder with the same classes agree on the ids whatever order the files list them;
* boxes: VOC corners are 1-based and inclusive, so ``xmin - 1, ymin - 1`` become the 0-based
  left/top edges and the COCO ``bbox`` is ``[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]``;
* ``<difficult>1</difficult>`` objects become ``iscrowd: 1``: ignored when training and
  ignore regions in COCO evaluation (neither rewarded nor counted as misses).

A file that is not well-formed XML, or lacks a needed field, is an error naming the file.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from cornernet_tf.errors import InputNotFoundError, InvalidValueError


class VocError(InvalidValueError):
    """A VOC XML file cannot be read; the message names the file."""


def is_voc_source(path: str) -> bool:
    """True for a folder (of VOC XML files) or a single ``.xml`` file."""
    path = os.fspath(path)
    return os.path.isdir(path) or path.lower().endswith(".xml")


def list_xml_files(path: str) -> list[str]:
    """The ``.xml`` files of a folder (sorted), or ``[path]`` for one file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(".xml")
        )
        if not files:
            raise InputNotFoundError(f"no .xml annotation files in {path}")
        return files
    if not os.path.exists(path):
        raise InputNotFoundError(f"annotation file not found: {path}")
    return [path]


def _text(node, tag: str, path: str, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise VocError(f"{path}: <{node.tag}> has no <{tag}>")
        return None
    return child.text.strip()


def _number(node, tag: str, path: str) -> float:
    text = _text(node, tag, path)
    try:
        return float(text)
    except ValueError:
        raise VocError(f"{path}: <{tag}> is not a number: {text!r}") from None


def parse_voc_file(path: str) -> dict:
    """One VOC XML file -> ``{file_name, width, height, objects: [{name, box, difficult}]}``.

    ``box`` is the 1-based inclusive ``(xmin, ymin, xmax, ymax)`` as written; width/height are 0
    when ``<size>`` is absent (the image header is read later)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise VocError(f"{path}: not well-formed XML ({exc})") from None
    except OSError as exc:
        raise VocError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if root.tag != "annotation":
        raise VocError(f"{path}: the root element is <{root.tag}>, not a VOC <annotation>")
    stem = os.path.splitext(os.path.basename(path))[0]
    file_name = _text(root, "filename", path, required=False) or f"{stem}.jpg"
    width = height = 0
    size = root.find("size")
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        width, height = int(_number(size, "width", path)), int(_number(size, "height", path))
    objects = []
    for obj in root.findall("object"):
        name = _text(obj, "name", path)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise VocError(f"{path}: <object> {name!r} has no <bndbox>")
        box = tuple(_number(bndbox, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax"))
        difficult = _text(obj, "difficult", path, required=False) in ("1", "true", "True")
        objects.append({"name": name, "box": box, "difficult": difficult})
    return {"file_name": file_name, "width": width, "height": height, "objects": objects}


def voc_to_coco(path: str) -> dict:
    """A folder of VOC XML files (or one file) -> a COCO-format dict (see the module docstring)."""
    parsed = [parse_voc_file(f) for f in list_xml_files(path)]
    names = sorted({obj["name"] for entry in parsed for obj in entry["objects"]})
    category_id = {name: i + 1 for i, name in enumerate(names)}
    images, annotations = [], []
    for image_id, entry in enumerate(parsed, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": entry["file_name"],
                "width": entry["width"],
                "height": entry["height"],
            }
        )
        for obj in entry["objects"]:
            xmin, ymin, xmax, ymax = obj["box"]
            w, h = xmax - xmin + 1.0, ymax - ymin + 1.0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id[obj["name"]],
                    "bbox": [xmin - 1.0, ymin - 1.0, w, h],
                    "area": max(w, 0.0) * max(h, 0.0),
                    "iscrowd": int(obj["difficult"]),
                }
            )
    categories = [{"id": category_id[n], "name": n} for n in names]
    return {"images": images, "annotations": annotations, "categories": categories}
