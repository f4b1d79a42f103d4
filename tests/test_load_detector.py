"""``cornernet_tf.load_detector``: workdir and config forms, Detections, plot, COCO results, and
the Keras inference model whose ``predict`` returns the SavedModel's outputs."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

import cornernet_tf
from cornernet_tf.config import load_config
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.errors import InputNotFoundError
from cornernet_tf.inference.detections import Detections
from cornernet_tf.modeling.cornernet import build_model

TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "cornernet_tiny.yaml")
# No annotation files (the names and ids then come from the saved dataset info or the default);
# fewer corner pairs keep the soft-NMS of a grouping-everything network quick.
OVERRIDES = ["data.train_annotations=null", "data.val_annotations=null", "test.num_dets=100"]
INFO = DatasetInfo(("cat", "dog", "cow"), (3, 7, 9))


def _tiny_weights(path, seed):
    """Random weights whose embeddings are constant, so every same-class corner pair groups and a
    random network still returns boxes."""
    keras.utils.set_random_seed(seed)
    model = build_model(load_config(TINY).model)
    for stack in model.stacks:
        for corner in ("tl", "br"):
            head = stack[f"{corner}_tag"].out
            head.kernel.assign(np.zeros(head.kernel.shape, np.float32))
    model.save_weights(str(path))
    return model


BEST_WEIGHTS: list = []


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """What ``cornernet train`` leaves: config.yaml, best/last weights (different), dataset info."""
    root = tmp_path_factory.mktemp("run")
    with open(root / "config.yaml", "w") as fh:
        yaml.safe_dump(load_config(TINY, OVERRIDES).to_dict(), fh)
    model = _tiny_weights(root / "best.weights.h5", seed=1)
    BEST_WEIGHTS[:] = model.get_weights()
    # the last weights: the same network with other values
    model.set_weights([w + 0.5 for w in BEST_WEIGHTS])
    model.save_weights(str(root / "last.weights.h5"))
    INFO.save(str(root / "dataset_info.json"))
    return root


@pytest.fixture(scope="module")
def detector(workdir):
    return cornernet_tf.load_detector(str(workdir))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8) for _ in range(2)]


def test_workdir_form_loads_best_weights_and_category_ids(workdir, detector, images):
    assert len(BEST_WEIGHTS) == len(detector.model.weights)
    for ours, best in zip(detector.model.get_weights(), BEST_WEIGHTS):
        np.testing.assert_array_equal(ours, best)
    assert detector.class_names == ("cat", "dog", "cow") and detector.category_ids == (3, 7, 9)

    dets = detector(images[0])
    raw = detector.detector.detect(images[0])  # the wrapped official procedure
    assert isinstance(dets, Detections) and len(dets) == len(raw["scores"]) > 0
    # boxes in the pixels of the image as given: the Detector's boxes, unchanged
    np.testing.assert_array_equal(dets.boxes, raw["boxes"].astype(np.float32))
    np.testing.assert_array_equal(dets.scores, raw["scores"].astype(np.float32))
    h, w = images[0].shape[:2]
    assert dets.boxes.dtype == np.float32 and dets.boxes.shape == (len(dets), 4)
    assert (dets.boxes[:, [0, 2]] <= w).all() and (dets.boxes[:, [1, 3]] <= h).all()
    assert (dets.boxes >= 0).all()
    # classes are the dataset's category ids, names follow the network's 0-based class
    np.testing.assert_array_equal(dets.class_indices, raw["classes"])
    np.testing.assert_array_equal(dets.classes, np.array([3, 7, 9])[raw["classes"]])
    assert list(dets.class_names) == [("cat", "dog", "cow")[k] for k in raw["classes"]]
    assert "Detections(" in repr(dets) and len(repr(dets)) < 300


def test_single_batch_array_and_path_agree(detector, images, tmp_path):
    singles = [detector(image) for image in images]
    batch = detector(images)
    stacked = detector(np.stack(images))
    path = tmp_path / "one.png"
    Image.fromarray(images[1]).save(path)
    from_path = detector(str(path))
    assert isinstance(batch, list) and len(batch) == len(stacked) == 2
    for single, *others in zip(singles, batch, stacked):
        for other in others:
            np.testing.assert_allclose(other.boxes, single.boxes, atol=1e-4)
            np.testing.assert_array_equal(other.classes, single.classes)
    np.testing.assert_allclose(from_path.boxes, singles[1].boxes, atol=1e-4)
    np.testing.assert_array_equal(from_path.image, images[1])
    with pytest.raises(InputNotFoundError, match="nope.png"):
        detector(str(tmp_path / "nope.png"))


def test_config_form_default_ids_and_untrained_warning(workdir):
    from cornernet_tf.load import dataset_info_for

    config = load_config(TINY, OVERRIDES)
    # weights given with a config: the dataset info saved beside them names the classes
    det = cornernet_tf.load_detector(config, workdir / "last.weights.h5")
    assert det.category_ids == (3, 7, 9) and det.class_names == ("cat", "dog", "cow")
    np.testing.assert_array_equal(det.model.get_weights()[0], BEST_WEIGHTS[0] + 0.5)
    # a config file without weights: an untrained model, said so
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        untrained = cornernet_tf.load_detector(
            str(workdir / "config.yaml"), dataset_info=DatasetInfo.from_names(["a", "b", "c"])
        )
    assert any("untrained" in str(w.message) for w in caught)
    assert untrained.category_ids == (1, 2, 3) and untrained.class_names == ("a", "b", "c")
    # nothing tells the classes: class_k with ids 1..C; an 80-class model gets COCO's
    default = dataset_info_for(config)
    assert default.class_names == ("class_0", "class_1", "class_2")
    assert default.category_ids == (1, 2, 3)
    coco = load_config(TINY, OVERRIDES + ["model.num_classes=80"])
    assert dataset_info_for(coco).category_ids[-1] == 90
    assert dataset_info_for(coco).class_names[0] == "person"
    with pytest.raises(InputNotFoundError, match="config.yaml"):
        cornernet_tf.load_detector(str(workdir.parent))


def _hand_made(boxes, scores, indices, names=("elephant", "giraffe")):
    return Detections.from_detector(
        {"boxes": np.array(boxes, np.float32), "scores": np.array(scores), "classes": indices},
        category_ids=(5, 11),
        names=names,
        image=np.full((60, 200, 3), 255, np.uint8),
    )


def _label_text(picture):
    """Pixels of the label text (dark; the image is white and boxes and labels bright colours)."""
    return np.argwhere((picture < 80).all(axis=-1))


def test_plot_keeps_labels_inside_the_image():
    middle = _hand_made([[60, 30, 110, 58]], [0.9], np.array([0])).plot()
    # at the top-right corner the label would start at x1=170 and run past the right border
    corner = _hand_made([[170, 0, 199, 20]], [0.9], np.array([0])).plot()
    assert middle.shape == corner.shape == (60, 200, 3) and middle.dtype == np.uint8
    text_middle, text_corner = _label_text(middle), _label_text(corner)
    assert len(text_middle) > 20
    # the whole label is drawn: as many text pixels, spanning as wide, as in the middle
    assert len(text_corner) == len(text_middle)
    np.testing.assert_array_equal(np.ptp(text_corner, axis=0), np.ptp(text_middle, axis=0))
    assert text_corner[:, 1].max() < 200 and text_corner[:, 0].min() >= 0


def test_plot_defaults_threshold_names_and_axes():
    dets = _hand_made([[10, 20, 60, 50], [100, 20, 150, 50]], [0.9, 0.1], np.array([0, 1]))
    picture = dets.plot()
    everything = dets.plot(score_threshold=0.0)
    # the low-score box is drawn only when asked for
    assert (picture[20:51, 100:151] == 255).all()
    assert not (everything[20:51, 100:151] == 255).all()
    assert dets.above(0.3).class_names.tolist() == ["elephant"]
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        shown = dets.plot(ax=ax)
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), shown)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="no image"):
        Detections.from_detector(
            {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)},
            (1,),
            ("x",),
        ).plot()


def test_to_coco_round_trips_through_pycocotools(detector, images):
    from pycocotools.coco import COCO

    dets = detector(images[0])
    results = dets.to_coco(image_id=42)
    assert len(results) == len(dets)
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score"}
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 42, "height": 40, "width": 56}],
        "categories": [{"id": i, "name": n} for n, i in zip(INFO.class_names, INFO.category_ids)],
        "annotations": [],
    }
    gt.createIndex()
    loaded = gt.loadRes(json.loads(json.dumps(results)))
    anns = [loaded.anns[i] for i in sorted(loaded.anns)]
    x, y, bw, bh = np.array([a["bbox"] for a in anns]).T
    np.testing.assert_allclose(np.stack([x, y, x + bw, y + bh], 1), dets.boxes, atol=1e-4)
    np.testing.assert_array_equal([a["category_id"] for a in anns], dets.classes)
    np.testing.assert_allclose([a["score"] for a in anns], dets.scores, rtol=1e-6)
    assert all(a["image_id"] == 42 for a in anns)
    assert dets.to_coco(1, score_threshold=1.1) == []


def test_keras_predict_equals_the_graph_detector(detector, images):
    from cornernet_tf.inference.graph_detector import GraphDetector

    model = cornernet_tf.build_inference_model(detector, max_detections=20)
    assert isinstance(model, keras.Model) and model.bounding_box_format == "rel_yxyx"
    batch = np.stack(images)
    out = model.predict(batch, verbose=0)
    assert set(out) == {
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "num_detections",
    }
    assert out["detection_boxes"].shape == (2, 20, 4) and isinstance(
        out["num_detections"], np.ndarray
    )

    procedure = detector.detector
    graph = GraphDetector(detector.model, procedure.config, 20, procedure.mean, procedure.std)
    ref = {k: v.numpy() for k, v in graph.detect(batch).items()}
    h, w = batch.shape[1:3]
    # the SavedModel's conventions, computed here from the graph's pixels and 0-based classes
    x1, y1, x2, y2 = np.moveaxis(ref["boxes"], -1, 0)
    np.testing.assert_allclose(
        out["detection_boxes"], np.stack([y1 / h, x1 / w, y2 / h, x2 / w], -1), atol=1e-5
    )
    np.testing.assert_allclose(out["detection_scores"], ref["scores"], atol=1e-5)
    ids = np.array([0, 3, 7, 9], np.float32)  # padding (-1) reads 0
    np.testing.assert_array_equal(out["detection_classes"], ids[ref["classes"] + 1])
    np.testing.assert_array_equal(out["num_detections"], ref["num_detections"].astype(np.float32))
    assert ref["num_detections"].min() > 0
