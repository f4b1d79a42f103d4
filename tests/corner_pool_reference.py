"""NumPy reference of the official corner pooling, NHWC: forward and the official C++ backward.

NumPy only (no TensorFlow), so that ``benchmarks/cuda_kernels.py`` checks the CUDA kernels on a
GPU machine against the same oracle that ``test_corner_pool.py`` validates on the golden tensors.
"""

import numpy as np

# direction -> (NHWC axis, whether the official scan starts at the last index)
AXIS = {"top": (1, True), "left": (2, True), "bottom": (1, False), "right": (2, False)}


def reference_forward(x: np.ndarray, direction: str) -> np.ndarray:
    axis, from_end = AXIS[direction]
    v = np.moveaxis(x, axis, 0)
    if from_end:
        v = v[::-1]
    out = np.maximum.accumulate(v, axis=0) if v.shape[0] else v
    if from_end:
        out = out[::-1]
    return np.moveaxis(out, 0, axis)


def reference_backward(x: np.ndarray, g: np.ndarray, direction: str) -> np.ndarray:
    """The official C++ backward, step by step: scan from the pool's start side, move the argmax
    only on a strict '>', send each output's gradient to the current argmax (summed in float64)."""
    axis, from_end = AXIS[direction]
    v = np.moveaxis(x.astype(np.float64), axis, 0)
    gv = np.moveaxis(g.astype(np.float64), axis, 0)
    n = v.shape[0]
    lanes = int(np.prod(v.shape[1:]))
    if n == 0 or lanes == 0:
        return np.zeros_like(x, dtype=np.float64)
    v = v.reshape(n, lanes)
    order = range(n - 1, -1, -1) if from_end else range(n)
    argmax = np.empty((n, lanes), dtype=np.int64)
    best, best_at = None, None
    for i in order:
        if best is None:
            best, best_at = v[i].copy(), np.full(lanes, i)
        else:
            greater = v[i] > best
            best = np.where(greater, v[i], best)
            best_at = np.where(greater, i, best_at)
        argmax[i] = best_at
    target = argmax * lanes + np.arange(lanes)
    dx = np.bincount(target.ravel(), weights=gv.reshape(-1), minlength=n * lanes)
    return np.moveaxis(dx.reshape(gv.shape), 0, axis)
