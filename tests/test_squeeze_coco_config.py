"""configs/cornernet_squeeze_coco.yaml: the official CornerNet_Squeeze.json settings, and the path
official weights -> Detector / TFLite (LiteRT) with those settings, on the golden reduced model."""

import numpy as np
import pytest
from golden import GOLDEN_SQUEEZE_CONFIG, load_lite_golden
from test_tflite import assert_builtin_only, assert_same_detections

from cornernet_tf.config import DataConfig, load_config
from cornernet_tf.convert import load_official_weights
from cornernet_tf.decode import decode
from cornernet_tf.export import postprocess as pp
from cornernet_tf.export.litert_runner import LiteRTDetector
from cornernet_tf.export.tflite import convert_variants
from cornernet_tf.inference.detector import Detector
from cornernet_tf.modeling.cornernet import build_model

CONFIG = "configs/cornernet_squeeze_coco.yaml"
# The golden reduced network inside the official settings (everything but the model's widths).
REDUCED = [
    f"model.{key}={value}".replace(" ", "")
    for key, value in GOLDEN_SQUEEZE_CONFIG.items()
    if key != "backbone"
] + ["model.corner_pool_impl=tf", "data.input_size=[255,255]"]


def test_official_test_and_training_settings():
    config = load_config(CONFIG)
    test, data, train, model = config.test, config.data, config.train, config.model
    assert (test.top_k, test.flip, test.scales, test.num_dets) == (20, False, [1.0], 100)
    assert (test.ae_threshold, test.nms_kernel, test.nms_threshold) == (0.5, 3, 0.5)
    assert (test.max_per_image, test.nms_algorithm, test.merge_bbox) == (100, "exp", False)
    assert model.output_stride == 8 and data.input_size == [511, 511]
    assert data.output_hw == (64, 64)  # CornerNet_Squeeze.json output_sizes [[64, 64]]
    assert (data.border, data.gaussian_iou) == (128, 0.3)
    assert data.rand_scales == DataConfig().rand_scales  # np.arange(0.6, 1.4, 0.1)
    assert (train.batch_size, train.learning_rate) == (55, 0.00025)
    assert (train.max_steps, train.decay_step, train.decay_factor) == (500000, 450000, 10.0)
    assert model == load_config("configs/cornernet_squeeze.yaml").model
    assert config.export.corner_pool_impl == "tf"


@pytest.fixture(scope="module")
def official():
    """The golden reduced CornerNet-Squeeze with its official weights, in the official settings."""
    config = load_config(CONFIG, REDUCED)
    model = build_model(config.model)
    load_official_weights(model, load_lite_golden("squeeze_model_weights.npz"))
    image = np.random.default_rng(8).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    return model, config, image


def test_detector_runs_the_official_single_scale_procedure(official):
    model, config, image = official
    step = Detector(model, config.test).detect_scale(image, 1.0)
    assert step["net_input"].shape == (1, 255, 255, 3)  # one view: no flip; 200 | 127, 240 | 127
    assert step["decoded"].shape == (1, 100, 8)  # num_dets pairs
    maps = model(step["net_input"], training=False, stacks="last")
    names = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")
    expected = decode(*[maps[n][0] for n in names], K=20, kernel=3, ae_threshold=0.5, num_dets=100)
    np.testing.assert_allclose(step["decoded"][0], expected.numpy()[0], atol=1e-5)


def test_tflite_float32_carries_the_settings_and_the_detections(official, tmp_path):
    model, config, image = official
    path = str(tmp_path / "squeeze_official.tflite")
    convert_variants(model, {"none": path}, config=config)
    meta = assert_builtin_only(path)
    assert meta["postprocess"]["top_k"] == 20 and meta["postprocess"]["num_dets"] == 100
    assert meta["input"]["shape"] == [1, 255, 255, 3] and meta["output_stride"] == 8
    runner = LiteRTDetector(path, num_threads=2)
    assert runner.config.top_k == 20
    canvas, geometry = pp.prepare_input(image, runner.input_hw, runner.output_stride)
    keras_maps = model(canvas, training=False, stacks="last")
    keras_maps = {name: keras_maps[name][-1].numpy() for name in pp.MAP_NAMES}
    lite_maps = runner.maps(canvas)
    for name in pp.MAP_NAMES:
        np.testing.assert_allclose(lite_maps[name], keras_maps[name], atol=1e-4, err_msg=name)
    expected = pp.postprocess(keras_maps, geometry, runner.config)
    assert_same_detections(runner.detect(image), expected, "official squeeze float32")
