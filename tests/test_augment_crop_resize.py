"""The fused random crop + resize (augment.crop_resize_uint8) against the canvas it skips.

The training sampler pastes a window of the image onto a zero canvas and resizes the canvas with
OpenCV's fixed-point INTER_LINEAR (``resize_uint8``, bit-exact against cv2 in test_augment.py).
The fused path maps the canvas taps onto the window instead; it must give the same bytes for
every geometry: crops smaller and larger than the image (down- and up-scaling), odd sizes,
windows touching the borders, one and three channels, and degenerate one-pixel crops.
"""

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden

from cornernet_tf.config import DataConfig
from cornernet_tf.data import augment


def _canvas_then_resize(image, boxes, scale, ctx, cty, view, size):
    canvas, boxes = augment.random_crop_with_draws(image, boxes, scale, ctx, cty, view)
    return augment.resize_image(canvas, boxes, size)


def _cases(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(3, 70, 2))
        channels = int(rng.choice([1, 3]))
        image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        view = [int(v) for v in rng.integers(4, 90, 2)]  # canvas >= 1 pixel at scale 0.3
        scale = float(rng.choice([0.3, 0.6, 0.7, 1.0, 1.3, 1.7]))
        ctx, cty = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = [int(v) for v in rng.integers(1, 80, 2)]
        yield image, view, scale, ctx, cty, size


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_crop_resize_is_bit_identical_to_resizing_the_canvas(seed):
    scales_seen = set()
    for image, view, scale, ctx, cty, size in _cases(60, seed):
        boxes = np.array([[1.0, 2.0, 5.5, 7.25]])
        expected, expected_boxes = _canvas_then_resize(image, boxes, scale, ctx, cty, view, size)
        g, _ = augment.random_crop_geometry(tf.shape(image)[:2], boxes, scale, ctx, cty, view)
        fused = augment.crop_resize_uint8(image, g, size)
        assert fused.shape == expected.shape and fused.dtype == tf.uint8
        np.testing.assert_array_equal(
            fused.numpy(), expected.numpy(), err_msg=str((image.shape, view, scale, ctx, cty, size))
        )
        canvas = (int(g["height"]), int(g["width"]))
        scales_seen.add((canvas[0] > size[0], canvas[0] > image.shape[0]))
    # Both directions of resize, and crops both larger and smaller than the image, were covered.
    assert len(scales_seen) == 4


def test_fused_crop_resize_on_the_training_geometry():
    """640x480 image, 511 input, every official scale, centres near the corners and the middle."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    config = DataConfig()
    boxes = np.zeros((0, 4))
    for scale in config.rand_scales:
        for ctx, cty in ((128, 128), (320, 240), (511, 351)):
            g, _ = augment.random_crop_geometry(
                tf.shape(image)[:2], boxes, scale, ctx, cty, config.input_size
            )
            fused = augment.crop_resize_uint8(image, g, config.input_size)
            expected, _ = _canvas_then_resize(
                image, boxes, scale, ctx, cty, config.input_size, config.input_size
            )
            np.testing.assert_array_equal(fused.numpy(), expected.numpy())


def test_empty_window_gives_the_zero_canvas_resized():
    image = np.full((9, 9, 3), 200, np.uint8)
    # A crop one pixel wide: width // 2 == 0, so no image column is pasted.
    g, _ = augment.random_crop_geometry(tf.shape(image)[:2], np.zeros((0, 4)), 1.0, 4, 4, (6, 1))
    fused = augment.crop_resize_uint8(image, g, (5, 7)).numpy()
    expected, _ = _canvas_then_resize(image, np.zeros((0, 4)), 1.0, 4, 4, (6, 1), (5, 7))
    np.testing.assert_array_equal(fused, expected.numpy())
    assert fused.max() == 0


def test_random_crop_resize_equals_crop_then_resize_with_the_same_draws():
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 12, 50, 60], [40, 5, 89, 69], [0, 0, 3, 3]], np.float64)
    classes = np.array([0, 1, 2], np.int32)
    config = DataConfig(input_size=[63, 95], border=16)
    for i in range(6):
        seed = tf.constant([3, i])
        out, out_boxes, out_classes = augment.random_crop_resize(
            image, boxes, classes, seed, config
        )
        scale, ctx, cty = augment.draw_random_crop(seed, image.shape[:2], config.rand_scales, 16)
        ref, ref_boxes = _canvas_then_resize(
            image, boxes, scale, ctx, cty, config.input_size, config.input_size
        )
        ref_boxes, ref_classes = augment.clip_detections(ref_boxes, classes, config.input_size)
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
        np.testing.assert_array_equal(out_boxes.numpy(), ref_boxes.numpy())
        np.testing.assert_array_equal(out_classes.numpy(), ref_classes.numpy())


def test_resize_uint8_matches_opencv_up_and_down():
    """cv2.resize outputs recorded by tests/data/make_cv2_resize.py (OpenCV 5.0): upscales blend
    the first and last rows with themselves using the unclamped fraction, as OpenCV does."""
    data = load_golden("cv2_resize.npz")
    cases = [k[3:] for k in data if k.startswith("src")]
    assert len(cases) == 8
    for i in cases:
        size = [int(v) for v in data[f"size{i}"]]
        ours = augment.resize_uint8(data[f"src{i}"], size).numpy()
        np.testing.assert_array_equal(ours, data[f"out{i}"], err_msg=f"case {i}")
