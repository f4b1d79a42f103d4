"""Choosing the ``tf.distribute`` strategy and the precision policy from ``train.*``.

``train.strategy``:

* ``auto``: ``MirroredStrategy`` over all GPUs when there are several, else the default strategy;
* ``default``: one device, no distribution;
* ``mirrored``: synchronous data parallelism on the GPUs of this machine (or on its logical CPU
  devices when it has no GPU, which is how the tests run it);
* ``multi_worker``: ``MultiWorkerMirroredStrategy``, the cluster described by ``TF_CONFIG``;
* ``tpu``: ``TPUStrategy`` on the TPU named by ``TPU_NAME`` (empty = the local TPU VM).

``train.batch_size`` is the global batch: it must divide evenly across the replicas, because the
loss of a step is defined on the global batch and every replica runs the same program.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import keras
import tensorflow as tf

from cornernet_tf.config import ConfigError, TrainConfig

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy named by ``train.strategy`` (see the module docstring)."""
    if name not in STRATEGIES:
        raise ConfigError(f"train.strategy must be one of {'|'.join(STRATEGIES)}, got {name!r}")
    if name == "multi_worker":
        # Must come before anything that initialises TensorFlow's devices (collective ops are
        # configured at start-up), hence before the device queries below.
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "train.strategy=multi_worker needs the cluster in the TF_CONFIG environment variable, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=os.environ.get("TPU_NAME", "")
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def per_replica_batch_size(train: TrainConfig, strategy: tf.distribute.Strategy) -> int:
    """``train.batch_size / replicas``; a clear error when it does not divide."""
    replicas = strategy.num_replicas_in_sync
    if train.batch_size % replicas:
        lower = (train.batch_size // replicas) * replicas
        options = ", ".join(str(v) for v in (lower, lower + replicas) if v > 0)
        raise ConfigError(
            f"train.batch_size={train.batch_size} (the global batch) does not divide across the "
            f"{replicas} replicas of strategy {train.strategy!r} ({type(strategy).__name__}); "
            f"use a multiple of {replicas}, e.g. {options}"
        )
    return train.batch_size // replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and plots (worker 0 or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return "local"
    return f"{resolver.task_type}_{resolver.task_id}"


@contextlib.contextmanager
def precision_policy(name: str | None) -> Iterator[None]:
    """Set the Keras dtype policy (``mixed_float16`` / ``mixed_bfloat16``) for the block, then restore it.

    Under ``mixed_float16`` ``model.compile`` wraps the optimizer in a ``LossScaleOptimizer``.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
