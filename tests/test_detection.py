"""The detection contract: one declaration of names and layouts, one placement geometry (NumPy, with
its TF twin), and the NumPy decoder against the TF decoder on the golden decoder inputs."""

import inspect
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.config import ConfigError, TestConfig
from cornernet_tf.detection import contract, decode_np, geometry, geometry_tf
from cornernet_tf.detection.contract import (
    CLASS,
    CORNERS,
    OUTPUT_KEYS,
    REJECTED_SCORE,
    ROW_COLUMNS,
    ROW_SIZE,
    SCORE,
    TARGET_KEYS,
)
from cornernet_tf.detection.decode import decode
from cornernet_tf.detection.settings import (
    FIXED_SIZE_FIELDS,
    as_test_config,
    decode_settings,
    fixed_size_settings,
)

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "cornernet_tf"
DATA = os.path.join(os.path.dirname(__file__), "data")


# --------------------------------------------------------------------------- contract


def test_output_keys_are_corners_times_map_kinds_in_decode_order():
    assert tuple(f"{c}_{kind}" for kind in ("heat", "tag", "regr") for c in CORNERS) == OUTPUT_KEYS
    assert list(inspect.signature(decode).parameters)[:6] == list(OUTPUT_KEYS)
    assert list(inspect.signature(decode_np.decode).parameters)[:6] == list(OUTPUT_KEYS)


def test_row_columns_name_every_column_of_a_decoded_row():
    assert ROW_SIZE == 8 and ROW_COLUMNS[SCORE] == "score" and ROW_COLUMNS[CLASS] == "class"
    assert [getattr(contract, name.upper()) for name in ROW_COLUMNS] == list(range(ROW_SIZE))


def test_every_user_of_the_keys_shares_the_contract():
    from cornernet_tf.export import postprocess
    from cornernet_tf.modeling import cornernet
    from cornernet_tf.targets import encode_targets
    from cornernet_tf.training import steps

    assert cornernet.OUTPUT_KEYS is OUTPUT_KEYS and cornernet.CORNERS is CORNERS
    assert steps.TARGET_KEYS is TARGET_KEYS and postprocess.MAP_NAMES is OUTPUT_KEYS
    targets = encode_targets(
        np.array([[2.0, 3.0, 20.0, 30.0]]), np.array([1]), (63, 63), (16, 16), 3
    )
    assert set(TARGET_KEYS) <= set(targets)


@pytest.mark.parametrize(
    "pattern",
    ['"tl_heat", "br_heat"', '"tl_heatmap", "br_heatmap"', "REJECTED_SCORE = ", "SIZE_MASK = "],
)
def test_contract_is_declared_once_in_the_package(pattern):
    homes = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if pattern in path.read_text(encoding="utf-8")
    )
    expected = "detection/geometry.py" if "SIZE_MASK" in pattern else "detection/contract.py"
    assert homes == [expected]


def test_serving_box_conversion_round_trips():
    boxes = np.array([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 200.0, 100.0]], np.float32)
    yxyx = contract.pixels_to_normalised_yxyx(boxes, height=100, width=200)
    np.testing.assert_allclose(yxyx[0], [0.2, 0.05, 0.8, 0.25])
    np.testing.assert_allclose(yxyx[1], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(contract.normalised_yxyx_to_pixels(yxyx, 100, 200), boxes, rtol=1e-6)


# --------------------------------------------------------------------------- settings


def test_decoder_defaults_are_the_test_config_defaults():
    expected = decode_settings(TestConfig())
    for fn in (decode, decode_np.decode):
        params = inspect.signature(fn).parameters
        assert {name: params[name].default for name in expected} == expected, fn.__module__


def test_test_config_from_a_mapping_names_a_bad_field():
    config = as_test_config({"top_k": 5, "nms_sigma": 0.7})
    assert (config.top_k, config.nms_sigma, config.flip) == (5, 0.7, TestConfig().flip)
    assert as_test_config(fixed_size_settings(config)) == TestConfig(top_k=5, nms_sigma=0.7)
    assert set(fixed_size_settings(config)) == set(FIXED_SIZE_FIELDS)
    with pytest.raises(ConfigError, match="topk"):
        as_test_config({"topk": 5})
    with pytest.raises(ConfigError, match="nms_kernel"):
        as_test_config({"nms_kernel": 2})


# --------------------------------------------------------------------------- geometry

SIZES = [(1, 1), (2, 3), (90, 130), (127, 300), (128, 255), (255, 256), (383, 511), (480, 640)]
SCALES = [0.3, 0.5, 0.75, 1.0, 1.25, 1.5]


def _tf_geometry(height, width, scale, stride):
    got = geometry_tf.scale_geometry(tf.constant(height), tf.constant(width), scale, stride)
    return {key: tuple(int(v) for v in value.numpy()) for key, value in got.items()}


@pytest.mark.parametrize("stride", [4, 8])
def test_tf_geometry_equals_numpy_geometry(stride):
    checked = 0
    for height, width in SIZES:
        for scale in SCALES:
            if int(height * scale) < 1 or int(width * scale) < 1:
                continue  # NumPy refuses an empty image; the graph clamps to one pixel
            expected = geometry.scale_geometry(height, width, scale, stride)
            got = _tf_geometry(height, width, scale, stride)
            for key in ("new_hw", "inp_hw", "out_hw", "border", "copy_hw"):
                assert got[key] == tuple(getattr(expected, key)), (height, width, scale, key)
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize(
    "height, width, scale", [(90, 130, 1.0), (480, 640, 0.75), (127, 300, 1.5)]
)
def test_tf_map_back_and_flip_merge_equal_numpy(height, width, scale):
    expected_geometry = geometry.scale_geometry(height, width, scale)
    out_h, out_w = expected_geometry.out_hw
    rng = np.random.default_rng(height)
    rows = np.zeros((2, 64, ROW_SIZE), np.float32)
    rows[..., 0:4] = rng.uniform(-2, [out_w + 2, out_h + 2] * 2, (2, 64, 4))
    rows[..., 4:] = rng.uniform(0, 1, (2, 64, 4))

    expected = geometry.rows_to_image(geometry.merge_flip(rows, out_w), expected_geometry)
    tf_geometry = geometry_tf.scale_geometry(tf.constant(height), tf.constant(width), scale)
    merged = geometry_tf.merge_flip(tf.constant(rows), 1, tf_geometry["out_hw"][1])
    got = geometry_tf.rows_to_image(merged, tf_geometry, scale).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert got[:, 0].min() >= 0 and got[:, 2].max() <= width + 1e-4


def test_boxes_to_input_inverts_rows_to_image_inside_the_image():
    g = geometry.scale_geometry(90, 130, 1.25)
    # (int(130 * 1.25) = 162 clips at 129.6: boxes stay inside the resized image)
    boxes = np.array([[10.0, 5.0, 60.5, 70.25], [0.0, 0.0, 129.5, 89.5]])
    inp = geometry.boxes_to_input(boxes, g)
    rows = np.zeros((2, ROW_SIZE), np.float32)
    rows[:, 0:4] = inp * np.tile(g.ratios[::-1], 2)  # network input → output-map pixels
    np.testing.assert_allclose(geometry.rows_to_image(rows, g)[:, 0:4], boxes, atol=1e-4)


def test_canvas_geometry_shrinks_only_what_does_not_fit():
    fits = geometry.canvas_geometry(100, 120, (127, 127), 4)
    assert fits.scale == 1.0 and fits == geometry.scale_geometry(100, 120, 1.0)
    shrunk = geometry.canvas_geometry(400, 300, (255, 255), 8)
    assert shrunk.new_hw == (254, 191) and shrunk.inp_hw == (255, 255) and shrunk.out_hw == (32, 32)


# --------------------------------------------------------------------------- decoders


@pytest.fixture(scope="module")
def golden_maps():
    with np.load(os.path.join(DATA, "decode.npz")) as data:
        return {key: data[key].transpose(0, 2, 3, 1) for key in OUTPUT_KEYS}


@pytest.mark.parametrize(
    "settings",
    [
        dict(K=100, kernel=3, ae_threshold=0.5, num_dets=1000),  # the official test
        dict(K=20, kernel=1, ae_threshold=1, num_dets=100),
        dict(K=7, kernel=5, ae_threshold=0.3, num_dets=60),  # num_dets > K·K: padded rows
    ],
)
def test_numpy_decode_equals_tf_decode_on_golden_inputs(golden_maps, settings):
    maps = [golden_maps[key] for key in OUTPUT_KEYS]
    expected = decode(*(tf.constant(m) for m in maps), **settings).numpy()
    got = decode_np.decode(*maps, **settings)
    assert got.shape == expected.shape == (2, settings["num_dets"], ROW_SIZE)
    assert (got[..., SCORE] > REJECTED_SCORE).sum() > 0
    np.testing.assert_array_equal(got[..., SCORE] == REJECTED_SCORE, expected[..., SCORE] == -1.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_numpy_path_imports_no_tensorflow():
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import cornernet_tf.config
        from cornernet_tf.detection import contract, decode_np, finalise, geometry, settings, soft_nms
        from cornernet_tf.export import litert_runner, postprocess as pp

        g = pp.canvas_geometry(100, 100, (127, 127), 4)
        rng = np.random.default_rng(0)
        shapes = {"heat": 2, "tag": 1, "regr": 2}
        maps = {
            key: rng.normal(size=(1, 32, 32, shapes[key.split("_")[1]])).astype(np.float32)
            for key in contract.OUTPUT_KEYS
        }
        result = pp.postprocess(maps, g, settings.as_test_config({"top_k": 10}))
        assert result["boxes"].shape[1] == 4
        print("tensorflow" in sys.modules, "keras" in sys.modules)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
