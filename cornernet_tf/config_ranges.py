"""The sensible range of every numeric config field, as one table: section -> field -> rule.

A value outside its range either means nothing (a negative shuffle buffer, zero detections) or
fails much later and far away: ``model.num_classes: 100000000`` loads, then dies in TensorFlow
with ``ResourceExhaustedError`` while allocating a heatmap. Upper bounds are generous limits of
what fits in memory, not advice; ``cornernet_tf.config`` applies the table after its own checks
and names the key and the file. Non-finite floats (NaN, inf) are refused for every field.
"""

from __future__ import annotations

import dataclasses
import math
import typing

# Heatmaps are [H/4, W/4, num_classes] per corner type and stack: at 511x511 one image's two
# maps take 128 * 128 * 4 bytes * 2 = 128 KiB per class, so 10,000 classes are already 1.3 GB
# per image (before batching and gradients). The largest detection vocabularies in use (LVIS
# 1,203 categories, Objects365 365, Open Images 600) stay far below; 10^8 would need 13 PB.
MAX_CLASSES = 10_000
MAX_WIDTH = 4096  # channels of any layer
MAX_PIXELS = 4096  # one side of an input or output map
MAX_STEPS = 10**9
MAX_SEED = 2**31 - 1  # tf.random and NumPy seeds


@dataclasses.dataclass(frozen=True)
class Rule:
    """``low <= value <= high`` (``<`` with ``*_open``); ``also`` lists accepted special values."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple = ()

    def accepts(self, value) -> bool:
        if value in self.also:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def __str__(self) -> str:
        if self.high is None:
            text = f"{'>' if self.low_open else '>='} {self.low}"
        else:
            text = (
                f"in {'(' if self.low_open else '['}{self.low}, "
                f"{self.high}{')' if self.high_open else ']'}"
            )
        return " or ".join([str(v) for v in self.also] + [text])


def _at_least(low: float, high: float) -> Rule:
    return Rule(low, high)


def _positive(high: float) -> Rule:
    return Rule(0, high, low_open=True)


_SIZE = _at_least(1, MAX_WIDTH)
_PIXELS = _at_least(1, MAX_PIXELS)
_SCALE = _positive(16)
_SEED = _at_least(0, MAX_SEED)
_UNIT = _at_least(0, 1)
_LOSS_WEIGHT = _at_least(0, 1e6)

# Section class name -> field -> rule; a list field's rule applies to each of its values.
RANGES: dict[str, dict[str, Rule]] = {
    "ModelConfig": {
        "num_classes": _at_least(1, MAX_CLASSES),
        "num_stacks": _at_least(1, 8),
        "dims": _SIZE,
        "modules": _at_least(1, 64),
        "stem_dims": _SIZE,
        "cnv_dim": _SIZE,
        "pool_dim": _SIZE,
        "head_dim": _SIZE,
        "heat_bias_init": _at_least(-100, 100),
        "bn_epsilon": Rule(0, 1, low_open=True, high_open=True),
        "bn_momentum": Rule(0, 1, high_open=True),
    },
    "DataConfig": {
        "input_size": _PIXELS,
        "output_size": _PIXELS,
        "max_objects": _at_least(1, 10_000),
        "max_heatmap_objects": _at_least(1, 1_000_000),
        "gaussian_iou": Rule(0, 1, low_open=True, high_open=True),
        "fixed_radius": _at_least(0, MAX_PIXELS),
        "rand_scales": _SCALE,
        "image_scale": _SCALE,  # or "auto" (config.py)
        "border": _at_least(0, MAX_PIXELS),
        "jitter_strength": _UNIT,
        "lighting_std": _UNIT,
        "mean": _UNIT,  # pixels are scaled to [0, 1] before normalisation
        "std": _positive(1),
        "shuffle_buffer": _at_least(1, 1_000_000),
        "num_parallel_calls": Rule(1, 1024, also=(-1,)),  # -1 = tf.data.AUTOTUNE
        "seed": _SEED,
    },
    "TrainConfig": {
        "batch_size": _at_least(1, 65_536),
        "max_steps": _at_least(1, MAX_STEPS),
        "learning_rate": _positive(10),
        "decay_step": _at_least(0, MAX_STEPS),  # a step, or a fraction of max_steps (config.py)
        "decay_factor": _at_least(1, 1e6),  # 1 = no decay
        "base_batch_size": _at_least(1, 65_536),
        "focal_weight": _LOSS_WEIGHT,
        "pull_weight": _LOSS_WEIGHT,
        "push_weight": _LOSS_WEIGHT,
        "regr_weight": _LOSS_WEIGHT,
        "steps_per_epoch": _at_least(1, MAX_STEPS),
        "validation_steps": _at_least(1, MAX_STEPS),
        "val_every_epochs": _at_least(1, MAX_STEPS),
        "val_ap_images": _at_least(0, 10_000_000),
        "checkpoint_every_epochs": _at_least(1, MAX_STEPS),
        "backup_every_steps": _at_least(0, MAX_STEPS),
        "seed": _SEED,
    },
    "TestConfig": {
        "scales": _SCALE,
        "top_k": _at_least(1, 1000),  # top_k^2 corner pairs per image
        "ae_threshold": _at_least(0, 1e6),
        "nms_kernel": _at_least(1, 99),
        "num_dets": _at_least(1, 1_000_000),
        "max_per_image": _at_least(1, 10_000),
        "nms_sigma": _positive(100),
        "nms_threshold": _UNIT,
        "score_threshold": _UNIT,
        "weight_exp": _positive(100),
    },
    "ExportConfig": {
        "max_detections": _at_least(1, 10_000),
        "version": _at_least(1, MAX_SEED),
        "representative_images": _at_least(1, 100_000),
    },
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _holds_number(tp) -> bool:
    if tp in (int, float):
        return True
    return any(_holds_number(arg) for arg in typing.get_args(tp))


def numeric_fields(section) -> list[str]:
    """Fields of a section dataclass whose annotation holds ``int`` or ``float`` (also in lists)."""
    hints = typing.get_type_hints(section if isinstance(section, type) else type(section))
    return [f.name for f in dataclasses.fields(section) if _holds_number(hints[f.name])]


def range_problem(section, where: str) -> str | None:
    """The first out-of-range or non-finite value of ``section`` as a message, else None.

    Raises ``LookupError`` for a numeric field without a rule (a table to complete, not a user
    error).
    """
    rules = RANGES[type(section).__name__]
    for name in numeric_fields(section):
        if name not in rules:
            raise LookupError(f"config_ranges.RANGES has no rule for {where}.{name}")
        value = getattr(section, name)
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, v in enumerate(values):
            if v is None or not _is_number(v):
                continue  # None = derived; types were checked when the file was read
            key = f"{where}.{name}" + (f"[{i}]" if values is value else "")
            if isinstance(v, float) and not math.isfinite(v):
                return f"{key} must be a finite number, got {v}"
            if not rules[name].accepts(v):
                return f"{key} must be {rules[name]}, got {v}"
    return None
