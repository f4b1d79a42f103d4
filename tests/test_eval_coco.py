"""COCO metrics: known answers on hand-made datasets, agreement with pycocotools, results JSON."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cornernet_tf.eval.coco_eval import (
    SUMMARY_KEYS,
    evaluate_detections,
    format_metrics,
    load_ground_truth,
    read_results,
    to_coco_results,
    write_results,
)

# Three images, two categories with non-contiguous ids (3 and 7), boxes of all three COCO sizes.
GT = {
    "images": [
        {"id": 10, "width": 640, "height": 480, "file_name": "a.png"},
        {"id": 11, "width": 640, "height": 480, "file_name": "b.png"},
        {"id": 12, "width": 320, "height": 240, "file_name": "c.png"},
    ],
    "categories": [{"id": 3, "name": "square"}, {"id": 7, "name": "disc"}],
    "annotations": [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [10, 20, 200, 150]},
        {"id": 2, "image_id": 10, "category_id": 7, "bbox": [300, 200, 50, 60]},
        {"id": 3, "image_id": 11, "category_id": 3, "bbox": [5, 5, 20, 25]},
        {"id": 4, "image_id": 11, "category_id": 7, "bbox": [100, 100, 300, 200]},
        {"id": 5, "image_id": 12, "category_id": 7, "bbox": [50, 40, 80, 90]},
        {"id": 6, "image_id": 12, "category_id": 3, "bbox": [200, 100, 60, 40]},
    ],
}


def perfect_detections(gt=GT, score=1.0):
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": list(a["bbox"]),
            "score": score,
        }
        for a in gt["annotations"]
    ]


def shifted(dets, dx):
    out = []
    for d in dets:
        x, y, w, h = d["bbox"]
        out.append(dict(d, bbox=[x + dx, y, w, h]))
    return out


def pycocotools_reference(gt, dets):
    """The plain pycocotools recipe, independent of our wrapper (areas filled by hand)."""
    data = {k: [dict(v) for v in vs] for k, vs in gt.items()}
    for ann in data["annotations"]:
        ann["area"] = ann["bbox"][2] * ann["bbox"][3]
        ann["iscrowd"] = 0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
        coco_dt = coco.loadRes([dict(d) for d in dets])
        ev = COCOeval(coco, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_perfect_detections_give_ap_one():
    m = evaluate_detections(GT, perfect_detections())
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AP60", "AP70", "AP80", "AP90"):
        assert m[key] == pytest.approx(1.0), key
    assert m["AR100"] == pytest.approx(1.0)
    assert m["per_class"] == {"square": pytest.approx(1.0), "disc": pytest.approx(1.0)}
    assert m["num_images"] == 3 and m["num_detections"] == 6


def test_no_detections_give_zero():
    m = evaluate_detections(GT, [])
    assert m["AP"] == 0.0 and m["AR100"] == 0.0
    assert m["num_detections"] == 0


def test_single_box_known_iou_thresholds():
    """One 100x100 box, detection shifted by dx: IoU = (100-dx)/(100+dx). dx=20 -> IoU 0.667:
    a match at 0.50..0.65 (4 of the 10 thresholds), none from 0.70 up."""
    gt = {
        "images": [{"id": 1, "width": 300, "height": 300}],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 50, 100, 100]}],
    }
    m = evaluate_detections(gt, shifted(perfect_detections(gt), 20))
    assert m["AP50"] == pytest.approx(1.0)
    assert m["AP60"] == pytest.approx(1.0)
    assert m["AP70"] == 0.0 and m["AP75"] == 0.0 and m["AP80"] == 0.0 and m["AP90"] == 0.0
    assert m["AP"] == pytest.approx(0.4)
    # dx = 5 -> IoU 0.905: matched at every threshold up to 0.90, not at 0.95
    m = evaluate_detections(gt, shifted(perfect_detections(gt), 5))
    assert m["AP90"] == pytest.approx(1.0)
    assert m["AP"] == pytest.approx(0.9)


@pytest.mark.parametrize("dx", [3, 12, 30])
def test_shifted_boxes_match_pycocotools(dx):
    dets = shifted(perfect_detections(), dx)
    # a spread of scores and a duplicate make the precision curve non-trivial
    for i, d in enumerate(dets):
        d["score"] = 0.9 - 0.1 * i
    dets.append(dict(dets[0], score=0.95, bbox=[0, 0, 30, 30]))
    ours = evaluate_detections(GT, dets)
    ref = pycocotools_reference(GT, dets)
    np.testing.assert_allclose([ours[k] for k in SUMMARY_KEYS], ref.stats, rtol=0, atol=1e-12)
    assert ours["AP"] < 1.0
    # single-IoU APs from the precision array [T, R, K, A, M] (area all, maxDets 100)
    precision = ref.eval["precision"]
    for iou in (0.6, 0.7, 0.8, 0.9):
        t = int(np.argmin(np.abs(ref.params.iouThrs - iou)))
        p = precision[t, :, :, 0, 2]
        expected = p[p > -1].mean() if (p > -1).any() else -1
        assert ours[f"AP{int(iou * 100)}"] == pytest.approx(expected, abs=1e-12)
    # AP is the mean of the ten single-IoU APs when every class has ground truth
    singles = [precision[t, :, :, 0, 2].mean() for t in range(10)]
    assert ours["AP"] == pytest.approx(np.mean(singles))


def test_per_class_ap_matches_single_category_evaluation():
    """Class 'disc' perfect, class 'square' half right: per-class AP equals pycocotools run on one
    category at a time."""
    dets = perfect_detections()
    dets = [
        d
        if d["category_id"] == 7
        else dict(d, bbox=[d["bbox"][0] + d["bbox"][2] * 0.3] + d["bbox"][1:])
        for d in dets
    ]
    m = evaluate_detections(GT, dets)
    assert m["per_class"]["disc"] == pytest.approx(1.0)
    assert 0.0 < m["per_class"]["square"] < 1.0
    for name, cid in (("square", 3), ("disc", 7)):
        ref = pycocotools_reference(GT, dets)
        ref.params.catIds = [cid]
        with contextlib.redirect_stdout(io.StringIO()):
            ref.evaluate()
            ref.accumulate()
            ref.summarize()
        assert m["per_class"][name] == pytest.approx(ref.stats[0], abs=1e-12)
    assert m["AP"] == pytest.approx(np.mean(list(m["per_class"].values())))


def test_class_without_ground_truth_is_undefined():
    gt = dict(GT, categories=GT["categories"] + [{"id": 9, "name": "ghost"}])
    m = evaluate_detections(gt, perfect_detections())
    assert m["per_class"]["ghost"] == -1.0
    assert m["AP"] == pytest.approx(1.0)
    assert "no ground truth" in format_metrics(m)


def test_restricting_images():
    dets = perfect_detections()
    dets = [d for d in dets if d["image_id"] != 12]  # image 12 not detected
    assert evaluate_detections(GT, dets)["AP"] < 1.0
    m = evaluate_detections(GT, dets, image_ids=[10, 11])
    assert m["AP"] == pytest.approx(1.0) and m["num_images"] == 2


def test_detections_of_unknown_images_are_an_error():
    with pytest.raises(ValueError, match="image ids not in the ground truth"):
        evaluate_detections(
            GT,
            perfect_detections()
            + [{"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}],
        )


def test_to_coco_results_maps_classes_and_boxes():
    dets = {
        "boxes": np.array([[10, 20, 210, 170], [300.5, 200, 350, 260]], np.float32),
        "scores": np.array([0.9, 0.4], np.float32),
        "classes": np.array([0, 1]),
    }
    res = to_coco_results(10, dets, category_ids=(3, 7))
    assert res[0] == {
        "image_id": 10,
        "category_id": 3,
        "bbox": [10.0, 20.0, 200.0, 150.0],
        "score": pytest.approx(0.9),
    }
    assert res[1]["category_id"] == 7
    np.testing.assert_allclose(res[1]["bbox"], [300.5, 200, 49.5, 60])
    assert len(to_coco_results(10, dets, (3, 7), min_score=0.5)) == 1
    with pytest.raises(ValueError, match="outside the 1 known classes"):
        to_coco_results(10, dets, category_ids=(3,))


def test_results_json_round_trip(tmp_path):
    dets = shifted(perfect_detections(), 7)
    path = str(tmp_path / "detections.json")
    write_results(path, dets)
    back = read_results(path)
    assert back == dets
    from_file = evaluate_detections(GT, path)
    in_memory = evaluate_detections(GT, dets)
    assert {k: from_file[k] for k in SUMMARY_KEYS} == {k: in_memory[k] for k in SUMMARY_KEYS}
    (tmp_path / "bad.json").write_text('[{"image_id": 1}]')
    with pytest.raises(ValueError, match="lacks category_id, bbox, score"):
        read_results(str(tmp_path / "bad.json"))


def test_ground_truth_fills_missing_fields_without_touching_the_input():
    coco = load_ground_truth(GT)
    ann = coco.anns[1]
    assert ann["area"] == 200 * 150 and ann["iscrowd"] == 0
    assert "area" not in GT["annotations"][0]


def test_crowd_regions_are_ignored():
    """A detection on a crowd region is neither a true nor a false positive (COCO rules)."""
    gt = {k: [dict(v) for v in vs] for k, vs in GT.items()}
    gt["annotations"].append(
        {"id": 7, "image_id": 10, "category_id": 3, "bbox": [400, 0, 200, 100], "iscrowd": 1}
    )
    dets = perfect_detections() + [
        {"image_id": 10, "category_id": 3, "bbox": [410, 5, 150, 80], "score": 1.0}
    ]
    assert evaluate_detections(gt, dets)["AP"] == pytest.approx(1.0)
    assert evaluate_detections(GT, dets)["AP"] < 1.0


def test_format_metrics_lists_everything():
    text = format_metrics(evaluate_detections(GT, perfect_detections()))
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in text
    for iou in ("0.60", "0.70", "0.80", "0.90"):
        assert f"IoU={iou}" in text
    assert "Average Recall" in text and "square" in text and "disc" in text
