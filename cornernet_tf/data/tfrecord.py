"""TFRecord shards for datasets that outgrow a folder of files (or live on GCS).

Each record is one image as a ``tf.train.Example``:

=========================== ========= ====================================================
key                         type      value
=========================== ========= ====================================================
image/encoded               bytes     the original file's bytes (not re-encoded)
image/filename              bytes     ``file_name`` from the annotations
image/id                    int64     image id
image/height, image/width   int64     size in pixels
image/object/bbox           bytes     float64 little-endian ``[N, 4]`` x1, y1, x2, y2 pixels
image/object/class          int64 [N] contiguous 0-based class
image/object/annotation_id  int64 [N] annotation id (-1 when unknown)
=========================== ========= ====================================================

Boxes are stored as float64 bytes, not the usual float32 list, so that shards reproduce the
JSON source bit for bit (the encoder truncates float64 corners). Shards are named
``PREFIX-00000-of-0000N.tfrecord``; ``PREFIX.info.json`` holds the class names and category ids.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence

import numpy as np

from cornernet_tf.atomic_files import replacing, write_json
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.data.records import ImageRecord
from cornernet_tf.data.report import DatasetReport
from cornernet_tf.errors import InvalidValueError

logger = logging.getLogger("cornernet_tf.data")

_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}\.tfrecord$")


def shard_path(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord"


def info_path(prefix: str) -> str:
    return f"{prefix}.info.json"


def info_path_for(shard_file: str) -> str:
    """The ``.info.json`` beside a shard named by :func:`shard_path`."""
    return info_path(_SHARD_SUFFIX.sub("", shard_file))


def serialize_example(record: ImageRecord, encoded: bytes) -> bytes:
    import tensorflow as tf

    def b(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def i(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    feature = {
        "image/encoded": b([encoded]),
        "image/filename": b([record.file_name.encode("utf-8")]),
        "image/id": i([record.image_id]),
        "image/height": i([record.height]),
        "image/width": i([record.width]),
        "image/object/bbox": b([np.asarray(record.boxes, "<f8").tobytes()]),
        "image/object/class": i(record.classes),
        "image/object/annotation_id": i(record.annotation_ids),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(
    records: Sequence[ImageRecord],
    info: DatasetInfo,
    prefix: str,
    num_shards: int,
    report: DatasetReport | None = None,
) -> list[str]:
    """Write ``records`` into ``num_shards`` balanced, contiguous shards plus ``PREFIX.info.json``.

    A file that cannot be read any more is skipped and reported. Returns the shard paths.
    """
    import tensorflow as tf

    if num_shards < 1:
        raise InvalidValueError(f"--num-shards must be >= 1, got {num_shards}")
    report = report or DatasetReport("to-tfrecord")
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    bounds = np.linspace(0, len(records), num_shards + 1).round().astype(int)
    paths, written = [], 0
    for s in range(num_shards):
        path = shard_path(prefix, s, num_shards)
        with (
            replacing(path, errors=(tf.errors.OpError,)) as tmp,
            tf.io.TFRecordWriter(tmp) as writer,
        ):
            for record in records[bounds[s] : bounds[s + 1]]:
                try:
                    with open(record.path, "rb") as fh:
                        encoded = fh.read()
                except OSError as exc:
                    report.problem(
                        "unreadable",
                        f"not written: {exc}",
                        file=record.path,
                        image_id=record.image_id,
                        counter="images_unreadable",
                    )
                    continue
                writer.write(serialize_example(record, encoded))
                written += 1
        paths.append(path)
    meta = info.to_dict()
    meta.update({"num_images": written, "num_shards": num_shards})
    write_json(info_path(prefix), meta, indent=1)
    return paths


def list_shards(pattern: str) -> list[str]:
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no TFRecord file matches {pattern}")
    return files


def load_info(files: Sequence[str], class_names: Sequence[str] | None = None) -> DatasetInfo:
    """The dataset info written beside the shards, or ``class_names`` (ids 1..C) when there is none."""
    import tensorflow as tf

    path = info_path_for(files[0])
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as fh:
            return DatasetInfo.from_dict(json.load(fh), path)
    if class_names:
        return DatasetInfo.from_names(class_names)
    raise FileNotFoundError(
        f"{path} not found: it holds the class names of {files[0]}; write the shards with "
        "`cornernet data to-tfrecord` or set data.class_names"
    )


def parse_example(serialized):
    """A serialized example -> source element (see ``pipeline.py``)."""
    import tensorflow as tf

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "image/id": tf.io.FixedLenFeature([], tf.int64),
        "image/height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
        "image/width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
        "image/object/bbox": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "image/object/class": tf.io.VarLenFeature(tf.int64),
    }
    ex = tf.io.parse_single_example(serialized, spec)
    boxes = tf.reshape(
        tf.io.decode_raw(ex["image/object/bbox"], tf.float64, little_endian=True), [-1, 4]
    )
    return {
        "data": ex["image/encoded"],
        "name": ex["image/filename"],
        "image_id": ex["image/id"],
        "height": tf.cast(ex["image/height"], tf.int32),
        "width": tf.cast(ex["image/width"], tf.int32),
        "boxes": boxes,
        "classes": tf.cast(tf.sparse.to_dense(ex["image/object/class"]), tf.int32),
    }


def _shard_sizes(files: Sequence[str]) -> list[int]:
    """Byte size of each shard (-1 when it cannot be read: every record of it is then reported)."""
    import tensorflow as tf

    sizes = []
    for f in files:
        try:
            sizes.append(int(tf.io.gfile.stat(f).length))
        except tf.errors.OpError:
            sizes.append(-1)
    return sizes


def read_shard(file, size, report: DatasetReport | None = None):
    """``(serialized, file, index)`` for the records of one shard, up to the first unreadable one.

    ``TFRecordDataset`` stops a file at a truncated or corrupt record (the framing cannot be
    resynchronised) with a ``DataLossError`` that names neither file nor record. Reading each shard
    on its own with ``ignore_errors`` keeps the run going; counting the bytes of the records read
    (payload + 16 framing bytes each) and comparing with the file's size tells whether the shard
    ended early, and at which record. That is reported once per shard with its name.
    """
    import tensorflow as tf

    def tag(index, record):
        return record, index, tf.constant(False)

    records = tf.data.TFRecordDataset(file).enumerate().map(tag).ignore_errors()
    end = tf.data.Dataset.from_tensors(
        (tf.constant(b""), tf.constant(-1, tf.int64), tf.constant(True))
    )

    def count(state, element):
        record, index, is_end = element
        consumed, read = state
        length = tf.cast(tf.strings.length(record, "BYTE"), tf.int64) + 16
        step = tf.where(is_end, tf.constant(0, tf.int64), length)
        state = (consumed + step, read + tf.cast(~is_end, tf.int64))
        return state, (record, index, is_end, state[0], state[1])

    reported: set = set()

    def on_cut(name, read, consumed, total) -> np.bool_:
        name = name.decode("utf-8", "replace")
        if report is not None:
            report.count("runtime_shards_cut_repeats")
        if name not in reported:
            reported.add(name)
            if total < 0:
                why = "the shard cannot be read"
            else:
                why = (
                    f"record {read} is truncated or corrupt; it and the remaining "
                    f"{total - consumed} bytes of the shard are skipped ({read} records read)"
                )
            logger.warning("%s: %s", name, why)
            if report is not None:
                report.problem("bad_shard", why, file=name, counter="runtime_shards_cut")
        return np.bool_(False)

    def keep(record, index, is_end, consumed, read):
        def check_end():
            def cut():
                return tf.ensure_shape(
                    tf.numpy_function(on_cut, [file, read, consumed, size], tf.bool, stateful=True),
                    [],
                )

            def whole():
                return tf.constant(False)

            return tf.cond(tf.equal(consumed, size), whole, cut)

        def record_kept():
            return tf.constant(True)

        return tf.cond(is_end, check_end, record_kept)

    def strip(record, index, is_end, consumed, read):
        return record, file, index

    initial = (tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    return records.concatenate(end).scan(initial, count).filter(keep).map(strip)


def tfrecord_source(
    files: Sequence[str],
    input_context=None,
    shuffle_files: bool = False,
    seed=None,
    report: DatasetReport | None = None,
):
    """Source elements from shards, sharded per input pipeline (by file when there are enough).

    A truncated or corrupt shard is read up to the bad record and reported (:func:`read_shard`); a
    record that is not a valid ``tf.train.Example`` is skipped and reported with its shard and
    index. Element names are ``SHARD record INDEX (FILE_NAME)`` so later reports locate them too.
    """
    import tensorflow as tf

    from cornernet_tf.data.image_io import map_or_skip

    files = list(files)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string), tf.constant(_shard_sizes(files), tf.int64))
    )
    by_record = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            by_record = True
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def shard_records(file, size):
        return read_shard(file, size, report)

    ds = ds.interleave(
        shard_records,
        cycle_length=min(len(files), 8),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if by_record:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    def as_dict(record, file, index):
        return {"record": record, "file": file, "index": index}

    def origin(x):
        return tf.strings.join([x["file"], " record ", tf.strings.as_string(x["index"])])

    def parse(x):
        element = parse_example(x["record"])
        element["name"] = tf.strings.join([origin(x), " (", element["name"], ")"])
        return element

    def not_an_example(name):
        return "not a readable tf.train.Example"

    return map_or_skip(
        ds.map(as_dict),
        parse,
        describe=origin,
        report=report,
        reason=not_an_example,
        num_parallel_calls=tf.data.AUTOTUNE,
        kind="bad_record",
        counter="runtime_records_skipped",
        action="record skipped",
    )
