"""Distributed and fault-tolerant training, each scenario in fresh processes (CPU only).

* MirroredStrategy on 2 logical CPU devices trains exactly like the default strategy on the same
  global batch (the loss is the global-batch loss; BatchNorm statistics are synchronised).
* MultiWorkerMirroredStrategy with two worker processes on localhost completes a few steps.
* A ``cornernet train`` killed with SIGKILL mid-epoch resumes from its backup with the same step
  counter and optimizer state, and ends at the same step as an uninterrupted run.
* A two-worker MultiWorkerMirroredStrategy run with one worker killed resumes, once both workers
  are restarted, from the chief's backup and ends at ``train.max_steps`` (docs/distributed.md).

Logical devices must be configured before TensorFlow initialises, and a multi-worker cluster
needs one process per worker, hence the subprocesses.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def _env(**extra):
    env = dict(os.environ)
    env.update(
        {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT + os.pathsep + env.get("PYTHONPATH", "")}
    )
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run_script(tmp_path, name, source, timeout=240, **env):
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=str(tmp_path),
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A small shapes dataset (64x64 images) and a config for the smallest CornerNet on it."""
    from cornernet_tf.data.shapes import generate_shapes

    out = tmp_path_factory.mktemp("shapes")
    generate_shapes(str(out), seed=3, size=(64, 64), splits={"train": 24})
    config = {
        "name": "distributed_test",
        "model": {
            "num_classes": 3,
            "num_stacks": 1,
            "dims": [16, 16],
            "modules": [1, 1],
            "stem_dims": [16, 16],
            "cnv_dim": 8,
            "pool_dim": 8,
            "head_dim": 8,
        },
        "data": {
            "train_annotations": str(out / "train" / "annotations.json"),
            "train_images": str(out / "train" / "images"),
            "input_size": [63, 63],
            "max_objects": 8,
            "seed": 0,
            "shuffle_buffer": 8,
        },
        "train": {"batch_size": 2, "learning_rate": 1e-3, "decay_step": 1.0, "val_ap_images": 0},
    }
    path = out / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path


# --------------------------------------------------------------------------- MirroredStrategy

MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
sys.path.insert(0, {tests!r})
from test_training import SMALL_MODEL, make_batch
from cornernet_tf.config import ConfigError, load_config
from cornernet_tf.training.fit import train
from cornernet_tf.training.task import build_model

# Four images, one without any object: the per-replica shards then have different numbers of
# positives, so a per-replica normalisation (or per-replica BatchNorm) would give another step.
images, targets = make_batch(4, seed=11)
targets["tag_mask"][1] = 0
targets["tl_heatmap"][1] = 0
targets["br_heatmap"][1] = 0
assert targets["tag_mask"][[0, 2, 3]].sum() > 0


def one_step(strategy):
    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = build_model(SMALL_MODEL)
        # SGD: the update is the gradient itself (Adam's first step is ~lr * sign(g)).
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.copy() for w in model.get_weights()]
    ds = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)
    logs = model.fit(ds, epochs=1, verbose=0).history
    return strategy.num_replicas_in_sync, before, model.get_weights(), {{k: v[0] for k, v in logs.items()}}, \\
        [v.path for v in model.weights]


n1, before1, after1, logs1, names = one_step(tf.distribute.get_strategy())
n2, before2, after2, logs2, _ = one_step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
np.savez("mirrored.npz", **{{f"before1_{{i}}": w for i, w in enumerate(before1)}},
         **{{f"before2_{{i}}": w for i, w in enumerate(before2)}},
         **{{f"after1_{{i}}": w for i, w in enumerate(after1)}},
         **{{f"after2_{{i}}": w for i, w in enumerate(after2)}})

# A global batch that does not divide across the replicas is refused before anything is built.
config = load_config({config!r}, ["train.strategy=mirrored", "train.batch_size=3"])
try:
    train(config, "workdir_bad_batch", progress=False)
    error = None
except ConfigError as exc:
    error = str(exc)
json.dump({{"replicas": [n1, n2], "logs": [logs1, logs2], "names": names, "batch_error": error}},
          open("mirrored.json", "w"))
"""


def test_mirrored_strategy_matches_the_default_strategy(tmp_path, shapes):
    _run_script(tmp_path, "mirrored", MIRRORED.format(tests=TESTS, config=str(shapes)))
    result = json.loads((tmp_path / "mirrored.json").read_text())
    arrays = np.load(tmp_path / "mirrored.npz")
    assert result["replicas"] == [1, 2]
    default, mirrored = result["logs"]
    assert sorted(default) == ["focal", "loss", "pull", "push", "regr"]
    for key in default:  # the logged loss is the global-batch loss on both
        np.testing.assert_allclose(mirrored[key], default[key], rtol=1e-5, err_msg=key)
    # Same initial weights, then the same update. Tolerance: 1e-4 of the largest change of each
    # variable (float32 sums in another order, E[x^2]-E[x]^2 for the synchronised BN statistics).
    for i, name in enumerate(result["names"]):
        np.testing.assert_array_equal(arrays[f"before1_{i}"], arrays[f"before2_{i}"])
        delta1 = arrays[f"after1_{i}"] - arrays[f"before1_{i}"]
        delta2 = arrays[f"after2_{i}"] - arrays[f"before2_{i}"]
        scale = np.abs(delta1).max()
        assert scale > 0, name
        np.testing.assert_allclose(delta2, delta1, rtol=0, atol=1e-4 * scale + 1e-9, err_msg=name)
    assert "train.batch_size=3" in result["batch_error"] and "2 replicas" in result["batch_error"]


MIRRORED_COMPACT = """
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
from cornernet_tf.training.fit import train

logs = {{}}
for batch_format in ("dense", "compact"):
    keras.utils.set_random_seed(0)
    result = train({config!r}, "run_" + batch_format, progress=False, overrides=[
        "data.batch_format=" + batch_format, "data.deterministic=true", "train.strategy=mirrored",
        "train.batch_size=4", "train.max_steps=2", "train.steps_per_epoch=2"])
    logs[batch_format] = {{k: v[0] for k, v in result.history.items() if "seconds" not in k}}
json.dump(logs, open("compact.json", "w"))
"""


@pytest.mark.slow  # two traced training runs in a fresh process (~2 minutes on 2 cores)
def test_compact_batches_train_like_dense_batches_under_mirrored_strategy(tmp_path, shapes):
    """The pipeline's compact batches, split over 2 replicas and finished per replica in the
    step, give the losses of its dense batches (train() end to end, same seed)."""
    _run_script(tmp_path, "compact", MIRRORED_COMPACT.format(config=str(shapes)), timeout=600)
    logs = json.loads((tmp_path / "compact.json").read_text())
    assert logs["dense"]["loss"] > 0
    for key, value in logs["dense"].items():
        np.testing.assert_allclose(logs["compact"][key], value, rtol=1e-6, err_msg=key)


# --------------------------------------------------------------------------- MultiWorkerMirroredStrategy


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cli(config, workdir, *overrides):
    command = [
        sys.executable,
        "-m",
        "cornernet_tf",
        "train",
        "--config",
        str(config),
        "--workdir",
        str(workdir),
        "--no-progress",
    ]
    for item in overrides:
        command += ["--set", item]
    return command


def test_multi_worker_strategy_on_localhost(tmp_path, shapes):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workdir = tmp_path / "run"
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                _cli(
                    shapes,
                    workdir,
                    "train.strategy=multi_worker",
                    "train.batch_size=4",
                    "train.max_steps=3",
                    "train.steps_per_epoch=3",
                ),
                cwd=str(tmp_path),
                env=_env(TF_CONFIG=tf_config),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    losses = []
    for index, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {index}:\n{output[-5000:]}"
        assert "trained to step 3" in output, output[-2000:]
        losses.append(re.search(r" - loss: ([0-9.e+-]+)", output).group(1))
    assert losses[0] == losses[1]  # both workers log the same global-batch loss
    summary = json.loads((workdir / "summary.json").read_text())  # written by the chief only
    assert summary["final_step"] == 3
    assert (workdir / "last.weights.h5").exists()


# --------------------------------------------------------------------------- kill and resume

RESUME = """
import json, sys
import numpy as np
import keras
from cornernet_tf.training.fit import train


class RecordRestoredState(keras.callbacks.Callback):
    # Runs after the backup callback has restored the model and the optimizer.
    def on_train_begin(self, logs=None):
        np.savez("restored.npz", *[np.asarray(v) for v in self.model.optimizer.variables],
                 *self.model.get_weights())


result = train({config!r}, {workdir!r}, progress=False, overrides={overrides!r},
               extra_callbacks=[RecordRestoredState()])
json.dump({{"final_step": result.final_step, "resumed_from_step": result.resumed_from_step}},
          open("resume.json", "w"))
"""


def test_killed_run_resumes_with_the_same_step_and_optimizer_state(tmp_path, shapes):
    import shutil

    max_steps = 14
    overrides = [
        f"train.max_steps={max_steps}",
        "train.steps_per_epoch=8",
        "train.backup_every_steps=2",
    ]
    workdir = tmp_path / "run"
    metadata = workdir / "backup" / "training_metadata.json"
    proc = subprocess.Popen(
        _cli(shapes, workdir, *overrides),
        cwd=str(tmp_path),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if metadata.exists():
                try:
                    step = json.loads(metadata.read_text())["step"]
                except (ValueError, KeyError):
                    step = 0
                if step >= 4:  # mid-epoch: epochs are 8 steps long
                    break
            time.sleep(0.05)
        assert proc.poll() is None, (
            "the run ended before it could be killed:\n" + proc.communicate()[0][-3000:]
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    backup = workdir / "backup" / "latest.weights.h5"
    saved = tmp_path / "killed_backup.weights.h5"
    shutil.copyfile(backup, saved)
    saved_step = json.loads(metadata.read_text())["step"]
    assert 4 <= saved_step < 8
    assert not (workdir / "summary.json").exists()  # the first run did not finish

    _run_script(
        tmp_path,
        "resume",
        RESUME.format(config=str(shapes), workdir=str(workdir), overrides=overrides),
    )
    result = json.loads((tmp_path / "resume.json").read_text())
    assert result == {"final_step": max_steps, "resumed_from_step": saved_step}
    assert json.loads((workdir / "summary.json").read_text())["final_step"] == max_steps

    # The restored optimizer state (step counter, Adam moments) and weights are the backup's.
    import tensorflow as tf

    from cornernet_tf.config import load_config
    from cornernet_tf.training.fit import build_and_compile

    config = load_config(str(shapes), overrides)
    model = build_and_compile(config, tf.distribute.get_strategy())
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(saved))
    restored = np.load(tmp_path / "restored.npz")
    expected = [np.asarray(v) for v in model.optimizer.variables] + model.get_weights()
    assert int(expected[0]) == saved_step  # optimizer.variables[0] is the iteration counter
    assert len(restored.files) == len(expected)
    for i, value in enumerate(expected):
        np.testing.assert_array_equal(restored[f"arr_{i}"], value)


# --------------------------------------------------------------------------- multi-worker kill and resume


def _start_workers(config, workdir, cwd, overrides, logs):
    """Two MultiWorkerMirroredStrategy workers on 127.0.0.1 (fresh ports), output to ``logs``."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                _cli(config, workdir, "train.strategy=multi_worker", *overrides),
                cwd=str(cwd),
                env=_env(TF_CONFIG=tf_config),
                stdout=open(logs[index], "w"),
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


@pytest.mark.slow
def test_multi_worker_run_resumes_after_a_worker_is_killed(tmp_path, shapes):
    """Worker 1 is killed (SIGKILL) mid-run. The survivor cannot finish without it; the cluster
    manager's part (restart every worker with the same command and work directory, the ports
    may change) is played by the test, and the run resumes from the chief's backup on shared
    storage and ends at train.max_steps with the step counter intact."""
    max_steps = 12
    overrides = [
        "train.batch_size=4",
        f"train.max_steps={max_steps}",
        "train.steps_per_epoch=6",
        "train.backup_every_steps=2",
    ]
    workdir = tmp_path / "run"
    metadata = workdir / "backup" / "training_metadata.json"
    first_logs = [tmp_path / f"first_{i}.log" for i in range(2)]
    procs = _start_workers(shapes, workdir, tmp_path, overrides, first_logs)
    survivor_exit = None
    try:
        deadline = time.time() + 300
        step = 0
        while time.time() < deadline and all(p.poll() is None for p in procs):
            if metadata.exists():
                try:
                    step = json.loads(metadata.read_text())["step"]
                except (ValueError, KeyError):
                    step = 0
                if step >= 4:
                    break
            time.sleep(0.05)
        assert all(p.poll() is None for p in procs), (
            "a worker ended before the kill:\n"
            + "\n".join(log.read_text()[-3000:] for log in first_logs)
        )
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=30)
        try:  # the survivor either fails on its own or waits on the dead peer
            survivor_exit = procs[0].wait(timeout=20)
        except subprocess.TimeoutExpired:
            procs[0].kill()
            procs[0].wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert survivor_exit != 0, "worker 0 finished without its peer:\n" + first_logs[0].read_text()
    saved_step = json.loads(metadata.read_text())["step"]
    assert 4 <= saved_step < max_steps
    assert not (workdir / "summary.json").exists()

    second_logs = [tmp_path / f"second_{i}.log" for i in range(2)]
    procs = _start_workers(shapes, workdir, tmp_path, overrides, second_logs)
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [log.read_text() for log in second_logs]
    for index, (code, output) in enumerate(zip(codes, outputs)):
        assert code == 0, f"worker {index} after the restart:\n{output[-5000:]}"
        assert f"trained to step {max_steps}" in output, output[-2000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["final_step"] == max_steps
    assert summary["resumed_from_step"] == saved_step
