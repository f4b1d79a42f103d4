"""The Keras CornerNet model: size, outputs, input handling and serialisation."""

import dataclasses
import json
import pathlib
import time

import keras
import numpy as np
import pytest
from golden import GOLDEN_MODEL_CONFIG
from official_reference import HOURGLASS_104, official_shapes

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, load_config, load_model_config
from cornernet_tf.modeling.cornernet import OUTPUT_KEYS, CornerNet, build_model

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
TINY = CONFIG_DIR / "cornernet_tiny.yaml"
HG104 = CONFIG_DIR / "cornernet_hg104_coco.yaml"
OFFICIAL_PARAMETERS = 201_035_212  # docs/method.md §2; golden model_config.json


def _channels(num_classes: int) -> dict:
    return {
        "tl_heat": num_classes,
        "br_heat": num_classes,
        "tl_tag": 1,
        "br_tag": 1,
        "tl_regr": 2,
        "br_regr": 2,
    }


def _two_stack_tiny() -> dict:
    cfg = load_config(TINY, ["model.num_stacks=2"]).model
    return dataclasses.asdict(cfg)


def _randomize(model: keras.Model, seed: int = 0) -> None:
    """Every weight, BN statistics included, away from its initial value (so that a round trip
    that drops any of them shows), with scales that keep activations O(1)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        name = variable.name
        if name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "moving_mean":
            value = rng.normal(0.0, 0.3, shape)
        elif name == "gamma":
            value = rng.uniform(0.3, 0.8, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, np.sqrt(1.0 / np.prod(shape[:3])), shape)
        else:  # beta, biases
            value = rng.normal(0.0, 0.1, shape)
        variable.assign(value.astype("float32"))


def _images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _assert_same_outputs(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert set(a) == set(b) == set(OUTPUT_KEYS)
    for key in OUTPUT_KEYS:
        assert len(a[key]) == len(b[key]), key
        for x, y in zip(a[key], b[key]):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def two_stack_model():
    """A randomised 2-stack tiny model shared by the read-only tests of this module."""
    model = build_model(_two_stack_tiny())
    _randomize(model)
    return model


# --------------------------------------------------------------------------- size


@pytest.fixture(scope="module")
def hourglass104():
    start = time.perf_counter()
    model = build_model(HG104)  # no forward pass
    print(f"built Hourglass-104 in {time.perf_counter() - start:.1f} s")
    return model


def test_hourglass104_has_the_official_parameter_count(hourglass104):
    trainable = sum(int(np.prod(v.shape)) for v in hourglass104.trainable_weights)
    assert trainable == OFFICIAL_PARAMETERS
    # BN running statistics: the official buffers less the 180 num_batches_tracked scalars.
    golden = json.loads((pathlib.Path(__file__).parent / "data" / "model_config.json").read_text())
    non_trainable = sum(int(np.prod(v.shape)) for v in hourglass104.non_trainable_weights)
    bn_layers = sum(
        1 for key in official_shapes(HOURGLASS_104) if key.endswith(".num_batches_tracked")
    )
    assert non_trainable == golden["full_size_hourglass104"]["num_buffer_elements"] - bn_layers


def test_hourglass104_variables_are_the_official_tensors(hourglass104):
    """Every official key of the full model (generated independently) has a variable of the
    converted shape, and nothing else is in the model."""
    official = {
        k: s
        for k, s in official_shapes(HOURGLASS_104).items()
        if not k.endswith(".num_batches_tracked")
    }
    mapping = hourglass104.official_variables()
    assert len(mapping) == len(official) == 948
    assert len({id(variable) for _, variable, _ in mapping}) == len(hourglass104.weights)
    for key, variable, _ in mapping:
        shape = official[key]
        expected = (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else shape
        assert tuple(variable.shape) == expected, key


def test_hourglass52_is_one_stack_of_it():
    cfg = load_model_config(CONFIG_DIR / "cornernet_hg52.yaml")
    assert cfg.num_stacks == 1 and cfg.dims == load_model_config(HG104).dims


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    "config, size",
    [(TINY, (95, 159)), (GOLDEN_MODEL_CONFIG, (128, 255)), ("two_stack_tiny", (64, 31))],
    ids=["tiny_95x159", "golden_128x255", "tiny2_64x31"],
)
def test_output_keys_and_shapes_per_stack(config, size):
    if config == "two_stack_tiny":
        config = _two_stack_tiny()
    model = build_model(config)
    cfg = model.model_config
    h, w = size
    outputs = model(_images((2, h, w, 3)), training=False)
    assert set(outputs) == set(OUTPUT_KEYS)
    map_hw = (-(-h // 4), -(-w // 4))
    for key, channels in _channels(cfg.num_classes).items():
        assert len(outputs[key]) == cfg.num_stacks, key
        for stack_output in outputs[key]:
            assert tuple(stack_output.shape) == (2, *map_hw, channels), key
            assert stack_output.dtype == "float32"


def test_heat_bias_starts_at_the_focal_prior():
    model = build_model(TINY)
    out = model(np.zeros((1, 63, 63, 3), np.float32), training=False)
    for layer in (lay for lay in model.layers if lay.name.endswith("_heat_0")):
        np.testing.assert_allclose(layer.out.bias.numpy(), -2.19)
    assert np.all(np.isfinite(out["tl_heat"][0].numpy()))


def test_last_stack_only_equals_the_last_stack_of_the_full_call(two_stack_model):
    images = _images((2, 63, 95, 3), seed=1)
    full = two_stack_model(images, training=False)
    last = two_stack_model(images, training=False, stacks="last")
    for key in OUTPUT_KEYS:
        assert len(full[key]) == 2 and len(last[key]) == 1
        np.testing.assert_allclose(last[key][0].numpy(), full[key][-1].numpy(), atol=1e-6)
    # The last-stack graph is shared and cached, not rebuilt per call.
    assert two_stack_model.last_stack_model is two_stack_model.last_stack_model


def test_training_mode_returns_every_stack_and_uses_batch_statistics():
    model = build_model(_two_stack_tiny())
    _randomize(model)
    images = _images((2, 32, 32, 3), seed=2)
    inference = model(images, training=False)
    training = model(images, training=True)
    for key in OUTPUT_KEYS:
        assert len(training[key]) == 2
        assert training[key][0].shape == inference[key][0].shape
    # BatchNorm switches to batch statistics: the maps differ.
    assert not np.allclose(
        training["tl_heat"][1].numpy(), inference["tl_heat"][1].numpy(), atol=1e-3
    )


def test_uint8_images_are_normalised_with_the_coco_statistics(two_stack_model):
    pixels = np.random.default_rng(3).integers(0, 256, size=(1, 63, 63, 3), dtype=np.uint8)
    normalised = (
        pixels.astype(np.float32) / 255.0 - np.array(COCO_MEAN_RGB, np.float32)
    ) / np.array(COCO_STD_RGB, np.float32)
    _assert_same_outputs(
        two_stack_model(pixels, training=False), two_stack_model(normalised, training=False), 1e-5
    )


def test_float64_images_match_float32(two_stack_model):
    images = _images((1, 32, 63, 3), seed=4)
    _assert_same_outputs(
        two_stack_model(images.astype(np.float64), training=False),
        two_stack_model(images, training=False),
        1e-5,
    )


@pytest.mark.parametrize(
    "images, fragments",
    [
        (np.zeros((63, 63, 3), np.float32), ["shape", "(63, 63, 3)"]),
        (np.zeros((1, 63, 63, 4), np.float32), ["shape", "4"]),
        (np.zeros((1, 63, 63, 3), np.int32), ["dtype", "int32"]),
        (np.zeros((1, 100, 63, 3), np.float32), ["height 100", "multiple of 8"]),
        (np.zeros((1, 63, 70, 3), np.float32), ["width 70", "multiple of 8"]),
    ],
    ids=["3d", "4_channels", "int32", "bad_height", "bad_width"],
)
def test_bad_input_is_a_clear_value_error(two_stack_model, images, fragments):
    with pytest.raises(ValueError) as info:
        two_stack_model(images)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_stacks_argument(two_stack_model):
    with pytest.raises(ValueError, match="stacks must be 'all' or 'last'"):
        two_stack_model(_images((1, 32, 32, 3)), stacks="first")


# --------------------------------------------------------------------------- serialisation


def test_get_config_from_config_round_trip(two_stack_model):
    config = two_stack_model.get_config()
    json.dumps(config)  # plain data
    clone = CornerNet.from_config(config)
    assert clone.model_config == two_stack_model.model_config
    assert clone.count_params() == two_stack_model.count_params()
    clone.set_weights(two_stack_model.get_weights())
    images = _images((1, 32, 63, 3), seed=5)
    _assert_same_outputs(clone(images, training=False), two_stack_model(images, training=False))


def test_keras_file_round_trip(two_stack_model, tmp_path):
    path = tmp_path / "cornernet.keras"
    two_stack_model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CornerNet)
    assert loaded.model_config == two_stack_model.model_config
    images = _images((2, 32, 63, 3), seed=6)
    _assert_same_outputs(
        loaded(images, training=False), two_stack_model(images, training=False), atol=0
    )
    _assert_same_outputs(
        loaded(images, training=False, stacks="last"),
        two_stack_model(images, training=False, stacks="last"),
        atol=0,
    )


def test_weights_file_round_trip(two_stack_model, tmp_path):
    path = tmp_path / "cornernet.weights.h5"
    two_stack_model.save_weights(path)
    fresh = build_model(_two_stack_tiny())
    images = _images((1, 63, 32, 3), seed=7)
    before = fresh(images, training=False)
    fresh.load_weights(path)
    after = fresh(images, training=False)
    expected = two_stack_model(images, training=False)
    assert not np.allclose(before["tl_heat"][0].numpy(), expected["tl_heat"][0].numpy())
    _assert_same_outputs(after, expected, atol=0)
    for a, b in zip(fresh.weights, two_stack_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_summary_lists_the_stacks_layers(two_stack_model):
    lines = []
    two_stack_model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    for name in ("stem", "merge_0", "cnv_1"):
        assert name in text
    for stack in range(2):
        for layer in (
            "hourglass",
            "tl_pool",
            "br_pool",
            "tl_heat",
            "br_heat",
            "tl_tag",
            "br_tag",
            "tl_regr",
            "br_regr",
        ):
            assert f"{layer}_{stack}" in text
    assert f"{two_stack_model.count_params():,}" in text


# --------------------------------------------------------------------------- backbones and layers


def test_every_config_backbone_is_registered_and_built_alike():
    from cornernet_tf.config import BACKBONE_OUTPUT_STRIDES
    from cornernet_tf.modeling.backbones import BACKBONES, build_backbone
    from cornernet_tf.modeling.hourglass import HourglassModule

    assert set(BACKBONES) == set(BACKBONE_OUTPUT_STRIDES)
    for name, stride in BACKBONE_OUTPUT_STRIDES.items():
        cfg = load_model_config(dict(_two_stack_tiny(), backbone=name))
        stem, stacks, merges = build_backbone(cfg)
        assert stem.residuals == int(np.log2(stride)) - 1, name
        assert len(stacks) == 2 and len(merges) == 1
        assert set(stacks[0]) == {
            "hourglass",
            "cnv",
            *(f"{c}_{k}" for c in ("tl", "br") for k in ("pool", "heat", "tag", "regr")),
        }
        hourglass = stacks[0]["hourglass"]
        assert isinstance(hourglass, HourglassModule)
        assert hourglass.block == BACKBONES[name].block
        assert hourglass.upsample == BACKBONES[name].upsample
        assert stacks[0]["tl_heat"].kernel_size == BACKBONES[name].head_kernel


def test_squeeze_image_sizes_are_checked_at_its_own_stride():
    model = build_model(dict(_two_stack_tiny(), backbone="squeeze"))
    with pytest.raises(ValueError) as info:
        model(np.zeros((1, 100, 127, 3), np.float32))
    assert "height 100" in str(info.value) and "ceil(height / 8)" in str(info.value)


def test_the_network_imports_nothing_from_training():
    import subprocess
    import sys

    code = (
        "import sys, cornernet_tf.modeling.cornernet; "
        "print(sorted(m for m in sys.modules if m.startswith('cornernet_tf.training')))"
    )
    root = pathlib.Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_compiling_the_bare_network_points_at_the_task():
    network = build_model(TINY)
    with pytest.raises(ValueError, match="CornerNetTask"):
        network.compile(optimizer="adam")
