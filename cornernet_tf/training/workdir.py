"""The training work directory: what goes where, and refusing to mix two models in one folder.

::

    WORKDIR/config.yaml          resolved config of the run (all defaults written out)
    WORKDIR/dataset_info.json    class names and dataset category ids (read by export and detect)
    WORKDIR/last.weights.h5      latest weights (every train.checkpoint_every_epochs, and at the end)
    WORKDIR/best.weights.h5      best so far by val_AP, else val_loss, else the training loss
    WORKDIR/best.json            the score of best.weights.h5 (a resumed run saves only a better one)
    WORKDIR/backup/              keras BackupAndRestore state (weights + optimizer + epoch)
    WORKDIR/history.csv          one row per epoch: losses, validation metrics, lr, step
    WORKDIR/loss_curves.png      the curves of history.csv
    WORKDIR/tensorboard/         TensorBoard logs
    WORKDIR/summary.json         final step, time, paths (written at the end)
    WORKDIR/.lock                held by the running ``train`` (a second one on WORKDIR is refused)

Every file is written to a temporary name and renamed (``cornernet_tf.atomic_files``), and the
work directory is checked before anything is written to it: a refused command changes nothing.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import yaml

from cornernet_tf.atomic_files import open_atomic
from cornernet_tf.config import Config, ConfigError


@dataclasses.dataclass(frozen=True)
class WorkdirPaths:
    root: str

    def _join(self, name: str) -> str:
        return os.path.join(self.root, name)

    @property
    def config(self) -> str:
        return self._join("config.yaml")

    @property
    def dataset_info(self) -> str:
        return self._join("dataset_info.json")

    @property
    def last(self) -> str:
        return self._join("last.weights.h5")

    @property
    def best(self) -> str:
        return self._join("best.weights.h5")

    @property
    def best_state(self) -> str:
        return self._join("best.json")

    @property
    def lock(self) -> str:
        return self._join(".lock")

    @property
    def backup(self) -> str:
        return self._join("backup")

    @property
    def history(self) -> str:
        return self._join("history.csv")

    @property
    def curves(self) -> str:
        return self._join("loss_curves.png")

    @property
    def tensorboard(self) -> str:
        return self._join("tensorboard")

    @property
    def summary(self) -> str:
        return self._join("summary.json")

    def before_step(self, step: int) -> str:
        """Weights saved when step ``step`` produced a non-finite loss (the state before it)."""
        return self._join(f"before_nonfinite_step_{step}.weights.h5")

    def has_training_state(self) -> bool:
        return any(
            os.path.exists(p)
            for p in (self.last, self.best, os.path.join(self.backup, "latest.weights.h5"))
        )


def _diff(saved: Any, current: Any, prefix: str) -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current)):
            out += _diff(
                saved.get(key, "<absent>"), current.get(key, "<absent>"), f"{prefix}.{key}"
            )
        return out
    return [] if saved == current else [f"{prefix}: saved {saved!r}, now {current!r}"]


def read_saved_config(paths: WorkdirPaths) -> dict:
    with open(paths.config, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{paths.config}: not a config mapping")
    return data


def check_compatible(paths: WorkdirPaths, config: Config) -> None:
    """Refuse a work directory whose checkpoints belong to a different model, or to an unknown one."""
    if not paths.has_training_state():
        return
    if not os.path.exists(paths.config):
        raise ConfigError(
            f"{paths.root} holds checkpoints but no config.yaml, so the model they belong to is "
            f"unknown; put back {paths.config} or use another --workdir"
        )
    saved = read_saved_config(paths).get("model", {})
    current = dataclasses.asdict(config.model)
    mismatches = _diff(saved, current, "model")
    if mismatches:
        raise ConfigError(
            f"{paths.root} holds checkpoints of another model (see {paths.config}); mismatched keys:\n  "
            + "\n  ".join(mismatches)
            + "\nuse another --workdir, or the same model settings to resume"
        )


def check_workdir(workdir: str, config: Config) -> WorkdirPaths:
    """The paths of ``workdir`` once it is known to suit ``config``; writes nothing."""
    if not workdir:
        raise ConfigError("a work directory is required (--workdir)")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir} exists and is not a directory")
    paths = WorkdirPaths(os.path.abspath(workdir))
    check_compatible(paths, config)
    return paths


def save_config(paths: WorkdirPaths, config: Config) -> None:
    """Write the resolved config of the run to ``WORKDIR/config.yaml`` (atomically)."""
    os.makedirs(paths.root, exist_ok=True)
    with open_atomic(paths.config) as fh:
        yaml.safe_dump(config.to_dict(), fh, sort_keys=False, default_flow_style=None)


def prepare_workdir(workdir: str, config: Config, write: bool = True) -> WorkdirPaths:
    """Check ``workdir`` against ``config`` and (on the chief) save the resolved config there."""
    paths = check_workdir(workdir, config)
    if write:
        save_config(paths, config)
    return paths
