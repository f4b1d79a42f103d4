"""decode(): golden tensors of the official ``_decode``, graph/XLA tracing, and small-map edge cases."""

import os

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.decode import decode, decode_outputs, heatmap_nms, topk_corners

DATA = os.path.join(os.path.dirname(__file__), "data")
NAMES = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")
SETTINGS = {
    "main": dict(K=100, kernel=3, ae_threshold=0.5, num_dets=1000),
    "defaults": dict(K=20, kernel=1, ae_threshold=1, num_dets=100),
}


@pytest.fixture(scope="module")
def golden():
    return np.load(os.path.join(DATA, "decode.npz"))


def _inputs(golden):
    return [tf.constant(golden[name].transpose(0, 2, 3, 1)) for name in NAMES]


def assert_dets_match(dets, expected, num_valid):
    """Rows with score > -1 in order; rejected rows only by count (their order is free)."""
    dets = np.asarray(dets)
    assert dets.shape == expected.shape
    for b in range(dets.shape[0]):
        n = int(num_valid[b])
        valid = dets[b][dets[b, :, 4] > -1]
        assert len(valid) == n
        np.testing.assert_array_equal(valid[:, 7], expected[b, :n, 7])
        np.testing.assert_allclose(valid[:, 4:7], expected[b, :n, 4:7], rtol=0, atol=1e-6)
        np.testing.assert_allclose(valid[:, 0:4], expected[b, :n, 0:4], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(dets[b, n:, 4], -1.0)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_decode_matches_official(golden, setting):
    kwargs = SETTINGS[setting]
    np.testing.assert_array_equal(
        golden[f"{setting}_params_K_kernel_aethr_numdets"],
        [kwargs["K"], kwargs["kernel"], kwargs["ae_threshold"], kwargs["num_dets"]],
    )
    dets = decode(*_inputs(golden), **kwargs)
    assert dets.dtype == tf.float32
    assert_dets_match(dets, golden[f"dets_{setting}"], golden[f"dets_{setting}_num_valid"])


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("corner", ["tl", "br"])
def test_topk_intermediates(golden, setting, corner):
    kwargs = SETTINGS[setting]
    heat = tf.constant(golden[f"{corner}_heat"].transpose(0, 2, 3, 1))
    scores, inds, classes, ys, xs, valid = topk_corners(
        heatmap_nms(tf.sigmoid(heat), kwargs["kernel"]), kwargs["K"]
    )
    prefix = f"{setting}_{corner}_topk_"
    np.testing.assert_allclose(scores.numpy(), golden[prefix + "scores"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(inds.numpy(), golden[prefix + "inds"])  # pixel index, not C·H·W
    np.testing.assert_array_equal(classes.numpy(), golden[prefix + "clses"])
    np.testing.assert_array_equal(ys.numpy(), golden[prefix + "ys"])
    np.testing.assert_array_equal(xs.numpy(), golden[prefix + "xs"])
    assert valid.numpy().all()


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_heatmap_nms_keeps_plateaus(golden, kernel):
    x = tf.constant(golden["nms_in"].transpose(0, 2, 3, 1))
    out = heatmap_nms(x, kernel).numpy().transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out, golden[f"nms_out_k{kernel}"])


def test_planted_pairs(golden):
    """Image 0: a strong pair in the wrong order is rejected; image 1: tl and br on the same pixel
    with embedding distance exactly 0.5 are kept (the test is '>')."""
    dets = decode(*_inputs(golden), **SETTINGS["main"]).numpy()
    valid1 = dets[1][dets[1, :, 4] > -1]
    same_pixel = valid1[
        (np.floor(valid1[:, 0]) == np.floor(valid1[:, 2]))
        & (np.floor(valid1[:, 1]) == np.floor(valid1[:, 3]))
    ]
    assert len(same_pixel) >= 1
    for b in range(2):
        valid = dets[b][dets[b, :, 4] > -1]
        assert (valid[:, 2] >= valid[:, 0]).all() and (valid[:, 3] >= valid[:, 1]).all()


def test_xla_and_unknown_shapes_match_eager(golden):
    inputs = _inputs(golden)
    kwargs = SETTINGS["main"]
    eager = decode(*inputs, **kwargs).numpy()
    spec = [tf.TensorSpec([None, None, None, t.shape[-1]], tf.float32) for t in inputs]
    graph_fn = tf.function(lambda *maps: decode(*maps, **kwargs), input_signature=spec)
    graph = graph_fn(*inputs).numpy()
    xla = tf.function(lambda *maps: decode(*maps, **kwargs), jit_compile=True)(*inputs).numpy()
    for out in (graph, xla):
        assert_dets_match(out, eager, (eager[..., 4] > -1).sum(axis=1))
    assert_dets_match(xla, golden["dets_main"], golden["dets_main_num_valid"])


def test_batch_items_are_independent(golden):
    inputs = _inputs(golden)
    kwargs = SETTINGS["main"]
    batched = decode(*inputs, **kwargs).numpy()
    single = decode(*[t[1:2] for t in inputs], **kwargs).numpy()
    assert_dets_match(single, batched[1:2], [(batched[1, :, 4] > -1).sum()])


def _numpy_reference(maps, K, kernel, ae_threshold):
    """Brute force on one image: every (tl, br) pair of the top-K corners, NumPy only."""
    tl_heat, br_heat, tl_tag, br_tag, tl_regr, br_regr = maps
    corners = []
    for heat, tag, regr in ((tl_heat, tl_tag, tl_regr), (br_heat, br_tag, br_regr)):
        p = 1 / (1 + np.exp(-heat.astype(np.float64)))
        h, w, c = p.shape
        pad = (kernel - 1) // 2
        padded = np.pad(p, ((pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
        hmax = np.max(
            [padded[dy : dy + h, dx : dx + w] for dy in range(kernel) for dx in range(kernel)],
            axis=0,
        )
        p = np.where(hmax == p, p, 0.0)
        flat = p.transpose(2, 0, 1).reshape(-1)
        order = np.argsort(-flat, kind="stable")[:K]
        cls, pix = order // (h * w), order % (h * w)
        y, x = pix // w, pix % w
        corners.append((flat[order], cls, x + regr[y, x, 0], y + regr[y, x, 1], tag[y, x, 0]))
    rows = []
    for i in range(len(corners[0][0])):
        for j in range(len(corners[1][0])):
            s1, c1, x1, y1, e1 = (v[i] for v in corners[0])
            s2, c2, x2, y2, e2 = (v[j] for v in corners[1])
            ok = c1 == c2 and abs(e1 - e2) <= ae_threshold and x2 >= x1 and y2 >= y1
            if ok:
                rows.append([x1, y1, x2, y2, (s1 + s2) / 2, s1, s2, c1])
    rows.sort(key=lambda r: -r[4])
    return np.array(rows, np.float64).reshape(-1, 8)


def test_tiny_map_with_fewer_cells_than_k():
    """C·H·W = 2·3·4 = 24 < K = 30: the missing corners never pair, the tail is padded with -1."""
    rng = np.random.default_rng(3)
    h, w, c = 3, 4, 2
    maps = [
        rng.normal(0, 2, (h, w, c)).astype(np.float32),
        rng.normal(0, 2, (h, w, c)).astype(np.float32),
        rng.normal(0, 0.3, (h, w, 1)).astype(np.float32),
        rng.normal(0, 0.3, (h, w, 1)).astype(np.float32),
        rng.uniform(0, 1, (h, w, 2)).astype(np.float32),
        rng.uniform(0, 1, (h, w, 2)).astype(np.float32),
    ]
    dets = decode(
        *[tf.constant(m[None]) for m in maps], K=30, kernel=1, ae_threshold=0.5, num_dets=1000
    ).numpy()[0]
    assert dets.shape == (1000, 8)
    expected = _numpy_reference(maps, K=30, kernel=1, ae_threshold=0.5)
    valid = dets[dets[:, 4] > -1]
    assert 0 < len(valid) == len(expected)
    np.testing.assert_allclose(valid[:, 4], expected[:, 4], atol=1e-6)
    key = lambda a: np.lexsort(np.round(a[:, [0, 1, 2, 3, 7]].T, 4))  # noqa: E731
    np.testing.assert_allclose(valid[key(valid)], expected[key(expected)], atol=1e-5)
    assert (dets[len(valid) :, 4] == -1).all()


def test_decode_outputs_uses_last_stack(golden):
    inputs = _inputs(golden)
    outputs = {name: [tf.zeros_like(t), t] for name, t in zip(NAMES, inputs)}
    np.testing.assert_array_equal(
        decode_outputs(outputs, **SETTINGS["defaults"]).numpy(),
        decode(*inputs, **SETTINGS["defaults"]).numpy(),
    )


def test_bad_arguments():
    x = tf.zeros([1, 4, 4, 1])
    with pytest.raises(ValueError, match="kernel"):
        heatmap_nms(x, 2)
    with pytest.raises(ValueError, match="K and num_dets"):
        decode(x, x, x, x, tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 2]), K=0)
