"""Official soft-NMS: golden runs of the compiled Cython, a line-by-line scalar transliteration,
and the compiled library (ops/kernels/soft_nms.cc) against the NumPy port, bit for bit.

The library is built by ``python -m cornernet_tf.ops.build`` (``make test`` does it first); tests
that need it skip, saying so, only where it is not built.
"""

import json
import math
import os

import numpy as np
import pytest

from cornernet_tf.detection import soft_nms as soft_nms_module
from cornernet_tf.detection import soft_nms_native
from cornernet_tf.detection.soft_nms import method_code, soft_nms, soft_nms_merge
from cornernet_tf.errors import InvalidValueError, MissingDependencyError

DATA = os.path.join(os.path.dirname(__file__), "data")
F = np.float32


def _require_native():
    available, reason = soft_nms_native.available()
    if not available:
        pytest.skip(f"native soft-NMS library unavailable: {reason}")


@pytest.fixture(params=["numpy", "native"])
def path(request, monkeypatch):
    """Runs a test through the NumPy port and through the compiled library."""
    if request.param == "native":
        _require_native()
    monkeypatch.setenv(soft_nms_native.ENV, request.param)
    return request.param


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
def test_matches_official_cython(run, path):
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
def test_vectorised_equals_scalar_reference(seed, kwargs, path):
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


# ---------------------------------------------------------------------------------------------
# The compiled library against the NumPy port: the whole array and the count, bit for bit.

CONFIGS = [
    dict(fn="soft_nms", method=2),  # the CornerNet test: exp, sigma 0.5, threshold 0.001
    dict(fn="soft_nms", method=1, Nt=0.3, threshold=0.05),
    dict(fn="soft_nms", method=0, Nt=0.5),
    dict(fn="soft_nms_merge", method=2, weight_exp=10),  # the multi-scale test
    dict(fn="soft_nms_merge", method=1, Nt=0.5, weight_exp=8, threshold=0.02),
    dict(fn="soft_nms_merge", method=0, Nt=0.3, weight_exp=6, threshold=0.1),
]


def _both_paths(monkeypatch, boxes, kwargs):
    """``(count, array)`` of the NumPy port and of the library on copies of ``boxes``."""
    kwargs = dict(kwargs)
    fn = soft_nms_merge if kwargs.pop("fn") == "soft_nms_merge" else soft_nms
    results = []
    for choice in ("numpy", "native"):
        monkeypatch.setenv(soft_nms_native.ENV, choice)
        out = boxes.copy(order="K")
        results.append((fn(out, **kwargs), out))
    return results


def _assert_bit_identical(monkeypatch, boxes, kwargs):
    (n_port, port), (n_native, native) = _both_paths(monkeypatch, boxes, kwargs)
    assert n_native == n_port
    np.testing.assert_array_equal(native, port)  # stale rows and columns 5+ included
    assert native.tobytes() == port.tobytes()  # signed zeros and NaN payloads too
    return n_port


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda k: f"{k['fn']}-m{k['method']}")
@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 250])
def test_native_equals_numpy_port(n, kwargs, monkeypatch):
    _require_native()
    for seed in (0, 1):
        boxes = _random_boxes(np.random.default_rng(seed), n, spread=150)
        live = _assert_bit_identical(monkeypatch, boxes, kwargs)
        if n == 250:
            assert live < n, "the case should drop boxes so that stale rows are exercised"


@pytest.mark.parametrize("kwargs", [CONFIGS[0], CONFIGS[3]], ids=["exp", "exp-merge"])
def test_native_equals_numpy_port_on_3000_rows(kwargs, monkeypatch):
    """A trained model's largest class: ~3000 rows in a few dense clusters."""
    _require_native()
    boxes = _random_boxes(np.random.default_rng(7), 3000, spread=400)
    live = _assert_bit_identical(monkeypatch, boxes, kwargs)
    assert 0 < live < 3000


@pytest.mark.parametrize("kwargs", CONFIGS, ids=lambda k: f"{k['fn']}-m{k['method']}")
def test_native_equals_numpy_port_extra_columns_and_ties(kwargs, monkeypatch):
    """Eight columns (the library reads the width, column 7 never moves), equal scores, identical
    and touching boxes, zero-size boxes and zero scores."""
    _require_native()
    rng = np.random.default_rng(3)
    boxes = np.zeros((160, 8), F)
    boxes[:, :7] = _random_boxes(rng, 160, spread=80)
    boxes[:, 7] = np.arange(160, dtype=F)
    boxes[:40, 4] = 0.25  # one tie block
    boxes[40:60, :4] = boxes[40, :4]  # identical boxes, distinct scores
    boxes[60:70, :4] = [[i * 10, 0, i * 10 + 9, 9] for i in range(10)]  # touching, iw = 0
    boxes[70:75, 2:4] = boxes[70:75, 0:2]  # zero-size boxes
    boxes[75:80, 4] = 0.0
    _assert_bit_identical(monkeypatch, boxes, kwargs)
    (_, port), _ = _both_paths(monkeypatch, boxes, kwargs)
    np.testing.assert_array_equal(port[:, 7], np.arange(160, dtype=F))


def test_native_equals_numpy_port_when_everything_drops(monkeypatch):
    _require_native()
    boxes = np.tile(np.array([[5, 5, 30, 30, 0.9, 0.5, 0.6]], F), (50, 1))
    boxes[:, 4] = np.linspace(0.9, 0.1, 50, dtype=F)
    for kwargs in (dict(fn="soft_nms", method=0), dict(fn="soft_nms_merge", method=0)):
        assert _assert_bit_identical(monkeypatch, boxes, kwargs) == 1


def test_native_handles_non_contiguous_input(monkeypatch):
    """A column slice of a wider array and a Fortran-ordered array are modified in place, with
    the port's results, and nothing outside the slice is touched."""
    _require_native()
    rng = np.random.default_rng(5)
    wide = np.zeros((200, 9), F)
    wide[:, :7] = _random_boxes(rng, 200, spread=150)
    wide[:, 7:] = -1.0
    kwargs = dict(method=2, weight_exp=10)
    results = []
    for choice in ("numpy", "native"):
        monkeypatch.setenv(soft_nms_native.ENV, choice)
        sliced = wide.copy()
        fortran = np.asfortranarray(wide[:, :7])
        n_sliced = soft_nms_merge(sliced[:, :7], **kwargs)
        n_fortran = soft_nms_merge(fortran, **kwargs)
        assert not fortran.flags.c_contiguous
        results.append((n_sliced, sliced, n_fortran, fortran))
    (ns, s, nf, f), (ns2, s2, nf2, f2) = results
    assert ns == ns2 == nf == nf2 < 200
    np.testing.assert_array_equal(s2, s)
    np.testing.assert_array_equal(f2, f)
    np.testing.assert_array_equal(s2[:, :7], f2)
    np.testing.assert_array_equal(s2[:, 7:], -1.0)


def test_auto_uses_the_library_when_built(monkeypatch):
    _require_native()
    monkeypatch.delenv(soft_nms_native.ENV, raising=False)

    def port_called(*args, **kwargs):
        raise AssertionError("the NumPy port ran although the library is built")

    monkeypatch.setattr(soft_nms_module, "_soft_nms", port_called)
    boxes = _random_boxes(np.random.default_rng(0), 60, spread=100)
    assert 0 < soft_nms(boxes, method="exp") <= 60


def test_library_is_newer_than_its_source():
    """A library older than soft_nms.cc would test stale code: rebuild it."""
    _require_native()
    source = soft_nms_native.LIBRARY.parent / "soft_nms.cc"
    assert soft_nms_native.LIBRARY.stat().st_mtime >= source.stat().st_mtime, (
        "the native soft-NMS library is older than soft_nms.cc: run python -m cornernet_tf.ops.build"
    )


@pytest.fixture
def library_at(monkeypatch):
    """Points the loader at another file (restored, and the cache reset, afterwards)."""

    def point(where):
        monkeypatch.setattr(soft_nms_native, "LIBRARY", where)
        soft_nms_native.reset()

    yield point
    soft_nms_native.reset()


def test_missing_library_falls_back_silently(library_at, tmp_path, monkeypatch, recwarn):
    library_at(tmp_path / "absent.so")
    monkeypatch.delenv(soft_nms_native.ENV, raising=False)
    boxes = _random_boxes(np.random.default_rng(1), 80, spread=100)
    expected = boxes.copy()
    n_ref = scalar_reference(expected, method=2)
    assert soft_nms(boxes, method=2) == n_ref
    np.testing.assert_allclose(boxes, expected, rtol=0, atol=1e-6)
    assert not recwarn.list
    available, reason = soft_nms_native.available()
    assert not available and "is not built" in reason
    monkeypatch.setenv(soft_nms_native.ENV, "native")
    with pytest.raises(MissingDependencyError, match="CORNERNET_SOFT_NMS=native.*not built"):
        soft_nms(boxes, method=2)


def test_unloadable_library_warns_and_falls_back(library_at, tmp_path, monkeypatch):
    broken = tmp_path / "_soft_nms.so"
    broken.write_bytes(b"not a shared library")
    library_at(broken)
    monkeypatch.delenv(soft_nms_native.ENV, raising=False)
    boxes = _random_boxes(np.random.default_rng(2), 40, spread=100)
    expected = boxes.copy()
    with pytest.warns(RuntimeWarning, match="native soft-NMS unused.*cannot be loaded"):
        n = soft_nms(boxes, method=1)
    assert n == scalar_reference(expected, method=1)
    np.testing.assert_allclose(boxes, expected, rtol=0, atol=1e-6)


def test_bad_switch_value_is_named(monkeypatch):
    monkeypatch.setenv(soft_nms_native.ENV, "fast")
    with pytest.raises(InvalidValueError, match="CORNERNET_SOFT_NMS='fast'.*auto, numpy, native"):
        soft_nms(np.zeros((2, 7), F))
