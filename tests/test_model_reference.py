"""The Keras model against an independent NumPy reference of the official network.

The golden files cover one architecture. Here the NumPy reference (tests/official_reference.py,
written from the official PyTorch modules and sharing no code with cornernet_tf) is first checked
against the golden tensors, then used as the yardstick for differently shaped networks: random
official-style weights go through ``cornernet_tf.convert.load_official_weights`` into
``build_model(config)`` and every output of every stack must agree.
"""

import json

import numpy as np
import pytest
from golden import DATA_DIR, load_golden
from official_reference import (
    HOURGLASS_104,
    OUTPUT_KEYS,
    OfficialArch,
    official_forward,
    official_shapes,
    official_state_dict,
    parameter_count,
)

ATOL = 2e-4  # tests/data/GOLDEN_README.md: maps atol 2e-4

GOLDEN_ARCH = OfficialArch(
    n=5,
    nstack=2,
    dims=(16, 16, 24, 24, 24, 32),
    modules=(2, 2, 2, 2, 2, 4),
    out_dim=3,
    pre_dims=(8, 16),
    cnv_dim=24,
)

# A network unlike the golden one in every free dimension: 3 stacks, n = 4, mixed module counts,
# cnv_dim != dims[0], pool width != 128, explicit head width, 5 classes.
THREE_STACKS = dict(
    num_classes=5,
    num_stacks=3,
    dims=[16, 24, 24, 32, 40],
    modules=[2, 1, 2, 1, 3],
    stem_dims=[8, 16],
    cnv_dim=20,
    pool_dim=12,
    head_dim=10,
)
# The smallest hourglass: one stack, n = 1 (the innermost make_layer directly), one module per level.
ONE_LEVEL = dict(
    num_classes=2,
    num_stacks=1,
    dims=[12, 20],
    modules=[1, 1],
    stem_dims=[6, 12],
    cnv_dim=12,
    pool_dim=8,
    head_dim=None,
)


def _arch(cfg: dict) -> OfficialArch:
    return OfficialArch(
        n=len(cfg["dims"]) - 1,
        nstack=cfg["num_stacks"],
        dims=tuple(cfg["dims"]),
        modules=tuple(cfg["modules"]),
        out_dim=cfg["num_classes"],
        pre_dims=tuple(cfg["stem_dims"]),
        cnv_dim=cfg["cnv_dim"],
        pool_dim=cfg["pool_dim"],
        head_dim=cfg["head_dim"],
    )


def _calibration_images(rng, h: int, w: int) -> np.ndarray:
    """Four images whose maps are twice the test maps: enough pixels at the innermost hourglass
    level for stable BN statistics."""
    map_h, map_w = -(-h // 4), -(-w // 4)
    return rng.normal(size=(4, 3, 8 * map_h - 1, 8 * map_w - 1))


def _to_keras_input(images_bgr_nchw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(images_bgr_nchw, (0, 2, 3, 1))[..., ::-1]).astype(
        np.float32
    )


# --------------------------------------------------------------------------- the reference itself


def test_reference_key_names_and_shapes_are_the_golden_state_dict():
    golden = json.loads((DATA_DIR / "model_config.json").read_text())
    expected = [(key, tuple(shape)) for key, shape, _ in golden["state_dict"]]
    assert list(official_shapes(GOLDEN_ARCH).items()) == expected
    assert parameter_count(GOLDEN_ARCH) == golden["num_parameters"] == 1_143_168


def test_reference_hourglass104_size_is_the_official_one():
    golden = json.loads((DATA_DIR / "model_config.json").read_text())["full_size_hourglass104"]
    assert parameter_count(HOURGLASS_104) == golden["num_parameters"] == 201_035_212
    assert len(official_shapes(HOURGLASS_104)) == golden["num_state_dict_keys"] == 1128


def test_reference_reproduces_the_golden_maps():
    """Trust the reference: with the golden weights it gives the official PyTorch outputs."""
    io = load_golden("model_io.npz")
    outputs = official_forward(load_golden("model_weights.npz"), io["input"], GOLDEN_ARCH)
    worst = 0.0
    for stack in range(2):
        for key in OUTPUT_KEYS:
            expected = io[f"train_{key}_map_s{stack}"]
            assert outputs[key][stack].shape == expected.shape
            worst = max(worst, float(np.max(np.abs(outputs[key][stack] - expected))))
    # The official float32 forward differs from float64 by at most 5e-5 (golden model_config.json).
    assert worst <= 1e-4, worst
    print(f"NumPy reference vs golden: max abs error {worst:.2e}")


def test_reference_gathered_outputs_and_last_stack_maps():
    io = load_golden("model_io.npz")
    outputs = official_forward(load_golden("model_weights.npz"), io["input"], GOLDEN_ARCH)
    for corner in ("tl", "br"):
        inds = io[f"{corner}_inds"]
        for kind in ("tag", "regr"):
            full = outputs[f"{corner}_{kind}"][1]  # (B, C, H, W)
            b, c = full.shape[:2]
            gathered = np.take_along_axis(
                full.reshape(b, c, -1), inds[:, None, :], axis=2
            ).transpose(0, 2, 1)
            np.testing.assert_allclose(gathered, io[f"train_{corner}_{kind}_s1"], atol=1e-4)
        np.testing.assert_allclose(
            outputs[f"{corner}_heat"][1], io[f"test_{corner}_heat"], atol=1e-4
        )


def test_random_weights_keep_activations_order_one():
    """Calibrated BN statistics keep a deep random network's outputs O(1) and non-trivial."""
    arch = _arch(THREE_STACKS)
    rng = np.random.default_rng(1)
    state = official_state_dict(arch, seed=1, calibration_images=_calibration_images(rng, 63, 127))
    outputs = official_forward(state, rng.normal(size=(1, 3, 63, 127)), arch)
    for key in OUTPUT_KEYS:
        for stack_output in outputs[key]:
            assert 0.02 < float(np.std(stack_output)) < 2.0, key
            assert float(np.max(np.abs(stack_output))) < 20.0, key


# --------------------------------------------------------------------------- Keras vs the reference


@pytest.mark.parametrize(
    "cfg, size",
    [(THREE_STACKS, (63, 127)), (ONE_LEVEL, (30, 21))],
    ids=["3stacks_n4_63x127", "1stack_n1_30x21"],
)
def test_keras_model_matches_reference(cfg, size):
    from cornernet_tf.convert import load_official_weights
    from cornernet_tf.modeling.cornernet import build_model

    arch = _arch(cfg)
    rng = np.random.default_rng(7)
    h, w = size
    state = official_state_dict(arch, seed=3, calibration_images=_calibration_images(rng, h, w))
    # Official checkpoints carry the DataParallel prefix.
    checkpoint = {f"module.{key}": value for key, value in state.items()}
    images = rng.normal(size=(2, 3, h, w)).astype(np.float32)
    expected = official_forward(state, images.astype(np.float64), arch)

    model = build_model(dict(cfg))
    report = load_official_weights(model, checkpoint)
    assert report["parameters"] == sum(
        int(np.prod(v.shape)) for k, v in state.items() if not k.endswith("num_batches_tracked")
    )
    outputs = model(_to_keras_input(images), training=False)

    map_hw = (-(-h // 4), -(-w // 4))
    worst = 0.0
    for key in OUTPUT_KEYS:
        assert len(outputs[key]) == arch.nstack
        for stack in range(arch.nstack):
            got = outputs[key][stack].numpy()
            want = np.transpose(expected[key][stack], (0, 2, 3, 1))
            assert got.shape == want.shape == (2, *map_hw, want.shape[-1]), (key, stack)
            err = float(np.max(np.abs(got - want)))
            worst = max(worst, err)
            assert err <= ATOL, f"{key} stack {stack}: max abs error {err:.2e} > {ATOL}"
    print(
        f"Keras vs NumPy reference ({cfg['num_stacks']} stacks, dims {cfg['dims']}): max abs error {worst:.2e}"
    )


def test_keras_model_matches_reference_with_golden_weights_at_another_size(golden_model):
    """The golden weights on a tall image (the golden input is wide): 253 x 125 -> 64 x 32 maps."""
    images = np.random.default_rng(11).normal(size=(1, 3, 253, 125)).astype(np.float32)
    expected = official_forward(
        load_golden("model_weights.npz"), images.astype(np.float64), GOLDEN_ARCH
    )
    outputs = golden_model(_to_keras_input(images), training=False)
    for key in OUTPUT_KEYS:
        for stack in range(2):
            want = np.transpose(expected[key][stack], (0, 2, 3, 1))
            assert want.shape[1:3] == (64, 32)
            np.testing.assert_allclose(
                outputs[key][stack].numpy(), want, atol=ATOL, err_msg=f"{key} stack {stack}"
            )
