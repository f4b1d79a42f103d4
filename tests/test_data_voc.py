"""Pascal VOC XML: parsing into the COCO dict, loading a VOC folder as a dataset, `data from-voc`."""

import json

import numpy as np
import pytest
from PIL import Image

from cornernet_tf.cli import main
from cornernet_tf.data.coco import load_coco
from cornernet_tf.data.voc import VocError, voc_to_coco


def _xml(file_name, size, objects) -> str:
    parts = ["<annotation>"]
    if file_name is not None:
        parts.append(f"<filename>{file_name}</filename>")
    parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, box, difficult in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>{int(difficult)}</difficult><bndbox>"
            f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax>"
            "</bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


@pytest.fixture
def voc_set(tmp_path):
    """Two photos: 'dog' is seen before 'cat'; one difficult dog; the second XML has no <filename>."""
    annots, images = tmp_path / "annots", tmp_path / "images"
    annots.mkdir()
    images.mkdir()
    (annots / "a.xml").write_text(
        _xml("a.jpg", (40, 30), [("dog", (5, 6, 20, 25), False), ("cat", (21, 2, 40, 30), False)])
    )
    (annots / "b.xml").write_text(
        _xml(None, (32, 32), [("dog", (1, 1, 10, 12), True), ("cat", (3, 4, 30, 31), False)])
    )
    for name, size in (("a.jpg", (40, 30)), ("b.jpg", (32, 32))):
        Image.fromarray(np.full((size[1], size[0], 3), 120, np.uint8)).save(images / name)
    return annots, images


def test_voc_to_coco_boxes_classes_and_difficult(voc_set):
    annots, _ = voc_set
    data = voc_to_coco(str(annots))
    # Classes sorted by name (not first-seen): cat = 1, dog = 2.
    assert data["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in data["images"]] == [
        (1, "a.jpg", 40, 30),
        (2, "b.jpg", 32, 32),  # no <filename>: the XML's stem + .jpg
    ]
    anns = data["annotations"]
    assert [a["category_id"] for a in anns] == [2, 1, 2, 1]
    # 1-based inclusive VOC corners -> 0-based COCO [x, y, w, h].
    assert anns[0]["bbox"] == [4.0, 5.0, 16.0, 20.0]
    assert anns[2]["bbox"] == [0.0, 0.0, 10.0, 12.0]
    assert [a["iscrowd"] for a in anns] == [0, 0, 1, 0]


def test_voc_folder_loads_as_a_dataset_with_difficult_ignored(voc_set):
    annots, images = voc_set
    dataset = load_coco(str(annots), str(images), scan="header")
    assert dataset.info.class_names == ("cat", "dog")
    assert [r.num_objects for r in dataset.records] == [2, 1]  # the difficult dog is ignored
    assert dataset.report.counts["boxes_crowd_ignored"] == 1
    np.testing.assert_allclose(dataset.records[0].boxes[0], [4.0, 5.0, 20.0, 25.0])


def test_broken_xml_is_one_line_naming_the_file(voc_set):
    annots, _ = voc_set
    (annots / "c.xml").write_text("<annotation><object><name>dog</name>")
    with pytest.raises(VocError) as info:
        voc_to_coco(str(annots))
    message = str(info.value)
    assert "c.xml" in message and "not well-formed XML" in message and "\n" not in message


def test_object_without_box_names_the_file(voc_set):
    annots, _ = voc_set
    (annots / "d.xml").write_text("<annotation><object><name>dog</name></object></annotation>")
    with pytest.raises(VocError, match=r"d\.xml.*no <bndbox>"):
        voc_to_coco(str(annots))


def test_from_voc_command_writes_the_coco_json(voc_set, tmp_path, capsys):
    annots, images = voc_set
    out = tmp_path / "out" / "train.json"
    args = ["data", "from-voc", "--annotations", str(annots), "--images", str(images)]
    assert main(args + ["--out", str(out)]) == 0
    assert json.loads(out.read_text()) == voc_to_coco(str(annots))
    printed = capsys.readouterr().out
    assert "2 images, 4 boxes (1 difficult" in printed and "cat, dog" in printed
    assert not list(out.parent.glob(".*.tmp"))  # written through a temporary file, renamed


def test_from_voc_refuses_to_overwrite_an_input(voc_set, capsys):
    annots, images = voc_set
    before = (annots / "a.xml").read_text()
    args = ["data", "from-voc", "--annotations", str(annots), "--images", str(images)]
    assert main(args + ["--out", str(annots / "a.xml")]) != 0
    assert "one of the input annotation files" in capsys.readouterr().err
    assert (annots / "a.xml").read_text() == before
