"""Augmentation against the official sampler (tests/data/augment.npz, targets.npz).

Golden images are BGR; ours are RGB. Geometry is channel-agnostic and is compared directly;
colour operations are compared by converting the golden input to RGB and our output back.
"""

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, DataConfig
from cornernet_tf.data import augment

ATOL = 1e-5


@pytest.fixture(scope="module")
def golden():
    return load_golden("augment.npz")


@pytest.fixture(scope="module")
def golden_targets():
    return load_golden("targets.npz")


def bgr_to_rgb(x):
    return np.ascontiguousarray(np.asarray(x)[..., ::-1])


def test_get_border_matches_official(golden):
    for (border, size), expected in zip(
        golden["get_border_in_border_size"], golden["get_border_out"]
    ):
        assert int(augment.get_border(int(border), int(size))) == int(expected), (border, size)


def test_get_border_small_sizes_never_leave_an_empty_range():
    for size in range(1, 300, 7):
        b = int(augment.get_border(128, size))
        assert b >= 0 and size - b > b


@pytest.mark.parametrize("case", range(5))
def test_crop_image_matches_official(golden, case):
    cy, cx, h, w = (int(v) for v in golden[f"crop{case}_center_size"])
    image, border, offset = augment.crop_image(golden["crop_src_bgr_hwc_uint8"], (cy, cx), (h, w))
    np.testing.assert_array_equal(image.numpy(), golden[f"crop{case}_image"])
    np.testing.assert_array_equal(border.numpy(), golden[f"crop{case}_border"])
    np.testing.assert_array_equal(offset.numpy(), golden[f"crop{case}_offset"])


def test_random_crop_with_recorded_draws(golden):
    scale = golden["random_crop_draw_scale"]
    _, _, ctx = golden["random_crop_draw_ctx_low_high_value"]
    _, _, cty = golden["random_crop_draw_cty_low_high_value"]
    dets = golden["random_crop_dets_in"]
    image, boxes = augment.random_crop_with_draws(
        golden["random_crop_src"],
        dets[:, :4],
        scale,
        int(ctx),
        int(cty),
        golden["random_crop_view_size"],
    )
    np.testing.assert_array_equal(image.numpy(), golden["random_crop_image"])
    np.testing.assert_allclose(
        boxes.numpy(), golden["random_crop_dets_out"][:, :4], atol=ATOL, rtol=0
    )


def test_random_crop_draw_ranges_follow_the_border_rule(golden):
    src = golden["random_crop_src"]
    (w_low, w_high, _), (h_low, h_high, _) = (
        golden["random_crop_draw_ctx_low_high_value"],
        golden["random_crop_draw_cty_low_high_value"],
    )
    scales = [0.6, 1.0, 1.3]
    seen_ctx, seen_cty, seen_scale = set(), set(), set()
    for i in range(200):
        scale, ctx, cty = augment.draw_random_crop(tf.constant([7, i]), src.shape[:2], scales, 32)
        seen_ctx.add(int(ctx)), seen_cty.add(int(cty)), seen_scale.add(float(scale))
    assert min(seen_ctx) >= w_low and max(seen_ctx) < w_high
    assert min(seen_cty) >= h_low and max(seen_cty) < h_high
    assert seen_scale == set(scales)
    assert len(seen_ctx) > 20  # actually random


def test_color_jitter_with_recorded_alphas_and_order(golden):
    meta_order = ["saturation", "brightness", "contrast"]  # generation_report.json augment_meta
    order = [augment.JITTER_OPS.index(name) for name in meta_order]
    out = augment.color_jitter_with_draws(
        bgr_to_rgb(golden["color_src"]), order, golden["color_jitter_alphas_in_call_order"]
    )
    np.testing.assert_allclose(
        bgr_to_rgb(out.numpy()), golden["color_jitter_out"], atol=ATOL, rtol=0
    )


def test_color_jitter_every_order_is_a_different_function(golden):
    src = bgr_to_rgb(golden["color_src"])
    alphas = golden["color_jitter_alphas_in_call_order"]
    outs = {
        tuple(o): augment.color_jitter_with_draws(src, o, alphas).numpy()
        for o in [(0, 1, 2), (2, 0, 1), (1, 2, 0)]
    }
    values = list(outs.values())
    assert not np.allclose(values[0], values[1]) and not np.allclose(values[1], values[2])


def test_lighting_in_rgb_matches_official_bgr(golden):
    out = augment.lighting_with_alpha(
        bgr_to_rgb(golden["color_jitter_out"]), golden["lighting_alpha"]
    )
    np.testing.assert_allclose(bgr_to_rgb(out.numpy()), golden["lighting_out"], atol=ATOL, rtol=0)


def test_lighting_with_unreversed_eigenvectors_would_fail(golden):
    """The BGR->RGB conversion of the eigenvectors matters (guards the reorder itself)."""
    wrong = np.asarray(augment.EIGVEC_RGB)[::-1] @ (
        augment.EIGVAL.astype(np.float64) * golden["lighting_alpha"]
    )
    ours = bgr_to_rgb(golden["color_jitter_out"]) + wrong.astype(np.float32)
    assert not np.allclose(bgr_to_rgb(ours), golden["lighting_out"], atol=ATOL)


def test_normalize_with_rgb_statistics(golden):
    out = augment.normalize(bgr_to_rgb(golden["lighting_out"]), COCO_MEAN_RGB, COCO_STD_RGB)
    np.testing.assert_allclose(bgr_to_rgb(out.numpy()), golden["normalize_out"], atol=ATOL, rtol=0)


def test_fused_photometric_matches_the_official_sequence(golden):
    """Jitter (recorded order and alphas) + lighting + normalise in one pass: golden normalize_out."""
    order = [augment.JITTER_OPS.index(n) for n in ["saturation", "brightness", "contrast"]]
    out = augment.photometric(
        bgr_to_rgb(golden["color_src"]),
        COCO_MEAN_RGB,
        COCO_STD_RGB,
        order,
        golden["color_jitter_alphas_in_call_order"],
        golden["lighting_alpha"],
        scale=1.0,
    )
    np.testing.assert_allclose(bgr_to_rgb(out.numpy()), golden["normalize_out"], atol=ATOL, rtol=0)


def test_fused_photometric_equals_the_sequential_ops_on_uint8_images():
    rng = np.random.default_rng(8)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for i in range(6):
        order, alphas = augment.draw_color_jitter(tf.constant([i, 1]), 0.4)
        light = augment.draw_lighting(tf.constant([i, 2]), 0.1)
        x = tf.cast(image, tf.float32) / 255.0
        ref = augment.normalize(
            augment.lighting_with_alpha(augment.color_jitter_with_draws(x, order, alphas), light),
            COCO_MEAN_RGB,
            COCO_STD_RGB,
        )
        out = augment.photometric(image, COCO_MEAN_RGB, COCO_STD_RGB, order, alphas, light)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=ATOL, rtol=0)
    plain = augment.photometric(image, COCO_MEAN_RGB, COCO_STD_RGB)
    ref = augment.normalize(tf.cast(image, tf.float32) / 255.0, COCO_MEAN_RGB, COCO_STD_RGB)
    np.testing.assert_allclose(plain.numpy(), ref.numpy(), atol=ATOL, rtol=0)


def test_full_image_crop_resize_clip_match_the_debug_path(golden_targets):
    g = golden_targets
    for b in range(2):
        n_raw, n_in = int(g["dets_raw_count"][b]), int(g["dets_input_space_count"][b])
        raw = g["dets_raw"][b, :n_raw]
        image = g[f"raw_image_{b}_bgr_hwc_uint8"]
        cropped, boxes, _ = augment.full_image_crop(image, raw[:, :4])
        np.testing.assert_array_equal(boxes.numpy(), g["dets_after_full_image_crop"][b, :n_raw, :4])
        classes = raw[:, 4].astype(np.int32)
        resized, boxes, classes, _ = augment.resize_full_image(
            image, raw[:, :4], classes, (511, 511)
        )
        # float64 and the official ratio order: bit-exact, not merely close.
        np.testing.assert_array_equal(boxes.numpy(), g["dets_input_space"][b, :n_in, :4])
        np.testing.assert_array_equal(
            classes.numpy(), g["dets_input_space"][b, :n_in, 4].astype(np.int32)
        )
        np.testing.assert_array_equal(
            resized.numpy(), g["images_bgr_nchw_uint8"][b].transpose(1, 2, 0)
        )


def test_full_image_crop_odd_size_leaves_last_row_and_column_zero(golden_targets):
    image = golden_targets["raw_image_0_bgr_hwc_uint8"]  # 511 x 511
    cropped, _, _ = augment.full_image_crop(image, np.zeros((0, 4)))
    cropped = cropped.numpy()
    assert cropped.shape == (511, 511, 3)
    assert cropped[510].max() == 0 and cropped[:, 510].max() == 0
    np.testing.assert_array_equal(cropped[:510, :510], image[:510, :510])


def test_resize_uint8_identity_and_against_tf_bilinear():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(augment.resize_uint8(image, (37, 53)).numpy(), image)
    for size in [(64, 80), (20, 30), (37, 100)]:
        ours = augment.resize_uint8(image, size).numpy().astype(int)
        ref = tf.image.resize(image.astype(np.float32), size, "bilinear").numpy()
        assert np.abs(ours - ref).max() <= 1.0  # fixed point vs float: never more than 1 apart


def test_clip_detections_drops_degenerate_and_keeps_classes_aligned():
    boxes = np.array(
        [[-5, -5, 20, 30], [10, 10, 10, 40], [600, 10, 700, 40], [500, 500, 520, 530.5]], np.float64
    )
    out, classes = augment.clip_detections(boxes, np.array([0, 1, 2, 3], np.int32), (511, 511))
    np.testing.assert_array_equal(classes.numpy(), [0, 3])
    np.testing.assert_array_equal(out.numpy(), [[0, 0, 20, 30], [500, 500, 510, 510]])


def test_flip_uses_w_minus_x_minus_1():
    image = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    flipped, boxes = augment.flip_horizontal(image, np.array([[0.0, 1.0, 2.5, 2.0]]))
    np.testing.assert_array_equal(flipped.numpy(), image[:, ::-1])
    np.testing.assert_array_equal(boxes.numpy(), [[5 - 2.5 - 1, 1.0, 5 - 0 - 1, 2.0]])
    # Flipping twice gives the input back.
    again, boxes2 = augment.flip_horizontal(flipped, boxes)
    np.testing.assert_array_equal(again.numpy(), image)
    np.testing.assert_array_equal(boxes2.numpy(), [[0.0, 1.0, 2.5, 2.0]])


def _small_config(**kw):
    return DataConfig(input_size=[63, 95], border=16, **kw)


def test_training_augmentation_is_reproducible_and_seed_dependent():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 12, 50, 60], [40, 5, 89, 69]], np.float64)
    classes = np.array([0, 1], np.int32)
    config = _small_config()
    a = augment.augment_for_training(image, boxes, classes, tf.constant([1, 2]), config)
    b = augment.augment_for_training(image, boxes, classes, tf.constant([1, 2]), config)
    c = augment.augment_for_training(image, boxes, classes, tf.constant([1, 3]), config)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].shape == (63, 95, 3) and a[0].dtype == tf.float32
    assert not np.array_equal(a[0].numpy(), c[0].numpy())
    out_boxes = a[1].numpy()
    assert (out_boxes[:, [0, 2]] >= 0).all() and (out_boxes[:, [0, 2]] <= 94).all()
    assert (out_boxes[:, [1, 3]] >= 0).all() and (out_boxes[:, [1, 3]] <= 62).all()


def test_training_chain_equals_composition_of_the_golden_checked_parts():
    """With every switch on, the chain is crop -> resize -> clip -> flip -> /255 -> jitter -> lighting -> normalise."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 12, 50, 60], [40, 5, 89, 69]], np.float64)
    classes = np.array([0, 1], np.int32)
    config = _small_config()
    seed = tf.constant([5, 9])
    out_image, out_boxes, out_classes = augment.augment_for_training(
        image, boxes, classes, seed, config
    )

    crop_seed, flip_seed, jitter_seed, light_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    scale, ctx, cty = augment.draw_random_crop(
        crop_seed, image.shape[:2], config.rand_scales, config.border
    )
    img, bx = augment.random_crop_with_draws(image, boxes, scale, ctx, cty, config.input_size)
    img, bx = augment.resize_image(img, bx, config.input_size)
    bx, cl = augment.clip_detections(bx, classes, config.input_size)
    if float(tf.random.stateless_uniform([], flip_seed, dtype=tf.float64)) > 0.5:
        img, bx = augment.flip_horizontal(img, bx)
    img = tf.cast(img, tf.float32) / 255.0
    img = augment.color_jitter_with_draws(img, *augment.draw_color_jitter(jitter_seed, 0.4))
    img = augment.lighting_with_alpha(img, augment.draw_lighting(light_seed, 0.1))
    img = augment.normalize(img, config.mean, config.std)
    np.testing.assert_allclose(out_image.numpy(), img.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(out_boxes.numpy(), bx.numpy())
    np.testing.assert_array_equal(out_classes.numpy(), cl.numpy())


def test_switches_turn_steps_off():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    boxes = np.array([[10, 12, 50, 40]], np.float64)
    classes = np.array([2], np.int32)
    seed = tf.constant([0, 1])
    plain = _small_config(augment=False)
    out, bx, cl = augment.augment_for_training(image, boxes, classes, seed, plain)
    ref_img, ref_boxes, _, _ = augment.resize_full_image(image, boxes, classes, plain.input_size)
    expected = augment.normalize(tf.cast(ref_img, tf.float32) / 255.0, plain.mean, plain.std)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(bx.numpy(), ref_boxes.numpy())
    # Colour off: pixel values before normalisation are the resized uint8 values (k / 255).
    nocolor = _small_config(color_jitter=False, lighting=False, flip=False)
    out, _, _ = augment.augment_for_training(image, boxes, classes, seed, nocolor)
    raw = out.numpy() * np.float32(nocolor.std) + np.float32(nocolor.mean)
    np.testing.assert_allclose(raw * 255, np.round(raw * 255), atol=1e-3)


def test_flip_happens_about_half_the_time_and_mirrors_everything():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    boxes = np.array([[3, 4, 30, 33]], np.float64)
    classes = np.array([1], np.int32)
    with_flip = _small_config(color_jitter=False, lighting=False)
    no_flip = _small_config(color_jitter=False, lighting=False, flip=False)
    width = with_flip.input_size[1]
    flips = 0
    for i in range(40):
        seed = tf.constant([11, i])
        a_img, a_boxes, _ = augment.augment_for_training(image, boxes, classes, seed, with_flip)
        b_img, b_boxes, _ = augment.augment_for_training(image, boxes, classes, seed, no_flip)
        if np.array_equal(a_img.numpy(), b_img.numpy()):
            np.testing.assert_array_equal(a_boxes.numpy(), b_boxes.numpy())
        else:
            flips += 1
            np.testing.assert_array_equal(a_img.numpy(), b_img.numpy()[:, ::-1])
            b = b_boxes.numpy()
            np.testing.assert_array_equal(a_boxes.numpy()[:, [0, 2]], width - b[:, [2, 0]] - 1)
    assert 8 <= flips <= 32
