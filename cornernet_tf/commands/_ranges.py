"""The accepted range of every numeric command-line option, as one table: option -> rule.

Checked for every sub-command before its handler runs, so ``--max-detections 0`` or
``--num-images -5`` is one line naming the option, not a traceback (or an empty result) later.
A test walks the parser and fails for a numeric option missing here.
"""

from __future__ import annotations

import argparse
import math

from cornernet_tf.config_ranges import MAX_CLASSES, MAX_PIXELS, MAX_SEED, MAX_STEPS, Rule
from cornernet_tf.errors import InvalidValueError

_COUNT = Rule(1, 10_000_000)
_SEED = Rule(0, MAX_SEED)
_SCORE = Rule(0, 1)

# argparse ``dest`` -> rule (the option is ``--`` + dest with ``-`` for ``_``); the same name
# means the same thing in every sub-command.
OPTION_RANGES: dict[str, Rule] = {
    # export, export-onnx, export-tflite
    "version": Rule(1, MAX_SEED),
    "max_detections": Rule(1, 10_000),
    "input_size": Rule(1, MAX_PIXELS),
    "opset": Rule(9, 30),
    "num_representative": Rule(1, 100_000),
    # demo
    "train_images": _COUNT,
    "val_images": _COUNT,
    "steps": Rule(1, MAX_STEPS),
    "minutes": Rule(0, 1e6, low_open=True),
    "seed": _SEED,
    # data shapes / check / to-tfrecord / browse
    "num_images": _COUNT,
    "size": Rule(1, MAX_PIXELS),
    "classes": Rule(1, MAX_CLASSES),
    "max_objects": Rule(1, 10_000),
    "max_listed": Rule(0, 10_000_000),
    "num_shards": Rule(1, 100_000),
    "num_samples": Rule(1, 100_000),
    "zoom": Rule(1, 64),
    # eval, detect
    "max_images": Rule(1, 10**9),
    "score_threshold": _SCORE,
    # serve-client
    "port": Rule(1, 65_535),
    "model_version": Rule(1, 2**63 - 1),
    "min_score": _SCORE,
    "timeout": Rule(0, 86_400, low_open=True),
}


def option_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_option_ranges(args: argparse.Namespace) -> None:
    """Raise :class:`InvalidValueError` for the first numeric option out of its range (or NaN)."""
    for dest, rule in OPTION_RANGES.items():
        value = getattr(args, dest, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if (isinstance(v, float) and not math.isfinite(v)) or not rule.accepts(v):
                shown = " ".join(str(x) for x in values)
                raise InvalidValueError(f"{option_name(dest)} must be {rule}, got {shown}")
