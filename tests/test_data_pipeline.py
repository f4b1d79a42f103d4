"""build_dataset / build_eval_dataset: element spec, determinism, sharding, golden targets end to end."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden
from PIL import Image
from shapes_data import shapes_data_config

from cornernet_tf.config import ConfigError, DataConfig, ModelConfig
from cornernet_tf.data import augment, build_dataset, build_eval_dataset, load_source
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.data.pipeline import DataSource
from cornernet_tf.data.records import ImageRecord
from cornernet_tf.data.report import DatasetReport
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.targets import encode_targets


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    generate_shapes(str(out), 14, seed=5, size=(96, 128), splits={"train": 10, "val": 4})
    return out


def small_config(shapes_dir, **kw):
    return shapes_data_config(shapes_dir, **kw)


def take(ds, n):
    return [tf.nest.map_structure(lambda t: t.numpy(), x) for x in ds.take(n)]


@pytest.fixture(scope="module")
def train_run(shapes_dir):
    """One training pipeline (batch 2, 10 batches = two epochs of 10 images), shared by several tests."""
    ds = build_dataset(small_config(shapes_dir), training=True, batch_size=2)
    return ds, take(ds, 10)


def test_training_element_spec(train_run):
    ds, batches = train_run
    images, targets = ds.element_spec
    assert images.shape == (2, 63, 63, 3) and images.dtype == tf.float32
    assert targets["tl_heatmap"].shape == (2, 16, 16, 3)
    assert targets["br_heatmap"].shape == (2, 16, 16, 3)
    assert targets["tl_regr"].shape == (2, 128, 2) and targets["tl_tag"].dtype == tf.int64
    assert targets["tag_mask"].shape == (2, 128)
    assert targets["image_id"].shape == (2,) and targets["image_id"].dtype == tf.int64
    assert ds.dataset_info.class_names == ("rectangle", "ellipse", "triangle")
    assert ds.dataset_info.category_ids == (1, 2, 3)
    assert len(batches) == 10  # repeats: more batches than one epoch holds


def test_same_seed_same_batches_other_seed_different(shapes_dir, train_run):
    config = small_config(shapes_dir)
    a = train_run[1][:3]
    b = take(build_dataset(config, True, batch_size=2), 3)
    c = take(build_dataset(dataclasses.replace(config, seed=8), True, batch_size=2), 3)
    for x, y in zip(a, b):
        tf.nest.map_structure(np.testing.assert_array_equal, x, y)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_epochs_are_reshuffled_and_cover_every_image(train_run):
    ids = np.concatenate([t["image_id"] for _, t in train_run[1]])
    first, second = ids[:10], ids[10:]
    assert sorted(first) == sorted(second) == list(range(1, 11))
    assert list(first) != list(second)


def test_validation_pass_is_ordered_and_finite(shapes_dir):
    batches = take(build_dataset(small_config(shapes_dir), training=False, batch_size=3), 100)
    assert [len(t["image_id"]) for _, t in batches] == [3, 1]  # 4 images, last batch kept
    assert list(np.concatenate([t["image_id"] for _, t in batches])) == [11, 12, 13, 14]


def test_validation_elements_are_the_unaugmented_image_and_its_targets(shapes_dir):
    """Without augmentation the pipeline equals resize_full_image + encode_targets by hand, whatever the seed."""
    config = small_config(shapes_dir, seed=99)
    source = load_source(config, training=False)
    record = source.records[0]
    image = np.asarray(Image.open(record.path).convert("RGB"))
    resized, boxes, classes, _ = augment.resize_full_image(
        image, record.boxes, record.classes, config.input_size
    )
    expected = encode_targets(boxes, classes, config.input_size, config.output_hw, 3)
    got_image, targets = take(build_dataset(config, training=False, source=source), 1)[0]
    for key, value in expected.items():
        np.testing.assert_array_equal(targets[key], value.numpy(), err_msg=key)
    assert targets["num_objects"] == record.num_objects > 0
    pixels = (got_image * np.float32(config.std) + np.float32(config.mean)) * 255
    np.testing.assert_allclose(pixels, resized.numpy(), atol=1e-3)


def test_training_targets_match_boxes_kept_by_augmentation(train_run):
    for images, targets in train_run[1]:
        assert np.isfinite(images).all()
        mask = targets["tag_mask"].astype(bool)
        assert (mask.sum(1) == targets["num_objects"]).all()
        for b in range(len(images)):
            n = targets["num_objects"][b]
            # Every tagged object has its corner peak (1.0) on the heatmap at its tag.
            tl = targets["tl_heatmap"][b].reshape(-1, 3).max(axis=1)
            assert np.allclose(tl[targets["tl_tag"][b, :n]], 1.0)
            br = targets["br_heatmap"][b].reshape(-1, 3).max(axis=1)
            assert np.allclose(br[targets["br_tag"][b, :n]], 1.0)
            assert (targets["tl_tag"][b, n:] == 0).all()
    assert sum(t["num_objects"].sum() for _, t in train_run[1]) > 10


def test_input_context_shards_and_splits_the_batch(shapes_dir):
    config = small_config(shapes_dir)
    seen = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        batches = take(build_dataset(config, training=False, batch_size=4, input_context=ctx), 100)
        assert all(len(t["image_id"]) <= 2 for _, t in batches)  # per-replica batch = 4 / 2
        seen.append(set(np.concatenate([t["image_id"] for _, t in batches])))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == {11, 12, 13, 14}


def test_distribute_datasets_from_function_runs(shapes_dir):
    config = small_config(shapes_dir)
    strategy = tf.distribute.get_strategy()
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: build_dataset(config, True, batch_size=2, input_context=ctx)
    )
    images, targets = next(iter(dist))
    assert images.shape == (2, 63, 63, 3)


def test_num_classes_from_model_config_and_mismatch_error(shapes_dir):
    config = small_config(shapes_dir)
    ds = build_dataset(config, True, batch_size=1, model_config=ModelConfig(num_classes=5))
    assert ds.element_spec[1]["tl_heatmap"].shape[-1] == 5
    with pytest.raises(ConfigError, match="3 classes"):
        build_dataset(config, True, batch_size=1, num_classes=2)


def test_class_names_select_and_reorder_classes(shapes_dir):
    config = small_config(shapes_dir, class_names=["triangle", "rectangle"])
    ds = build_dataset(config, training=False)
    assert ds.dataset_info.class_names == ("triangle", "rectangle")
    assert ds.dataset_info.category_ids == (3, 1)
    assert ds.report.counts["boxes_other_class"] > 0


def test_source_selection_errors():
    with pytest.raises(ConfigError, match="no training data"):
        build_dataset(DataConfig(), True)
    with pytest.raises(ConfigError, match="only one"):
        build_dataset(
            DataConfig(train_annotations="a.json", train_images="x", tfds_name="coco/2017"), True
        )
    with pytest.raises(ConfigError, match="no validation data"):
        load_source(DataConfig(train_annotations="a.json", train_images="x"), training=False)
    # Explicit validation files win over the dataset name shared with training.
    with pytest.raises(FileNotFoundError, match="val.json"):
        load_source(
            DataConfig(tfds_name="coco/2017", val_annotations="val.json", val_images="."),
            training=False,
        )
    with pytest.raises(ConfigError, match="data.seed"):
        build_dataset(
            DataConfig(train_annotations="a.json", train_images="x", deterministic=True), True
        )


def test_eval_dataset_geometry_maps_back_to_original_boxes(shapes_dir):
    config = small_config(shapes_dir)
    source = load_source(config, training=False)
    batches = take(build_eval_dataset(config, batch_size=2, source=source), 10)
    records = {r.image_id: r for r in source.records}
    for batch in batches:
        assert batch["image"].shape[1:] == (63, 63, 3)
        for b, image_id in enumerate(batch["image_id"]):
            record = records[image_id]
            n = batch["num_boxes"][b]
            assert (batch["classes"][b, n:] == -1).all()
            np.testing.assert_array_equal(batch["original_size"][b], [96, 128])
            back = (
                batch["boxes"][b, :n] / batch["ratio"][b][[1, 0, 1, 0]]
                - batch["border"][b][[1, 0, 1, 0]]
            )
            # Boxes only move by the final clip to size - 1 (at most one input pixel).
            assert np.abs(back - record.boxes).max() <= 1.0 / batch["ratio"][b].min() + 1e-4
    originals = take(build_eval_dataset(config, resize=False, source=source), 10)
    assert [o["image"].shape for o in originals] == [(96, 128, 3)] * 4
    np.testing.assert_allclose(
        originals[0]["boxes"], records[originals[0]["image_id"]].boxes, atol=1e-4
    )


def test_golden_debug_path_end_to_end(tmp_path):
    """The official debug path (full crop, resize, clip, encode) through build_dataset: targets.npz."""
    g = load_golden("targets.npz")
    records = []
    for b in range(2):
        n = int(g["dets_raw_count"][b])
        dets = g["dets_raw"][b, :n]
        path = tmp_path / f"{b}.png"
        Image.fromarray(g[f"raw_image_{b}_bgr_hwc_uint8"][..., ::-1]).save(path)
        h, w = (int(v) for v in g["raw_image_hw"][b])
        records.append(
            ImageRecord(
                b + 1, str(path), path.name, h, w, dets[:, :4], dets[:, 4].astype(np.int32) - 1
            )
        )
    source = DataSource(
        "coco", DatasetInfo.from_names(["a", "b", "c"]), DatasetReport("golden"), records=records
    )
    config = DataConfig(input_size=[511, 511], output_size=[128, 128], seed=0, deterministic=True)
    ds = build_dataset(config, training=False, batch_size=2, source=source)
    images, targets = take(ds, 1)[0]
    np.testing.assert_allclose(
        targets["tl_heatmap"], g["tl_heatmaps"].transpose(0, 2, 3, 1), atol=1e-6, rtol=0
    )
    np.testing.assert_allclose(
        targets["br_heatmap"], g["br_heatmaps"].transpose(0, 2, 3, 1), atol=1e-6, rtol=0
    )
    np.testing.assert_allclose(targets["tl_regr"], g["tl_regrs"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(targets["br_regr"], g["br_regrs"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(targets["tl_tag"], g["tl_tags"])
    np.testing.assert_array_equal(targets["br_tag"], g["br_tags"])
    np.testing.assert_array_equal(targets["tag_mask"], g["tag_masks"])
    pixels = (images * np.float32(config.std) + np.float32(config.mean)) * 255.0
    expected = g["images_bgr_nchw_uint8"].transpose(0, 2, 3, 1)[..., ::-1]
    np.testing.assert_allclose(pixels, expected, atol=1e-3)
