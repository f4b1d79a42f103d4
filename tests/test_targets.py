"""Training targets against the official sampler: golden tensors and an independent NumPy port."""

import math

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden

from cornernet_tf.targets import (
    draw_gaussian,
    draw_heatmaps,
    encode_targets,
    gaussian_bumps,
    gaussian_radius,
    object_radius,
)

GAUSSIAN = load_golden("gaussian.npz")
TARGETS = load_golden("targets.npz")


# ----------------------------------------------------------------- NumPy port of the official code
# sample/utils.py (commit 3e71377) and the encoding loop of sample/coco.py:kp_detection, kept
# loop-by-loop so it shares nothing with the vectorised TF implementation.


def ref_gaussian_radius(det_size, min_overlap):
    height, width = det_size
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - np.sqrt(b1**2 - 4 * a1 * c1)) / (2 * a1)
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - np.sqrt(b2**2 - 4 * a2 * c2)) / (2 * a2)
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def ref_gaussian2d(shape, sigma):
    m, n = [(ss - 1.0) / 2.0 for ss in shape]
    y, x = np.ogrid[-m : m + 1, -n : n + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def ref_draw_gaussian(heatmap, center, radius):
    diameter = 2 * radius + 1
    gaussian = ref_gaussian2d((diameter, diameter), sigma=diameter / 6)
    x, y = center
    height, width = heatmap.shape[0:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    masked_heatmap = heatmap[y - top : y + bottom, x - left : x + right]
    masked_gaussian = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(masked_heatmap, masked_gaussian, out=masked_heatmap)


def ref_encode(
    dets, input_size, output_size, categories, gaussian_bump=True, gaussian_rad=-1, iou=0.3
):
    """dets: [N, 5] (x1, y1, x2, y2, class_1based) float64. Heatmaps are returned [C, H, W]."""
    max_tag_len = 128
    tl_heat = np.zeros((categories, output_size[0], output_size[1]), np.float32)
    br_heat = np.zeros_like(tl_heat)
    tl_regr = np.zeros((max_tag_len, 2), np.float32)
    br_regr = np.zeros_like(tl_regr)
    tl_tag = np.zeros((max_tag_len,), np.int64)
    br_tag = np.zeros_like(tl_tag)
    width_ratio = output_size[1] / input_size[1]
    height_ratio = output_size[0] / input_size[0]
    for tag_ind, detection in enumerate(dets):
        category = int(detection[-1]) - 1
        fxtl, fytl = detection[0] * width_ratio, detection[1] * height_ratio
        fxbr, fybr = detection[2] * width_ratio, detection[3] * height_ratio
        xtl, ytl, xbr, ybr = int(fxtl), int(fytl), int(fxbr), int(fybr)
        if gaussian_bump:
            width = math.ceil((detection[2] - detection[0]) * width_ratio)
            height = math.ceil((detection[3] - detection[1]) * height_ratio)
            if gaussian_rad == -1:
                radius = max(0, int(ref_gaussian_radius((height, width), iou)))
            else:
                radius = gaussian_rad
            ref_draw_gaussian(tl_heat[category], [xtl, ytl], radius)
            ref_draw_gaussian(br_heat[category], [xbr, ybr], radius)
        else:
            tl_heat[category, ytl, xtl] = 1
            br_heat[category, ybr, xbr] = 1
        tl_regr[tag_ind, :] = [fxtl - xtl, fytl - ytl]
        br_regr[tag_ind, :] = [fxbr - xbr, fybr - ybr]
        tl_tag[tag_ind] = ytl * output_size[1] + xtl
        br_tag[tag_ind] = ybr * output_size[1] + xbr
    mask = np.zeros((max_tag_len,), np.uint8)
    mask[: len(dets)] = 1
    return dict(
        tl_heat=tl_heat,
        br_heat=br_heat,
        tl_regr=tl_regr,
        br_regr=br_regr,
        tl_tag=tl_tag,
        br_tag=br_tag,
        mask=mask,
    )


def encode_dets(dets, input_size, output_size, num_classes, **kwargs):
    """Our encoder on official-style [N, 5] detections with 1-based classes."""
    dets = np.asarray(dets, np.float64).reshape(-1, 5)
    return encode_targets(
        dets[:, :4], dets[:, 4].astype(np.int64) - 1, input_size, output_size, num_classes, **kwargs
    )


def assert_matches_reference(ours, ref, atol=1e-6):
    np.testing.assert_allclose(
        ours["tl_heatmap"].numpy().transpose(2, 0, 1), ref["tl_heat"], rtol=0, atol=atol
    )
    np.testing.assert_allclose(
        ours["br_heatmap"].numpy().transpose(2, 0, 1), ref["br_heat"], rtol=0, atol=atol
    )
    np.testing.assert_allclose(ours["tl_regr"].numpy(), ref["tl_regr"], rtol=0, atol=atol)
    np.testing.assert_allclose(ours["br_regr"].numpy(), ref["br_regr"], rtol=0, atol=atol)
    np.testing.assert_array_equal(ours["tl_tag"].numpy(), ref["tl_tag"])
    np.testing.assert_array_equal(ours["br_tag"].numpy(), ref["br_tag"])
    np.testing.assert_array_equal(ours["tag_mask"].numpy(), ref["mask"].astype(np.float32))


# ----------------------------------------------------------------------------- gaussian radius


@pytest.mark.parametrize("overlap", ["03", "07"])
def test_gaussian_radius_matches_official(overlap):
    hw = GAUSSIAN["radius_hw"]
    min_overlap = float(overlap[0] + "." + overlap[1])
    radius = gaussian_radius(hw[:, 0], hw[:, 1], min_overlap)
    assert radius.dtype == tf.float64 and radius.shape == (len(hw),)
    np.testing.assert_allclose(radius.numpy(), GAUSSIAN[f"radius_ov{overlap}"], rtol=1e-9, atol=0)
    np.testing.assert_array_equal(
        np.maximum(0, radius.numpy().astype(np.int64)), GAUSSIAN[f"radius_int_ov{overlap}"]
    )
    # The first-commit formula (CenterNet's) is about 2x larger: make sure it is not what we compute.
    assert np.all(radius.numpy() < GAUSSIAN[f"radius_firstcommit_ov{overlap}"])


def test_gaussian_radius_accepts_tensors_and_broadcasts():
    hw = GAUSSIAN["radius_hw"][:20]
    from_tensors = gaussian_radius(
        tf.constant(hw[:, 0], tf.float32), tf.constant(hw[:, 1]), 0.3
    ).numpy()
    np.testing.assert_allclose(from_tensors, GAUSSIAN["radius_ov03"][:20], rtol=1e-6)
    grid = gaussian_radius(np.array([[10.0], [20.0]]), np.array([5.0, 7.0, 9.0]), 0.3)
    assert grid.shape == (2, 3)
    assert grid.numpy()[1, 2] == pytest.approx(ref_gaussian_radius((20.0, 9.0), 0.3), rel=1e-12)


def test_object_radius_matches_golden_radius_used():
    for b in range(2):
        n = int(TARGETS["dets_input_space_count"][b])
        dets = TARGETS["dets_input_space"][b, :n]
        radius = object_radius(dets[:, :4], (511, 511), (128, 128), 0.3).numpy()
        np.testing.assert_array_equal(radius, TARGETS["radius_used"][b, :n])


# ------------------------------------------------------------------------------------ drawing


@pytest.mark.parametrize("diameter", [1, 3, 5, 7, 13, 25])
def test_bump_equals_official_kernel(diameter):
    r = (diameter - 1) // 2
    bump = gaussian_bumps([r], [r], [r], diameter, diameter, dtype=tf.float64)[0].numpy()
    np.testing.assert_allclose(bump, GAUSSIAN[f"gaussian2D_d{diameter}"], rtol=0, atol=1e-15)
    assert bump[r, r] == 1.0


def test_bumps_match_official_draws_singles_and_merged():
    params = GAUSSIAN["draw_params_xyr"]
    bumps = gaussian_bumps(params[:, 0], params[:, 1], params[:, 2], 40, 50).numpy()
    assert bumps.dtype == np.float32 and bumps.shape == (8, 40, 50)
    np.testing.assert_allclose(bumps, GAUSSIAN["draw_heatmap_singles"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        bumps.max(axis=0), GAUSSIAN["draw_heatmap_merged"], rtol=0, atol=1e-6
    )


def test_draw_gaussian_in_sequence_matches_merged():
    heatmap = tf.zeros([40, 50], tf.float32)
    for x, y, r in GAUSSIAN["draw_params_xyr"]:
        heatmap = draw_gaussian(heatmap, (int(x), int(y)), int(r))
    np.testing.assert_allclose(heatmap.numpy(), GAUSSIAN["draw_heatmap_merged"], rtol=0, atol=1e-6)


def test_draw_heatmaps_merges_per_class_only():
    params = GAUSSIAN["draw_params_xyr"]
    classes = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    heat = draw_heatmaps(params[:, 0], params[:, 1], params[:, 2], classes, 40, 50, 3).numpy()
    assert heat.shape == (40, 50, 3)
    singles = GAUSSIAN["draw_heatmap_singles"]
    np.testing.assert_allclose(heat[..., 0], singles[classes == 0].max(0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(heat[..., 1], singles[classes == 1].max(0), rtol=0, atol=1e-6)
    assert not heat[..., 2].any()


# ----------------------------------------------------------------------------- encode_targets


@pytest.mark.parametrize("b", [0, 1])
def test_encode_targets_matches_golden(b):
    n = int(TARGETS["dets_input_space_count"][b])
    out = encode_dets(TARGETS["dets_input_space"][b, :n], (511, 511), (128, 128), 3)
    gold = dict(
        tl_heat=TARGETS["tl_heatmaps"][b], br_heat=TARGETS["br_heatmaps"][b],
        tl_regr=TARGETS["tl_regrs"][b], br_regr=TARGETS["br_regrs"][b],
        tl_tag=TARGETS["tl_tags"][b], br_tag=TARGETS["br_tags"][b], mask=TARGETS["tag_masks"][b],
    )  # fmt: skip
    assert_matches_reference(out, gold)
    assert int(out["num_objects"]) == n and int(out["num_dropped"]) == 0
    # Every corner is a positive of exactly 1.0, which is what the focal loss counts.
    assert (out["tl_heatmap"].numpy() == 1.0).sum() == (TARGETS["tl_heatmaps"][b] == 1.0).sum()


def test_encode_targets_output_contract():
    out = encode_dets(TARGETS["dets_input_space"][0, :3], (511, 511), (128, 128), 3, max_objects=16)
    expected = {
        "tl_heatmap": ((128, 128, 3), tf.float32), "br_heatmap": ((128, 128, 3), tf.float32),
        "tl_regr": ((16, 2), tf.float32), "br_regr": ((16, 2), tf.float32),
        "tl_tag": ((16,), tf.int64), "br_tag": ((16,), tf.int64), "tag_mask": ((16,), tf.float32),
        "num_objects": ((), tf.int32), "num_dropped": ((), tf.int32),
    }  # fmt: skip
    assert set(out) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(out[key].shape) == shape and out[key].dtype == dtype, key


def _non_square_dets(rng):
    """Boxes in a 255 x 383 (H x W) input: random ones, border cases and float64 rounding cases."""
    in_h, in_w = 255, 383
    x1 = rng.uniform(0, in_w - 20, 14)
    y1 = rng.uniform(0, in_h - 20, 14)
    x2 = np.minimum(x1 + rng.uniform(1, 200, 14), in_w - 1)
    y2 = np.minimum(y1 + rng.uniform(1, 150, 14), in_h - 1)
    cls = rng.integers(1, 5, 14).astype(np.float64)
    dets = list(np.stack([x1, y1, x2, y2, cls], 1))
    dets += [
        [0.0, 0.0, 40.0, 30.0, 1],  # at the origin
        [300.5, 200.25, 382.0, 254.0, 2],  # clipped at the bottom-right border
        [10.0, 10.0, 11.5, 12.0, 3],  # tiny: radius 0
        [100.0, 50.0, 220.0, 160.0, 4],  # two overlapping boxes of one class
        [110.0, 60.0, 230.0, 170.0, 4],
        [100.0, 50.0, 220.0, 160.0, 1],  # the same box under another class
    ]
    # x * (96 / 383) and y * (64 / 255) just below an integer in float64: int() must truncate.
    x_round = np.nextafter(41 / (96 / 383), 0)
    y_round = np.nextafter(17 / (64 / 255), 0)
    dets.append([x_round, y_round, x_round + 50.0, y_round + 40.0, 2])
    return np.asarray(dets, np.float64)


def test_encode_targets_non_square_matches_numpy_reference():
    in_hw, out_hw = (255, 383), (64, 96)
    dets = _non_square_dets(np.random.default_rng(7))
    x_round, y_round = dets[-1, 0], dets[-1, 1]
    assert (
        int(x_round * (96 / 383)) == 40 and int(y_round * (64 / 255)) == 16
    )  # the case is exercised
    out = encode_dets(dets, in_hw, out_hw, 4)
    assert_matches_reference(out, ref_encode(dets, in_hw, out_hw, 4))
    last = len(dets) - 1
    assert int(out["tl_tag"][last]) == 16 * 96 + 40
    np.testing.assert_array_equal(
        out["tl_regr"][last].numpy(), [1.0, 1.0]
    )  # ~0.9999999 stored as 1.0


@pytest.mark.parametrize("radius_mode", ["none", "fixed_int"])
def test_ablation_modes_match_official_switches(radius_mode):
    """``none`` is the official gaussian_bump=False; an integer fixed radius is gaussian_radius=r."""
    dets = _non_square_dets(np.random.default_rng(3))
    if radius_mode == "none":
        out = encode_dets(dets, (255, 383), (64, 96), 4, radius_mode="none")
        ref = ref_encode(dets, (255, 383), (64, 96), 4, gaussian_bump=False)
        assert set(np.unique(out["tl_heatmap"].numpy())) == {0.0, 1.0}
    else:
        out = encode_dets(dets, (255, 383), (64, 96), 4, radius_mode="fixed", fixed_radius=3)
        ref = ref_encode(dets, (255, 383), (64, 96), 4, gaussian_rad=3)
    assert_matches_reference(out, ref)


def test_fractional_fixed_radius_keeps_sigma_on_floor_window():
    out = encode_targets(
        [[200.0, 200.0, 400.0, 400.0]], [1], (511, 511), (128, 128), 2, radius_mode="fixed"
    )
    heat = out["tl_heatmap"].numpy()[..., 1]
    cx = cy = int(200.0 * 128 / 511)
    sigma = (2 * 2.5 + 1) / 6  # = 1
    d = np.arange(-2, 3)
    expected = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(heat[cy - 2 : cy + 3, cx - 2 : cx + 3], expected, rtol=0, atol=1e-6)
    assert np.count_nonzero(heat) == 25 and heat[cy, cx] == 1.0


def test_empty_image_gives_zero_targets():
    empties = [
        (np.zeros((0, 4)), np.zeros((0,), np.int64)),
        ([], []),
        (tf.zeros([0, 4]), tf.zeros([0], tf.int32)),
    ]
    for boxes, classes in empties:
        out = encode_targets(boxes, classes, (511, 511), (128, 128), 80)
        for key in (
            "tl_heatmap",
            "br_heatmap",
            "tl_regr",
            "br_regr",
            "tl_tag",
            "br_tag",
            "tag_mask",
        ):
            assert not out[key].numpy().any(), key
        assert out["tl_heatmap"].shape == (128, 128, 80)
        assert int(out["num_objects"]) == 0 and int(out["num_dropped"]) == 0


def test_objects_beyond_max_objects_are_counted_and_still_drawn():
    dets = _non_square_dets(np.random.default_rng(11))[:7]
    out = encode_dets(dets, (255, 383), (64, 96), 4, max_objects=4)
    ref = ref_encode(dets, (255, 383), (64, 96), 4)
    assert int(out["num_objects"]) == 4 and int(out["num_dropped"]) == 3
    np.testing.assert_array_equal(out["tl_tag"].numpy(), ref["tl_tag"][:4])
    np.testing.assert_allclose(out["br_regr"].numpy(), ref["br_regr"][:4], atol=1e-6)
    np.testing.assert_array_equal(out["tag_mask"].numpy(), [1, 1, 1, 1])
    # The heatmaps hold all 7 objects.
    np.testing.assert_allclose(
        out["tl_heatmap"].numpy().transpose(2, 0, 1), ref["tl_heat"], atol=1e-6
    )


def test_python_lists_are_encoded_in_float64():
    # 3.9921874999999996 * 128/511 is just below 1 in float64 (corner 0, offset ~1) but rounds to
    # 4.0 in float32 (corner 1, offset 0): a list of Python floats must keep float64.
    x = float(np.nextafter(1 / (128 / 511), 0))
    out = encode_targets([[x, 8.0, 100.0, 100.0]], [0], (511, 511), (128, 128), 1)
    assert int(out["tl_tag"][0]) == 2 * 128 + 0
    assert float(out["tl_regr"][0, 0]) == 1.0


def test_corners_outside_the_map_are_clamped():
    # An unclipped box reaching past the image must not index outside the heatmap.
    out = encode_targets([[-3.0, -2.0, 600.0, 700.0]], [0], (511, 511), (128, 128), 1)
    assert int(out["tl_tag"][0]) == 0 and int(out["br_tag"][0]) == 127 * 128 + 127
    assert (
        out["tl_heatmap"].numpy()[0, 0, 0] == 1.0 and out["br_heatmap"].numpy()[127, 127, 0] == 1.0
    )


def test_encode_targets_in_tf_function_with_unknown_n():
    fn = tf.function(
        lambda b, c: encode_targets(b, c, (255, 383), (64, 96), 4),
        input_signature=[tf.TensorSpec([None, 4], tf.float64), tf.TensorSpec([None], tf.int32)],
    )
    dets = _non_square_dets(np.random.default_rng(5))
    for n in (0, 1, len(dets)):
        out = fn(dets[:n, :4], dets[:n, 4].astype(np.int32) - 1)
        assert_matches_reference(out, ref_encode(dets[:n], (255, 383), (64, 96), 4))


def test_encode_targets_inside_tf_data_map_with_variable_box_counts():
    dets = _non_square_dets(np.random.default_rng(9))
    sizes = [3, 0, 12, 1]
    starts = np.cumsum([0] + sizes)

    def gen():
        for s, n in zip(starts, sizes):
            yield dets[s : s + n, :4], dets[s : s + n, 4].astype(np.int64) - 1

    ds = tf.data.Dataset.from_generator(
        gen,
        output_signature=(tf.TensorSpec([None, 4], tf.float64), tf.TensorSpec([None], tf.int64)),
    )
    ds = ds.map(
        lambda b, c: encode_targets(b, c, (255, 383), (64, 96), 4, max_objects=8),
        num_parallel_calls=2,
    )
    batches = list(ds.batch(2))
    assert len(batches) == 2 and batches[0]["tl_heatmap"].shape == (2, 64, 96, 4)
    for i, (s, n) in enumerate(zip(starts, sizes)):
        got = {k: v[i % 2] for k, v in batches[i // 2].items()}
        ref = ref_encode(dets[s : s + n], (255, 383), (64, 96), 4)
        np.testing.assert_allclose(
            got["tl_heatmap"].numpy().transpose(2, 0, 1), ref["tl_heat"], atol=1e-6
        )
        np.testing.assert_allclose(
            got["br_heatmap"].numpy().transpose(2, 0, 1), ref["br_heat"], atol=1e-6
        )
        np.testing.assert_array_equal(got["br_tag"].numpy(), ref["br_tag"][:8])
        assert int(got["num_objects"]) == min(n, 8) and int(got["num_dropped"]) == max(n - 8, 0)


def test_bad_inputs_raise_clear_errors():
    box = [[1.0, 2.0, 30.0, 40.0]]
    with pytest.raises(ValueError, match="radius_mode"):
        encode_targets(box, [0], (511, 511), (128, 128), 3, radius_mode="gaussian")
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\]"):
        encode_targets([[1.0, 2.0, 3.0]], [0], (511, 511), (128, 128), 3)
    with pytest.raises(ValueError, match="input_size must be"):
        encode_targets(box, [0], (511,), (128, 128), 3)
    with pytest.raises(ValueError, match="classes must be integer"):
        encode_targets(box, [0.0], (511, 511), (128, 128), 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        encode_targets(box, [3], (511, 511), (128, 128), 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="0-based"):
        encode_targets(box, [-1], (511, 511), (128, 128), 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in length"):
        encode_targets(box, [0, 1], (511, 511), (128, 128), 3)
