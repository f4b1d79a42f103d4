"""What ``cornernet train`` writes when its output goes to a file: plain lines, no TensorFlow INFO
noise, validation values only on validating epochs, the data report once; and the pieces of that
(progress lines, best checkpoint without a monitored value, the native-log filter)."""

import io
import os
import pathlib
import subprocess
import sys

import keras
import pytest

from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training.progress import ProgressLines

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The smallest complete CornerNet (as in test_training.py), at a 31-pixel input.
SMALL_MODEL = [
    "model.num_classes=3",
    "model.num_stacks=1",
    "model.dims=[16, 16]",
    "model.modules=[1, 1]",
    "model.stem_dims=[16, 16]",
    "model.cnv_dim=8",
    "model.pool_dim=8",
    "model.head_dim=8",
    "data.input_size=[31, 31]",
]


@pytest.mark.slow  # a fresh process traces the training and evaluation graphs: 1-4 minutes on 2 cores
def test_redirected_train_log_is_plain_and_says_each_thing_once(tmp_path):
    shapes = tmp_path / "shapes"
    generate_shapes(str(shapes), seed=3, size=(48, 48), splits={"train": 4, "val": 3})
    val_images = sorted((shapes / "val" / "images").iterdir())
    val_images[-1].unlink()  # a missing file: the report of the validation set becomes a warning
    overrides = [
        *SMALL_MODEL,
        f"data.train_annotations={shapes}/train/annotations.json",
        f"data.train_images={shapes}/train/images",
        f"data.val_annotations={shapes}/val/annotations.json",
        f"data.val_images={shapes}/val/images",
        "train.batch_size=2",
        "train.max_steps=6",
        "train.steps_per_epoch=2",
        "train.decay_step=5",
        "train.validation_steps=1",
        "train.val_every_epochs=2",
        "train.val_ap_images=2",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    args = [sys.executable, "-m", "cornernet_tf", "train", "--config", "cornernet_tiny"]
    args += ["--workdir", str(tmp_path / "run")]
    for item in overrides:
        args += ["--set", item]
    run = subprocess.run(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600
    )
    log = run.stdout.decode()
    assert run.returncode == 0, log[-3000:]
    assert "\b" not in log and "\r" not in log
    assert "oneDNN" not in log and "cpu_feature_guard" not in log
    assert "tensorboard" not in log.lower()
    epoch_lines = [line for line in log.splitlines() if line.startswith("epoch ")]
    assert [line.split(" batch")[0] for line in epoch_lines] == [
        "epoch 1/3",
        "epoch 2/3",
        "epoch 3/3",
    ]
    assert "nan" not in log.lower()
    # Epochs 2 and 3 validate (every 2nd and the last): loss and COCO AP; epoch 1 has no val_*.
    assert "val_" not in epoch_lines[0] and "loss: " in epoch_lines[0]
    for line in epoch_lines[1:]:
        assert "val_loss: " in line and "val_AP: " in line and "val_AP50: " in line
    assert log.count("validation: AP ") == 2
    assert log.count("images dropped: file missing") == 1  # the report, once


class _Model:
    """What ProgressLines reads of a model: the optimizer's step counter."""

    def __init__(self):
        self.optimizer = type("Optimizer", (), {"iterations": keras.Variable(0)})()


def test_progress_lines_every_n_steps_and_per_epoch():
    out = io.StringIO()
    lines = ProgressLines(epochs=2, steps_per_epoch=5, every=2, stream=out)
    lines.set_model(_Model())
    for epoch in range(2):
        lines.on_epoch_begin(epoch)
        for batch in range(5):
            lines.model.optimizer.iterations.assign_add(1)
            lines.on_train_batch_end(batch, {"loss": 2.0 - batch / 10})
        logs = {"loss": 1.5, "step": (epoch + 1) * 5}
        if epoch == 1:
            logs["val_loss"] = 1.25
        lines.on_epoch_end(epoch, logs)
    text = out.getvalue().splitlines()
    assert [t.split(" - ")[0] for t in text] == [
        "epoch 1/2 batch 2/5 (step 2)",
        "epoch 1/2 batch 4/5 (step 4)",
        "epoch 1/2 batch 5/5 (step 5)",
        "epoch 2/2 batch 2/5 (step 7)",
        "epoch 2/2 batch 4/5 (step 9)",
        "epoch 2/2 batch 5/5 (step 10)",
    ]
    assert text[1].endswith("loss: 1.7") and "s/step" in text[1]
    assert text[2].endswith("loss: 1.5") and "step:" not in text[2]
    assert text[5].endswith("loss: 1.5 - val_loss: 1.25")


def test_progress_lines_per_epoch_only_and_a_short_last_epoch():
    out = io.StringIO()
    lines = ProgressLines(epochs=1, steps_per_epoch=100, every=0, stream=out)
    lines.set_model(_Model())
    lines.on_epoch_begin(0)
    for batch in range(3):  # stopped at the step budget after 3 of 100 batches
        lines.on_train_batch_end(batch, {"loss": 1.0})
    lines.on_epoch_end(0, {"loss": 1.0})
    (line,) = out.getvalue().splitlines()
    assert line.startswith("epoch 1/1 batch 3/100 (step 0) - ")


def test_best_checkpoint_passes_over_epochs_without_the_value(tmp_path, recwarn):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")  # the checkpoint records the optimizer's step
    path = str(tmp_path / "best.weights.h5")
    best = cb.BestCheckpoint(path, str(tmp_path / "best.json"), monitor="val_AP", mode="max")
    best.set_model(model)
    best.on_train_begin()
    best.on_epoch_begin(0)
    best.on_epoch_end(0, {"loss": 1.0})
    assert not os.path.exists(path)
    best.on_epoch_begin(1)
    best.on_epoch_end(1, {"loss": 1.0, "val_AP": 0.25})
    assert os.path.exists(path)
    assert not [w for w in recwarn if "val_AP" in str(w.message)]


def test_native_lines_filter_drops_only_the_named_lines(tmp_path):
    # In a child process: the filter swaps file descriptor 2, which pytest's capture also uses.
    script = (
        "import os, sys\n"
        "from cornernet_tf.log_noise import drop_native_lines\n"
        "with drop_native_lines(['harmless E0000']):\n"
        "    os.write(2, b'a harmless E0000 line\\nreal error\\n')\n"
        "    print('python stderr', file=sys.stderr)\n"
        "os.write(2, b'after harmless E0000\\n')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == ["real error", "python stderr", "after harmless E0000"]


def test_quiet_harmless_logs_keeps_a_users_level_and_drops_only_known_warnings(monkeypatch, caplog):
    import logging

    from cornernet_tf import log_noise

    absl_logger = logging.getLogger("absl")
    monkeypatch.setattr(absl_logger, "filters", [])
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    log_noise.quiet_harmless_logs()
    log_noise.quiet_harmless_logs()  # idempotent: one filter
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and len(absl_logger.filters) == 1
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    log_noise.quiet_harmless_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    with caplog.at_level(logging.WARNING, logger="absl"):
        absl_logger.warning("Importing a function (f) with ops with unsaved custom gradients.")
        absl_logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
