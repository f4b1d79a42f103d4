"""Keras callbacks of ``cornernet train``: step budget, fault tolerance, checkpoints, logs.

Each one does one job; ``fit.py`` puts them in order (the order matters: callbacks see the logs
that the earlier ones added).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from cornernet_tf import atomic_files


def _iterations(model) -> int:
    return int(model.optimizer.iterations.numpy())


def _finite(logs) -> bool:
    value = (logs or {}).get("loss")
    return value is None or bool(np.isfinite(value))


class StopAtStep(keras.callbacks.Callback):
    """Stop once ``optimizer.iterations`` reaches ``max_steps``, whatever epoch Keras thinks it is in.

    The step counter is restored with the optimizer state, so a resumed run ends at the same
    step as an uninterrupted one.
    """

    def __init__(self, max_steps: int):
        super().__init__()
        self.max_steps = int(max_steps)

    def on_train_batch_end(self, batch, logs=None):
        if _iterations(self.model) >= self.max_steps:
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stop after ``seconds`` of training (checked after every step), e.g. for a demo run."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = float(seconds)
        self.stopped_early = False
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._start >= self.seconds:
            self.stopped_early = True
            self.model.stop_training = True


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stop when the logged loss is NaN/inf (the in-step check is compiled out under XLA).

    Later callbacks consult ``tripped`` so that they never write a checkpoint with bad weights.
    """

    def __init__(self):
        super().__init__()
        self.tripped = False
        self.step: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        if not self.tripped and not _finite(logs):
            self.tripped = True
            self.step = _iterations(self.model)
            self.model.stop_training = True


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that is safe for multi-worker and NaN runs.

    * Weights *and* optimizer state (Adam moments, step counter) are saved every ``save_freq``
      steps and restored at the start of ``fit``; ``restored_step`` says where training resumed.
    * Only the chief writes (all workers read the shared backup), and nothing is written once
      ``guard`` has tripped. The backup is kept after training, so raising ``train.max_steps``
      continues the run.
    """

    def __init__(
        self,
        backup_dir: str,
        save_freq,
        chief: bool = True,
        guard: NonFiniteLossGuard | None = None,
    ):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
        self.chief = chief
        self.guard = guard
        self.restored_step = 0
        self._restored = False

    def restore(self, model) -> int:
        """Load the backup into ``model`` before ``fit`` (weights, optimizer state, step counter)
        and return the restored step; ``fit`` then starts from the epoch of that step (see
        ``fit.py``), not from the epoch count of the run that wrote the backup."""
        self.set_model(model)
        self._load_model()
        model._initial_epoch = None  # fit's initial_epoch decides
        self._restored = True
        self.restored_step = _iterations(model)
        return self.restored_step

    def on_train_begin(self, logs=None):
        if not self._restored:
            super().on_train_begin(logs)
            self.restored_step = _iterations(self.model)

    def _save_model(self):
        """Write the weights, then the metadata, each to a temporary file renamed into place, so
        that a process killed (or a disk filled) while saving leaves the previous backup intact."""
        if not self.chief or (self.guard is not None and self.guard.tripped):
            return
        atomic_files.save_weights(self._weights_path, self.model)
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "step": _iterations(self.model),
        }
        atomic_files.write_json(self._training_metadata_path, metadata)


class LastCheckpoint(keras.callbacks.Callback):
    """Write the latest weights every ``every_epochs`` epochs and at the end (never non-finite ones)."""

    def __init__(self, path: str, every_epochs: int = 1, guard: NonFiniteLossGuard | None = None):
        super().__init__()
        self.path = path
        self.every_epochs = max(int(every_epochs), 1)
        self.guard = guard

    def _save(self):
        if self.guard is not None and self.guard.tripped:
            return
        atomic_files.save_weights(self.path, self.model)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self._save()

    def on_train_end(self, logs=None):
        self._save()


class BestCheckpoint(keras.callbacks.Callback):
    """Save the weights whenever ``monitor`` beats the best score so far, earlier runs included.

    ``keras.callbacks.ModelCheckpoint`` starts every ``fit`` from +-inf, so the first validation
    after a resume always replaced the best weights, even with a worse score. Here the score of
    ``path`` is kept in ``state_path`` (JSON: monitor, mode, value, step), written after the
    weights; without it (an older work directory) the best ``monitor`` value in ``history_path``
    is used. Non-finite scores and weights after a tripped ``guard`` are never saved.
    """

    def __init__(
        self,
        path: str,
        state_path: str,
        monitor: str,
        mode: str,
        guard: NonFiniteLossGuard | None = None,
        history_path: str | None = None,
    ):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"BestCheckpoint: mode must be 'min' or 'max', got {mode!r}")
        self.path = path
        self.state_path = state_path
        self.monitor = monitor
        self.mode = mode
        self.guard = guard
        self.best = self._previous_best(history_path)

    def _previous_best(self, history_path: str | None) -> float | None:
        if not os.path.exists(self.path):
            return None
        state = read_json(self.state_path)
        if state.get("monitor") == self.monitor and state.get("mode") == self.mode:
            return float(state["value"])
        if state or not history_path:  # another criterion: start afresh
            return None
        values = [r.get(self.monitor) for r in read_history(history_path)]
        values = [v for v in values if isinstance(v, float) and math.isfinite(v)]
        if not values:
            return None
        return max(values) if self.mode == "max" else min(values)

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.tripped:
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(np.asarray(value))
        if not math.isfinite(value) or not self._improves(value):
            return
        atomic_files.save_weights(self.path, self.model)
        state = {
            "monitor": self.monitor,
            "mode": self.mode,
            "value": value,
            "step": _iterations(self.model),
            "epoch": epoch + 1,
        }
        atomic_files.write_json(self.state_path, state, indent=1)
        self.best = value


class LearningRateLogger(keras.callbacks.Callback):
    """Add the current learning rate and the global step to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        logs["step"] = _iterations(self.model)


class EpochTimer(keras.callbacks.Callback):
    """Log where each epoch's wall time went: ``train_seconds`` (the training steps),
    ``val_seconds`` (validation loss, on validating epochs) and ``epoch_seconds`` (everything up to this callback,
    so placed after the checkpoint and COCO AP callbacks it includes them)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._begin = time.perf_counter()
        self._steps_end = self._val_begin = self._val_end = None

    def on_train_batch_end(self, batch, logs=None):
        self._steps_end = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._val_begin = time.perf_counter()

    def on_test_end(self, logs=None):
        self._val_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or getattr(self, "_begin", None) is None:
            return
        now = time.perf_counter()
        logs["train_seconds"] = round((self._steps_end or now) - self._begin, 2)
        validated = self._val_begin is not None and self._val_end is not None
        if validated:  # like the other val_* values, only on the epochs that validate
            logs["val_seconds"] = round(self._val_end - self._val_begin, 2)
        logs["epoch_seconds"] = round(now - self._begin, 2)


class CocoAPCallback(keras.callbacks.Callback):
    """COCO AP / AP50 on the first ``max_images`` validation images at the 1-based ``epochs``
    (the same list as ``model.fit``'s ``validation_freq``).

    ``evaluate(model, config, max_images=..., progress=False)`` returns a dict with ``AP``,
    ``AP50`` and ``num_images``: ``cornernet_tf.eval.runner.evaluate`` (the official test procedure
    and pycocotools), handed in by the caller because evaluation sits in a layer above training.
    Epochs without an evaluation add nothing to the logs (the CSV log leaves those cells empty).
    """

    KEYS = ("val_AP", "val_AP50")

    def __init__(
        self,
        config,
        max_images: int,
        epochs: Sequence[int],
        evaluate: Callable[..., dict],
        verbose: bool = True,
    ):
        super().__init__()
        self.config = config
        self.evaluate_fn = evaluate
        self.max_images = int(max_images)
        self.epochs = frozenset(int(e) for e in epochs)
        self.verbose = verbose
        self.last: dict = {}

    def evaluate(self) -> dict:
        start = time.perf_counter()
        metrics = self.evaluate_fn(
            self.model, self.config, max_images=self.max_images, progress=False
        )
        self.last = {
            "val_AP": metrics["AP"],
            "val_AP50": metrics["AP50"],
            "images": metrics["num_images"],
            "seconds": time.perf_counter() - start,
        }
        return self.last

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if epoch + 1 not in self.epochs:
            return
        result = self.evaluate()
        logs.update({k: result[k] for k in self.KEYS})
        if self.verbose:
            print(
                f"validation: AP {result['val_AP']:.4f}  AP50 {result['val_AP50']:.4f} "
                f"on {result['images']} images ({result['seconds']:.1f} s)",
                flush=True,
            )


class CSVHistory(keras.callbacks.Callback):
    """Append one row per epoch to a CSV file (kept across resumed runs).

    Unlike ``keras.callbacks.CSVLogger`` the header grows when new columns appear (validation
    metrics that start later, a resumed run with other callbacks), so no value is dropped.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "wall_time": round(time.time() - self._start, 3)}
        for key, value in (logs or {}).items():
            row[key] = _plain(value)
        rows = _read_rows(self.path)  # as written: empty cells (epochs without validation) stay
        columns = list(rows[0].keys()) if rows else []
        columns += [k for k in row if k not in columns]
        rows = rows + [row]
        # The whole file is rewritten to a temporary and renamed: an append that fails half-way
        # (full disk) would leave a torn last row.
        with atomic_files.open_atomic(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)


def _plain(value):
    try:
        value = float(np.asarray(value))
    except (TypeError, ValueError):
        return str(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_history(path: str) -> list[dict]:
    """Rows of a ``CSVHistory`` file as dicts of floats (empty cells -> NaN)."""
    out = []
    for row in _read_rows(path):
        parsed = {}
        for key, value in row.items():
            try:
                parsed[key] = float(value) if value not in ("", None) else math.nan
            except ValueError:
                parsed[key] = value
        out.append(parsed)
    return out


def read_json(path: str) -> dict:
    """A small JSON state file, or {} when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: str, payload: dict) -> None:
    atomic_files.write_json(path, payload, indent=2, sort_keys=True)
