"""The official Cython ``soft_nms`` / ``soft_nms_merge`` (external/nms.pyx), vectorised in NumPy.

``cornernet eval`` must reproduce the official numbers, so these functions keep every quirk of the
original, which works **in place** on a float32 array of rows
``[x1, y1, x2, y2, score, tl_score, br_score]``:

* a box whose score decays below ``threshold`` is dropped by copying the last live row over it;
  the rows past the returned count are *stale* (the official test keeps them anyway);
* only columns 0-4 move (the best-box swap and the drop copy); columns 5-6 stay with their row,
  so ``soft_nms_merge`` weights a box with the tl/br scores of whichever row it sits in;
* boxes that do not overlap the current best are never dropped, even below ``threshold``;
* areas and intersections use the ``+1`` pixel convention; the float/double mix of the compiled
  Cython is reproduced (see :func:`_decay`), so results match it bit for bit.

Each round is vectorised: a box's decay depends only on the box and the current best, so only the
bookkeeping of drops (a two-pointer walk over dropped boxes) runs in Python. The result equals the
sequential original, including the order in which ``soft_nms_merge`` accumulates its weights.

:func:`soft_nms` and :func:`soft_nms_merge` run the sequential original compiled
(``ops/kernels/soft_nms.cc``: bit-identical to this port, tested, and many times faster) when
``python -m cornernet_tf.ops.build`` has built it, and this port otherwise;
``CORNERNET_SOFT_NMS=numpy`` forces the port (:mod:`cornernet_tf.detection.soft_nms_native`).
"""

from __future__ import annotations

import numpy as np

from cornernet_tf.detection import soft_nms_native

# Official method codes (test/coco.py: nms 0, linear_soft_nms 1, exp_soft_nms 2).
METHODS = {"hard": 0, "linear": 1, "exp": 2}

_F32 = np.float32
_ONE = _F32(1.0)


def method_code(method: int | str) -> int:
    """Map ``'hard' | 'linear' | 'exp'`` (or the official 0/1/2) to the official integer code."""
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"soft-NMS method must be one of {sorted(METHODS)}, got {method!r}")
        return METHODS[method]
    if int(method) not in (0, 1, 2):
        raise ValueError(
            f"soft-NMS method code must be 0 (hard), 1 (linear) or 2 (exp), got {method!r}"
        )
    return int(method)


def _check_boxes(boxes: np.ndarray, min_cols: int, name: str) -> None:
    if not isinstance(boxes, np.ndarray) or boxes.dtype != np.float32 or boxes.ndim != 2:
        raise ValueError(
            f"{name}: boxes must be a 2-D float32 NumPy array (it is modified in place), got "
            f"{type(boxes).__name__} {getattr(boxes, 'dtype', '')} {getattr(boxes, 'shape', '')}"
        )
    if boxes.shape[1] < min_cols:
        raise ValueError(f"{name}: boxes need at least {min_cols} columns, got shape {boxes.shape}")


def _decay(best: np.ndarray, region: np.ndarray, sigma, nt, method: int):
    """Weights of ``region`` rows against the best box, with the compiled Cython's precision.

    The Cython code declares its variables as C floats, but its integer literals (the ``+ 1`` and
    ``1 -``) promote the expressions they touch to double; each assignment rounds back to float.
    Reproducing that bit for bit keeps the decisions at the threshold identical.
    Returns ``(overlaps, weight)``; ``weight`` is meaningful where ``overlaps``.
    """
    f64 = np.float64
    tx1, ty1, tx2, ty2 = best[0], best[1], best[2], best[3]
    x1, y1, x2, y2 = region[:, 0], region[:, 1], region[:, 2], region[:, 3]
    area = ((x2 - x1).astype(f64) + 1.0) * ((y2 - y1).astype(f64) + 1.0)
    area = area.astype(_F32)
    iw = ((np.minimum(tx2, x2) - np.maximum(tx1, x1)).astype(f64) + 1.0).astype(_F32)
    ih = ((np.minimum(ty2, y2) - np.maximum(ty1, y1)).astype(f64) + 1.0).astype(_F32)
    overlaps = (iw > 0) & (ih > 0)
    inter = iw * ih  # float * float
    best_area = (f64(tx2 - tx1) + 1.0) * (f64(ty2 - ty1) + 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ua = ((best_area + area.astype(f64)) - inter.astype(f64)).astype(_F32)
        ov = inter / ua
    if method == 1:
        weight = np.where(ov > nt, (1.0 - ov.astype(f64)).astype(_F32), _ONE).astype(_F32)
    elif method == 2:
        # np.exp receives the float expression as a Python float; the result is stored as float.
        weight = np.exp((-(ov * ov) / sigma).astype(f64)).astype(_F32)
    else:
        weight = np.where(ov > nt, _F32(0.0), _ONE).astype(_F32)
    return overlaps, weight


def _merge_weight(weight: np.ndarray, weight_exp) -> np.ndarray:
    """``(1 - weight) ** weight_exp`` as compiled: powf on a float base, result stored as float."""
    base = (1.0 - weight.astype(np.float64)).astype(_F32).astype(np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return np.power(base, np.float64(weight_exp)).astype(_F32)


def _drop_walk(dropped: np.ndarray):
    """Replay the original inner loop's drop bookkeeping on one round's region of M rows.

    A dropped row is overwritten by the last live row, which is then examined in its place.
    Returns ``(events_rows, events_contents, row_content, live, self_copy)``: the (row, box) pairs
    in examination order, the box finally held by each live row, the new live count, and
    ``(row, box)`` when the last drop copied a row onto itself (it keeps its decayed score).
    """
    m = dropped.shape[0]
    drop_pos = np.flatnonzero(dropped)
    row_content = np.arange(m)
    ev_rows: list = []
    ev_boxes: list = []
    left, right, k = 0, m - 1, 0
    self_copy = None
    while left <= right:
        while k < drop_pos.size and drop_pos[k] < left:
            k += 1
        nxt = int(drop_pos[k]) if k < drop_pos.size and drop_pos[k] <= right else right + 1
        if nxt > left:  # rows examined in place, each with its own box
            span = np.arange(left, nxt)
            ev_rows.append(span)
            ev_boxes.append(span)
            left = nxt
        if left > right:
            break
        current = left  # this row's own box is dropped
        ev_rows.append(np.array([left]))
        ev_boxes.append(np.array([current]))
        k += 1
        while True:
            if left == right:  # the last live row copied onto itself
                self_copy = (left, current)
                right -= 1
                break
            current = right
            right -= 1
            ev_rows.append(np.array([left]))
            ev_boxes.append(np.array([current]))
            if not dropped[current]:
                row_content[left] = current
                left += 1
                break
    if ev_rows:
        rows = np.concatenate(ev_rows)
        boxes = np.concatenate(ev_boxes)
    else:
        rows = boxes = np.zeros((0,), np.int64)
    return rows, boxes, row_content, right + 1, self_copy


def _soft_nms(boxes, sigma, nt, threshold, method, weight_exp: float | None) -> int:
    merge = weight_exp is not None
    sigma, nt, threshold = _F32(sigma), _F32(nt), _F32(threshold)
    wexp = _F32(weight_exp) if merge else None
    total = boxes.shape[0]
    n = total
    i = 0
    while i < n:
        maxpos = i + int(np.argmax(boxes[i:n, 4]))  # first maximum, like the strict '<' scan
        if maxpos != i:
            tmp = boxes[i, 0:5].copy()
            boxes[i, 0:5] = boxes[maxpos, 0:5]
            boxes[maxpos, 0:5] = tmp
        best = boxes[i, 0:5].copy()
        if merge:
            acc = [
                best[0] * boxes[i, 5],
                best[1] * boxes[i, 5],
                best[2] * boxes[i, 6],
                best[3] * boxes[i, 6],
            ]
            mts, mbs = boxes[i, 5], boxes[i, 6]
        if i + 1 < n:
            region = boxes[i + 1 : n, 0:5].copy()
            overlaps, weight = _decay(best, region, sigma, nt, method)
            new_score = np.where(overlaps, weight * region[:, 4], region[:, 4]).astype(_F32)
            dropped = overlaps & (new_score < threshold)
            rows, seen, row_content, live, self_copy = _drop_walk(dropped)
            if merge:
                keep = overlaps[seen]
                rows, seen = rows[keep], seen[keep]
                mw = _merge_weight(weight[seen], wexp)
                s5 = boxes[i + 1 + rows, 5]
                s6 = boxes[i + 1 + rows, 6]
                terms = [
                    region[seen, 0] * s5 * mw,
                    region[seen, 1] * s5 * mw,
                    region[seen, 2] * s6 * mw,
                    region[seen, 3] * s6 * mw,
                ]
                # Sequential float32 sums, in examination order, like the C loop.
                acc = [_seq_sum(a, t) for a, t in zip(acc, terms)]
                mts = _seq_sum(mts, s5 * mw)
                mbs = _seq_sum(mbs, s6 * mw)
            updated = region.copy()
            updated[:, 4] = new_score
            out = region.copy()  # rows past the live count keep their pre-round content
            out[:live] = updated[row_content[:live]]
            if self_copy is not None:
                out[self_copy[0]] = updated[self_copy[1]]
            boxes[i + 1 : n, 0:5] = out
            n = i + 1 + live
        if merge:
            with np.errstate(divide="ignore", invalid="ignore"):
                boxes[i, 0:4] = np.array(
                    [acc[0] / mts, acc[1] / mts, acc[2] / mbs, acc[3] / mbs], _F32
                )
        i += 1
    if merge and n < total:
        # The original loop still visits the stale rows: each is its own (and only) best box,
        # so its coordinates are multiplied and divided by its tl/br scores once.
        tail = boxes[n:]
        with np.errstate(divide="ignore", invalid="ignore"):
            for c, s in ((0, 5), (1, 5), (2, 6), (3, 6)):
                tail[:, c] = (tail[:, c] * tail[:, s]) / tail[:, s]
    return n


def _seq_sum(start, terms: np.ndarray):
    if terms.size == 0:
        return _F32(start)
    return np.add.accumulate(np.concatenate([[_F32(start)], terms.astype(_F32)]), dtype=_F32)[-1]


def _dispatch(boxes, sigma, nt, threshold, method: int, weight_exp) -> int:
    """The compiled library when it is built (and not switched off), else the NumPy port."""
    lib = soft_nms_native.library()
    if lib is None:
        return _soft_nms(boxes, sigma, nt, threshold, method, weight_exp)
    # The parameters as the port rounds them (float32), passed on exactly.
    f32 = [float(_F32(v)) for v in (sigma, nt, threshold)]
    wexp = None if weight_exp is None else float(_F32(weight_exp))
    return soft_nms_native.run(lib, boxes, *f32, method, wexp)


def soft_nms(
    boxes: np.ndarray,
    sigma: float = 0.5,
    Nt: float = 0.3,
    threshold: float = 0.001,
    method: int | str = 0,
) -> int:
    """Official ``soft_nms`` on ``boxes`` [N, >=5] float32, **in place**.

    Returns the number of live rows (the official function returns ``range`` of it); rows past it
    are stale copies, as in the original. Defaults are the Cython defaults; the CornerNet test
    uses ``method='exp'`` (sigma 0.5, threshold 0.001).
    """
    _check_boxes(boxes, 5, "soft_nms")
    return _dispatch(boxes, sigma, Nt, threshold, method_code(method), None)


def soft_nms_merge(
    boxes: np.ndarray,
    sigma: float = 0.5,
    Nt: float = 0.3,
    threshold: float = 0.001,
    method: int | str = 0,
    weight_exp: float = 6,
) -> int:
    """Official ``soft_nms_merge`` on ``boxes`` [N, >=7] float32, **in place**.

    Like :func:`soft_nms`, and each kept box becomes the average of the boxes it suppressed,
    weighted by ``(1 - decay) ** weight_exp`` times the corner scores (columns 5-6: tl for x1/y1,
    br for x2/y2). Used by the multi-scale test (weight_exp 10).
    """
    _check_boxes(boxes, 7, "soft_nms_merge")
    return _dispatch(boxes, sigma, Nt, threshold, method_code(method), weight_exp)
