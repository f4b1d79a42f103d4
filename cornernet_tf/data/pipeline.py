"""The input pipeline: source -> decode -> augment -> encode targets -> batch -> prefetch.

Training elements (``build_dataset(..., training=True)``), ``B`` = per-replica batch,
``H, W`` = ``data.input_size``, ``h, w`` = ``data.output_hw``, ``C`` = classes,
``M`` = ``data.max_objects``::

    (images, targets)
    images                 float32 [B, H, W, 3]  RGB, normalised with data.mean / data.std
    targets["tl_heatmap"]  float32 [B, h, w, C]  Gaussian corner heatmaps (targets.encode_targets)
    targets["br_heatmap"]  float32 [B, h, w, C]
    targets["tl_regr"]     float32 [B, M, 2]     sub-pixel offsets (dx, dy)
    targets["br_regr"]     float32 [B, M, 2]
    targets["tl_tag"]      int64   [B, M]        flat indices y * w + x
    targets["br_tag"]      int64   [B, M]
    targets["tag_mask"]    float32 [B, M]        1 for the first num_objects slots
    targets["num_objects"] int32   [B]
    targets["num_dropped"] int32   [B]           objects past M (on the heatmaps, no tag)
    targets["image_id"]    int64   [B]

``batch_format="compact"`` hands the last pass over the pixels and the heatmap drawing to the
train step (``cornernet_tf.data.finish``): 0.8 MB per image to batch and to copy to an
accelerator instead of 13.6 MB at COCO size. ``K`` = ``data.max_heatmap_objects``::

    images                      uint8   [B, H, W, 3]  RGB after crop, resize and flip
    targets["pixel_affine"]     float32 [B, 3, 4]     colour jitter, lighting, normalisation
    targets["heatmap_corners"]  int32   [B, K, 4]     corner pixels tl_x, tl_y, br_x, br_y
    targets["heatmap_radii"]    float64 [B, K]        Gaussian radii
    targets["heatmap_classes"]  int32   [B, K]        -1 in the unused slots
    targets["num_undrawn"]      int32   [B]           objects past K (not on the heatmaps)

plus ``tl_regr`` ... ``image_id`` as above, without the heatmaps. ``finish.finish_batch`` turns
a compact batch into the dense one, bit for bit (objects past ``K`` aside).

Dense batches are built the same way when the native op library is built: compact elements
with every object's heatmap slots, ``padded_batch``, then ``finish.finish_dense_on_cpu`` once
per batch in the pipeline (native colour map and heatmap ops, the same bits as the per-image TF
ops, which are the path without the library; ``batch_stage``).

``training=False`` gives the same structure without randomness (full-image crop, no flip or
colour), one pass, for validation losses. :func:`build_eval_dataset` gives images with their
ground truth instead of targets (see there).

Sources, chosen by ``DataConfig``: ``train_annotations`` + ``train_images`` (COCO JSON and an
image folder), ``train_tfrecords`` (a glob of shards) or ``tfds_name`` (validation: the ``val_*``
fields, else ``tfds_name`` with ``tfds_val_split``). Exactly one must be set.

Randomness: every element gets the seed ``[base, index]`` where ``index`` counts the elements
of this pipeline in order, so with ``data.seed`` set and ``data.deterministic`` true the batches
are the same on every run whatever the parallelism. Under ``tf.distribute`` pass the
``InputContext``: each input pipeline reads its own shard and batches
``input_context.get_per_replica_batch_size(batch_size)`` images.

Undecodable images, images over ``MAX_INPUT_PIXELS`` (checked on the header before decoding,
see ``pixel_limit``), unreadable TFRecord records and truncated shards are skipped, logged once by
file (and record index) and counted in ``dataset.report`` (see ``image_io.map_or_skip`` and
``tfrecord.read_shard``); ``dataset.dataset_info`` has the class mapping.
"""

from __future__ import annotations

import dataclasses
import logging
import random

import numpy as np
import tensorflow as tf

from cornernet_tf.config import ConfigError, DataConfig
from cornernet_tf.data import augment as aug
from cornernet_tf.data import finish
from cornernet_tf.data.image_io import (
    decode_image,
    failure_reason,
    map_or_skip,
    stored_bytes_reason,
)
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.data.records import ImageRecord, records_to_dataset
from cornernet_tf.data.report import DatasetReport

logger = logging.getLogger("cornernet_tf.data")

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass
class DataSource:
    """A configured dataset before the pipeline: where the images are, the classes, the report."""

    kind: str  # coco | tfrecord | tfds
    info: DatasetInfo
    report: DatasetReport
    records: list[ImageRecord] | None = None  # coco
    files: list[str] | None = None  # tfrecord
    tfds_args: dict | None = None  # tfds: name, split, data_dir
    num_images: int | None = None
    class_map: np.ndarray | None = None  # source class -> our class (-1: not used)

    def elements(
        self,
        input_context=None,
        shuffle: bool = False,
        seed: int | None = None,
        shuffle_buffer: int = 512,
    ) -> tf.data.Dataset:
        """Source elements ``{data, name, image_id, height, width, boxes, classes}``, sharded."""
        if self.kind == "coco":
            ds = records_to_dataset(self.records)
            if input_context is not None and input_context.num_input_pipelines > 1:
                ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            if (
                shuffle
            ):  # light elements (a path and boxes): a full permutation, as the official sampler
                ds = ds.shuffle(max(len(self.records), 1), seed=seed, reshuffle_each_iteration=True)
            return ds
        if self.kind == "tfrecord":
            from cornernet_tf.data.tfrecord import tfrecord_source

            ds = tfrecord_source(
                self.files, input_context, shuffle_files=shuffle, seed=seed, report=self.report
            )
        else:
            from cornernet_tf.data.tfds import load_tfds

            ds, _ = load_tfds(
                **self.tfds_args,
                input_context=input_context,
                shuffle_files=shuffle,
                seed=seed,
                report=self.report,
            )
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return ds


def _selected_sources(config: DataConfig, training: bool) -> dict:
    if training:
        candidates = {
            "coco": config.train_annotations or config.train_images,
            "tfrecord": config.train_tfrecords,
            "tfds": config.tfds_name,
        }
    else:
        candidates = {
            "coco": config.val_annotations or config.val_images,
            "tfrecord": config.val_tfrecords,
        }
        if not any(candidates.values()):  # tfds_name names the dataset of both phases
            candidates["tfds"] = config.tfds_name
    return {k: v for k, v in candidates.items() if v}


def load_source(
    config: DataConfig,
    training: bool = True,
    scan: str = "header",
    report: DatasetReport | None = None,
) -> DataSource:
    """Read the annotations of the configured training (or validation) data.

    ``scan`` is how a COCO JSON source looks at its image files at load time: ``header``
    (default: finds missing, unreadable and resized files), ``decode`` (also truncated ones,
    slower) or ``none`` (broken files are then only skipped, and counted, in the graph).
    """
    prefix = "train" if training else "val"
    chosen = _selected_sources(config, training)
    if not chosen:
        raise ConfigError(
            f"no {'training' if training else 'validation'} data configured: set data.{prefix}_annotations "
            f"and data.{prefix}_images, data.{prefix}_tfrecords, or data.tfds_name"
        )
    if len(chosen) > 1:
        raise ConfigError(f"set only one {prefix} data source, got {', '.join(sorted(chosen))}")
    kind = next(iter(chosen))
    if kind == "coco":
        from cornernet_tf.data.coco import load_coco

        annotations = getattr(config, f"{prefix}_annotations")
        images = getattr(config, f"{prefix}_images")
        if not annotations or not images:
            raise ConfigError(
                f"data.{prefix}_annotations and data.{prefix}_images must be set together"
            )
        loaded = load_coco(
            annotations,
            images,
            class_names=config.class_names,
            scan=scan,
            max_objects=config.max_objects,
            report=report,
            max_heatmap_objects=config.max_heatmap_objects,
        )
        loaded.report.log()
        return DataSource(
            "coco",
            loaded.info,
            loaded.report,
            records=loaded.records,
            num_images=len(loaded.records),
        )
    if kind == "tfrecord":
        import json

        from cornernet_tf.data.tfrecord import info_path_for, list_shards, load_info

        files = list_shards(getattr(config, f"{prefix}_tfrecords"))
        info = load_info(files, config.class_names)
        num_images = None
        if tf.io.gfile.exists(info_path_for(files[0])):
            with tf.io.gfile.GFile(info_path_for(files[0])) as fh:
                num_images = json.load(fh).get("num_images")
        info, class_map = _restrict_classes(info, config.class_names, files[0])
        return DataSource(
            "tfrecord",
            info,
            report or DatasetReport(files[0]),
            files=files,
            num_images=num_images,
            class_map=class_map,
        )
    from cornernet_tf.data.tfds import import_tfds, tfds_dataset_info

    tfds = import_tfds()

    split = config.tfds_train_split if training else config.tfds_val_split
    builder = tfds.builder(config.tfds_name, data_dir=config.tfds_data_dir)
    info, class_map = _restrict_classes(
        tfds_dataset_info(config.tfds_name, builder.info), config.class_names, config.tfds_name
    )
    try:
        num_images = builder.info.splits[split].num_examples
    except (KeyError, ValueError):  # split sizes are unknown until the dataset is prepared
        num_images = None
    return DataSource(
        "tfds",
        info,
        report or DatasetReport(f"{config.tfds_name}:{split}"),
        tfds_args=dict(name=config.tfds_name, split=split, data_dir=config.tfds_data_dir),
        num_images=num_images,
        class_map=class_map,
    )


def dataset_info(data_config: DataConfig, training: bool = True) -> DatasetInfo:
    """The :class:`DatasetInfo` (class names, category ids) of the configured data."""
    return load_source(data_config, training).info


def _restrict_classes(info: DatasetInfo, class_names, where: str):
    """Keep ``class_names`` (in that order) of ``info``; returns the new info and the index map."""
    if not class_names or list(class_names) == list(info.class_names):
        return info, None
    missing = [n for n in class_names if n not in info.class_names]
    if missing:
        raise ConfigError(
            f"data.class_names {missing} are not classes of {where}; it has {list(info.class_names)}"
        )
    mapping = np.full(info.num_classes, -1, np.int32)
    for new, name in enumerate(class_names):
        mapping[info.class_names.index(name)] = new
    new_info = DatasetInfo(
        tuple(class_names), tuple(info.category_ids[info.class_names.index(n)] for n in class_names)
    )
    return new_info, mapping


# --------------------------------------------------------------------------- stages


def attach_seeds(ds: tf.data.Dataset, seed: int, pipeline_id: int = 0) -> tf.data.Dataset:
    """Give element ``i`` the stateless seed ``[base, i]`` (``base`` from the seed and the pipeline)."""
    base = tf.constant(int(seed) * 1_000_003 + int(pipeline_id), tf.int64)

    def with_seed(i, el):
        return dict(el, seed=tf.stack([base, i]))

    return ds.enumerate().map(with_seed)


def decode_stage(ds: tf.data.Dataset, source: DataSource, config: DataConfig) -> tf.data.Dataset:
    """Source elements -> ``{image uint8 [h, w, 3], boxes float64 [N, 4] pixels, classes, image_id, seed}``.

    Images that cannot be read or decoded are skipped (logged, counted in ``source.report``).
    An image whose decoded size differs from the recorded one gets its boxes rescaled (counted).
    """
    read_files = source.kind == "coco"
    normalized = source.kind == "tfds"
    report = source.report
    class_map = None if source.class_map is None else tf.constant(source.class_map)

    def on_size_mismatch(name, recorded, real):
        name = name.decode("utf-8", "replace")
        msg = f"annotated as {recorded[1]}x{recorded[0]} but decoded as {real[1]}x{real[0]}; boxes rescaled"
        logger.warning("%s: %s", name, msg)
        report.problem("size_mismatch", msg, file=name, counter="runtime_images_size_repaired")
        return np.float64(0.0)

    def decode(el):
        data = tf.io.read_file(el["data"]) if read_files else el["data"]
        image = decode_image(data)
        shape = tf.shape(image)
        height, width = shape[0], shape[1]
        boxes = tf.reshape(tf.cast(el["boxes"], tf.float64), [-1, 4])
        classes = tf.reshape(tf.cast(el["classes"], tf.int32), [-1])
        size_f = tf.cast(tf.stack([width, height, width, height]), tf.float64)
        if normalized:
            boxes = boxes * size_f
        else:
            rec_h, rec_w = el["height"], el["width"]
            mismatch = (rec_h > 0) & (rec_w > 0) & ((rec_h != height) | (rec_w != width))

            def rescale():
                flag = tf.numpy_function(
                    on_size_mismatch,
                    [el["name"], tf.stack([rec_h, rec_w]), tf.stack([height, width])],
                    tf.float64,
                    stateful=True,
                )
                rec_f = tf.cast(tf.stack([rec_w, rec_h, rec_w, rec_h]), tf.float64)
                with tf.control_dependencies([flag]):
                    return boxes * (size_f / rec_f)

            def unchanged():
                return boxes

            boxes = tf.cond(mismatch, rescale, unchanged)
        if class_map is not None:
            classes = tf.gather(class_map, classes)
            keep = classes >= 0
            boxes, classes = tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)
        return {
            "image": image,
            "boxes": boxes,
            "classes": classes,
            "image_id": el["image_id"],
            "seed": el["seed"],
        }

    def describe(el):
        return el["name"]

    def explain_stored_bytes(el):  # only runs for an image that failed
        why = tf.numpy_function(
            lambda data: stored_bytes_reason(data).encode("utf-8"),
            [el["data"]],
            tf.string,
            stateful=False,
        )
        return tf.ensure_shape(why, [])

    return map_or_skip(
        ds,
        decode,
        describe=describe,
        report=report,
        reason=failure_reason if read_files else None,
        explain=None if read_files else explain_stored_bytes,
        num_parallel_calls=_parallel(config),
    )


def augment_stage(
    ds: tf.data.Dataset, config: DataConfig, training: bool, batch_format: str = "dense"
) -> tf.data.Dataset:
    """Decoded elements -> ``{image, boxes (input pixels), classes, image_id}``.

    ``dense``: ``image`` float32 ``[H, W, 3]`` normalised; ``compact``: ``image`` uint8 and
    ``pixel_affine`` float32 ``[3, 4]`` (what :func:`augment.apply_pixel_affine` finishes it with).
    """
    aug_config = config if training else dataclasses.replace(config, augment=False)
    compact = _is_compact(batch_format)

    def fn(el):
        image, affine, boxes, classes = aug.augment_compact(
            el["image"], el["boxes"], el["classes"], el["seed"], aug_config
        )
        out = {"boxes": boxes, "classes": classes, "image_id": el["image_id"]}
        if compact:
            return {**out, "image": image, "pixel_affine": affine}
        return {**out, "image": aug.apply_pixel_affine(image, affine)}

    return ds.map(fn, num_parallel_calls=_parallel(config))


def encode_stage(
    ds: tf.data.Dataset,
    config: DataConfig,
    num_classes: int,
    batch_format: str = "dense",
    every_object: bool = False,
) -> tf.data.Dataset:
    """Augmented elements -> ``(image, targets)``: :func:`cornernet_tf.targets.encode_targets`
    (``dense``) or :func:`cornernet_tf.targets.encode_sparse_targets` plus ``pixel_affine``
    (``compact``; ``every_object``: heatmap slots for all objects, unpadded, as
    :func:`batch_stage` finishes dense batches from them)."""
    from cornernet_tf.targets import encode_sparse_targets, encode_targets

    input_size, output_size = tuple(config.input_size), config.output_hw
    compact = _is_compact(batch_format)
    slots = None if every_object else config.max_heatmap_objects

    def fn(el):
        args = (el["boxes"], el["classes"], input_size, output_size, num_classes)
        kwargs = dict(
            max_objects=config.max_objects,
            gaussian_iou=config.gaussian_iou,
            radius_mode=config.radius_mode,
            fixed_radius=config.fixed_radius,
        )
        if compact:
            targets = encode_sparse_targets(*args, max_heatmap_objects=slots, **kwargs)
            targets["pixel_affine"] = el["pixel_affine"]
        else:
            targets = encode_targets(*args, **kwargs)
        targets["image_id"] = el["image_id"]
        return el["image"], targets

    return ds.map(fn, num_parallel_calls=_parallel(config))


def finishes_dense_batches(batch_format: str) -> bool:
    """Whether ``batch_format`` batches are built compact and finished by the native CPU ops
    (dense batches when the op library is built; :func:`finish.finish_dense_on_cpu`)."""
    return batch_format == "dense" and finish.native_finish_available()[0]


def batch_stage(
    ds: tf.data.Dataset,
    config: DataConfig,
    num_classes: int,
    batch_size: int,
    drop_remainder: bool,
    finish_dense: bool = False,
) -> tf.data.Dataset:
    """``(image, targets)`` elements -> batches; ``finish_dense``: compact elements with every
    object's heatmap slots (``encode_stage(..., every_object=True)``), padded to the batch's
    largest object count and finished into the dense batch by the native CPU ops."""
    if not finish_dense:
        return ds.batch(
            batch_size, drop_remainder=drop_remainder, num_parallel_calls=_parallel(config)
        )

    def padding(spec: tf.TensorSpec, key: str):  # -1: "no object" in the padded class slots
        return tf.constant(-1 if key == "heatmap_classes" else 0, spec.dtype)

    image_spec, target_specs = ds.element_spec
    padding_values = (
        padding(image_spec, "image"),
        {key: padding(spec, key) for key, spec in target_specs.items()},
    )
    ds = ds.padded_batch(batch_size, drop_remainder=drop_remainder, padding_values=padding_values)
    height, width = config.output_hw

    def fn(images, targets):
        return finish.finish_dense_on_cpu(images, targets, height, width, num_classes)

    return ds.map(fn, num_parallel_calls=_parallel(config))


def _is_compact(batch_format: str) -> bool:
    if batch_format not in ("dense", "compact"):
        raise ValueError(f"batch_format must be 'dense' or 'compact', got {batch_format!r}")
    return batch_format == "compact"


def _parallel(config: DataConfig) -> int:
    return AUTOTUNE if config.num_parallel_calls in (-1, None) else int(config.num_parallel_calls)


def _options(config: DataConfig, input_context) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = bool(config.deterministic)
    if input_context is not None:  # already sharded per input pipeline
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def _resolve_num_classes(info: DatasetInfo, model_config, num_classes: int | None) -> int:
    if model_config is not None:
        if num_classes is not None and num_classes != model_config.num_classes:
            raise ConfigError(
                f"num_classes={num_classes} but model.num_classes={model_config.num_classes}"
            )
        num_classes = model_config.num_classes
    if num_classes is None:
        return info.num_classes
    if info.num_classes > num_classes:
        raise ConfigError(
            f"the dataset has {info.num_classes} classes ({', '.join(info.class_names[:5])}...) but the model "
            f"predicts {num_classes}: set model.num_classes={info.num_classes} or data.class_names"
        )
    return int(num_classes)


def _resolve_seed(config: DataConfig) -> int:
    if config.seed is not None:
        return int(config.seed)
    if config.deterministic:
        raise ConfigError("data.deterministic needs data.seed")
    return random.SystemRandom().randrange(2**31)


def _finish(
    ds: tf.data.Dataset, source: DataSource, config: DataConfig, input_context
) -> tf.data.Dataset:
    ds = ds.prefetch(AUTOTUNE).with_options(_options(config, input_context))
    ds.dataset_info = source.info
    ds.report = source.report
    return ds


# --------------------------------------------------------------------------- public


def build_dataset(
    data_config: DataConfig,
    training: bool,
    batch_size: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    model_config=None,
    num_classes: int | None = None,
    source: DataSource | None = None,
    batch_format: str = "dense",
) -> tf.data.Dataset:
    """The training (or validation-loss) dataset; see the module docstring for the elements.

    ``batch_size`` is the global batch (``None``: unbatched elements). With ``input_context``
    (``strategy.distribute_datasets_from_function``) the pipeline reads shard
    ``input_pipeline_id`` and batches the per-replica share. ``training=True`` shuffles, repeats
    forever and drops the last partial batch (static shapes); ``training=False`` makes one
    ordered pass without augmentation. ``source`` reuses annotations already loaded by
    :func:`load_source`. ``batch_format="compact"`` gives compact elements (module docstring);
    ``training.fit`` picks the format from ``data.batch_format``.
    """
    _is_compact(batch_format)
    config = data_config
    seed = _resolve_seed(config)
    source = source or load_source(config, training)
    if training and isinstance(config.image_scale, str):  # "auto": measure the boxes just loaded
        from cornernet_tf.data.image_scale import records_boxes, resolve_data_config

        boxes = records_boxes(source.records) if source.records is not None else np.zeros((0, 4))
        config = resolve_data_config(config, boxes)
    classes = _resolve_num_classes(source.info, model_config, num_classes)
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0

    ds = source.elements(
        input_context, shuffle=training, seed=seed, shuffle_buffer=config.shuffle_buffer
    )
    if training:
        ds = ds.repeat()
    ds = attach_seeds(ds, seed, pipeline_id)
    ds = decode_stage(ds, source, config)
    # Dense batches are finished per batch by the native CPU ops when they are built.
    finish_dense = batch_size is not None and finishes_dense_batches(batch_format)
    image_format = "compact" if finish_dense else batch_format
    ds = augment_stage(ds, config, training, image_format)
    ds = encode_stage(ds, config, classes, image_format, every_object=finish_dense)
    if batch_size is not None:
        per_replica = (
            input_context.get_per_replica_batch_size(batch_size)
            if input_context
            else int(batch_size)
        )
        ds = batch_stage(ds, config, classes, per_replica, training, finish_dense)
    return _finish(ds, source, config, input_context)


def build_eval_dataset(
    data_config: DataConfig,
    batch_size: int | None = 1,
    input_context: tf.distribute.InputContext | None = None,
    resize: bool = True,
    source: DataSource | None = None,
) -> tf.data.Dataset:
    """Validation images with their ground truth, no augmentation, one ordered pass.

    ``resize=True`` (the official debug/validation geometry: full-image square crop, resize to
    ``input_size``), batched with boxes padded per batch::

        image          float32 [B, H, W, 3]  normalised RGB
        boxes          float32 [B, K, 4]     x1, y1, x2, y2 in input pixels (padding 0)
        classes        int32   [B, K]        0-based (padding -1)
        num_boxes      int32   [B]
        image_id       int64   [B]
        original_size  int32   [B, 2]        (height, width) of the file
        ratio, border  float64 [B, 2]        original = input / ratio - border, per (y, x)

    ``resize=False``: unbatched originals for the official test procedure: ``image`` uint8
    ``[h, w, 3]`` RGB, ``boxes`` float32 ``[N, 4]`` original pixels, ``classes``, ``image_id``.
    """
    config = dataclasses.replace(data_config, augment=False)
    source = source or load_source(config, training=False)
    ds = source.elements(input_context, shuffle=False)
    ds = attach_seeds(ds, 0, 0)
    ds = decode_stage(ds, source, config)

    if not resize:

        def original(el):
            return {
                "image": el["image"],
                "boxes": tf.cast(el["boxes"], tf.float32),
                "classes": el["classes"],
                "image_id": el["image_id"],
            }

        return _finish(
            ds.map(original, num_parallel_calls=_parallel(config)), source, config, input_context
        )

    def resized(el):
        shape = tf.shape(el["image"])
        image, boxes, classes, geometry = aug.resize_full_image(
            el["image"], el["boxes"], el["classes"], config.input_size
        )
        return {
            "image": aug.photometric(image, config.mean, config.std),
            "boxes": tf.cast(boxes, tf.float32),
            "classes": classes,
            "num_boxes": tf.shape(classes)[0],
            "image_id": el["image_id"],
            "original_size": shape[:2],
            "ratio": geometry["ratio"],
            "border": geometry["border"],
        }

    ds = ds.map(resized, num_parallel_calls=_parallel(config))
    if batch_size is not None:
        per_replica = (
            input_context.get_per_replica_batch_size(batch_size)
            if input_context
            else int(batch_size)
        )
        padding = {
            k: tf.constant(-1 if k == "classes" else 0, v.dtype) for k, v in ds.element_spec.items()
        }
        ds = ds.padded_batch(per_replica, padding_values=padding)
    return _finish(ds, source, config, input_context)
