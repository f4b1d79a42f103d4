"""The compiled soft-NMS (``ops/kernels/soft_nms.cc``) through ctypes, when it is built.

The NumPy port in :mod:`cornernet_tf.detection.soft_nms` runs one round of NumPy calls per kept
box, which dominates post-processing on a trained model (thousands of rows per class). The
compiled library is the sequential original, bit-identical to the port (tested), many times
faster. ``python -m cornernet_tf.ops.build`` (run by ``make``) builds it; without it, or with
``CORNERNET_SOFT_NMS=numpy``, soft-NMS uses the NumPy port (same results, slower). The library
needs no TensorFlow, and neither does this module (ctypes and NumPy only).

``CORNERNET_SOFT_NMS``: ``auto`` (default: the library when built, else NumPy), ``numpy``
(always the port), ``native`` (the library, an error when it is not built).
"""

from __future__ import annotations

import ctypes
import os
import warnings
from pathlib import Path

import numpy as np

from cornernet_tf.errors import InvalidValueError, MissingDependencyError

# Built beside the corner-pool op by cornernet_tf/ops/build.py (a file path, not an import:
# detection/ does not depend on ops/).
LIBRARY = Path(__file__).resolve().parent.parent / "ops" / "kernels" / "_soft_nms.so"
ABI_VERSION = 1
ENV = "CORNERNET_SOFT_NMS"
CHOICES = ("auto", "numpy", "native")
BUILD_COMMAND = "python -m cornernet_tf.ops.build"

_state: dict = {}


def reset() -> None:
    """Forget the loaded library (tests rebuild it)."""
    _state.clear()


def _load():
    """The loaded library, or None when it is absent or unusable (the reason in ``_state``)."""
    if "lib" in _state:
        return _state["lib"]
    lib, reason = None, f"{LIBRARY} is not built (run `{BUILD_COMMAND}`)"
    if LIBRARY.is_file():
        try:
            candidate = ctypes.CDLL(str(LIBRARY))
            version = candidate.soft_nms_abi_version()
        except (OSError, AttributeError) as exc:
            reason = f"{LIBRARY} cannot be loaded ({exc}); rebuild it with `{BUILD_COMMAND}`"
            warnings.warn(f"native soft-NMS unused: {reason}", RuntimeWarning, stacklevel=3)
        else:
            if version != ABI_VERSION:
                reason = (
                    f"{LIBRARY} is version {version}, this code needs {ABI_VERSION}; "
                    f"rebuild it with `{BUILD_COMMAND}`"
                )
                warnings.warn(f"native soft-NMS unused: {reason}", RuntimeWarning, stacklevel=3)
            else:
                lib = _declare(candidate)
    _state["lib"], _state["reason"] = lib, reason
    return lib


def _declare(lib):
    common = [
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_float,
        ctypes.c_float,
        ctypes.c_float,
        ctypes.c_int,
    ]
    lib.soft_nms.argtypes = common
    lib.soft_nms.restype = ctypes.c_int64
    lib.soft_nms_merge.argtypes = [*common, ctypes.c_float]
    lib.soft_nms_merge.restype = ctypes.c_int64
    return lib


def available() -> tuple[bool, str]:
    """``(whether the compiled library is loaded, why not)``; ignores ``CORNERNET_SOFT_NMS``."""
    lib = _load()
    return lib is not None, "" if lib is not None else _state["reason"]


def choice() -> str:
    """The ``CORNERNET_SOFT_NMS`` setting, checked."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise InvalidValueError(f"{ENV}={os.environ[ENV]!r}: expected one of {', '.join(CHOICES)}")
    return value


def library():
    """The library to use for this call, or None for the NumPy port (per ``CORNERNET_SOFT_NMS``)."""
    mode = choice()
    if mode == "numpy":
        return None
    lib = _load()
    if lib is None and mode == "native":
        raise MissingDependencyError(f"{ENV}=native but {_state['reason']}")
    return lib


def run(lib, boxes: np.ndarray, sigma, nt, threshold, method: int, weight_exp) -> int:
    """The compiled soft-NMS on a checked 2-D float32 ``boxes``, in place; the live count.

    A C-contiguous, aligned, writeable array is processed where it is; any other (a column
    slice, Fortran order) goes through a contiguous copy that is written back.
    """
    flags = boxes.flags
    direct = flags.c_contiguous and flags.aligned and flags.writeable
    work = boxes if direct else np.ascontiguousarray(boxes)
    rows, cols = work.shape
    pointer = work.ctypes.data if rows else None
    if weight_exp is None:
        n = lib.soft_nms(pointer, rows, cols, sigma, nt, threshold, method)
    else:
        n = lib.soft_nms_merge(pointer, rows, cols, sigma, nt, threshold, method, weight_exp)
    if n < 0:
        raise RuntimeError(f"native soft-NMS rejected boxes of shape {boxes.shape}")
    if not direct:
        boxes[...] = work
    return int(n)
