"""data.image_scale: the auto rule, the training crop it implies, the test scales, the saved number."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from cornernet_tf.config import DataConfig, load_config
from cornernet_tf.data import augment
from cornernet_tf.data.check import check_dataset
from cornernet_tf.data.image_scale import (
    LADDER,
    auto_image_scale,
    resolve_image_scale,
    scaled_test_config,
    snap,
)
from cornernet_tf.training.workdir import prepare_workdir


def _boxes_with_longer_sides(sides, seed=0):
    """Boxes whose longer side is ``sides`` (the other side 0.5-1x of it), at random places."""
    rng = np.random.default_rng(seed)
    sides = np.asarray(sides, np.float64)
    other = sides * rng.uniform(0.5, 1.0, len(sides))
    wide = rng.random(len(sides)) < 0.5
    w, h = np.where(wide, sides, other), np.where(wide, other, sides)
    x, y = rng.uniform(0, 500, len(sides)), rng.uniform(0, 400, len(sides))
    return np.stack([x, y, x + w, y + h], axis=1)


@pytest.mark.parametrize(
    "median, expected",
    [
        (301, 0.25),  # one large object per photo: 0.6 * 127 / 301 = 0.253
        (64, 1.0),  # synthetic shapes: already in the band, left alone
        (120, 0.6),  # many mid-size objects in a 640x480 photo: 76.2 / 120 = 0.635
        (900, 0.1),  # 76.2 / 900 = 0.085, clamped
        (10, 2.0),  # tiny objects: 19.05 / 10 = 1.9, brought up
        (5, 2.0),  # 3.8 clamped to 2
    ],
)
def test_auto_rule_on_box_statistics(median, expected):
    sides = median * np.exp(
        np.linspace(-1.0, 1.0, 201)
    )  # log-symmetric: the middle one is the median
    decision = auto_image_scale(_boxes_with_longer_sides(sides), (127, 127))
    assert decision.median_side == pytest.approx(median)
    assert decision.scale == expected
    assert decision.describe().startswith(f"image_scale auto -> {expected:g} (median box {median}")


def test_auto_rule_uses_the_shorter_input_side_and_ignores_degenerate_boxes():
    boxes = np.array([[0, 0, 301, 100], [0, 0, 301, 50], [5, 5, 5, 9], [0, 0, np.nan, 4]])
    decision = auto_image_scale(boxes, (127, 255))
    assert decision.num_boxes == 2 and decision.median_side == 301 and decision.scale == 0.25
    assert auto_image_scale(np.zeros((0, 4)), (127, 127)).scale == 1.0


def test_snap_picks_the_nearest_readable_value_on_a_log_scale():
    assert snap(0.253) == 0.25 and snap(0.22) == 0.2 and snap(0.23) == 0.25 and snap(1.1) == 1.0
    assert all(snap(v) == v for v in LADDER)


def _official_random_crop(image, boxes, height, width, ctx, cty):
    """NumPy transcription of the official ``random_crop`` + ``crop_image`` for given draws."""
    im_h, im_w = image.shape[:2]
    cropped = np.zeros((height, width, 3), image.dtype)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, im_w)
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, im_h)
    left, right, top, bottom = ctx - x0, x1 - ctx, cty - y0, y1 - cty
    c_cty, c_ctx = height // 2, width // 2
    cropped[c_cty - top : c_cty + bottom, c_ctx - left : c_ctx + right] = image[y0:y1, x0:x1]
    boxes = boxes.copy()
    boxes[:, 0::2] += -x0 + c_ctx - left
    boxes[:, 1::2] += -y0 + c_cty - top
    return cropped, boxes


@pytest.mark.parametrize("image_scale", [0.25, 0.6, 2.0])
def test_crop_geometry_with_image_scale_matches_numpy(image_scale):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)
    boxes = np.array([[40.0, 30.0, 260.0, 250.0], [300.5, 100.25, 400.0, 290.0]])
    config = DataConfig(input_size=[127, 95], image_scale=image_scale)
    view, border = augment.crop_view(config)
    assert view == [127 / image_scale, 95 / image_scale]
    assert border == round(128 / image_scale)
    for scale, ctx, cty in ((0.7, 200, 150), (1.3, 30, 280), (0.6, 405, 5)):
        draw = tf.constant(scale, tf.float64)  # as draw_random_crop returns it
        got_image, got_boxes = augment.random_crop_with_draws(image, boxes, draw, ctx, cty, view)
        height, width = int(127 / image_scale * scale), int(95 / image_scale * scale)
        ref_image, ref_boxes = _official_random_crop(image, boxes, height, width, ctx, cty)
        np.testing.assert_array_equal(got_image.numpy(), ref_image)
        np.testing.assert_array_equal(got_boxes.numpy(), ref_boxes)
        # Resized to the input, objects come out image_scale / scale times their photo size.
        _, resized = augment.resize_image(got_image, got_boxes, config.input_size)
        sizes = resized.numpy()[:, 2:] - resized.numpy()[:, :2]
        ratio = np.array([95 / width, 127 / height])
        np.testing.assert_allclose(sizes, (boxes[:, 2:] - boxes[:, :2]) * ratio)
        np.testing.assert_allclose(ratio, image_scale / scale, rtol=0.03)


def test_image_scale_one_keeps_the_official_crop_arguments():
    config = DataConfig(input_size=[127, 95], border=64)
    view, border = augment.crop_view(config)
    assert view is config.input_size and border == 64


def test_training_augmentation_uses_the_scaled_crop():
    """augment_for_training draws the crop with the scaled border and view (flip/colour off)."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    boxes, classes = np.array([[50.0, 40.0, 250.0, 200.0]]), np.array([0], np.int32)
    config = DataConfig(
        input_size=[63, 63], image_scale=0.25, flip=False, color_jitter=False, lighting=False
    )
    seed = tf.constant([7, 11], tf.int64)
    _, got_boxes, _ = augment.augment_for_training(image, boxes, classes, seed, config)
    crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))[0]
    scale, ctx, cty = augment.draw_random_crop(crop_seed, (240, 320), config.rand_scales, 512)
    height = int(63 * 4 * float(scale))
    _, ref = _official_random_crop(image, boxes, height, height, int(ctx), int(cty))
    ref = np.clip(ref * (63 / height), 0, 62)
    np.testing.assert_allclose(got_boxes.numpy(), ref, rtol=1e-12)


def test_test_scales_are_multiplied():
    config = load_config(None, ["data.image_scale=0.25", "test.scales=[1.0, 1.25]"])
    assert scaled_test_config(config).scales == [0.25, 0.3125]
    assert config.test.scales == [1.0, 1.25]  # the config itself is unchanged
    plain = load_config(None, ["test.scales=[1.0, 1.25]"])
    assert scaled_test_config(plain) is plain.test


@pytest.fixture
def large_box_set(tmp_path):
    """A COCO file whose boxes have a median longer side of 300 px (image files not needed)."""
    images = tmp_path / "images"
    images.mkdir()
    sides = [200, 300, 420]
    data = {
        "images": [
            {"id": i + 1, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(3)
        ],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [10, 10, s, s * 0.6]}
            for i, s in enumerate(sides)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return path, images


def test_resolved_number_is_saved_in_the_workdir_and_used_from_there(
    large_box_set, tmp_path, capsys
):
    annotations, images = large_box_set
    config = load_config(
        "cornernet_custom",
        [f"data.train_annotations={annotations}", f"data.train_images={images}"],
    )
    assert config.data.image_scale == "auto"
    assert scaled_test_config(config).scales == [0.25]  # eval/detect of this config derive it too
    resolved = resolve_image_scale(config)  # what training does before saving the config
    assert "image_scale auto -> 0.25 (median box 300 px, input 127" in capsys.readouterr().out
    paths = prepare_workdir(str(tmp_path / "run"), resolved)
    with open(paths.config, encoding="utf-8") as fh:
        assert yaml.safe_load(fh)["data"]["image_scale"] == 0.25
    saved = load_config(paths.config)
    assert saved.data.image_scale == 0.25
    assert scaled_test_config(saved).scales == [0.25]
    assert capsys.readouterr().out == ""  # a number: nothing to derive or print


def test_auto_without_training_boxes_means_one(capsys):
    config = load_config("cornernet_custom")
    assert scaled_test_config(config).scales == [1.0]
    assert capsys.readouterr().out == ""  # nothing measured: logged, not printed


def test_data_check_reports_the_auto_scale(large_box_set):
    annotations, images = large_box_set
    result = check_dataset(str(annotations), str(images), scan="none", input_size=(127, 127))
    assert "image_scale auto -> 0.25 (median box 300 px, input 127, 3 boxes)" in result.text


def test_custom_and_tiny_configs_need_no_data_paths():
    for name in ("cornernet_custom", "cornernet_tiny"):
        config = load_config(name)
        assert config.data.image_scale == "auto"
        data = config.data
        assert not any((data.train_annotations, data.val_annotations, data.val_images))
    custom = load_config("cornernet_custom")
    assert custom.train.decay_step < custom.train.max_steps
    assert load_config("cornernet_hg104_coco").data.image_scale == 1.0
