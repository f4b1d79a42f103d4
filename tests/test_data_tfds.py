"""TFDS coco/2017 adapter, with tfds.testing.mock_data (no download).

TFDS' random mock generator cannot produce consistent ``objects`` sequences for coco, so the
mock serves hand-made examples in the real feature format: encoded image bytes (we load with
``SkipDecoding``), normalised ``(ymin, xmin, ymax, xmax)`` boxes, labels 0..79, ``is_crowd``.
"""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from cornernet_tf.config import DataConfig
from cornernet_tf.data import build_dataset, build_eval_dataset
from cornernet_tf.data.tfds import COCO_CATEGORY_IDS, load_tfds, to_source_element

H, W = 40, 50


def _jpeg(seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")  # TFDS stores JPEG; any decodable bytes do here
    return pixels, buf.getvalue()


EXAMPLES = [
    # (image id, pixel boxes x1,y1,x2,y2, labels, crowd flags)
    (101, [[5, 4, 25, 20], [10, 10, 45, 38]], [0, 79], [False, False]),
    (102, [[0, 0, 50, 40], [2, 2, 8, 9]], [3, 56], [True, False]),
    (103, [], [], []),
]


def _as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
    assert decoders is not None and "image" in decoders  # the adapter keeps images encoded

    def gen():
        for i, (image_id, boxes, labels, crowd) in enumerate(EXAMPLES):
            b = np.asarray(boxes, np.float32).reshape(-1, 4)
            normalised = np.stack([b[:, 1] / H, b[:, 0] / W, b[:, 3] / H, b[:, 2] / W], axis=1)
            yield {
                "image": _jpeg(i)[1],
                "image/filename": f"{image_id:012d}.jpg",
                "image/id": np.int64(image_id),
                "objects": {
                    "id": np.arange(len(labels), dtype=np.int64),
                    "area": np.ones(len(labels), np.int64),
                    "bbox": normalised.astype(np.float32),
                    "label": np.asarray(labels, np.int64),
                    "is_crowd": np.asarray(crowd, bool),
                },
            }

    signature = {
        "image": tf.TensorSpec([], tf.string),
        "image/filename": tf.TensorSpec([], tf.string),
        "image/id": tf.TensorSpec([], tf.int64),
        "objects": {
            "id": tf.TensorSpec([None], tf.int64),
            "area": tf.TensorSpec([None], tf.int64),
            "bbox": tf.TensorSpec([None, 4], tf.float32),
            "label": tf.TensorSpec([None], tf.int64),
            "is_crowd": tf.TensorSpec([None], tf.bool),
        },
    }
    return tf.data.Dataset.from_generator(gen, output_signature=signature)


@pytest.fixture()
def mocked():
    with tfds.testing.mock_data(as_dataset_fn=_as_dataset):
        yield


def test_source_elements_convert_boxes_and_drop_crowd(mocked):
    ds, info = load_tfds("coco/2017", "train")
    assert info.num_classes == 80 and info.category_ids == COCO_CATEGORY_IDS
    assert info.class_names[0] == "person" and info.category_id(79) == 90
    elements = list(ds.as_numpy_iterator())
    assert [e["image_id"] for e in elements] == [101, 102, 103]
    np.testing.assert_allclose(elements[0]["boxes"] * [W, H, W, H], EXAMPLES[0][1], atol=1e-4)
    np.testing.assert_array_equal(elements[0]["classes"], [0, 79])
    np.testing.assert_array_equal(elements[1]["classes"], [56])  # the crowd box is gone
    np.testing.assert_allclose(elements[1]["boxes"] * [W, H, W, H], [[2, 2, 8, 9]], atol=1e-4)
    assert elements[2]["boxes"].shape == (0, 4)
    assert elements[0]["name"] == b"000000000101.jpg"


def test_to_source_element_without_crowd_field():
    example = {
        "image": tf.constant(b""),
        "image/id": tf.constant(7, tf.int64),
        "objects": {
            "bbox": tf.constant([[0.1, 0.2, 0.3, 0.4]]),
            "label": tf.constant([2], tf.int64),
        },
    }
    el = to_source_element(example)
    np.testing.assert_allclose(el["boxes"].numpy(), [[0.2, 0.1, 0.4, 0.3]], atol=1e-7)
    assert el["name"].numpy() == b"7"


def test_pipeline_on_tfds_source(mocked):
    config = DataConfig(
        tfds_name="coco/2017",
        input_size=[63, 63],
        border=8,
        seed=2,
        deterministic=True,
        num_parallel_calls=2,
    )
    originals = list(build_eval_dataset(config, resize=False).as_numpy_iterator())
    assert [o["image"].shape for o in originals] == [(H, W, 3)] * 3
    np.testing.assert_array_equal(originals[0]["image"], _jpeg(0)[0])
    np.testing.assert_allclose(
        originals[0]["boxes"], EXAMPLES[0][1], atol=1e-3
    )  # pixels after decoding
    ds = build_dataset(config, training=True, batch_size=2)
    assert ds.dataset_info.category_ids == COCO_CATEGORY_IDS
    images, targets = next(iter(ds))
    assert images.shape == (2, 63, 63, 3) and targets["tl_heatmap"].shape == (2, 16, 16, 80)
