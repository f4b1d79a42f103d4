"""The native heatmap drawing (CornerNetDrawHeatmaps) and the dense batches it finishes: the same
bits as the TensorFlow ops (targets.draw_batch_heatmaps, the per-image dense pipeline)."""

import numpy as np
import pytest
import tensorflow as tf
from shapes_data import shapes_data_config

from cornernet_tf.data import build_dataset, finish
from cornernet_tf.data import pipeline as pl
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.ops import heatmap_ops
from cornernet_tf.targets import draw_batch_heatmaps, encode_sparse_targets

pytestmark = pytest.mark.skipif(
    not heatmap_ops.native_heatmaps_available()[0],
    reason=f"native op library not built: {heatmap_ops.native_heatmaps_available()[1]}",
)


def assert_same_bits(native, reference, what=""):
    native, reference = np.asarray(native), np.asarray(reference)
    assert native.shape == reference.shape and native.dtype == reference.dtype, what
    np.testing.assert_array_equal(native.view(np.uint32), reference.view(np.uint32), what)


def both(corners, radii, classes, height, width, num_classes):
    args = (corners, radii, classes, height, width, num_classes)
    return heatmap_ops.draw_batch_heatmaps(*args), draw_batch_heatmaps(*args)


def test_every_integer_radius_up_to_the_map_size_gives_the_tensorflow_bits():
    """The official radii are integers: every one from 0 to 96 (windows cut by the border from
    r = 48 on), each bump whole in its own channel, == the TensorFlow ops bit for bit."""
    radii = np.arange(97, dtype=np.float64)[None]
    corners = np.full((1, 97, 4), 48, np.int32)
    corners[0, :, 2:] = [90, 10]  # br corners near a border
    classes = np.arange(97, dtype=np.int32)[None]
    native, reference = both(corners, radii, classes, 97, 101, 97)
    for n, r in zip(native, reference):
        assert_same_bits(n, r)
    assert np.count_nonzero(native[0].numpy()) > 200_000  # the windows were drawn


def test_awkward_objects_give_the_tensorflow_bits():
    """Fractional, zero, negative, huge and infinite radii; centres off the map; overlapping
    bumps of one class (max-merged); padding slots (-1 and other negatives); an empty image."""
    rng = np.random.default_rng(0)
    batch, slots, height, width, classes_n = 5, 60, 40, 28, 4
    corners = rng.integers(-6, 46, (batch, slots, 4)).astype(np.int32)
    radii = np.concatenate(
        [
            rng.uniform(-3.0, 30.0, (batch, slots // 2)),
            rng.choice([0.0, 1.0, 2.5, 1e9, np.inf, -np.inf], (batch, slots - slots // 2)),
        ],
        axis=1,
    )
    classes = rng.integers(-2, classes_n, (batch, slots)).astype(np.int32)
    classes[3] = -1  # an image without objects
    native, reference = both(corners, radii, classes, height, width, classes_n)
    for kind, n, r in zip(("tl", "br"), native, reference):
        assert_same_bits(n, r, kind)
        assert not n[3].numpy().any()
    assert (native[0].numpy() == 1.0).any()  # whole windows of ones (infinite radius)
    # A batch whose images have no objects at all (padded_batch gives K = 0).
    empty = np.zeros((2, 0), np.int32)
    for n, r in zip(*both(np.zeros((2, 0, 4), np.int32), empty * 1.0, empty, 8, 6, 3)):
        assert_same_bits(n, r, "no objects")


def test_bad_inputs_are_named():
    ok = dict(corners=np.zeros((2, 3, 4), np.int32), radii=np.ones((2, 3)))
    classes = np.zeros((2, 3), np.int32)
    classes[1, 2] = 5
    with pytest.raises(tf.errors.InvalidArgumentError, match="class 5 of object 2 in image 1"):
        heatmap_ops.draw_batch_heatmaps(classes=classes, height=8, width=8, num_classes=5, **ok)
    radii = np.ones((2, 3))
    radii[0, 1] = np.nan
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="radius of object 1 in image 0 is NaN"
    ):
        heatmap_ops.draw_batch_heatmaps(ok["corners"], radii, np.zeros((2, 3), np.int32), 8, 8, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"corners must be \[B, K, 4\]"):
        heatmap_ops.draw_batch_heatmaps(
            np.zeros((2, 3, 2), np.int32), np.ones((2, 3)), np.zeros((2, 3), np.int32), 8, 8, 5
        )
    # A NaN radius in a padding slot is never read.
    radii[0, 1], padding = np.nan, np.zeros((2, 3), np.int32)
    padding[0, 1] = -1
    tl, _ = heatmap_ops.draw_batch_heatmaps(ok["corners"], radii, padding, 8, 8, 5)
    assert tl.shape == (2, 8, 8, 5)


def test_unbounded_sparse_targets_keep_every_object_unpadded():
    boxes = [[1.0, 2.0, 30.0, 40.0]] * 5
    out = encode_sparse_targets(
        boxes, [0, 1, 2, 0, 1], (64, 64), (16, 16), 3, max_objects=2, max_heatmap_objects=None
    )
    assert out["heatmap_corners"].shape == (5, 4) and out["heatmap_classes"].numpy().tolist() == [
        0,
        1,
        2,
        0,
        1,
    ]
    assert int(out["num_undrawn"]) == 0 and int(out["num_dropped"]) == 3


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    generate_shapes(str(out), 14, seed=5, size=(96, 128), splits={"train": 9, "val": 5})
    return out


@pytest.mark.parametrize("training", [True, False])
def test_natively_finished_dense_batches_equal_the_per_image_dense_batches(
    shapes_dir, monkeypatch, training
):
    """build_dataset's dense batches (compact elements, padded_batch, native finish) == the
    dense batches built image by image with the TensorFlow ops, every field bit for bit; no
    object is left off the heatmaps (max_heatmap_objects=2 is a compact-batch setting only);
    a last partial batch (training=False) too."""
    config = shapes_data_config(shapes_dir, max_objects=2, max_heatmap_objects=2, seed=4)

    def batches():
        ds = build_dataset(config, training, batch_size=3)
        return ds.element_spec, list(ds.take(3))

    assert pl.finishes_dense_batches("dense") and not pl.finishes_dense_batches("compact")
    spec, native = batches()
    monkeypatch.setattr(pl, "finishes_dense_batches", lambda batch_format: False)
    reference_spec, reference = batches()
    assert spec == reference_spec
    assert len(native) == len(reference) == (3 if training else 2)
    most = 0
    for (n_images, n_targets), (r_images, r_targets) in zip(native, reference):
        assert_same_bits(n_images, r_images, "images")
        assert set(n_targets) == set(r_targets)
        for key in r_targets:
            np.testing.assert_array_equal(n_targets[key].numpy(), r_targets[key].numpy(), key)
        most = max(most, int(np.max(n_targets["num_objects"] + n_targets["num_dropped"])))
    assert most > 2  # an image with more objects than the compact slots was drawn whole


def test_the_switch_turns_the_native_finish_off(monkeypatch):
    monkeypatch.setenv("CORNERNET_NATIVE_RESIZE", "0")
    usable, reason = finish.native_finish_available()
    assert not usable and "CORNERNET_NATIVE_RESIZE" in reason
    assert not pl.finishes_dense_batches("dense")


def test_the_training_log_says_which_batches_and_why(monkeypatch):
    assert "finished per batch in the input pipeline by the native" in finish.describe_batches(
        "dense"
    )
    assert finish.describe_batches("compact").startswith("batches: compact")
    monkeypatch.setenv("CORNERNET_NATIVE_RESIZE", "0")
    line = finish.describe_batches("dense")
    assert "image by image" in line and "$CORNERNET_NATIVE_RESIZE=0" in line
