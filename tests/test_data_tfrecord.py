"""TFRecord shards: exact round trip, same pipeline output as the JSON source, sharding."""

import json

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.config import ConfigError, DataConfig
from cornernet_tf.data import build_dataset, load_coco, load_source, tfrecord
from cornernet_tf.data.shapes import generate_shapes


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfr")
    out = generate_shapes(str(root / "shapes"), 6, seed=1, size=(64, 80), image_format="jpeg")
    ds = load_coco(out["train"], root / "shapes" / "train" / "images")
    # Fractional boxes that float32 storage would round: float64 bytes must keep them exactly.
    ds.records[0].boxes = ds.records[0].boxes + np.array([0.1, 0.2, 0.3, 0.4]) / 3
    prefix = str(root / "records" / "train")
    paths = tfrecord.write_shards(ds.records, ds.info, prefix, num_shards=3)
    return ds, prefix, paths


def test_shard_names_and_info(shards):
    ds, prefix, paths = shards
    assert [p.split("/")[-1] for p in paths] == [
        f"train-0000{i}-of-00003.tfrecord" for i in range(3)
    ]
    meta = json.load(open(prefix + ".info.json"))
    assert meta["num_images"] == 6 and meta["class_names"] == ["rectangle", "ellipse", "triangle"]
    assert tfrecord.info_path_for(paths[1]) == prefix + ".info.json"
    assert tfrecord.load_info(paths) == ds.info


def test_round_trip_is_exact(shards):
    ds, prefix, paths = shards
    parsed = [
        tf.nest.map_structure(lambda t: t.numpy(), tfrecord.parse_example(x))
        for x in tf.data.TFRecordDataset(paths)
    ]
    assert [p["image_id"] for p in parsed] == [r.image_id for r in ds.records]
    for p, r in zip(parsed, ds.records):
        np.testing.assert_array_equal(p["boxes"], r.boxes)  # bit-exact float64
        np.testing.assert_array_equal(p["classes"], r.classes)
        assert p["data"] == open(r.path, "rb").read()
        assert (p["height"], p["width"]) == (r.height, r.width)
        assert p["name"].decode() == r.file_name


def test_pipeline_from_shards_equals_pipeline_from_json(shards):
    ds, prefix, _ = shards
    base = DataConfig(input_size=[63, 63], seed=0, deterministic=True, num_parallel_calls=2)
    from cornernet_tf.data.pipeline import DataSource

    json_source = DataSource("coco", ds.info, ds.report, records=ds.records)
    from_json = {
        int(t["image_id"]): (im, t)
        for im, t in build_dataset(base, training=False, source=json_source).as_numpy_iterator()
    }
    config = DataConfig(
        val_tfrecords=prefix + "-*.tfrecord",
        input_size=[63, 63],
        seed=0,
        deterministic=True,
        num_parallel_calls=2,
    )
    shard_ds = build_dataset(config, training=False)
    assert shard_ds.dataset_info == ds.info
    from_shards = {int(t["image_id"]): (im, t) for im, t in shard_ds.as_numpy_iterator()}
    assert sorted(from_json) == sorted(from_shards)
    for image_id, (image, targets) in from_json.items():
        np.testing.assert_array_equal(from_shards[image_id][0], image)
        tf.nest.map_structure(np.testing.assert_array_equal, from_shards[image_id][1], targets)


def test_training_from_shards_with_input_context_and_class_subset(shards):
    _, prefix, _ = shards
    config = DataConfig(
        train_tfrecords=prefix + "-*.tfrecord",
        input_size=[31, 31],
        border=8,
        seed=3,
        deterministic=True,
        class_names=["triangle", "rectangle"],
        num_parallel_calls=2,
    )
    source = load_source(config, training=True)
    assert source.info.class_names == ("triangle", "rectangle") and source.info.category_ids == (
        3,
        1,
    )
    assert source.num_images == 6
    ids = []
    for pipeline_id in range(3):
        ctx = tf.distribute.InputContext(3, pipeline_id, 3)
        ds = build_dataset(config, training=False, batch_size=3, input_context=ctx, source=source)
        assert ds.element_spec[1]["tl_heatmap"].shape[-1] == 2
        ids.append({int(i) for _, t in ds.as_numpy_iterator() for i in t["image_id"]})
    assert sum(len(s) for s in ids) == 6 and set.union(*ids) == set(range(1, 7))


def test_missing_shards_and_info_are_clear_errors(shards, tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord file matches"):
        tfrecord.list_shards(str(tmp_path / "nothing-*.tfrecord"))
    orphan = tmp_path / "orphan-00000-of-00001.tfrecord"
    orphan.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="orphan.info.json"):
        tfrecord.load_info([str(orphan)])
    assert tfrecord.load_info([str(orphan)], ["a", "b"]).category_ids == (1, 2)
    with pytest.raises(ValueError, match="num-shards"):
        tfrecord.write_shards([], shards[0].info, str(tmp_path / "x"), 0)
    with pytest.raises(ConfigError, match="not classes"):
        load_source(DataConfig(train_tfrecords=shards[1] + "-*.tfrecord", class_names=["hexagon"]))
