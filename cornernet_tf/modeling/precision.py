"""Inference precision (``test.precision``): the network computes in float32, bfloat16 or float16.

A reduced precision is a Keras mixed policy (``mixed_bfloat16`` / ``mixed_float16``): weights stay
float32 variables, each layer casts them and its input to the compute dtype, BatchNorm normalises
in float32, and the heads' last convolution computes in float32, so the maps leave the network as
float32 and decoding is unchanged. A layer's policy is fixed when it is built, so a model in
another precision is a second model over the same config with the weights copied in;
:func:`model_in_precision` builds it once per model and copies the weights on every call, so it
never runs stale weights.

bfloat16 pays only where the hardware multiplies in it: CPUs with ``avx512_bf16`` or AMX (oneDNN),
and NVIDIA GPUs from compute capability 8.0. Elsewhere oneDNN converts to float32 inside each
convolution and the other ops run emulated, so it is no faster than float32 (benchmarks/RESULTS.md).
``auto`` picks bfloat16 on such hardware and float32 otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import weakref

import keras

PRECISIONS = ("float32", "bfloat16", "float16", "auto")
# The Keras dtype policy of each explicit precision.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16 dot products that oneDNN uses.
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")

_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU feature flags of this machine (empty where /proc/cpuinfo is not available)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def hardware_bfloat16() -> bool:
    """Whether the network would run on hardware bfloat16 here: a visible NVIDIA GPU of compute
    capability >= 8.0, or else a CPU with ``avx512_bf16`` / AMX."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return tuple(details.get("compute_capability", (0, 0))) >= (8, 0)
    return any(flag in cpu_flags() for flag in CPU_BFLOAT16_FLAGS)


def resolve_precision(precision: str) -> str:
    """``float32`` | ``bfloat16`` | ``float16``; ``auto`` becomes bfloat16 where the hardware has it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {'|'.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if hardware_bfloat16() else "float32"
    return precision


def compute_dtype(model) -> str:
    """The dtype the model's layers compute in (``float32``, ``bfloat16`` or ``float16``).

    A callable without a Keras dtype policy (e.g. a function standing in for the network)
    computes in float32."""
    policy = getattr(model, "dtype_policy", None)
    return "float32" if policy is None else keras.dtype_policies.get(policy).compute_dtype


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers created inside the block get the Keras dtype policy ``name``."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model_in_precision(model_config, precision: str):
    """A CornerNet (see ``build_model``) whose layers compute in ``precision``."""
    from cornernet_tf.modeling.cornernet import build_model

    with dtype_policy(POLICIES[resolve_precision(precision)]):
        return build_model(model_config)


def model_in_precision(model, precision: str):
    """``model`` itself when it already computes in ``precision``, else a copy that does, holding
    ``model``'s current weights (float32 variables). ``model`` needs a ``model_config`` (CornerNet)."""
    target = resolve_precision(precision)
    if compute_dtype(model) == target:
        return model
    copies = _COPIES.setdefault(model, {})
    if target not in copies:
        copies[target] = build_model_in_precision(model.model_config, target)
    copy = copies[target]
    copy.set_weights(model.get_weights())
    return copy
