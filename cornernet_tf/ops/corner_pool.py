"""Corner pooling (docs/method.md §2): running maxima along H or W of an NHWC tensor.

top:    out[i, j] = max_{k >= i} x[k, j]   (looks down)
left:   out[i, j] = max_{k >= j} x[i, k]   (looks right)
bottom: out[i, j] = max_{k <= i} x[k, j]
right:  out[i, j] = max_{k <= j} x[i, k]

The gradient follows the official CornerNet backward: it scans from the pool's start side (row
H-1 for top, column W-1 for left, index 0 for bottom/right) and moves the running argmax only on a
strict ``>``, so each output's gradient goes to the first maximum met in scan order (the one
farthest from the output). ``torch.cummax`` and a naive autodiff of ``max`` can break ties the
other way; golden/corner_pool.npz has tie cases that tell them apart.

Implementations (``impl``):

* ``"native"``: a TensorFlow custom op (kernels/corner_pool_ops.cc, CPU and optionally CUDA), the
  fastest; built by ``python -m cornernet_tf.ops.build`` and loaded on first use.
* ``"tf"``: core TensorFlow ops only, so it runs under XLA, in SavedModels served by stock TF
  Serving and as TFLite builtins, none of which can load custom ops. Unrolled row by row
  (unstack, maximum, stack) when the size is known at trace time; log2(n) doubling steps of
  slice, concat and maximum when it is not (in a ``tf.while_loop``), when it exceeds
  ``_MAX_UNROLL`` or under XLA. Its gradient (``tf.custom_gradient``) follows the official rule.
* ``"scan"``: a ``tf.scan`` reference for tests; slow.
* ``"auto"``: ``"native"`` when its library loads, the caller is not being compiled with XLA,
  and the library has a kernel for the device the op is placed on that passes a once-per-process
  self-check there (``native_devices.py``); else ``"tf"``, with one warning per device giving the
  reason. So a library built without CUDA kernels never sends a GPU step's corner pools to the
  CPU: on the GPU ``auto`` uses the portable ops, which have GPU kernels.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path

import tensorflow as tf
from tensorflow.python.framework import ops as _tf_ops
from tensorflow.python.ops import control_flow_util as _control_flow_util

from cornernet_tf.ops import native_devices

DIRECTIONS = ("top", "left", "bottom", "right")
IMPLS = ("auto", "native", "tf", "scan")
# Environment variable naming a compiled op library to load instead of the default build output.
LIBRARY_ENV = "CORNERNET_CORNER_POOL_LIB"
BUILD_COMMAND = "python -m cornernet_tf.ops.build"

# direction -> (axis in NHWC, whether the scan starts at the last index of that axis)
_AXIS = {"top": (1, True), "left": (2, True), "bottom": (1, False), "right": (2, False)}


class NativeOpUnavailableError(RuntimeError):
    """impl='native' was requested but the compiled op cannot be used; the message says why."""


class NativeOpFallbackWarning(RuntimeWarning):
    """impl='auto' fell back to the portable TensorFlow implementation."""


# ---------------------------------------------------------------------------------------------
# Native op: lazy loading


class _NativeState:
    def __init__(self):
        self.lock = threading.Lock()
        self.module = None
        self.error: str | None = None
        self.warned: set[str] = set()  # fallback reasons already warned about (one per device)


_native = _NativeState()


def native_library_path() -> Path:
    """The op library that will be loaded: $CORNERNET_CORNER_POOL_LIB, else the build output."""
    override = os.environ.get(LIBRARY_ENV, "").strip()
    if override:
        return Path(override)
    from cornernet_tf.ops import build

    return build.library_path()


def _load_library() -> tuple[object | None, str | None]:
    path = native_library_path()
    if not path.is_file():
        if os.environ.get(LIBRARY_ENV, "").strip():
            return None, f"op library {path} (from ${LIBRARY_ENV}) does not exist"
        return None, (
            f"op library {path} not found (not built for TensorFlow {tf.__version__}); "
            f"build it with `{BUILD_COMMAND}`"
        )
    try:
        module = tf.load_op_library(str(path))
    except Exception as exc:  # noqa: BLE001 - any loader failure means "fall back", with the reason
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            None,
            f"cannot load op library {path}: {detail}; rebuild it with `{BUILD_COMMAND} --force`",
        )
    missing = [name for name in ("corner_pool", "corner_pool_grad") if not hasattr(module, name)]
    if missing:
        return (
            None,
            f"op library {path} does not define {missing}; rebuild it with `{BUILD_COMMAND} --force`",
        )
    return module, None


def load_native():
    """The loaded op module; raises NativeOpUnavailableError with the reason when it cannot load.

    The outcome is cached for the process (see ``reset_native_state``)."""
    with _native.lock:
        if _native.module is None and _native.error is None:
            _native.module, _native.error = _load_library()
        if _native.module is None:
            raise NativeOpUnavailableError(f"native corner-pool op unavailable: {_native.error}")
        return _native.module


def native_available() -> tuple[bool, str | None]:
    """(whether the native op loads, the reason when it does not)."""
    try:
        load_native()
    except NativeOpUnavailableError:
        return False, _native.error
    return True, None


def reset_native_state() -> None:
    """Forget the cached load result (and the fallback warning), e.g. after building the library."""
    with _native.lock:
        _native.module = None
        _native.error = None
        _native.warned = set()
    native_devices.reset()


def _in_xla_context() -> bool:
    """True while tracing a function compiled with XLA (jit_compile=True), where custom ops fail."""
    return _control_flow_util.GraphOrParentsInXlaContext(_tf_ops.get_default_graph())


def resolve_impl(impl: str = "auto", x: tf.Tensor | None = None, device: str | None = None) -> str:
    """The implementation ``corner_pool(..., impl)`` uses here: "native", "tf" or "scan".

    For "auto" the choice is per device: ``device`` ("GPU:0"), else the device an op on ``x``
    built here runs on (see ``native_devices.target_device``); the dtype is ``x``'s (float32
    when ``x`` is None)."""
    if impl not in IMPLS:
        raise ValueError(f"corner_pool: unknown impl {impl!r}; expected one of {IMPLS}")
    if impl != "auto":
        return impl
    if _in_xla_context():
        return "tf"
    ok, reason = native_available()
    warn_key = "load"
    if ok:
        device = device or native_devices.target_device(x)
        dtype = x.dtype.name if x is not None else "float32"
        reason = native_devices.unusable_reason(_native.module, device, dtype)
        if reason is None:
            return "native"
        warn_key = device
        reason = f"not used on {device}: {reason}"
    with _native.lock:
        first = warn_key not in _native.warned
        _native.warned.add(warn_key)
    if first:
        warnings.warn(
            f"corner_pool: native op unavailable ({reason}); "
            "using the portable TensorFlow implementation (impl='tf')",
            NativeOpFallbackWarning,
            stacklevel=4,
        )
    return "tf"


def _native_grad(op, dy):
    return load_native().corner_pool_grad(op.outputs[0], dy, direction=op.get_attr("direction"))


with contextlib.suppress(KeyError):  # KeyError: already registered (module reloaded)
    tf.RegisterGradient("CornerPool")(_native_grad)


def _corner_pool_native(x: tf.Tensor, direction: str) -> tf.Tensor:
    if _in_xla_context():
        raise NativeOpUnavailableError(
            "corner_pool impl='native' is a custom op and cannot be compiled with XLA "
            "(jit_compile=True); use impl='tf' or impl='auto'"
        )
    return load_native().corner_pool(x, direction=direction)


# ---------------------------------------------------------------------------------------------
# Portable TensorFlow implementation


def _axis_slice(x: tf.Tensor, axis: int, start, stop) -> tf.Tensor:
    index = [slice(None)] * 4
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _toward_start(x: tf.Tensor, shift, axis: int, from_end: bool, n) -> tf.Tensor:
    """x[i + shift] (from_end) or x[i - shift] at position i, i.e. the value ``shift`` positions
    earlier in scan order; positions with no such neighbour keep their own value, so a maximum
    or minimum with the result stays exact and finite (an -inf pad turns into NaN under TFLite)."""
    if from_end:
        return tf.concat(
            [_axis_slice(x, axis, shift, None), _axis_slice(x, axis, n - shift, None)], axis
        )
    return tf.concat(
        [_axis_slice(x, axis, None, shift), _axis_slice(x, axis, None, n - shift)], axis
    )


def _running_doubling(x: tf.Tensor, axis: int, from_end: bool, combine) -> tf.Tensor:
    """Inclusive running ``combine`` (maximum/minimum) along ``axis`` in scan order, by doubling:
    after the step with shift s every position covers 2s positions of its scan prefix.
    Unrolled when the size is static (XLA, TFLite), a tf.while_loop otherwise."""
    n = x.shape[axis]
    if n is not None:
        shift = 1
        while shift < n:
            x = combine(x, _toward_start(x, shift, axis, from_end, n))
            shift *= 2
        return x
    n = tf.shape(x)[axis]
    static_shape = x.shape

    def body(shift, v):
        v = combine(v, _toward_start(v, shift, axis, from_end, n))
        v.set_shape(static_shape)
        return shift * 2, v

    _, x = tf.while_loop(lambda shift, v: shift < n, body, (tf.constant(1), x))
    return x


def _route_gradient_doubling(y: tf.Tensor, dy: tf.Tensor, axis: int, from_end: bool) -> tf.Tensor:
    """Official tie routing from the forward output: along the scan, y is a staircase whose runs
    of equal values start where the maximum was set; each run start receives the sum of the
    run's upstream gradients. The run sums are a segmented scan computed by doubling, with
    elementwise ops, slices and concats only: no scatter, and XLA fuses each step."""
    n = y.shape[axis] if y.shape[axis] is not None else tf.shape(y)[axis]
    pos = tf.reshape(tf.range(n), [-1 if a == axis else 1 for a in range(4)])
    scan_first, scan_last = (n - 1, 0) if from_end else (0, n - 1)

    def later(v, shift):  # v one scan step later (its own value at the scan's end)
        return _toward_start(v, shift, axis, not from_end, n)

    starts = tf.logical_or(
        tf.not_equal(y, _toward_start(y, 1, axis, from_end, n)), tf.equal(pos, scan_first)
    )
    # cut: a run ends within [s, s + span) in scan order; the sums never cross a cut.
    cut = tf.logical_or(later(starts, 1), tf.equal(pos, scan_last))
    zero = tf.zeros((), dy.dtype)

    def step(shift, total, cut):
        total = total + tf.where(cut, zero, later(total, shift))
        return total, tf.logical_or(cut, later(cut, shift))

    total = dy
    if isinstance(n, int):
        shift = 1
        while shift < n:
            total, cut = step(shift, total, cut)
            shift *= 2
    else:

        def body(shift, total, cut):
            total, cut = step(shift, total, cut)
            total.set_shape(dy.shape)
            cut.set_shape(dy.shape)
            return shift * 2, total, cut

        _, total, cut = tf.while_loop(
            lambda shift, *_: shift < n, body, (tf.constant(1), total, cut)
        )
    return tf.where(starts, total, zero)


def _running_max_unrolled(x: tf.Tensor, axis: int, from_end: bool) -> tf.Tensor:
    """Running maximum as one unstack, n-1 maximum ops on single rows and one stack: about seven
    passes over the tensor, where doubling needs about five per step."""
    rows = tf.unstack(x, axis=axis)
    order = rows[::-1] if from_end else rows
    acc = order[0]
    out = [acc]
    for row in order[1:]:
        acc = tf.maximum(row, acc)  # ties keep the earlier value
        out.append(acc)
    return tf.stack(out[::-1] if from_end else out, axis=axis)


def _route_gradient_unrolled(y: tf.Tensor, dy: tf.Tensor, axis: int, from_end: bool) -> tf.Tensor:
    """Official tie routing, one row at a time: walking the scan backwards, the upstream gradient
    is summed over each run of equal outputs and lands on the run's first position in scan
    order, where the maximum was set (the rule of the native op's CPU kernel). Four elementwise
    ops per row."""
    ys = tf.unstack(y, axis=axis)
    dys = tf.unstack(dy, axis=axis)
    n = len(ys)
    scan = list(range(n - 1, -1, -1)) if from_end else list(range(n))  # memory index per scan step
    zero = tf.zeros_like(dys[0])
    dx = [None] * n
    acc = None  # upstream gradient summed over the current run
    run_starts_after = None  # whether the row one step later in scan order starts a run
    for k in range(n - 1, -1, -1):
        i = scan[k]
        acc = dys[i] if acc is None else tf.where(run_starts_after, dys[i], acc + dys[i])
        if k == 0:
            dx[i] = acc
        else:
            run_starts_after = tf.not_equal(ys[i], ys[scan[k - 1]])  # this row starts a run
            dx[i] = tf.where(run_starts_after, acc, zero)
    return tf.stack(dx, axis=axis)


# Largest static length that is unrolled row by row; longer or unknown lengths (and XLA) use
# doubling, which keeps the graph small (log2(n) steps).
_MAX_UNROLL = 256


def _corner_pool_tf(x: tf.Tensor, direction: str) -> tf.Tensor:
    axis, from_end = _AXIS[direction]
    n = x.shape[axis]
    # XLA compiles the unrolled graph slowly and runs it slowly on CPU: doubling there.
    unrolled = n is not None and n <= _MAX_UNROLL and not _in_xla_context()

    @tf.custom_gradient
    def pool(inputs):
        if n == 0:
            y = tf.identity(inputs)
        elif unrolled:
            y = _running_max_unrolled(inputs, axis, from_end)
        else:
            y = _running_doubling(inputs, axis, from_end, tf.maximum)

        def grad(dy):
            if n == 0:
                return tf.zeros_like(dy)
            if unrolled:
                return _route_gradient_unrolled(y, dy, axis, from_end)
            return _route_gradient_doubling(y, dy, axis, from_end)

        return y, grad

    return pool(x)


# ---------------------------------------------------------------------------------------------
# tf.scan reference


def _corner_pool_scan(x: tf.Tensor, direction: str) -> tf.Tensor:
    """tf.scan of the running maximum, differentiated by autodiff. tf.maximum's gradient sends
    ties to its first argument, the accumulator (the earlier maximum in scan order), so autodiff
    reproduces the official tie routing; the golden tie cases check it."""
    axis, from_end = _AXIS[direction]
    perm = [axis] + [a for a in range(4) if a != axis]
    inverse = [perm.index(a) for a in range(4)]

    def run(v):
        moved = tf.transpose(v, perm)
        out = tf.scan(lambda acc, row: tf.maximum(acc, row), moved, reverse=from_end)
        return tf.transpose(out, inverse)

    n = x.shape[axis]
    if n == 0:
        return tf.identity(x)
    if n is None:  # tf.scan needs at least one element
        return tf.cond(tf.shape(x)[axis] > 0, lambda: run(x), lambda: tf.identity(x))
    return run(x)


# ---------------------------------------------------------------------------------------------


@tf.autograph.experimental.do_not_convert
def corner_pool(x, direction: str, impl: str = "auto") -> tf.Tensor:
    """Corner pooling of NHWC ``x`` in ``direction`` (top | left | bottom | right).

    ``impl`` is "auto" (the native op where it has a working kernel for the op's device, else
    "tf"), "native", "tf" or "scan"; see the module docstring. Float16, bfloat16, float32 and
    float64 are supported by every impl."""
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ValueError(
            f"corner_pool: unknown direction {direction!r}; expected one of {DIRECTIONS}"
        )
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"corner_pool: unknown impl {impl!r}; expected one of {IMPLS}")
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(f"corner_pool expects a floating-point tensor, got dtype {x.dtype.name}")
    if x.shape.rank != 4:
        raise ValueError(f"corner_pool expects a 4-D NHWC tensor, got shape {x.shape}")
    impl = resolve_impl(impl, x)
    if impl == "native":
        return _corner_pool_native(x, direction)
    if impl == "scan":
        return _corner_pool_scan(x, direction)
    return _corner_pool_tf(x, direction)
