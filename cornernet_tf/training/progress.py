"""Training progress as plain lines when the output is not a terminal.

Keras' progress bar redraws itself with backspaces and carriage returns, also when the output is
redirected to a file (it takes any POSIX system for a terminal), which turns a log into kilobytes
of control characters. ``cornernet train`` therefore keeps the bar for a terminal only and
otherwise prints one line every ``every`` steps and one per epoch with all the epoch's logs.
"""

from __future__ import annotations

import math
import sys
import time

import keras

# Steps between two progress lines in a redirected log (the epoch line comes on top).
LOG_EVERY_STEPS = 50


def is_terminal(stream=None) -> bool:
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _format(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(number) and number.is_integer() and abs(number) < 1e9:
        return str(int(number))
    return f"{number:.4g}"


def format_logs(logs: dict, skip: tuple[str, ...] = ()) -> str:
    return " - ".join(f"{k}: {_format(v)}" for k, v in (logs or {}).items() if k not in skip)


class ProgressLines(keras.callbacks.Callback):
    """One line every ``every`` steps (0: none) and one at the end of each epoch.

    Step lines carry the running loss and the time per step; the epoch line carries every value
    the earlier callbacks put into the epoch's logs (validation values only on the epochs that
    validate). Place it after the callbacks that add to the logs.
    """

    def __init__(
        self, epochs: int, steps_per_epoch: int, every: int = LOG_EVERY_STEPS, stream=None
    ):
        super().__init__()
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.every = max(int(every), 0)
        self.stream = stream
        self._epoch = 0
        self._epoch_start = self._last_time = 0.0
        self._last_batch = self._seen = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _where(self, batch: int) -> str:
        step = int(self.model.optimizer.iterations.numpy())
        return f"epoch {self._epoch + 1}/{self.epochs} batch {batch}/{self.steps_per_epoch} (step {step})"

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last_time = time.perf_counter()
        self._last_batch = self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        done = self._seen = batch + 1
        if not self.every or done % self.every or done >= self.steps_per_epoch:
            return
        now = time.perf_counter()
        per_step = (now - self._last_time) / max(done - self._last_batch, 1)
        self._last_time, self._last_batch = now, done
        self._print(f"{self._where(done)} - {per_step:.3g} s/step - {format_logs(logs)}")

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        logs_text = format_logs(logs, skip=("step",))  # the step is in the line's head
        self._print(f"{self._where(self._seen)} - {seconds:.1f} s - {logs_text}")
