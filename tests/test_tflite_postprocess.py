"""The NumPy pre/post-processing shipped for TFLite models, against the TF implementations it mirrors."""

import numpy as np
import pytest

from cornernet_tf.config import TestConfig
from cornernet_tf.decode import decode as tf_decode
from cornernet_tf.export import postprocess as pp
from cornernet_tf.inference.detector import rescale_detections
from cornernet_tf.inference.preprocess import ScaleGeometry, scale_geometry


def _maps(rng, b, h, w, c, ties=False):
    heat = rng.normal(-2, 1.5, (2, b, h, w, c)).astype(np.float32)
    if ties:  # coarse values: plateaus and equal scores across classes and pixels
        heat = np.round(heat * 2) / 2
    tags = rng.normal(0, 0.4, (2, b, h, w, 1)).astype(np.float32)
    regr = rng.uniform(0, 1, (2, b, h, w, 2)).astype(np.float32)
    return heat[0], heat[1], tags[0], tags[1], regr[0], regr[1]


@pytest.mark.parametrize(
    "b, h, w, c, k, num_dets, ties",
    [
        (2, 16, 12, 3, 20, 300, False),
        (1, 9, 7, 2, 30, 100, True),
        (1, 3, 2, 1, 10, 150, False),  # C·H·W < K and num_dets > K·K
    ],
)
def test_numpy_decode_equals_tf_decode(b, h, w, c, k, num_dets, ties):
    maps = _maps(np.random.default_rng(h * w), b, h, w, c, ties)
    expected = tf_decode(*maps, K=k, num_dets=num_dets).numpy()
    got = pp.decode(*maps, K=k, num_dets=num_dets)
    assert got.shape == expected.shape == (b, num_dets, 8)
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("h, w", [(192, 192), (97, 131), (127, 100), (128, 255), (1, 1)])
def test_geometry_is_the_official_one_when_the_canvas_is_size_or_127(h, w):
    official = scale_geometry(h, w, 1.0)
    got = pp.canvas_geometry(h, w, official.inp_hw, 4)
    assert got.scale == 1.0 and got.new_hw == (h, w)
    assert got.out_hw == official.out_hw and got.copy_hw == official.copy_hw
    np.testing.assert_array_equal(np.array(got.border, np.float32), official.border)
    np.testing.assert_array_equal(got.ratios, official.ratios)
    rows = np.random.default_rng(1).uniform(0, 70, (50, 8)).astype(np.float32)
    as_official = ScaleGeometry(
        1.0, official.new_hw, official.inp_hw, official.out_hw, official.border, official.copy_hw
    )
    np.testing.assert_array_equal(
        pp.rescale(rows, got), rescale_detections(rows.copy(), as_official)
    )


def test_large_images_are_shrunk_to_fit_and_centred():
    g = pp.canvas_geometry(400, 300, (255, 255), 8)
    assert g.scale == 255 / 400 and g.new_hw == (int(400 * g.scale), int(300 * g.scale)) == (
        254,
        191,
    )
    assert g.out_hw == (32, 32)
    canvas, geometry = pp.prepare_input(np.full((400, 300, 3), 200, np.uint8), (255, 255), 8)
    assert canvas.shape == (1, 255, 255, 3) and geometry == g
    top, bottom, left, right = g.border
    assert np.all(canvas[0, top : top + g.copy_hw[0], left : left + g.copy_hw[1]] == 200)
    assert canvas[0, :, :left].max() == 0 and canvas[0, :, left + g.copy_hw[1] :].max() == 0
    rows = np.array([[left * 1.0 * 32 / 255, 0, 32, 32, 0.9, 0.9, 0.9, 0]], np.float32)  # whole map
    back = pp.rescale(rows, g)
    np.testing.assert_allclose(back[0, :4], [0, 0, 300, 400], atol=2.0)


def test_valid_input_sizes():
    assert pp.valid_input_size(191, 32) == 255  # the tiny hourglass: 191 | 127
    assert pp.valid_input_size(511, 128) == 511
    assert pp.valid_input_size(512, 128) == 639
    assert pp.valid_input_size(100, 256) == 255


def test_select_applies_official_soft_nms_per_class_and_keeps_live_boxes():
    rows = np.array(
        [
            [10, 10, 50, 50, 0.9, 0, 0, 0],
            [12, 10, 52, 50, 0.8, 0, 0, 0],  # overlaps the first box of its class: decayed
            [12, 10, 52, 50, 0.7, 0, 0, 1],  # another class: untouched
            [0, 0, 5, 5, -1.0, 0, 0, 0],  # rejected pair
        ],
        np.float32,
    )
    out = pp.select(rows, TestConfig())
    iou = (39 * 41) / (41 * 41 + 41 * 41 - 39 * 41)  # official +1 areas
    np.testing.assert_allclose(out["scores"], [0.9, 0.7, 0.8 * np.exp(-(iou**2) / 0.5)], rtol=1e-5)
    np.testing.assert_array_equal(out["classes"], [0, 1, 0])
    capped = pp.select(rows, TestConfig(max_per_image=2))
    assert len(capped["scores"]) == 2
    empty = pp.select(rows[3:], TestConfig())
    assert empty["boxes"].shape == (0, 4) and empty["classes"].shape == (0,)


def test_postprocess_checks_its_inputs():
    g = pp.canvas_geometry(100, 100, (127, 127), 4)
    maps = dict(zip(pp.MAP_NAMES, _maps(np.random.default_rng(0), 1, 32, 32, 2)))
    assert len(pp.postprocess(maps, g)["scores"]) <= 100
    with pytest.raises(ValueError, match="missing"):
        pp.postprocess({k: v for k, v in maps.items() if k != "br_tag"}, g)
    with pytest.raises(ValueError, match="output stride"):
        pp.postprocess(maps, pp.canvas_geometry(100, 100, (127, 127), 8))
    with pytest.raises(ValueError, match="uint8 RGB image"):
        pp.prepare_input(np.zeros((10, 10, 3), np.float32), (127, 127), 4)
    grey, _ = pp.prepare_input(np.full((10, 12), 7, np.uint8), (127, 127), 4)
    rgba, _ = pp.prepare_input(np.full((10, 12, 4), 7, np.uint8), (127, 127), 4)
    np.testing.assert_array_equal(grey, rgba)
