"""Fault suite, inputs: corrupt TFRecords never end a run; no image can take unbounded memory.

* A truncated shard, a corrupt record (CRC), a record that is not a ``tf.train.Example`` and an
  image that fails to decode are skipped and named with their shard and record index, once
  however many epochs reach them (a COCO-folder image that fails to decode is covered by
  ``test_data_bad_input.py``).
* An image whose header declares more than ``MAX_INPUT_PIXELS`` is refused before decoding by the
  Detector, ``cornernet detect`` (the folder run goes on) and the data pipeline (hence eval).
  Images are crafted at test time (``crafted_images.py``): a header is enough to be refused. The
  exported SavedModel's and the serving stand-in's checks are tested with their export fixtures
  (``test_export_saved_model.py``, ``test_serving.py``).
* An image over ``MAX_NETWORK_SIDE`` is downscaled for the network and its boxes mapped back.
"""

import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from crafted_images import encoded, jpeg_declaring, png_header
from PIL import Image
from small_models import SMALL_TF_POOL

from cornernet_tf.config import DataConfig, load_config
from cornernet_tf.data import build_dataset, build_eval_dataset, load_coco, load_source, tfrecord
from cornernet_tf.data.pixel_limit import (
    ImageTooLargeError,
    graph_image_size,
    header_size,
)
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.eval.detect_images import ImageReadError, detect_files, read_image

CONFIG = "configs/cornernet_tiny.yaml"
SMALL = SMALL_TF_POOL


# ------------------------------------------------------------------------------ header sizes


@pytest.mark.parametrize(
    "fmt, kw",
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"quality": 80}),
    ],
)
def test_header_size_in_python_and_in_the_graph_equals_the_decoded_size(fmt, kw):
    pixels = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    data = encoded(pixels, fmt, **kw)
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False).shape
    assert header_size(data) == (decoded[1], decoded[0]) == (53, 37)
    assert graph_image_size(tf.constant(data)).numpy().tolist() == [37, 53]


def test_crafted_headers_declare_their_size_in_a_few_bytes():
    assert len(png_header(20000, 20000)) == 45
    assert header_size(png_header(20000, 20000)) == (20000, 20000)
    assert header_size(jpeg_declaring(20000, 19999)) == (20000, 19999)
    assert graph_image_size(tf.constant(jpeg_declaring(20000, 19999))).numpy().tolist() == [
        19999,
        20000,
    ]
    assert header_size(b"not an image") is None
    assert header_size(b"\xff\xd8\xff\xe0\x00\x00 length 0: no endless scan") is None


# ------------------------------------------------------------------------------ corrupt records


@pytest.fixture(scope="module")
def broken_shards(tmp_path_factory):
    """Three shards of a 9-image dataset: shard 0 truncated in its last record, shard 1 with a
    corrupt payload in record 1, shard 2 with a non-Example record 1 and undecodable image bytes
    in record 2. Returns (prefix, images ids expected to survive, {shard: path})."""
    root = tmp_path_factory.mktemp("broken")
    out = generate_shapes(str(root / "shapes"), 9, seed=2, size=(48, 56), image_format="png")
    ds = load_coco(out["train"], root / "shapes" / "train" / "images")
    prefix = str(root / "records" / "train")
    paths = tfrecord.write_shards(ds.records, ds.info, prefix, num_shards=3)
    ids = [[r.image_id for r in ds.records[i * 3 : i * 3 + 3]] for i in range(3)]
    data = [open(p, "rb").read() for p in paths]
    # Shard 0: cut in the middle of its last record.
    open(paths[0], "wb").write(data[0][: len(data[0]) - 40])
    # Shard 1: flip a payload byte of record 1 (its CRC no longer matches).
    records = [r.numpy() for r in tf.data.TFRecordDataset(paths[1])]
    flipped = bytearray(data[1])
    flipped[(len(records[0]) + 16) + 12 + 30] ^= 0xFF
    open(paths[1], "wb").write(bytes(flipped))
    # Shard 2: record 1 is no Example, record 2 holds bytes no decoder reads.
    good = [r.numpy() for r in tf.data.TFRecordDataset(paths[2])]
    bad_image = tfrecord.serialize_example(ds.records[8], b"\x89PNG but nothing else")
    with tf.io.TFRecordWriter(paths[2]) as writer:
        for record in (good[0], b"\x08\x01garbage that is not a tf.train.Example", bad_image):
            writer.write(record)
    survivors = set(ids[0][:2]) | set(ids[1][:1]) | {ids[2][0]}
    return prefix, survivors, paths


def test_corrupt_shards_and_records_are_skipped_named_once_and_training_goes_on(
    broken_shards, caplog
):
    prefix, survivors, paths = broken_shards
    config = DataConfig(
        train_tfrecords=prefix + "-*.tfrecord",
        input_size=[31, 31],
        border=8,
        seed=5,
        deterministic=True,
        num_parallel_calls=2,
    )
    source = load_source(config, training=True)
    with caplog.at_level(logging.WARNING, logger="cornernet_tf.data"):
        ds = build_dataset(config, training=True, batch_size=2, source=source)
        ids = np.concatenate([t["image_id"].numpy() for _, t in ds.take(6)])  # 3 epochs of 4
    assert set(ids.tolist()) == survivors
    report = source.report
    cuts = {p.file: p.message for p in report.problems_of("bad_shard")}
    assert set(cuts) == {paths[0], paths[1]}
    assert cuts[paths[0]].startswith("record 2 is truncated or corrupt")
    assert cuts[paths[1]].startswith("record 1 is truncated or corrupt")
    assert [p.file for p in report.problems_of("bad_record")] == [f"{paths[2]} record 1"]
    # The image that fails to decode: one problem, one count, one line over three epochs.
    undecodable = report.problems_of("undecodable")
    assert len(undecodable) == 1 and undecodable[0].file.startswith(f"{paths[2]} record 2 (")
    assert "cannot be decoded" in undecodable[0].message
    # Each reported once (one warning line) although three epochs met it.
    assert (
        report.counts["runtime_shards_cut"] == 2
        and report.counts["runtime_shards_cut_repeats"] >= 4
    )
    assert report.counts["runtime_records_skipped"] == 1
    assert report.counts["runtime_images_skipped"] == 1
    assert report.counts["runtime_images_skipped_repeats"] >= 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in (paths[0], paths[1], f"{paths[2]} record 1", f"{paths[2]} record 2"):
        assert sum(name in w for w in warnings) == 1, name
    assert "runtime_shards_cut" in json.dumps(report.to_dict())
    assert "TFRecord shards cut short" in report.summary()


# ------------------------------------------------------------------------------ oversized images


@pytest.fixture(scope="module")
def small_model():
    from cornernet_tf.modeling.cornernet import build_model

    keras.utils.set_random_seed(0)
    config = load_config(CONFIG, SMALL)
    model = build_model(config.model)
    for stack in model.stacks:  # zero embeddings: every valid corner pair is a detection
        for corner in ("tl", "br"):
            for var in stack[f"{corner}_tag"].out.weights:
                var.assign(np.zeros(var.shape, np.float32))
    return model, config


@pytest.fixture(scope="module")
def oversized_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("oversized")
    (root / "huge.png").write_bytes(png_header(20000, 20000))
    (root / "huge.jpg").write_bytes(jpeg_declaring(20000, 20000))
    rng = np.random.default_rng(4)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8)).save(root / name)
    return root


def test_detector_and_detect_refuse_oversized_images_and_go_on(small_model, oversized_files):
    from cornernet_tf.inference.detector import Detector

    model, config = small_model
    detector = Detector(model, config.test)
    with pytest.raises(ImageTooLargeError, match="20000x20000 = 400.0 megapixels"):
        # A zero-stride view: the check needs the shape only, nothing is copied.
        detector.detect(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3)))
    for name in ("huge.png", "huge.jpg"):
        with pytest.raises(ImageReadError, match="over the limit .*MAX_INPUT_PIXELS") as info:
            read_image(str(oversized_files / name))
        assert "\n" not in str(info.value) and name in str(info.value)
    messages = []
    files = [str(oversized_files / n) for n in ("a.png", "huge.png", "huge.jpg", "b.png")]
    summary = detect_files(
        detector, files, str(oversized_files / "out"), ["x"] * 3, on_message=messages.append
    )
    assert [p for p, _ in summary.processed] == [files[0], files[3]]
    assert [p for p, _ in summary.skipped] == files[1:3]
    assert sum("megapixels" in m for m in messages) == 2


def test_data_pipeline_and_eval_refuse_oversized_images(oversized_files, tmp_path):
    names = ["a.png", "huge.png", "huge.jpg", "b.png"]
    annotations = tmp_path / "a.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [{"id": i + 1, "file_name": n} for i, n in enumerate(names)],
                "annotations": [],
                "categories": [{"id": 1, "name": "x"}],
            }
        )
    )
    # Load time: the header scan drops them, named, without decoding.
    loaded = load_coco(annotations, oversized_files, scan="header")
    assert sorted(r.file_name for r in loaded.records) == ["a.png", "b.png"]
    assert loaded.report.counts["images_too_large"] == 2
    assert all("megapixels" in p.message for p in loaded.report.problems_of("too_large"))
    # No scan (or a file that changed): the in-graph check skips them before decoding.
    config = DataConfig(val_annotations=str(annotations), val_images=str(oversized_files))
    source = load_source(config, training=False, scan="none")
    out = list(build_eval_dataset(config, resize=False, source=source).as_numpy_iterator())
    assert sorted(int(x["image_id"]) for x in out) == [1, 4]
    skipped = source.report.problems_of("undecodable")
    assert sorted(p.file.split("/")[-1] for p in skipped) == ["huge.jpg", "huge.png"]
    assert all("400.0 megapixels is over the limit" in p.message for p in skipped)


def test_large_image_is_downscaled_and_boxes_map_back(small_model):
    from cornernet_tf.detection.finalise import finalise as finalise_rows
    from cornernet_tf.inference.detector import Detector

    def finalise(boxes, rows, test_config):
        return finalise_rows(np.concatenate([boxes, rows[:, 4:]], axis=1), test_config)

    model, config = small_model
    detector = Detector(model, config.test, max_side=64)
    rng = np.random.default_rng(6)
    big = rng.integers(0, 255, (75, 150, 3), np.uint8)
    small = np.asarray(Image.fromarray(big).resize((64, 32), Image.Resampling.BILINEAR))
    factors = np.array([150 / 64, 75 / 32, 150 / 64, 75 / 32])
    rows, small_rows = detector.raw_detections(big), detector.raw_detections(small)
    assert len(small_rows) > 0
    np.testing.assert_array_equal(rows[:, 4:], small_rows[:, 4:])  # scores, classes...
    np.testing.assert_allclose(rows[:, :4], small_rows[:, :4] * factors, rtol=1e-6)
    assert rows[:, 2].max() > 64  # in the original's pixels, beyond the network's image
    # Soft-NMS then runs on the original's pixels.
    expected = finalise(small_rows[:, :4] * factors, small_rows, config.test)
    got = detector.detect(big)
    np.testing.assert_allclose(got["boxes"], expected["boxes"], rtol=1e-6)
    np.testing.assert_array_equal(got["scores"], expected["scores"])


def test_tfds_shortfall_from_a_corrupt_shard_is_reported_once(tmp_path, caplog):
    """TFDS reads its shards itself: a truncated one ends early (ignore_errors) and the missing
    examples are reported once per run, not per pass."""
    from cornernet_tf.data.report import DatasetReport
    from cornernet_tf.data.tfds import report_lost_examples

    path = str(tmp_path / "coco-train.tfrecord-00000-of-00001")
    with tf.io.TFRecordWriter(path) as writer:
        for k in range(5):
            writer.write(b"example %d" % k)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])  # the last record is cut
    ds = tf.data.TFRecordDataset(path).ignore_errors().map(lambda r: {"image": r})
    report = DatasetReport("tfds")
    with caplog.at_level(logging.WARNING, logger="cornernet_tf.data"):
        got = [
            x["image"].numpy() for x in report_lost_examples(ds, 5, "coco train", report).repeat(2)
        ]
    assert got == [b"example %d" % k for k in range(4)] * 2
    assert report.counts["runtime_tfds_examples_lost"] == 1
    assert [p.message for p in report.problems_of("bad_shard")] == [
        "1 of 5 examples could not be read (corrupt shard)"
    ]
    assert sum("coco train" in r.getMessage() for r in caplog.records) == 1
