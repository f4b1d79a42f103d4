"""Faults around training and the files it writes.

* A resumed run keeps the best score of the runs before it: a worse validation score does not
  replace ``best.weights.h5``; the learning rate follows the restored step.
* Raising ``train.max_steps`` on a finished run trains the extra steps, also when
  ``steps_per_epoch`` is at least the old ``max_steps``.
* A full disk or a file-size limit while writing a checkpoint ends the command with one line
  naming the file; no temporary is left and the previous checkpoints still load.
* A work directory that is refused (another model, checkpoints without config.yaml, another
  ``train`` holding its lock) is left byte-identical.
* The atomic writer leaves the old file and no temporary behind when a write fails.
"""

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import yaml
from test_training import SMALL_MODEL, dataset, make_batch, small_config

from cornernet_tf.atomic_files import (
    is_temporary,
    open_atomic,
    replacing_dir,
    save_weights,
    write_json,
    write_with,
)
from cornernet_tf.config import ConfigError, load_config
from cornernet_tf.errors import OutputPathError
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training.fit import epoch_plan, train
from cornernet_tf.training.lock import workdir_lock
from cornernet_tf.training.task import build_model
from cornernet_tf.training.workdir import prepare_workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(root) -> dict:
    """Every file under ``root`` (hidden ones included) with its bytes."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def temporaries(root) -> list[str]:
    return [name for name in snapshot(root) if is_temporary(name)]


def assert_same_weights(path_a, path_b):
    a, b = build_model(SMALL_MODEL), build_model(SMALL_MODEL)
    a.load_weights(str(path_a))
    b.load_weights(str(path_b))
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- atomic writes


def test_atomic_writer_leaves_the_old_file_and_no_temporary_on_failure(tmp_path):
    path = tmp_path / "last.weights.h5"
    path.write_bytes(b"previous checkpoint")

    def disk_full(tmp):
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".weights.h5")
        with open(tmp, "wb") as fh:
            fh.write(b"half a")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputPathError) as info:
        write_with(str(path), disk_full)
    message = str(info.value)
    assert str(path) in message and "No space left on device" in message and "\n" not in message
    assert snapshot(tmp_path) == {"last.weights.h5": b"previous checkpoint"}

    # A bug in the writer propagates as itself, and still leaves nothing behind.
    with pytest.raises(ZeroDivisionError), open_atomic(str(tmp_path / "history.csv")) as fh:
        fh.write("epoch,loss\n")
        raise ZeroDivisionError
    assert sorted(snapshot(tmp_path)) == ["last.weights.h5"]

    write_json(str(tmp_path / "best.json"), {"value": 1.5})
    assert json.loads((tmp_path / "best.json").read_text()) == {"value": 1.5}

    # A folder (a SavedModel version) is replaced as a whole, or not at all.
    version = tmp_path / "export" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"old model")
    with pytest.raises(OutputPathError, match="No space left"), replacing_dir(str(version)) as tmp:
        (tmp_path / "export" / os.path.basename(tmp) / "saved_model.pb").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert os.listdir(tmp_path / "export") == ["1"]
    assert (version / "saved_model.pb").read_bytes() == b"old model"
    with replacing_dir(str(version)) as tmp, open(os.path.join(tmp, "saved_model.pb"), "wb") as fh:
        fh.write(b"new model")
    assert os.listdir(tmp_path / "export") == ["1"] and os.listdir(version) == ["saved_model.pb"]
    assert (version / "saved_model.pb").read_bytes() == b"new model"


# --------------------------------------------------------------------------- resume


def test_best_checkpoint_starts_from_the_saved_score(tmp_path):
    """The score of best.weights.h5 comes from best.json, else from the history of older runs."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    best, state, history = (str(tmp_path / n) for n in ("b.weights.h5", "b.json", "h.csv"))

    callback = cb.BestCheckpoint(best, state, "val_loss", "min")
    callback.set_model(model)
    assert callback.best is None
    callback.on_epoch_end(0, {"val_loss": 0.5})
    saved = snapshot(tmp_path)
    assert json.loads(saved["b.json"])["value"] == 0.5

    again = cb.BestCheckpoint(best, state, "val_loss", "min")  # a resumed run
    again.set_model(model)
    assert again.best == 0.5
    for worse in (0.7, float("nan"), float("inf")):
        again.on_epoch_end(1, {"val_loss": worse})
        assert snapshot(tmp_path) == saved
    again.on_epoch_end(2, {"val_loss": 0.25})
    assert json.loads((tmp_path / "b.json").read_text())["value"] == 0.25

    # An older work directory without best.json: the best value of the history.
    os.remove(state)
    log = cb.CSVHistory(history)
    log.on_train_begin()
    for epoch, value in enumerate((0.9, 0.3, 0.6)):
        log.on_epoch_end(epoch, {"loss": 1.0, "val_loss": value})
    assert cb.BestCheckpoint(best, state, "val_loss", "min", history_path=history).best == 0.3
    # Another criterion (COCO AP instead of the loss) starts afresh.
    write_json(state, {"monitor": "val_loss", "mode": "min", "value": 0.3})
    assert cb.BestCheckpoint(best, state, "val_AP", "max", history_path=history).best is None


def finished_run(workdir, config, step: int, val_ds) -> dict:
    """What a run to ``step`` leaves (written by the training callbacks themselves, without
    spending a traced training run on it): config.yaml, last weights, a backup whose metadata counts
    one epoch, best weights with their validation loss, summary.json. Returns best.json."""
    from cornernet_tf.training.fit import build_and_compile
    from cornernet_tf.training.strategy import make_strategy

    paths = prepare_workdir(str(workdir), config)
    task = build_and_compile(config, make_strategy("default"))
    task.optimizer.iterations.assign(step)
    backup = cb.ResumableBackup(paths.backup, save_freq="epoch")
    last = cb.LastCheckpoint(paths.last)
    best = cb.BestCheckpoint(paths.best, paths.best_state, "val_loss", "min")
    for callback in (backup, last, best):
        callback.set_model(task)
    backup.on_epoch_end(0)  # {"epoch": 1, "step": step}: one epoch of min(steps_per_epoch, step)
    last.on_train_end()
    best.on_epoch_end(0, {"val_loss": task.evaluate(val_ds, verbose=0, return_dict=True)["loss"]})
    cb.write_json(paths.summary, {"final_step": step})
    return json.loads(open(paths.best_state).read())


def test_resume_trains_the_extra_steps_and_keeps_the_best_checkpoint_and_the_schedule(tmp_path):
    """Raising max_steps on a finished run (steps_per_epoch >= the old max_steps) trains the
    extra steps; their validation, worse than the best before, leaves best.weights.h5 alone."""
    images, targets = make_batch(6, seed=7)
    train_ds = dataset(images, targets, 1).repeat()
    val = {k: v[:2] for k, v in targets.items()}
    # decay_step 0.75: a share of max_steps, step 3 of the extended 4 steps.
    config = small_config(tmp_path, batch_size=1, max_steps=2, steps_per_epoch=4, decay_step=0.75)
    workdir = tmp_path / "run"
    state = finished_run(workdir, config, 2, dataset(images[:2], val, 1))
    assert state["monitor"] == "val_loss" and state["step"] == 2
    best = (workdir / "best.weights.h5").read_bytes()
    finished = train(config, str(workdir), progress=False, train_dataset=train_ds)
    assert finished.seconds == 0.0  # finished: nothing to do

    # Validation images 50x brighter than anything seen: a much higher validation loss.
    worse = dataset(images[:2] * 50.0, val, 1)
    result = train(
        config,
        str(workdir),
        progress=False,
        overrides=["train.max_steps=4"],
        train_dataset=train_ds,
        val_dataset=worse,
    )
    assert (result.final_step, result.resumed_from_step) == (4, 2)
    rows = cb.read_history(str(workdir / "history.csv"))
    assert [r["step"] for r in rows] == [4]
    assert json.loads((workdir / "summary.json").read_text())["final_step"] == 4
    assert rows[0]["val_loss"] > state["value"]  # the premise: the resumed score is worse
    assert (workdir / "best.weights.h5").read_bytes() == best
    assert json.loads((workdir / "best.json").read_text()) == state
    # The schedule runs on the restored step counter: step 4 is past decay_step 3.
    assert rows[0]["learning_rate"] == pytest.approx(1e-4)
    assert not (workdir / ".lock").exists()  # released at the end


def test_epoch_plan_counts_in_steps():
    assert epoch_plan(0, 4, 2) == (0, 2)
    assert epoch_plan(40, 60, 50) == (0, 1)  # the case: 20 more steps in one epoch
    assert epoch_plan(40, 60, 60) == (0, 1)
    assert epoch_plan(45, 100, 10) == (4, 10)  # 5 steps in epoch 5, then 5 full epochs
    assert epoch_plan(60, 60, 50) == (1, 1)  # nothing left


@pytest.fixture(scope="module")
def shapes_config(tmp_path_factory):
    """A config file for the smallest CornerNet on eight 64x64 shapes images."""
    from cornernet_tf.data.shapes import generate_shapes

    out = tmp_path_factory.mktemp("shapes")
    generate_shapes(str(out), seed=3, size=(64, 64), splits={"train": 8})
    config = {
        "name": "faults_test",
        "model": SMALL_MODEL,
        "data": {
            "train_annotations": str(out / "train" / "annotations.json"),
            "train_images": str(out / "train" / "images"),
            "input_size": [63, 63],
            "max_objects": 8,
            "shuffle_buffer": 8,
        },
        "train": {
            "batch_size": 1,
            "max_steps": 1,
            "steps_per_epoch": 1,
            "learning_rate": 1e-3,
            "decay_step": 1.0,  # a share of max_steps: no decay within the run
            "val_ap_images": 0,
        },
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


# --------------------------------------------------------------------------- full disk


def test_disk_full_while_saving_keeps_the_previous_checkpoints(tmp_path, monkeypatch):
    """ENOSPC half-way through each checkpoint writer: one-line error naming the file, the old
    file unchanged and loadable, no temporary left."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    paths = {n: str(tmp_path / n) for n in ("last.weights.h5", "best.weights.h5", "best.json")}
    backup = cb.ResumableBackup(str(tmp_path / "backup"), save_freq="epoch")
    last = cb.LastCheckpoint(paths["last.weights.h5"])
    best = cb.BestCheckpoint(paths["best.weights.h5"], paths["best.json"], "loss", "min")
    for callback in (backup, last, best):
        callback.set_model(model)
    saves = {
        os.path.join(str(tmp_path / "backup"), "latest.weights.h5"): lambda: backup.on_epoch_end(0),
        paths["last.weights.h5"]: lambda: last.on_epoch_end(0),
        paths["best.weights.h5"]: lambda: best.on_epoch_end(0, {"loss": next(losses)}),
    }
    losses = iter([1.0, 0.5])  # the second one is better: BestCheckpoint tries to save it
    for save in saves.values():
        save()
    before = snapshot(tmp_path)
    weights = model.get_weights()
    model.set_weights([w + 1 for w in weights])

    def disk_full(fd):  # the file is half written when the disk fills up
        os.truncate(os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    for path, save in saves.items():
        with pytest.raises(OutputPathError) as info:
            save()
        message = str(info.value)
        assert message.startswith(f"{path}: could not be written (No space left on device)")
        assert "\n" not in message
    monkeypatch.undo()
    assert snapshot(tmp_path) == before and temporaries(tmp_path) == []
    for path in saves:
        model.load_weights(path)
        for a, b in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(a, b)


def test_file_size_limit_while_saving_weights_keeps_the_previous_file(tmp_path):
    """The kernel refuses to grow a file past RLIMIT_FSIZE (EFBIG; Python ignores SIGXFSZ): the
    weights writer fails with one line, removes its temporary, and the old file still loads."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256)])
    path = str(tmp_path / "last.weights.h5")
    save_weights(path, model)
    before = snapshot(tmp_path)
    weights = model.get_weights()
    model.set_weights([w + 1 for w in weights])
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before["last.weights.h5"]) // 2, hard))
    try:
        with pytest.raises(OutputPathError) as info:
            save_weights(path, model)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(info.value).startswith(f"{path}: could not be written (File too large)")
    assert snapshot(tmp_path) == before and temporaries(tmp_path) == []
    model.load_weights(path)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


FSIZE_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python's default: a write past it fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
from cornernet_tf.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.slow  # a TensorFlow process of its own and a traced training step (~20 s unloaded)
def test_file_size_limit_ends_train_with_one_line_and_loadable_checkpoints(tmp_path, shapes_config):
    """A real kernel limit (RLIMIT_FSIZE) on every file ``cornernet train`` writes: the first
    checkpoint of the run fails with EFBIG; the command ends with one line (no crash) and the
    checkpoints already in the work directory still load."""
    from cornernet_tf.training.fit import build_and_compile
    from cornernet_tf.training.strategy import make_strategy

    workdir = tmp_path / "run"
    config = load_config(shapes_config)
    paths = prepare_workdir(str(workdir), config)
    task = build_and_compile(config, make_strategy("default"))
    os.makedirs(paths.backup)
    task.save_weights(os.path.join(paths.backup, "latest.weights.h5"))
    task.save_weights(paths.last)
    before = snapshot(workdir)
    limit = len(before["last.weights.h5"]) // 2  # above every small file, below the weights
    assert limit > 8 * len(before["config.yaml"])

    argv = ["train", "--config", shapes_config, "--workdir", str(workdir), "--no-progress"]
    script = tmp_path / "limited.py"
    script.write_text(textwrap.dedent(FSIZE_CHILD.format(limit=limit, argv=argv)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])  # not a crash (-11, 139)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cornernet train:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert str(workdir / "backup" / "latest.weights.h5") in errors[0]
    assert "File too large" in errors[0]
    after = snapshot(workdir)
    assert temporaries(workdir) == [] and ".lock" not in after
    for name in ("last.weights.h5", os.path.join("backup", "latest.weights.h5")):
        assert after[name] == before[name], name
    assert_same_weights(workdir / "last.weights.h5", workdir / "backup" / "latest.weights.h5")


# --------------------------------------------------------------------------- refused work directories


def test_refused_work_directories_are_left_untouched(tmp_path):
    config = small_config(tmp_path)
    other = load_config(config, ["model.dims=[16, 32]"])
    data = dataset(*make_batch(2, seed=1), 1)  # never read: the work directory is refused first

    # Checkpoints of another model.
    workdir = tmp_path / "other"
    paths = prepare_workdir(str(workdir), other)
    (workdir / "last.weights.h5").write_bytes(b"weights of the other model")
    before = snapshot(workdir)
    with pytest.raises(ConfigError, match="another model"):
        train(config, str(workdir), progress=False, train_dataset=data)
    assert snapshot(workdir) == before

    # Checkpoints without config.yaml: the model they belong to is unknown.
    os.remove(paths.config)
    before = snapshot(workdir)
    with pytest.raises(ConfigError, match="no config.yaml"):
        train(config, str(workdir), progress=False, train_dataset=data)
    assert snapshot(workdir) == before
    with pytest.raises(ConfigError, match="no config.yaml"):
        train(other, str(workdir), progress=False, train_dataset=data)
    assert snapshot(workdir) == before


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_second_train_on_a_work_directory_is_refused_while_the_first_runs(tmp_path):
    config = small_config(tmp_path)
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workdir / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(workdir)
        with pytest.raises(OutputPathError) as info:
            train(config, str(workdir), progress=False, train_dataset=dataset(*make_batch(2), 1))
        message = str(info.value)
        assert str(workdir) in message and f"process {holder.pid}" in message
        assert "\n" not in message
        assert snapshot(workdir) == before
    finally:
        holder.kill()
        holder.wait()
    # The killed holder's lock file is stale: it does not block, and is removed after use.
    assert (workdir / ".lock").exists()
    with workdir_lock(str(workdir)):
        assert (workdir / ".lock").read_text() == str(os.getpid())
        with pytest.raises(OutputPathError, match="in use by another"), workdir_lock(str(workdir)):
            pass
    assert not (workdir / ".lock").exists()
