"""The native colour map (CornerNetPixelAffine in ops/kernels/image_ops.cc) against
``augment.apply_pixel_affine``'s TensorFlow ops: the same bits for real jitter/lighting maps and
arbitrary ones, single images and batches, odd and empty sizes; shape errors name the shapes;
"auto" picks it only for uint8 images outside a train step, and the switch turns it off. Skipped
only when the op library is not built (``python -m cornernet_tf.ops.build``).
"""

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.config import DataConfig
from cornernet_tf.data import augment, finish
from cornernet_tf.ops import image_ops

_available, _reason = image_ops.native_pixel_affine_available()
pytestmark = pytest.mark.skipif(not _available, reason=f"native colour map unavailable: {_reason}")

OP = "CornerNetPixelAffine"


def _uses_op(fn, *specs) -> bool:
    graph_def = fn.get_concrete_function(*specs).graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return any(node.op == OP for node in nodes)


def _training_affine(image, seed) -> np.ndarray:
    """A colour map the pipeline would draw: jitter in a random order, lighting, normalisation."""
    config = DataConfig()
    rng = np.random.default_rng(seed)
    return augment.pixel_affine(
        tf.constant(image),
        config.mean,
        config.std,
        order=rng.permutation(3),
        alphas=1.0 + rng.uniform(-0.4, 0.4, 3),
        light_alpha=rng.normal(0.0, 0.1, 3),
    ).numpy()


def _both(images, affine):
    native = image_ops.pixel_affine(images, affine).numpy()
    portable = augment.apply_pixel_affine(images, affine, impl="tf").numpy()
    return native, portable


@pytest.mark.parametrize("shape", [(511, 511, 3), (1, 1, 3), (7, 13, 3), (480, 640, 3)])
def test_native_equals_tf_ops_on_training_maps(shape):
    rng = np.random.default_rng(sum(shape))
    for seed in range(3):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        native, portable = _both(image, _training_affine(image, seed))
        assert native.dtype == np.float32 and native.shape == shape
        np.testing.assert_array_equal(native, portable)


def test_native_equals_tf_ops_on_batches_and_arbitrary_maps():
    """Large, small, negative and non-round coefficients: every product and sum rounds."""
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (2, 3, 37, 29, 3), dtype=np.uint8)
    affine = (rng.standard_normal((2, 3, 3, 4)) * np.array([1e-3, 1.0, 7.3, 1e4])).astype(
        np.float32
    )
    native, portable = _both(images, affine)
    np.testing.assert_array_equal(native, portable)
    # Each image of the batch through its own map, as the pipeline does one image at a time.
    np.testing.assert_array_equal(native[1, 2], _both(images[1, 2], affine[1, 2])[0])


def test_empty_images():
    for shape in [(0, 5, 3), (4, 0, 3), (0, 6, 6, 3)]:
        affine = np.ones(shape[:-3] + (3, 4), np.float32)
        out = image_ops.pixel_affine(np.zeros(shape, np.uint8), affine)
        assert out.shape == shape


def test_bad_shapes_are_named():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be \[\.\.\., H, W, 3\]"):
        image_ops.pixel_affine(np.zeros((4, 5, 4), np.uint8), np.zeros((3, 4), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="affine must be"):
        image_ops.pixel_affine(np.zeros((2, 4, 5, 3), np.uint8), np.zeros((3, 3, 4), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="affine must be"):
        image_ops.pixel_affine(np.zeros((4, 5, 3), np.uint8), np.zeros((3, 3), np.float32))


def test_auto_uses_it_for_uint8_only_and_never_in_the_train_step():
    affine = tf.TensorSpec([3, 4], tf.float32)
    apply = tf.function(lambda x, m: augment.apply_pixel_affine(x, m))
    assert _uses_op(apply, tf.TensorSpec([5, 6, 3], tf.uint8), affine)
    assert not _uses_op(apply, tf.TensorSpec([5, 6, 3], tf.float32), affine)
    portable = tf.function(lambda x, m: augment.apply_pixel_affine(x, m, impl="tf"))
    assert not _uses_op(portable, tf.TensorSpec([5, 6, 3], tf.uint8), affine)
    step = tf.function(
        lambda x, m: finish.finish_images(x, {finish.PIXEL_AFFINE_KEY: m}),
    )
    assert not _uses_op(step, tf.TensorSpec([2, 5, 6, 3], tf.uint8), tf.TensorSpec([2, 3, 4]))


def test_switch_forces_the_tf_ops(monkeypatch):
    spec = (tf.TensorSpec([5, 6, 3], tf.uint8), tf.TensorSpec([3, 4], tf.float32))
    monkeypatch.setenv(image_ops.SWITCH_ENV, "0")
    assert image_ops.native_pixel_affine_available() == (False, f"${image_ops.SWITCH_ENV}=0")
    assert not _uses_op(tf.function(augment.apply_pixel_affine), *spec)
    monkeypatch.delenv(image_ops.SWITCH_ENV)
    assert _uses_op(tf.function(augment.apply_pixel_affine), *spec)
