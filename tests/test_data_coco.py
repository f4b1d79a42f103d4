"""COCO JSON reader: class mapping, box conversion, what is kept, dropped and counted."""

import json

import numpy as np
import pytest
from PIL import Image

from cornernet_tf.data.coco import DatasetError, load_coco
from cornernet_tf.data.info import DatasetInfo


@pytest.fixture()
def coco(tmp_path):
    (tmp_path / "img").mkdir()
    for name in ("a.jpg", "b.png", "c.png"):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "img" / name)
    data = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 60, "height": 40},
            {"id": 20, "file_name": "b.png", "width": 60, "height": 40},
            {"id": 30, "file_name": "c.png", "width": 60, "height": 40},
            {"id": 20, "file_name": "c.png", "width": 60, "height": 40},  # duplicate id
            {"id": 40},  # no file_name
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 10,
                "category_id": 90,
                "bbox": [1.25, 2.5, 10.1, 20.7],
                "iscrowd": 0,
            },
            {"id": 2, "image_id": 10, "category_id": 5, "bbox": [30, 10, 5, 5], "iscrowd": 0},
            {"id": 3, "image_id": 10, "category_id": 2, "bbox": [0, 0, 60, 40], "iscrowd": 1},
            {
                "id": 4,
                "image_id": 20,
                "category_id": 2,
                "bbox": [-4, 30, 20, 20],
            },  # clipped at both sides
            {"id": 5, "image_id": 99, "category_id": 2, "bbox": [1, 1, 2, 2]},  # unknown image
        ],
        "categories": [
            {"id": 5, "name": "five"},
            {"id": 2, "name": "two"},
            {"id": 90, "name": "ninety"},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "img"


def test_contiguous_classes_by_category_id_and_mapping_both_ways(coco):
    ds = load_coco(*coco)
    info = ds.info
    assert info.class_names == ("two", "five", "ninety")
    assert info.category_ids == (2, 5, 90)
    assert info.category_to_class == {2: 0, 5: 1, 90: 2}
    assert info.class_to_category == {0: 2, 1: 5, 2: 90}
    assert info.category_id(2) == 90 and info.class_index(5) == 1
    with pytest.raises(KeyError, match="category id 7"):
        info.class_index(7)


def test_boxes_converted_clipped_and_crowd_ignored(coco):
    ds = load_coco(*coco)
    by_id = {r.image_id: r for r in ds.records}
    a = by_id[10]
    np.testing.assert_array_equal(a.boxes, [[1.25, 2.5, 1.25 + 10.1, 2.5 + 20.7], [30, 10, 35, 15]])
    np.testing.assert_array_equal(a.classes, [2, 1])
    np.testing.assert_array_equal(a.annotation_ids, [1, 2])
    np.testing.assert_array_equal(by_id[20].boxes, [[0, 30, 16, 40]])
    assert ds.report.counts["boxes_crowd_ignored"] == 1
    assert ds.report.counts["boxes_clipped"] == 1


def test_images_without_objects_are_kept_and_duplicates_reported(coco):
    ds = load_coco(*coco)
    assert sorted(r.image_id for r in ds.records) == [10, 20, 30]
    assert [r for r in ds.records if r.image_id == 30][0].num_objects == 0
    assert ds.report.counts["images_without_objects"] == 1
    dup = ds.report.problems_of("duplicate_image_id")
    assert len(dup) == 1 and dup[0].image_id == 20
    assert ds.report.counts["images_invalid_entry"] == 1
    assert "images[4]" in ds.report.problems_of("bad_image_entry")[0].message
    unknown = ds.report.problems_of("unknown_image")
    assert unknown[0].annotation_id == 5
    assert ds.coco.getImgIds() == [10, 20, 30]  # the pycocotools index of what was kept


def test_class_names_select_and_order_categories(coco):
    ds = load_coco(*coco, class_names=["ninety", "two"])
    assert ds.info.category_ids == (90, 2)
    by_id = {r.image_id: r for r in ds.records}
    np.testing.assert_array_equal(by_id[10].classes, [0])  # 'five' is left out
    assert ds.report.counts["boxes_other_class"] == 1
    with pytest.raises(DatasetError, match="'seven'"):
        load_coco(*coco, class_names=["seven"])


def test_scan_none_trusts_the_json_sizes(coco):
    ds = load_coco(*coco, scan="none")
    assert all((r.width, r.height) == (60, 40) for r in ds.records)
    with pytest.raises(ValueError, match="scan must be"):
        load_coco(*coco, scan="full")


def test_dataset_info_round_trip_and_validation(tmp_path):
    info = DatasetInfo(("cat", "dog"), (17, 18))
    info.save(tmp_path / "i.json")
    assert DatasetInfo.load(tmp_path / "i.json") == info
    with pytest.raises(ValueError, match="duplicate"):
        DatasetInfo(("a", "b"), (1, 1))
    with pytest.raises(ValueError, match="2 class names but 1"):
        DatasetInfo(("a", "b"), (1,))
    with pytest.raises(ValueError, match="x.json"):
        DatasetInfo.from_dict({"names": []}, "x.json")
    assert DatasetInfo.from_names(["a", "b"]).category_ids == (1, 2)
