"""Training in one process: model.fit with the CornerNet loss, schedule, guards, work directory, logs.

The multi-device and multi-process behaviour (MirroredStrategy, MultiWorkerMirroredStrategy,
kill and resume) is in test_training_distributed.py.
"""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.config import ConfigError, load_config
from cornernet_tf.losses import cornernet_loss
from cornernet_tf.targets import encode_targets
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training.fit import train, validation_epochs
from cornernet_tf.training.schedule import StepDecay, build_schedule, effective_learning_rate
from cornernet_tf.training.steps import NonFiniteLossError
from cornernet_tf.training.strategy import per_replica_batch_size
from cornernet_tf.training.task import build_model
from cornernet_tf.training.workdir import prepare_workdir

# The smallest CornerNet that still has every part (hourglass n=1, one stack, corner pools, heads).
# The stride-2 residuals keep 16 input channels: TF 2.21's oneDNN Conv2DBackpropFilter crashes on
# 1x1 stride-2 convolutions with fewer than 16 input channels at batch 1 (not a CornerNet issue).
SMALL_MODEL = dict(
    num_classes=3,
    num_stacks=1,
    dims=[16, 16],
    modules=[1, 1],
    stem_dims=[16, 16],
    cnv_dim=8,
    pool_dim=8,
    head_dim=8,
)
INPUT = 31  # map (31 + 1) / 4 = 8, divisible by 2**1
OUTPUT = (8, 8)
MAX_OBJECTS = 8


def make_batch(n, seed=0, nan_image=None, first_id=100):
    """``n`` random images with 0-3 boxes each, encoded like the data pipeline does."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, INPUT, INPUT, 3)).astype("float32")
    if nan_image is not None:
        images[nan_image] = np.nan
    encoded = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        x1y1 = rng.uniform(0, 18, size=(k, 2))
        wh = rng.uniform(4, 12, size=(k, 2))
        boxes = np.concatenate([x1y1, np.minimum(x1y1 + wh, INPUT - 1)], axis=1)
        t = encode_targets(
            boxes, rng.integers(0, 3, size=k), (INPUT, INPUT), OUTPUT, 3, max_objects=MAX_OBJECTS
        )
        t["image_id"] = tf.constant(first_id + i, tf.int64)
        encoded.append(t)
    targets = {key: tf.stack([t[key] for t in encoded]).numpy() for key in encoded[0]}
    return images, targets


def dataset(images, targets, batch):
    return tf.data.Dataset.from_tensor_slices((images, targets)).batch(batch)


def small_config(tmp_path, **train):
    settings = dict(
        batch_size=2,
        max_steps=4,
        steps_per_epoch=2,
        learning_rate=1e-3,
        decay_step=3,
        val_ap_images=0,
    )
    settings.update(train)
    return load_config(
        {
            "name": "small",
            "model": SMALL_MODEL,
            "data": {"input_size": [INPUT, INPUT], "max_objects": MAX_OBJECTS},
            "train": settings,
        }
    )


# --------------------------------------------------------------------------- model.fit


def test_fit_logs_the_cornernet_loss_and_refuses_a_non_finite_step():
    """model.fit logs exactly the CornerNet loss of the batch, terms and total, and updates the
    weights. A batch with a NaN image then fails its step with the step number and the image ids,
    leaving every variable (BatchNorm statistics, optimizer step) as it was."""
    keras.utils.set_random_seed(0)
    model = build_model(SMALL_MODEL)
    images, targets = make_batch(4, seed=1, nan_image=3)
    good = dataset(images[:2], {k: v[:2] for k, v in targets.items()}, 2)
    # BatchNorm in training mode uses batch statistics, so this is the forward the step sees.
    expected = cornernet_loss(
        model(images[:2], training=True), {k: v[:2] for k, v in targets.items()}
    )
    initial = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(good, epochs=1, verbose=0).history
    assert sorted(history) == ["focal", "loss", "pull", "push", "regr"]
    for key, name in [
        ("loss", "total"),
        ("focal", "focal"),
        ("pull", "pull"),
        ("push", "push"),
        ("regr", "regr"),
    ]:
        np.testing.assert_allclose(
            history[key][0], float(expected[name]), rtol=1e-5, atol=1e-7, err_msg=key
        )
    trained = [w.copy() for w in model.get_weights()]
    assert all(
        not np.array_equal(a, b) for a, b, v in zip(initial, trained, model.weights) if v.trainable
    )
    assert int(model.optimizer.iterations.numpy()) == 1

    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite") as info:
        model.fit(
            dataset(images[2:], {k: v[2:] for k, v in targets.items()}, 2), epochs=1, verbose=0
        )
    from cornernet_tf.training.steps import non_finite_details

    assert non_finite_details(info.value) == (2, [102, 103])
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == 1

    # evaluate() reports the same terms, in inference mode.
    logs = model.evaluate(good, verbose=0, return_dict=True)
    assert (
        sorted(logs) == ["focal", "loss", "pull", "push", "regr"]
        and np.isfinite(list(logs.values())).all()
    )


def test_compile_resolves_loss_weights_and_trackers():
    model = build_model(SMALL_MODEL)
    model.compile(optimizer="adam", loss_weights={"pull": 1.0, "regr": 0.5})
    assert model.loss_weights_by_term == {"focal": 1.0, "pull": 1.0, "push": 0.1, "regr": 0.5}
    assert [m.name for m in model.metrics] == ["loss", "focal", "pull", "push", "regr"]


def test_compile_rejects_a_keras_loss_and_unknown_weights():
    model = build_model(SMALL_MODEL)
    with pytest.raises(ValueError, match="own CornerNet loss"):
        model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="unknown term"):
        model.compile(optimizer="adam", loss_weights={"heat": 1.0})


def test_fit_rejects_batches_without_targets():
    model = build_model(SMALL_MODEL)
    model.compile(optimizer="adam")
    images, targets = make_batch(2)
    targets.pop("tag_mask")
    with pytest.raises(ValueError, match="tag_mask"):
        model.fit(dataset(images, targets, 2), epochs=1, verbose=0)


# --------------------------------------------------------------------------- schedule / strategy


def test_step_decay_follows_the_official_iteration_count():
    schedule = StepDecay(2.5e-4, decay_step=450_000, decay_factor=10.0)
    # optimizer.iterations = updates already applied: update 450000 (1-based) still uses the base rate.
    assert float(schedule(449_999)) == pytest.approx(2.5e-4)
    assert float(schedule(450_000)) == pytest.approx(2.5e-5)
    restored = StepDecay.from_config(schedule.get_config())
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    again = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert float(again.learning_rate) == pytest.approx(2.5e-4)  # iterations = 0


def test_decay_step_fraction_decays_at_that_share_of_max_steps(tmp_path):
    config = small_config(tmp_path, max_steps=1500, decay_step=0.8667, learning_rate=2e-3)
    schedule = build_schedule(config.train)
    assert schedule.decay_step == 1300  # round(0.8667 * 1500)
    assert float(schedule(1299)) == pytest.approx(2e-3)
    assert float(schedule(1300)) == pytest.approx(2e-4)
    longer = load_config(config, ["train.max_steps=3000"])  # the decay moves with max_steps
    assert build_schedule(longer.train).decay_step == 2600
    with pytest.raises(
        ConfigError, match=r"decay_step \(1600\) is beyond train.max_steps \(1500\)"
    ):
        small_config(tmp_path, max_steps=1500, decay_step=1600)


def test_linear_learning_rate_rule(tmp_path):
    config = small_config(
        tmp_path, batch_size=8, scale_lr_with_replicas=True, base_batch_size=4, learning_rate=1e-3
    )
    assert effective_learning_rate(config.train) == pytest.approx(2e-3)
    assert float(build_schedule(config.train)(0)) == pytest.approx(2e-3)


def test_batch_that_does_not_divide_across_replicas_is_refused(tmp_path):
    class TwoReplicas:
        num_replicas_in_sync = 2

    config = small_config(tmp_path, batch_size=5, strategy="mirrored")
    with pytest.raises(ConfigError, match=r"batch_size=5 .* 2 replicas .* e\.g\. 4, 6"):
        per_replica_batch_size(config.train, TwoReplicas())
    assert per_replica_batch_size(small_config(tmp_path, batch_size=6).train, TwoReplicas()) == 3


# --------------------------------------------------------------------------- train()


def test_train_batch_of_one_writes_its_files_resumes_and_stops_on_nan(tmp_path):
    """train(): a batch of one, checkpoints/history/curves/summary, validation loss, a no-op re-run,
    a resumed continuation, and a NaN image that stops it with the step, the image id and the
    state from before that step."""
    images, targets = make_batch(7, seed=5, nan_image=6, first_id=500)
    clean = {k: v[:6] for k, v in targets.items()}
    train_ds = dataset(images[:6], clean, 1).repeat()
    val_ds = dataset(images[:2], {k: v[:2] for k, v in clean.items()}, 1)
    config = small_config(
        tmp_path, batch_size=1, max_steps=4, steps_per_epoch=2, backup_every_steps=1
    )
    workdir = tmp_path / "run"
    result = train(
        config,
        str(workdir),
        progress=False,
        train_dataset=train_ds,
        val_dataset=val_ds,
        return_model=True,
    )
    assert result.final_step == 4 and result.resumed_from_step == 0
    for name in (
        "config.yaml",
        "last.weights.h5",
        "best.weights.h5",
        "history.csv",
        "loss_curves.png",
        "summary.json",
    ):
        assert (workdir / name).exists(), name
    rows = cb.read_history(str(workdir / "history.csv"))
    assert [r["step"] for r in rows] == [2, 4]
    assert rows[0]["learning_rate"] == pytest.approx(1e-3) and rows[1][
        "learning_rate"
    ] == pytest.approx(1e-4)
    assert set(rows[0]) >= {"loss", "focal", "pull", "push", "regr", "val_loss", "val_focal"}
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_loss"]) for r in rows)
    assert load_config(str(workdir / "config.yaml")).model.dims == SMALL_MODEL["dims"]
    assert json.loads((workdir / "summary.json").read_text())["final_step"] == 4
    reloaded = build_model(SMALL_MODEL)
    reloaded.load_weights(str(workdir / "last.weights.h5"))
    for a, b in zip(reloaded.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)

    # The same command again does nothing.
    again = train(config, str(workdir), progress=False, train_dataset=train_ds)
    assert again.final_step == 4 and again.seconds == 0.0

    # Continuing to step 7 resumes at step 5; the image of step 6 (id 506) is NaN.
    bad_ds = dataset(images[5:], {k: v[5:] for k, v in targets.items()}, 1)  # steps 5, 6 (NaN)
    with pytest.raises(NonFiniteLossError, match=r"step 6; image ids of that batch: 506") as info:
        train(
            config,
            str(workdir),
            progress=False,
            train_dataset=bad_ds,
            overrides=["train.max_steps=7"],
        )
    error = info.value
    assert error.step == 6 and error.image_ids == [506]
    assert os.path.basename(error.checkpoint) == "before_nonfinite_step_6.weights.h5"
    # The checkpoint is the state after step 5: the step-5 backup, all finite.
    before, backup = build_model(SMALL_MODEL), build_model(SMALL_MODEL)
    before.load_weights(error.checkpoint)
    backup.load_weights(str(workdir / "backup" / "latest.weights.h5"))
    for a, b in zip(before.get_weights(), backup.get_weights()):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_validation_runs_every_n_epochs_and_at_the_last():
    assert validation_epochs(38, 10) == [10, 20, 30, 38]
    assert validation_epochs(30, 10) == [10, 20, 30]
    assert validation_epochs(3, 5) == [3]
    assert validation_epochs(4, 0) == [1, 2, 3, 4]


def test_workdir_of_another_model_is_refused(tmp_path):
    config = small_config(tmp_path)
    paths = prepare_workdir(str(tmp_path / "wd"), config)
    open(paths.last, "wb").close()  # a checkpoint exists
    other = load_config(config, ["model.dims=[16, 32]", "model.num_classes=4"])
    with pytest.raises(ConfigError) as info:
        prepare_workdir(str(tmp_path / "wd"), other)
    message = str(info.value)
    assert "model.dims: saved [16, 16], now [16, 32]" in message
    assert "model.num_classes: saved 3, now 4" in message
    assert "stem_dims" not in message and "cnv_dim" not in message
    # Other sections may change (that is how a run is extended).
    prepare_workdir(str(tmp_path / "wd"), load_config(config, ["train.max_steps=100"]))


def test_csv_history_grows_columns_and_plot(tmp_path):
    path = str(tmp_path / "h.csv")
    log = cb.CSVHistory(path)
    log.on_train_begin()
    log.on_epoch_end(0, {"loss": 3.0, "focal": 2.0, "step": 10})
    log.on_epoch_end(
        1, {"loss": 2.0, "focal": 1.5, "step": 20, "val_loss": 2.5, "val_AP": float("nan")}
    )
    rows = cb.read_history(path)
    assert [r["loss"] for r in rows] == [3.0, 2.0]
    assert math.isnan(rows[0]["val_loss"]) and rows[1]["val_loss"] == 2.5
    from cornernet_tf.training.plots import plot_history

    png = plot_history(rows, str(tmp_path / "curves.png"))
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no known metric"):
        plot_history([{"epoch": 1, "other": 2.0}], str(tmp_path / "x.png"))


# --------------------------------------------------------------------------- the task


def test_task_and_network_share_layers_weights_files_and_outputs(tmp_path):
    from cornernet_tf.modeling.cornernet import CornerNet
    from cornernet_tf.modeling.cornernet import build_model as build_network
    from cornernet_tf.training.task import CornerNetTask

    task = build_model(SMALL_MODEL)
    assert isinstance(task, CornerNetTask) and isinstance(task.backbone, CornerNet)
    assert [v.path for v in task.weights] == [v.path for v in task.backbone.weights]
    assert task.official_variables() == task.backbone.official_variables()
    images = make_batch(1)[0]
    for stacks in ("all", "last"):
        a, b = task(images, stacks=stacks), task.backbone(images, stacks=stacks)
        for key in a:
            np.testing.assert_array_equal(a[key][-1].numpy(), b[key][-1].numpy())
    # Weights files written by either load into the other (training writes the task's).
    task.compile(optimizer="adam")
    task.save_weights(str(tmp_path / "task.weights.h5"))
    network = build_network(SMALL_MODEL)
    network.load_weights(str(tmp_path / "task.weights.h5"))
    network.save_weights(str(tmp_path / "network.weights.h5"))
    other = build_model(SMALL_MODEL)
    other.load_weights(str(tmp_path / "network.weights.h5"))
    for a, b, c in zip(task.get_weights(), network.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_compiled_task_round_trips_through_a_keras_file(tmp_path):
    from cornernet_tf.training.task import CornerNetTask

    task = build_model(SMALL_MODEL)
    task.compile(optimizer=keras.optimizers.Adam(1e-3), loss_weights={"pull": 0.5})
    task.save(str(tmp_path / "task.keras"))
    loaded = keras.models.load_model(str(tmp_path / "task.keras"))
    assert isinstance(loaded, CornerNetTask) and loaded.model_config == task.model_config
    assert loaded.loss_weights_by_term == task.loss_weights_by_term
    images = make_batch(1)[0]
    np.testing.assert_array_equal(
        loaded(images)["tl_heat"][0].numpy(), task(images)["tl_heat"][0].numpy()
    )
