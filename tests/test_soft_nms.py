"""Official soft-NMS: golden runs of the compiled Cython, and a line-by-line scalar transliteration."""

import json
import math
import os

import numpy as np
import pytest

from cornernet_tf.detection.soft_nms import method_code, soft_nms, soft_nms_merge

DATA = os.path.join(os.path.dirname(__file__), "data")
F = np.float32


def _golden():
    arrays = np.load(os.path.join(DATA, "soft_nms.npz"))
    with open(os.path.join(DATA, "generation_report.json")) as fh:
        runs = json.load(fh)["soft_nms_runs"]
    return arrays, runs


def scalar_reference(boxes, sigma=0.5, Nt=0.3, threshold=0.001, method=0, weight_exp=None):
    """external/nms.pyx transliterated statement by statement (C floats; integer literals promote
    their expression to double, assignments round back to float; powf on a float base)."""
    sigma, Nt, threshold = F(sigma), F(Nt), F(threshold)
    merge = weight_exp is not None
    N = boxes.shape[0]
    for i in range(N):
        maxscore, maxpos = boxes[i, 4], i
        tx1, ty1, tx2, ty2, ts = boxes[i, 0:5].copy()
        for pos in range(i + 1, N):
            if maxscore < boxes[pos, 4]:
                maxscore, maxpos = boxes[pos, 4], pos
        boxes[i, 0:5] = boxes[maxpos, 0:5]
        if merge:
            mx1, my1 = boxes[i, 0] * boxes[i, 5], boxes[i, 1] * boxes[i, 5]
            mx2, my2 = boxes[i, 2] * boxes[i, 6], boxes[i, 3] * boxes[i, 6]
            mts, mbs = boxes[i, 5], boxes[i, 6]
        boxes[maxpos, 0:5] = [tx1, ty1, tx2, ty2, ts]
        tx1, ty1, tx2, ty2, ts = boxes[i, 0:5].copy()
        pos = i + 1
        while pos < N:
            x1, y1, x2, y2 = boxes[pos, 0:4]
            area = F((float(x2 - x1) + 1) * (float(y2 - y1) + 1))
            iw = F(float(min(tx2, x2) - max(tx1, x1)) + 1)
            if iw > 0:
                ih = F(float(min(ty2, y2) - max(ty1, y1)) + 1)
                if ih > 0:
                    ua = F(
                        (float(tx2 - tx1) + 1) * (float(ty2 - ty1) + 1)
                        + float(area)
                        - float(iw * ih)
                    )
                    ov = iw * ih / ua
                    if method == 1:
                        weight = F(1 - float(ov)) if ov > Nt else F(1)
                    elif method == 2:
                        weight = F(math.exp(float(-(ov * ov) / sigma)))
                    else:
                        weight = F(0) if ov > Nt else F(1)
                    if merge:
                        mw = F(float(F(1 - float(weight))) ** float(F(weight_exp)))
                        mx1 = mx1 + boxes[pos, 0] * boxes[pos, 5] * mw
                        my1 = my1 + boxes[pos, 1] * boxes[pos, 5] * mw
                        mx2 = mx2 + boxes[pos, 2] * boxes[pos, 6] * mw
                        my2 = my2 + boxes[pos, 3] * boxes[pos, 6] * mw
                        mts = mts + boxes[pos, 5] * mw
                        mbs = mbs + boxes[pos, 6] * mw
                    boxes[pos, 4] = weight * boxes[pos, 4]
                    if boxes[pos, 4] < threshold:
                        boxes[pos, 0:5] = boxes[N - 1, 0:5]
                        N -= 1
                        pos -= 1
            pos += 1
        if merge:
            with np.errstate(divide="ignore", invalid="ignore"):
                boxes[i, 0:4] = [mx1 / mts, my1 / mts, mx2 / mbs, my2 / mbs]
    return N


@pytest.mark.parametrize("run", sorted(_golden()[1]))
def test_matches_official_cython(run):
    arrays, runs = _golden()
    spec = runs[run]
    kwargs = dict(spec["kwargs"])
    boxes = arrays["boxes_in"].copy()
    fn = soft_nms_merge if spec["fn"] == "soft_nms_merge" else soft_nms
    num_keep = fn(boxes, **kwargs)
    assert num_keep == int(arrays[f"{run}_num_keep"])
    # The whole array, stale rows past num_keep included, is what the official test keeps.
    np.testing.assert_allclose(boxes, arrays[f"{run}_array_after"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("run", sorted(_golden()[1]))
def test_scalar_reference_reproduces_golden(run):
    """Guards the reference used by the randomised comparisons below."""
    arrays, runs = _golden()
    boxes = arrays["boxes_in"].copy()
    num_keep = scalar_reference(boxes, **runs[run]["kwargs"])
    assert num_keep == int(arrays[f"{run}_num_keep"])
    np.testing.assert_allclose(boxes, arrays[f"{run}_array_after"], rtol=0, atol=1e-5)


def _random_boxes(rng, n, spread):
    """Clustered boxes so that many overlap, with some scores near the threshold and some ties."""
    centres = rng.uniform(0, spread, size=(max(1, n // 8), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 6, size=(n, 2))
    wh = rng.uniform(2, 40, size=(n, 2))
    boxes = np.zeros((n, 7), F)
    boxes[:, 0:2] = c - wh / 2
    boxes[:, 2:4] = c + wh / 2
    boxes[:, 4] = rng.uniform(0.0, 1.0, n) ** 3
    boxes[:, 5] = rng.uniform(0.05, 1.0, n)
    boxes[:, 6] = rng.uniform(0.05, 1.0, n)
    boxes[rng.integers(0, n, n // 10), 4] = 0.0012  # decays below 0.001 at the first overlap
    boxes[rng.integers(0, n, n // 20), 4] = 0.5  # ties for the best box
    return boxes


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(fn="soft_nms", method=2, Nt=0.5),
        dict(fn="soft_nms", method=1, Nt=0.3, threshold=0.05),
        dict(fn="soft_nms", method=0, Nt=0.5),
        dict(fn="soft_nms_merge", method=2, Nt=0.5, weight_exp=10),
        dict(fn="soft_nms_merge", method=1, Nt=0.5, weight_exp=8, threshold=0.02),
    ],
)
def test_vectorised_equals_scalar_reference(seed, kwargs):
    kwargs = dict(kwargs)
    fn = soft_nms_merge if kwargs.pop("fn") == "soft_nms_merge" else soft_nms
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 120, spread=150)
    expected = boxes.copy()
    n_ref = scalar_reference(expected, **kwargs)
    n = fn(boxes, **kwargs)
    assert n == n_ref
    assert n < len(boxes), "the case should drop boxes so that stale rows are exercised"
    np.testing.assert_allclose(boxes, expected, rtol=0, atol=1e-6)


def test_stale_rows_and_unmoved_score_columns():
    """Two identical boxes under hard NMS: the second is dropped by copying the last row over it,
    so the last row's stale copy remains; columns 5-6 never move."""
    boxes = np.array(
        [
            [0, 0, 10, 10, 0.9, 0.11, 0.12],
            [0, 0, 10, 10, 0.8, 0.21, 0.22],
            [50, 50, 60, 60, 0.7, 0.31, 0.32],
        ],
        F,
    )
    n = soft_nms(boxes, method="hard", Nt=0.5)
    assert n == 2
    expected = np.array([[0, 0, 10, 10, 0.9], [50, 50, 60, 60, 0.7], [50, 50, 60, 60, 0.7]], F)
    np.testing.assert_array_equal(boxes[:, 0:5], expected)
    np.testing.assert_array_equal(
        boxes[:, 5:7], np.array([[0.11, 0.12], [0.21, 0.22], [0.31, 0.32]], F)
    )


def test_empty_and_single_row():
    empty = np.zeros((0, 7), F)
    assert soft_nms(empty, method="exp") == 0
    assert soft_nms_merge(empty, method="exp", weight_exp=10) == 0
    one = np.array([[1, 2, 3, 4, 0.5, 0.25, 0.5]], F)
    assert soft_nms_merge(one, method="exp", weight_exp=10) == 1
    np.testing.assert_allclose(one[0, :5], [1, 2, 3, 4, 0.5], atol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="float32"):
        soft_nms(np.zeros((3, 7), np.float64))
    with pytest.raises(ValueError, match="at least 7 columns"):
        soft_nms_merge(np.zeros((3, 5), F))
    with pytest.raises(ValueError, match="method"):
        method_code("gaussian")
    assert [method_code(m) for m in ("hard", "linear", "exp", 2)] == [0, 1, 2, 2]
