"""The Keras model reproduces the official PyTorch outputs with the official weights loaded."""

import numpy as np
import pytest
from golden import load_golden

MAP_KEYS = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")
ATOL = 2e-4  # tests/data/GOLDEN_README.md: maps atol 2e-4


@pytest.fixture(scope="module")
def golden_io():
    return load_golden("model_io.npz")


@pytest.fixture(scope="module")
def golden_input_rgb(golden_io):
    # NCHW BGR -> NHWC RGB
    return np.ascontiguousarray(np.transpose(golden_io["input"], (0, 2, 3, 1))[..., ::-1])


def _nhwc(array):
    return np.transpose(array, (0, 2, 3, 1))


def test_every_output_of_every_stack_matches(golden_model, golden_io, golden_input_rgb):
    outputs = golden_model(golden_input_rgb, training=False)
    worst = 0.0
    for stack in range(2):
        for key in MAP_KEYS:
            expected = _nhwc(
                golden_io[f"train_{key}_map_s{stack}"]
                if f"train_{key}_map_s{stack}" in golden_io
                else golden_io[f"train_{key}_s{stack}"]
            )
            got = outputs[key][stack].numpy()
            assert got.shape == expected.shape, (key, stack)
            err = float(np.max(np.abs(got - expected)))
            worst = max(worst, err)
            assert err <= ATOL, f"{key} stack {stack}: max abs error {err:.2e} > {ATOL}"
    print(f"max abs error over all maps: {worst:.3e}")


def test_gathered_outputs_match(golden_model, golden_io, golden_input_rgb):
    """The training forward gathers tags/offsets at the ground-truth corner indices."""
    outputs = golden_model(golden_input_rgb, training=False)
    for stack in range(2):
        for corner in ("tl", "br"):
            inds = golden_io[f"{corner}_inds"]
            for kind in ("tag", "regr"):
                full = outputs[f"{corner}_{kind}"][stack].numpy()
                b, h, w, c = full.shape
                gathered = np.take_along_axis(
                    full.reshape(b, h * w, c), inds[..., None].astype(np.int64), axis=1
                )
                expected = golden_io[f"train_{corner}_{kind}_s{stack}"]
                np.testing.assert_allclose(gathered, expected, atol=ATOL)


def test_last_stack_only_equals_last_stack_of_full(golden_model, golden_input_rgb):
    full = golden_model(golden_input_rgb, training=False)
    last = golden_model(golden_input_rgb, training=False, stacks="last")
    for key in MAP_KEYS:
        assert len(last[key]) == 1
        np.testing.assert_allclose(last[key][0].numpy(), full[key][-1].numpy(), atol=1e-6)


def test_test_maps_match(golden_model, golden_io, golden_input_rgb):
    """The test forward feeds the last stack's maps to decode."""
    last = golden_model(golden_input_rgb, training=False, stacks="last")
    for key in MAP_KEYS:
        name = f"test_{key}"
        if name in golden_io:
            np.testing.assert_allclose(last[key][0].numpy(), _nhwc(golden_io[name]), atol=ATOL)
