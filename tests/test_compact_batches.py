"""Compact training batches (data.batch_format): finished in the step, they are the dense batches bit for bit."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from shapes_data import shapes_data_config

from cornernet_tf.config import ConfigError, DataConfig, load_config
from cornernet_tf.data import augment, build_dataset, finish
from cornernet_tf.data import pipeline as pl
from cornernet_tf.data.image_io import decode_image
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.targets import draw_batch_heatmaps, draw_heatmaps, encode_targets
from cornernet_tf.training.fit import make_datasets
from cornernet_tf.training.task import build_model

CLASSES = 3
OUT = (16, 16)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    generate_shapes(str(out), 12, seed=3, size=(96, 128), splits={"train": 8, "val": 4})
    return out


def data_config(shapes_dir, **kw):
    # The shapes have up to 6 objects: with 2 tag slots some get none.
    return shapes_data_config(shapes_dir, **{"max_objects": 2, **kw})


@tf.function
def finished(images, targets):
    return finish.finish_batch(images, targets, OUT[0], OUT[1], CLASSES)


def batches(config, training, batch_format, n=2):
    ds = build_dataset(config, training, batch_size=4, batch_format=batch_format)
    return list(ds.take(n))


@pytest.fixture(scope="module")
def pairs(shapes_dir):
    """(seed, dense batches, compact batches) per training mode: two seeds with augmentation,
    one without (it draws nothing)."""
    out = {}
    for training, seeds in ((True, (1, 12)), (False, (7,))):
        out[training] = [
            (
                seed,
                batches(data_config(shapes_dir, seed=seed), training, "dense"),
                batches(data_config(shapes_dir, seed=seed), training, "compact"),
            )
            for seed in seeds
        ]
    return out


@pytest.mark.parametrize("training", [True, False])
def test_compact_batches_finish_to_the_dense_batches_bitwise(pairs, training):
    """Several seeds, objects past max_objects: compact batch -> finish_batch (what the train
    step runs, in a tf.function) == the dense batch, images and every target field."""
    dropped = []
    for seed, dense, compact in pairs[training]:
        for (d_images, d_targets), (c_images, c_targets) in zip(dense, compact):
            assert c_images.dtype == tf.uint8 and c_targets["pixel_affine"].shape == (4, 3, 4)
            assert c_targets["heatmap_corners"].shape == (4, 1024, 4)
            assert "tl_heatmap" not in c_targets
            f_images, f_targets = finished(c_images, c_targets)
            np.testing.assert_array_equal(f_images.numpy(), d_images.numpy())
            assert set(f_targets) == set(d_targets) | {"num_undrawn"}
            for key in d_targets:
                np.testing.assert_array_equal(
                    f_targets[key].numpy(), d_targets[key].numpy(), err_msg=f"seed {seed} {key}"
                )
            assert not f_targets["num_undrawn"].numpy().any()
            dropped.append(d_targets["num_dropped"].numpy())
    assert np.concatenate(dropped).any()  # the case of objects past max_objects was exercised


def test_objects_past_max_heatmap_objects_are_counted_not_drawn(shapes_dir, pairs):
    """With K = 3 slots, the heatmaps hold the first 3 objects (= encode_targets of those boxes)
    and num_undrawn counts the rest; every other field equals the dense batch's."""
    config = data_config(shapes_dir, max_heatmap_objects=3)
    augmented = []  # the unaugmented geometry of the first 4 validation images, by hand
    source = pl.load_source(config, training=False)
    for record in source.records[:4]:
        image = decode_image(tf.io.read_file(record.path))
        _, boxes, classes, _ = augment.resize_full_image(
            image, record.boxes, record.classes, config.input_size
        )
        augmented.append({"boxes": boxes, "classes": classes})
    ((c_images, c_targets),) = batches(config, False, "compact", n=1)
    ((d_images, d_targets),) = batches(config, False, "dense", n=1)
    f_images, f_targets = finished(c_images, c_targets)
    np.testing.assert_array_equal(f_images.numpy(), d_images.numpy())
    undrawn = f_targets["num_undrawn"].numpy()
    # Counted when the annotations are loaded, too, as images over max_objects are.
    over = sum(len(r.classes) > 3 for r in source.records)
    assert over > 0 and source.report.counts["images_over_max_heatmap_objects"] == over
    for i, el in enumerate(augmented):
        n = int(el["classes"].shape[0])
        assert undrawn[i] == max(n - 3, 0)
        first = encode_targets(el["boxes"][:3], el["classes"][:3], (63, 63), OUT, CLASSES)
        for key in ("tl_heatmap", "br_heatmap"):
            np.testing.assert_array_equal(f_targets[key][i].numpy(), first[key].numpy())
    assert undrawn.any()
    for key in d_targets:
        if not key.endswith("_heatmap"):
            np.testing.assert_array_equal(f_targets[key].numpy(), d_targets[key].numpy())


def test_batched_drawing_equals_draw_heatmaps_per_image():
    """One scatter for the batch (borders, fractional and huge radii, padding slots, an empty
    image) == draw_heatmaps image by image, bitwise."""
    rng = np.random.default_rng(0)
    batch, slots, height, width = 5, 7, 20, 24
    corners = np.stack(
        [
            rng.integers(-2, width + 2, (batch, slots)),
            rng.integers(-2, height + 2, (batch, slots)),
            rng.integers(0, width, (batch, slots)),
            rng.integers(0, height, (batch, slots)),
        ],
        axis=-1,
    ).astype(np.int32)
    radii = rng.choice([0.0, 1.0, 2.5, 4.0, 7.0, 1e9], size=(batch, slots))
    classes = rng.integers(0, 4, (batch, slots)).astype(np.int32)
    counts = [7, 3, 0, 5, 1]
    for b, k in enumerate(counts):
        classes[b, k:] = -1
        corners[b, k:] = rng.integers(0, 5, (slots - k, 4))  # padding: anything, drawn nowhere
    tl, br = draw_batch_heatmaps(corners, radii, classes, height, width, 4)
    assert tl.shape == (batch, height, width, 4) and tl.dtype == tf.float32
    for b, k in enumerate(counts):
        for heat, (x, y) in ((tl, (0, 1)), (br, (2, 3))):
            expected = draw_heatmaps(
                corners[b, :k, x], corners[b, :k, y], radii[b, :k], classes[b, :k], height, width, 4
            )
            np.testing.assert_array_equal(heat[b].numpy(), expected.numpy())
    assert not tl[2].numpy().any() and tl[0].numpy().max() == 1.0


def test_pixel_affine_batched_equals_per_image_and_the_matrix_form():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 9, 11, 3)).astype(np.uint8)
    mean, std = DataConfig().mean, DataConfig().std
    affines = tf.stack(
        [
            augment.pixel_affine(
                images[i], mean, std, [2, 0, 1], [1.2, 0.7, 1.1], [0.1 * i, -0.2, 0.05]
            )
            for i in range(3)
        ]
    )
    batched = augment.apply_pixel_affine(images, affines).numpy()
    for i in range(3):
        one = augment.apply_pixel_affine(images[i], affines[i]).numpy()
        np.testing.assert_array_equal(batched[i], one)
        m = affines[i].numpy().astype(np.float64)
        reference = images[i].astype(np.float64) @ m[:, :3].T + m[:, 3]
        np.testing.assert_allclose(one, reference, atol=2e-5)


def test_fit_on_compact_batches_gives_the_dense_loss(pairs):
    """model.fit, same seed and weights, on a compact and on the dense batch: the same loss
    terms and the same weights after the step (eager steps: tracing would dominate the test;
    the traced step runs compact batches in test_training_distributed.py)."""
    from test_training import SMALL_MODEL

    _, dense_batches, compact_batches = pairs[True][0]
    results = {}
    for name, batch in (("dense", dense_batches[0]), ("compact", compact_batches[0])):
        keras.utils.set_random_seed(0)
        model = build_model(SMALL_MODEL)  # 63 x 63 input -> 16 x 16 maps
        model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
        history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
        results[name] = history, model.get_weights()
    (dense, dense_weights), (compact, compact_weights) = results["dense"], results["compact"]
    assert dense["loss"][0] > 0
    for key in ("loss", "focal", "pull", "push", "regr"):
        np.testing.assert_allclose(compact[key], dense[key], rtol=1e-6, err_msg=key)
    for a, b in zip(compact_weights, dense_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_step_names_the_missing_keys_of_a_compact_batch(pairs):
    from test_training import SMALL_MODEL

    images, targets = pairs[True][0][2][0]
    targets = dict(targets)
    targets.pop("heatmap_radii")
    model = build_model(SMALL_MODEL)
    model.compile(optimizer="adam", run_eagerly=True)
    ds = tf.data.Dataset.from_tensors((images, targets))
    with pytest.raises(ValueError, match=r"compact batch .* heatmap_radii"):
        model.fit(ds, epochs=1, verbose=0)
    targets.pop("pixel_affine")  # uint8 images still mark the batch as compact
    with pytest.raises(ValueError, match=r"compact batch .* pixel_affine"):
        model.fit(tf.data.Dataset.from_tensors((images, targets)), epochs=1, verbose=0)


def test_batch_format_and_capacity_are_validated():
    for value in ("sparse", "", "Dense"):
        with pytest.raises(ConfigError, match=r"data\.batch_format must be auto\|dense\|compact"):
            load_config({"data": {"batch_format": value}})
    with pytest.raises(ConfigError, match=r"max_heatmap_objects must be >= max_objects \(128\)"):
        load_config({"data": {"max_heatmap_objects": 100}})
    config = load_config({"data": {"batch_format": "dense", "max_heatmap_objects": 128}})
    assert config.data.batch_format == "dense" and config.data.max_heatmap_objects == 128
    with pytest.raises(ValueError, match="batch_format"):
        build_dataset(DataConfig(), True, batch_format="auto")


def test_auto_is_compact_on_an_accelerator_without_jit_compile(monkeypatch):
    resolve, visible = finish.resolve_batch_format, finish.accelerator_visible
    # This test machine's own answer.
    assert visible() == bool(tf.config.list_logical_devices("GPU"))
    assert resolve("auto", jit_compile=False, on_accelerator=True) == "compact"
    assert resolve("auto", jit_compile=True, on_accelerator=True) == "dense"
    assert resolve("auto", jit_compile=False, on_accelerator=False) == "dense"
    assert resolve("dense", jit_compile=False, on_accelerator=True) == "dense"
    assert resolve("compact", jit_compile=False, on_accelerator=False) == "compact"
    with pytest.raises(ConfigError, match="batch_format=compact needs train.jit_compile=false"):
        resolve("compact", jit_compile=True, on_accelerator=True)
    # What training asks the pipeline for, for its training and validation-loss datasets.
    asked = []

    def recording_build_dataset(data_config, training, **kwargs):
        asked.append((training, kwargs["batch_format"]))
        return tf.data.Dataset.range(1)

    monkeypatch.setattr(pl, "build_dataset", recording_build_dataset)
    for gpu, jit, batch_format, expected in (
        (True, False, "auto", "compact"),
        (True, True, "auto", "dense"),
        (False, False, "auto", "dense"),
        (False, False, "compact", "compact"),
        (True, False, "dense", "dense"),
    ):
        monkeypatch.setattr(finish, "accelerator_visible", lambda gpu=gpu: gpu)
        asked.clear()
        config = load_config(
            {"data": {"batch_format": batch_format}, "train": {"jit_compile": jit}}
        )
        make_datasets(config, tf.distribute.get_strategy(), validation=True)
        assert asked == [(True, expected), (False, expected)]
