"""SavedModel export for TF Serving: pre-processing, the network and the whole test procedure in one graph.

``export_saved_model`` writes ``OUT/<version>/saved_model.pb + variables/`` (the layout TF Serving
watches). The graph runs :class:`cornernet_tf.inference.graph_detector.GraphDetector`: resize and
pad to ``size | 127``, normalise, the image and its mirror through the network, decode, flip merge,
soft-NMS (``tf.image.non_max_suppression_with_scores``), the best ``max_detections``. Only core TF
ops: corner pooling uses ``impl="tf"`` (``export.corner_pool_impl``), so stock TF Serving and any
Python without this package can run it.

Signatures (TF Object Detection API conventions):

* ``serving_default``: ``images`` uint8 ``[B, H, W, 3]`` RGB, any ``H, W`` (one size per request);
* ``serving_bytes``: ``image_bytes`` string ``[B]``, each an encoded JPEG/PNG/GIF/BMP, decoded in
  the graph; items may have different sizes.

Both return ``detection_boxes`` float32 ``[B, N, 4]`` (ymin, xmin, ymax, xmax normalised by the image
height/width), ``detection_scores`` ``[B, N]``, ``detection_classes`` ``[B, N]`` (the dataset's
category ids as float32, 0 for padding) and ``num_detections`` ``[B]`` float32, with
``N = export.max_detections`` (100), best first. An empty batch or an undecodable image fails with
INVALID_ARGUMENT and a message, and so does an image of more than ``MAX_INPUT_PIXELS`` pixels
(``pixel_limit``): ``serving_bytes`` reads the size from the header before decoding
(``tf.io.extract_jpeg_shape``, the PNG/GIF/BMP/WebP header fields), ``serving_default`` checks the
tensor's shape. An image whose longer side is over ``MAX_NETWORK_SIDE`` is downscaled in the graph
before the network; the normalised boxes refer to the original image all the same.

``OUT/<version>/assets.extra/cornernet_export.json`` records the class names, category ids and test
settings; ``assets.extra/tf_serving_warmup_requests`` warms TF Serving up on load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence

from cornernet_tf.atomic_files import replacing_dir
from cornernet_tf.errors import InvalidValueError
from cornernet_tf.export.common import prepare_model, resolve_dataset_info

SIGNATURE_IMAGES = "serving_default"
SIGNATURE_BYTES = "serving_bytes"
INPUT_IMAGES = "images"
INPUT_BYTES = "image_bytes"
OUTPUT_KEYS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
METADATA_FILE = "cornernet_export.json"
WARMUP_FILE = "tf_serving_warmup_requests"
# Category id reported for padded detection slots.
PAD_CATEGORY = 0


def serving_detect_fn(
    model,
    test_config,
    category_ids: Sequence[int],
    max_detections: int,
    mean: Sequence[float],
    std: Sequence[float],
):
    """``images`` uint8 ``[B, H, W, 3]`` → the serving outputs (see the module docstring).

    What both signatures run, and what :func:`cornernet_tf.export.keras_model.build_inference_model`
    wraps as a Keras model.
    """
    import tensorflow as tf

    from cornernet_tf.data.pixel_limit import assert_pixels_within
    from cornernet_tf.detection.contract import PAD_CLASS, YXYX_ORDER
    from cornernet_tf.inference.graph_detector import GraphDetector

    # Classes are shifted by one so that the padding class (-1) reads PAD_CATEGORY.
    lookup = tf.constant([PAD_CATEGORY] + [int(c) for c in category_ids], tf.float32)
    detector = GraphDetector(model, test_config, max_detections, mean, std)

    def detect(images):
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_positive(shape[0], message="images: the batch is empty"),
            tf.debugging.assert_positive(
                shape[1] * shape[2], message="images: height and width must be >= 1"
            ),
            assert_pixels_within(shape[1], shape[2], "images"),
        ]
        with tf.control_dependencies(checks):
            images = fit_network_side(tf.identity(images))
        # Normalised boxes are the same for the downscaled image: divide by its size.
        shape = tf.shape(images)
        out = detector.detect(images)
        # The serving boundary: pixels x1 y1 x2 y2 -> normalised ymin xmin ymax xmax.
        size = tf.cast(tf.stack([shape[1], shape[2], shape[1], shape[2]]), tf.float32)
        boxes = tf.gather(out["boxes"], list(YXYX_ORDER), axis=-1) / size
        return {
            "detection_boxes": boxes,
            "detection_scores": out["scores"],
            "detection_classes": tf.gather(lookup, out["classes"] - PAD_CLASS),
            "num_detections": tf.cast(out["num_detections"], tf.float32),
        }

    return detect


def build_serving_module(
    model,
    test_config,
    category_ids: Sequence[int],
    max_detections: int,
    mean: Sequence[float],
    std: Sequence[float],
):
    """A ``tf.Module`` with the two serving functions (``serve_images``, ``serve_bytes``).

    The model is captured by the functions, not tracked as an attribute: the module tracks the
    ``tf.Variable`` objects themselves, which keeps the SavedModel free of Keras objects and quick
    to write.
    """
    import tensorflow as tf

    from cornernet_tf.data.pixel_limit import assert_encoded_within
    from cornernet_tf.modeling.precision import model_in_precision

    detect = serving_detect_fn(model, test_config, category_ids, max_detections, mean, std)

    serve_images = tf.function(
        detect, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_IMAGES)]
    )

    def serve_bytes(image_bytes):
        count = tf.debugging.assert_positive(
            tf.size(image_bytes), message="image_bytes: the batch is empty"
        )
        with tf.control_dependencies([count]):
            image_bytes = tf.identity(image_bytes)

        def one(data):
            # The header's size is checked before decoding: no allocation for a decompression bomb.
            with tf.control_dependencies([assert_encoded_within(data, "image_bytes")]):
                data = tf.identity(data)
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
            image.set_shape([None, None, 3])
            # The same function as serving_default: the network is traced once for both signatures.
            return {k: v[0] for k, v in serve_images(image[None]).items()}

        spec = {
            "detection_boxes": tf.TensorSpec([max_detections, 4], tf.float32),
            "detection_scores": tf.TensorSpec([max_detections], tf.float32),
            "detection_classes": tf.TensorSpec([max_detections], tf.float32),
            "num_detections": tf.TensorSpec([], tf.float32),
        }
        return tf.map_fn(one, image_bytes, fn_output_signature=spec)

    module = tf.Module(name="cornernet_serving")
    # The variables of the network the graph runs: a copy in test.precision when that is not
    # the model's own (modeling/precision.py keeps one copy per model and precision).
    network = model_in_precision(model, test_config.precision)
    module.network_variables = [v.value for v in network.variables]
    module.serve_images = serve_images
    module.serve_bytes = tf.function(
        serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_BYTES)]
    )
    return module


def fit_network_side(images, max_side: int | None = None):
    """uint8 ``[B, H, W, 3]`` with the longer side brought down to ``max_side`` (antialiased
    bilinear, aspect kept; ``pixel_limit.MAX_NETWORK_SIDE`` by default); smaller batches unchanged."""
    import tensorflow as tf

    from cornernet_tf.data.pixel_limit import MAX_NETWORK_SIDE

    max_side = int(max_side or MAX_NETWORK_SIDE)
    shape = tf.shape(images)
    longer = tf.maximum(shape[1], shape[2])

    def shrink():
        scale = max_side / tf.cast(longer, tf.float64)
        size = tf.cast(tf.round(tf.cast(shape[1:3], tf.float64) * scale), tf.int32)
        out = tf.image.resize(images, tf.maximum(size, 1), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    def keep():
        return images

    return tf.cond(longer > max_side, shrink, keep)


def next_version(base_dir: str) -> int:
    """One more than the highest numeric version folder in ``base_dir`` (1 when there is none)."""
    if not os.path.isdir(base_dir):
        return 1
    versions = [int(name) for name in os.listdir(base_dir) if re.fullmatch(r"\d+", name)]
    return max(versions, default=0) + 1


def _write_warmup(version_dir: str) -> str | None:
    """A warm-up request (one small grey image) that TF Serving replays on load, when
    ``tensorflow-serving-api`` is installed."""
    try:
        import numpy as np
        import tensorflow as tf
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        return None
    folder = os.path.join(version_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, WARMUP_FILE)
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(signature_name=SIGNATURE_IMAGES)
    )
    request.inputs[INPUT_IMAGES].CopyFrom(
        tf.make_tensor_proto(np.full((1, 64, 64, 3), 128, np.uint8))
    )
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return path


def export_saved_model(
    model_or_config,
    weights: str | None = None,
    out_dir: str = "export/cornernet",
    version: int | None = None,
    category_ids: Sequence[int] | None = None,
    dataset_info: str | None = None,
    config=None,
    max_detections: int | None = None,
    overwrite: bool = False,
    warmup: bool = True,
) -> str:
    """Export a CornerNet detector for TF Serving; returns the version folder ``out_dir/<version>``.

    Args:
      model_or_config: a CornerNet model (weights copied) or a config (YAML path, dict, Config).
      weights: weights to load (``.weights.h5``, ``.keras`` or an official checkpoint).
      out_dir: the model's base folder (what TF Serving's ``base_path`` points at).
      version: the version number (default: the next free one).
      category_ids, dataset_info: the dataset's category ids of the classes (see
        :func:`cornernet_tf.export.common.resolve_dataset_info`; default ``1..C``).
      config: with a model, the config whose ``test``/``data``/``export`` sections apply.
      max_detections: detections per image (default ``export.max_detections``).
      overwrite: replace an existing version folder instead of failing.
      warmup: write ``assets.extra/tf_serving_warmup_requests``.
    """
    import tensorflow as tf

    from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB
    from cornernet_tf.data.image_scale import scaled_test_config

    version = next_version(out_dir) if version is None else int(version)
    if version < 1:
        raise InvalidValueError(f"version must be a positive integer, got {version}")
    version_dir = os.path.join(out_dir, str(version))
    if os.path.exists(version_dir) and not overwrite:
        raise FileExistsError(f"{version_dir} exists; choose another --version or pass --overwrite")
    model, cfg = prepare_model(model_or_config, weights, config=config)
    info = resolve_dataset_info(cfg, category_ids, dataset_info, weights)
    max_detections = int(max_detections or cfg.export.max_detections)
    mean = cfg.data.mean if cfg.data.mean else COCO_MEAN_RGB
    std = cfg.data.std if cfg.data.std else COCO_STD_RGB
    test_config = scaled_test_config(cfg)  # test.scales times data.image_scale
    module = build_serving_module(model, test_config, info.category_ids, max_detections, mean, std)
    signatures = {
        SIGNATURE_IMAGES: module.serve_images.get_concrete_function(),
        SIGNATURE_BYTES: module.serve_bytes.get_concrete_function(),
    }
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    # Built in a temporary folder beside it and renamed: TF Serving, which watches out_dir, never
    # sees a half-written version, and a failed export leaves no folder behind.
    with replacing_dir(version_dir, errors=(tf.errors.OpError,)) as building:
        tf.saved_model.save(module, building, signatures=signatures, options=options)
        if warmup:
            _write_warmup(building)
        extra = os.path.join(building, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "name": cfg.name,
                    "backbone": cfg.model.backbone,
                    "class_names": list(info.class_names),
                    "category_ids": list(info.category_ids),
                    "max_detections": max_detections,
                    "signatures": {SIGNATURE_IMAGES: INPUT_IMAGES, SIGNATURE_BYTES: INPUT_BYTES},
                    "outputs": list(OUTPUT_KEYS),
                    "test": dataclasses.asdict(test_config),
                },
                fh,
                indent=1,
            )
    return version_dir
