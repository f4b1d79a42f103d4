"""The learning-rate schedule of the official recipe: constant, then divided by 10 (docs/method.md §4).

The official trainer divides the rate after iteration ``decay_step`` (1-based), so iterations
``1 .. decay_step`` use the base rate. Keras calls the schedule with ``optimizer.iterations``,
the number of updates already applied (0-based), hence the ``step >= decay_step`` test.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cornernet_tf.config import TrainConfig


@keras.saving.register_keras_serializable(package="cornernet_tf")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``initial_learning_rate`` until ``decay_step`` updates, then ``initial / decay_factor``."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_step: int,
        decay_factor: float = 10.0,
        name: str = "step_decay",
    ):
        if initial_learning_rate <= 0:
            raise ValueError(
                f"StepDecay: initial_learning_rate must be > 0, got {initial_learning_rate}"
            )
        if decay_step < 0:
            raise ValueError(f"StepDecay: decay_step must be >= 0, got {decay_step}")
        if decay_factor <= 0:
            raise ValueError(f"StepDecay: decay_factor must be > 0, got {decay_factor}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_step = int(decay_step)
        self.decay_factor = float(decay_factor)
        self.name = name

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        base = tf.constant(self.initial_learning_rate, tf.float32)
        return tf.where(step >= self.decay_step, base / self.decay_factor, base)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_step": self.decay_step,
            "decay_factor": self.decay_factor,
            "name": self.name,
        }


def effective_learning_rate(train: TrainConfig) -> float:
    """``train.learning_rate``, scaled by ``batch_size / base_batch_size`` when the linear rule is on."""
    if train.scale_lr_with_replicas:
        return train.learning_rate * train.batch_size / train.base_batch_size
    return train.learning_rate


def build_schedule(train: TrainConfig) -> StepDecay:
    """The step decay of ``train``; a fractional ``decay_step`` becomes that share of max_steps."""
    return StepDecay(effective_learning_rate(train), train.decay_at, train.decay_factor)
