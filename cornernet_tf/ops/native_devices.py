"""Whether the native corner-pool op may run on a given device, for ``impl="auto"``.

Loading the library is not enough: a library built without CUDA kernels (no nvcc, or a CPU
TensorFlow at build time) has CPU kernels only, and TensorFlow would then place every corner pool
of a GPU step on the CPU, copying the tensors back and forth (or fail where soft placement is
off). So the native op is used on a device only when

1. the loaded library registers ``CornerPool`` and ``CornerPoolGrad`` kernels for that device
   type and dtype (TensorFlow's kernel registry), and
2. a self-check on that device agrees with the portable implementation: a small tensor with ties,
   every direction, forward and gradient, compared exactly (small integers are exact in every
   float type). It runs once per process, device and dtype, and also catches kernels that load
   but cannot run (e.g. no code for this GPU's architecture).

The device an op will run on is read where the op is built: the innermost ``tf.device`` scope
(tf.distribute sets one per replica), else the input tensor's device, else the device TensorFlow
places unpinned ops on (the first GPU when one is visible, else the CPU).
"""

from __future__ import annotations

import importlib
import threading

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context as _context
from tensorflow.python.framework import kernels as _kernels
from tensorflow.python.framework import ops as _tf_ops

OP_NAMES = ("CornerPool", "CornerPoolGrad")
DIRECTIONS = ("top", "left", "bottom", "right")
# Small integers with ties in every direction, negatives, and sizes that differ per axis.
_CHECK_SHAPE = (2, 5, 4, 3)


# ---------------------------------------------------------------------------------------------
# Boundaries with TensorFlow (the tests stub these two)


def registered_kernels(op_name: str) -> set[tuple[str, str]]:
    """(device type, dtype name) pairs that have a kernel for ``op_name`` in this process."""
    pairs = set()
    for kernel in _kernels.get_registered_kernels_for_op(op_name).kernel:
        dtypes = [
            tf.dtypes.as_dtype(t).name
            for c in kernel.constraint
            if c.name == "T"
            for t in c.allowed_values.list.type
        ]
        for dtype in dtypes or ["*"]:
            pairs.add((kernel.device_type, dtype))
    return pairs


def visible_device_types() -> set[str]:
    """Device types TensorFlow can place ops on in this process (e.g. {"CPU", "GPU"})."""
    return {d.device_type for d in tf.config.list_logical_devices()}


# ---------------------------------------------------------------------------------------------
# Which device an op built now will run on


def _scope_spec() -> tf.DeviceSpec:
    """The device of the innermost ``tf.device`` scope (an empty spec when there is none)."""
    if tf.executing_eagerly():
        return tf.DeviceSpec.from_string(_context.context().device_name or "")
    spec = tf.DeviceSpec()
    try:  # innermost scope first
        stack = list(_tf_ops.get_default_graph()._device_function_stack.peek_objs())
    except AttributeError:  # a TensorFlow without the private stack: fall back to the input
        return spec
    for entry in reversed(stack):
        inner = getattr(entry.function, "_spec", None)
        if entry.function is None:  # tf.device(None) clears the scope
            spec = tf.DeviceSpec()
        elif inner is not None:
            spec = spec.make_merged_spec(inner)
    return spec


def target_device(x: tf.Tensor | None = None) -> str:
    """``"TYPE:index"`` of the device an op on ``x`` built here will run on (see the module doc)."""
    spec = _scope_spec()
    if not spec.device_type and x is not None:
        try:
            spec = tf.DeviceSpec.from_string(x.device or "")
        except (AttributeError, ValueError):
            spec = tf.DeviceSpec()
    if spec.device_type:
        return f"{spec.device_type.upper()}:{spec.device_index or 0}"
    return "GPU:0" if "GPU" in visible_device_types() else "CPU:0"


# ---------------------------------------------------------------------------------------------
# Self-check


_reference_lock = threading.Lock()
_reference: dict | None = None


def _reference_values() -> dict:
    """Input, upstream gradient, and the portable forward and gradient on the CPU per direction
    (computed once). Small integers: every value and gradient sum is exact in float16/bfloat16."""
    global _reference
    with _reference_lock:
        if _reference is None:
            portable = importlib.import_module("cornernet_tf.ops.corner_pool")

            rng = np.random.default_rng(1234)
            x_np = rng.integers(-3, 3, size=_CHECK_SHAPE).astype(np.float64)
            dy_np = rng.integers(1, 5, size=_CHECK_SHAPE).astype(np.float64)
            values = {}
            # The portable forward and its gradient rule, called directly: no tape is recording
            # here (the check may run while a training step is being traced).
            with tf.init_scope(), tf.device("/CPU:0"):
                x, dy = tf.constant(x_np), tf.constant(dy_np)
                for d in DIRECTIONS:
                    axis, from_end = portable._AXIS[d]
                    y = portable._running_max_unrolled(x, axis, from_end)
                    dx = portable._route_gradient_unrolled(y, dy, axis, from_end)
                    values[d] = (y.numpy(), dx.numpy())
            _reference = {"x": x_np, "dy": dy_np, "values": values}
        return _reference


def self_check(module, device: str, dtype: str) -> str | None:
    """Run the native op on ``device`` and compare it with the portable one: None when they
    agree exactly, else the reason in words."""
    ref = _reference_values()
    tf_dtype = tf.dtypes.as_dtype(dtype)
    try:
        with tf.init_scope(), tf.device(f"/device:{device}"):
            x = tf.cast(tf.constant(ref["x"]), tf_dtype)
            dy = tf.cast(tf.constant(ref["dy"]), tf_dtype)
            for d in DIRECTIONS:
                y = module.corner_pool(x, direction=d)
                dx = module.corner_pool_grad(y, dy, direction=d)
                placed = tf.DeviceSpec.from_string(y.device)
                if f"{placed.device_type}:{placed.device_index}" != device:
                    return f"the self-check ran on {y.device or 'an unknown device'}, not {device}"
                want_y, want_dx = ref["values"][d]
                if not np.array_equal(tf.cast(y, tf.float64).numpy(), want_y):
                    return f"self-check: {dtype} forward ({d}) on {device} differs from impl='tf'"
                if not np.array_equal(tf.cast(dx, tf.float64).numpy(), want_dx):
                    return f"self-check: {dtype} gradient ({d}) on {device} differs from impl='tf'"
    except (tf.errors.OpError, RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"self-check on {device} failed to run: {first}"
    return None


# ---------------------------------------------------------------------------------------------
# Verdicts, cached per process


class _Verdicts:
    def __init__(self):
        self.lock = threading.RLock()
        self.by_key: dict[tuple[str, str], str | None] = {}


_verdicts = _Verdicts()


def reset() -> None:
    """Forget every verdict (e.g. after the library was rebuilt or reloaded)."""
    with _verdicts.lock:
        _verdicts.by_key.clear()


def unusable_reason(module, device: str, dtype: str) -> str | None:
    """None when the native op may run on ``device`` ("TYPE:index") for ``dtype``; else why not."""
    key = (device, dtype)
    with _verdicts.lock:
        if key not in _verdicts.by_key:
            _verdicts.by_key[key] = _decide(module, device, dtype)
        return _verdicts.by_key[key]


def _decide(module, device: str, dtype: str) -> str | None:
    device_type = device.split(":", 1)[0]
    for op_name in OP_NAMES:
        pairs = registered_kernels(op_name)
        if not any(t == device_type and d in (dtype, "*") for t, d in pairs):
            types = sorted({t for t, d in pairs if d in (dtype, "*")}) or ["none"]
            return (
                f"the op library has no {device_type} kernel for {op_name} ({dtype}); "
                f"it has {', '.join(types)} (rebuild it where nvcc and a CUDA build of "
                "TensorFlow are present for GPU kernels)"
            )
    if device_type not in visible_device_types():
        return f"no {device_type} device is visible"
    return self_check(module, device, dtype)
