"""The native fixed-point resize (ops/kernels/image_ops.cc) against the TensorFlow integer ops.

Both paths take the same taps from ``augment``; the native op must give the same bytes for
down- and upscales, one and three channels, the training crop geometry (windows at the image
edges, the empty window) and the recorded cv2.resize outputs. Skipped only when the op library
is not built (``python -m cornernet_tf.ops.build``).
"""

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden

from cornernet_tf.config import DataConfig
from cornernet_tf.data import augment
from cornernet_tf.ops import image_ops

_available, _reason = image_ops.native_resize_available()
pytestmark = pytest.mark.skipif(not _available, reason=f"native resize unavailable: {_reason}")


def _uses_native_op(concrete) -> bool:
    """Whether a traced function, its tf.cond branches included, calls the native op."""
    graph_def = concrete.graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return any(node.op == "CornerNetFixedPointResize" for node in nodes)


def _both(fn, *args):
    native = fn(*args, impl="native").numpy()
    portable = fn(*args, impl="tf").numpy()
    return native, portable


@pytest.mark.parametrize("channels", [1, 3])
def test_native_resize_equals_tf_ops_on_random_sizes(channels):
    rng = np.random.default_rng(channels)
    directions = set()
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        size = [int(v) for v in rng.integers(1, 160, 2)]
        image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        native, portable = _both(augment.resize_uint8, image, size)
        assert native.shape == (size[0], size[1], channels) and native.dtype == np.uint8
        np.testing.assert_array_equal(native, portable, err_msg=str((image.shape, size)))
        directions.add((size[0] > h, size[1] > w))
    assert len(directions) == 4  # up and down along each axis


def test_native_resize_saturated_and_constant_images():
    for value in (0, 1, 254, 255):
        image = np.full((37, 53, 3), value, np.uint8)
        for size in ((511, 511), (13, 7), (37, 53)):
            native, portable = _both(augment.resize_uint8, image, size)
            np.testing.assert_array_equal(native, portable)
            assert native.min() >= value - 1 and native.max() == value


def test_native_resize_matches_opencv():
    data = load_golden("cv2_resize.npz")
    cases = [k[3:] for k in data if k.startswith("src")]
    assert cases
    for i in cases:
        size = [int(v) for v in data[f"size{i}"]]
        ours = augment.resize_uint8(data[f"src{i}"], size, impl="native").numpy()
        np.testing.assert_array_equal(ours, data[f"out{i}"], err_msg=f"case {i}")


def test_native_crop_resize_on_the_training_geometry():
    """640x480 into 511x511 at every official scale, centres at the edges, corners and middle."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    config = DataConfig()
    centres = ((0, 0), (639, 479), (0, 479), (639, 0), (128, 128), (320, 240), (511, 351))
    crop = tf.function(
        lambda image, g, impl: augment.crop_resize_uint8(image, g, config.input_size, impl=impl),
        reduce_retracing=True,
    )
    for scale in config.rand_scales:
        for ctx, cty in centres:
            g, _ = augment.random_crop_geometry(
                tf.shape(image)[:2], np.zeros((0, 4)), scale, ctx, cty, config.input_size
            )
            native = augment.crop_resize_uint8(image, g, config.input_size, impl="native")
            portable = augment.crop_resize_uint8(image, g, config.input_size, impl="tf")
            np.testing.assert_array_equal(
                native.numpy(), portable.numpy(), err_msg=str((scale, ctx, cty))
            )
    # Traced (as inside tf.data), "auto" picks the native op and still agrees.
    g, _ = augment.random_crop_geometry(
        tf.shape(image)[:2], np.zeros((0, 4)), 1.3, 600, 20, config.input_size
    )
    auto = crop(tf.constant(image), g, "auto")
    assert _uses_native_op(crop.get_concrete_function(tf.constant(image), g, "auto"))
    np.testing.assert_array_equal(auto.numpy(), crop(tf.constant(image), g, "tf").numpy())


def test_native_crop_resize_random_windows():
    rng = np.random.default_rng(9)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(2, 60, 2))
        channels = int(rng.choice([1, 3]))
        image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        view = [int(v) for v in rng.integers(4, 80, 2)]
        scale = float(rng.choice([0.3, 0.6, 1.0, 1.3, 1.7]))
        ctx, cty = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = [int(v) for v in rng.integers(1, 70, 2)]
        g, _ = augment.random_crop_geometry(
            tf.shape(image)[:2], np.zeros((0, 4)), scale, ctx, cty, view
        )
        native, portable = _both(augment.crop_resize_uint8, image, g, size)
        np.testing.assert_array_equal(native, portable, err_msg=str((image.shape, view, ctx, cty)))


def test_native_crop_resize_empty_window_is_zero():
    image = np.full((9, 9, 3), 200, np.uint8)
    g, _ = augment.random_crop_geometry(tf.shape(image)[:2], np.zeros((0, 4)), 1.0, 4, 4, (6, 1))
    native = augment.crop_resize_uint8(image, g, (5, 7), impl="native").numpy()
    assert native.shape == (5, 7, 3) and native.max() == 0


def test_native_op_against_numpy_with_arbitrary_taps():
    """Unordered, repeated taps (the two-row cache must not assume monotone rows)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (11, 13, 2), dtype=np.uint8)
    y0, y1 = rng.integers(0, 11, 17), rng.integers(0, 11, 17)
    x0, x1 = rng.integers(0, 13, 19), rng.integers(0, 13, 19)
    b0 = rng.integers(0, 2049, 17)
    b1 = 2048 - b0
    a0 = rng.integers(0, 2049, 19)
    a1 = 2048 - a0
    out = image_ops.fixed_point_resize(image, (y0, b0, y1, b1), (x0, a0, x1, a1)).numpy()
    img = image.astype(np.int64)
    d = (img[:, x0] * a0[None, :, None] + img[:, x1] * a1[None, :, None]) >> 4
    v = ((d[y0] * b0[:, None, None]) >> 16) + ((d[y1] * b1[:, None, None]) >> 16)
    np.testing.assert_array_equal(out, ((v + 2) >> 2).astype(np.uint8))


def test_native_op_rejects_taps_outside_the_image():
    image = np.zeros((4, 5, 3), np.uint8)
    ok = np.zeros(3, np.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
        image_ops.fixed_point_resize(image, (ok, ok, ok + 4, ok), (ok, ok, ok, ok))


def test_switch_forces_the_tf_ops(monkeypatch):
    monkeypatch.setenv(image_ops.SWITCH_ENV, "0")
    assert image_ops.native_resize_available() == (False, f"${image_ops.SWITCH_ENV}=0")
    resize = tf.function(lambda x: augment.resize_uint8(x, (7, 9)))
    assert not _uses_native_op(resize.get_concrete_function(tf.TensorSpec([5, 6, 3], tf.uint8)))
    monkeypatch.delenv(image_ops.SWITCH_ENV)
    resize = tf.function(lambda x: augment.resize_uint8(x, (7, 9)))
    assert _uses_native_op(resize.get_concrete_function(tf.TensorSpec([5, 6, 3], tf.uint8)))
