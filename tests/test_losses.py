"""Losses against the official AELoss (golden values and gradients) and their edge cases."""

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden

from cornernet_tf.config import TrainConfig
from cornernet_tf.losses import (
    ae_loss,
    batch_normalisers,
    cornernet_loss,
    focal_loss,
    gather_feat,
    loss_weights,
    regr_loss,
    resolve_loss_weights,
)
from cornernet_tf.targets import encode_targets

LOSSES = load_golden("losses.npz")
EDGE = load_golden("loss_edge_cases.npz")
TARGETS = load_golden("targets.npz")

# golden map name -> our output key
MAPS = {
    "tl_heat_logits": "tl_heat", "br_heat_logits": "br_heat",
    "tl_tag_map": "tl_tag", "br_tag_map": "br_tag",
    "tl_regr_map": "tl_regr", "br_regr_map": "br_regr",
}  # fmt: skip
STACKS = (0, 1)
# Gradients of total_loss: the largest golden entry is 0.077; ours agree to ~2e-8 on CPU.
GRAD_ATOL = 1e-7


def nhwc(a):
    return np.ascontiguousarray(np.asarray(a).transpose(0, 2, 3, 1))


def golden_targets():
    return {
        "tl_heatmap": nhwc(TARGETS["tl_heatmaps"]),
        "br_heatmap": nhwc(TARGETS["br_heatmaps"]),
        "tl_tag": TARGETS["tl_tags"],
        "br_tag": TARGETS["br_tags"],
        "tl_regr": TARGETS["tl_regrs"],
        "br_regr": TARGETS["br_regrs"],
        "tag_mask": TARGETS["tag_masks"],
    }


def golden_outputs(dtype=tf.float32):
    return {
        key: [tf.constant(nhwc(LOSSES[f"{name}_s{s}"]), dtype) for s in STACKS]
        for name, key in MAPS.items()
    }


def rel(value, expected):
    return abs(float(value) - float(expected)) / abs(float(expected))


# --------------------------------------------------------------------------------- golden terms


@pytest.mark.parametrize("s", STACKS)
def test_per_term_losses_match_golden(s):
    t = golden_targets()
    for corner in ("tl", "br"):
        logits = nhwc(LOSSES[f"{corner}_heat_logits_s{s}"])
        assert (
            rel(focal_loss(logits, t[f"{corner}_heatmap"]), LOSSES[f"focal_{corner}_s{s}"]) < 1e-5
        )
        regr = regr_loss(LOSSES[f"{corner}_regr_gathered_s{s}"], t[f"{corner}_regr"], t["tag_mask"])
        assert rel(regr, LOSSES[f"regr_{corner}_s{s}"]) < 1e-5
    pull, push = ae_loss(
        LOSSES[f"tl_tag_gathered_s{s}"], LOSSES[f"br_tag_gathered_s{s}"], t["tag_mask"]
    )
    assert rel(pull, LOSSES[f"pull_s{s}"]) < 1e-5
    assert rel(push, LOSSES[f"push_s{s}"]) < 1e-5


@pytest.mark.parametrize("s", STACKS)
def test_gather_feat_matches_official_transpose_and_gather(s):
    for corner in ("tl", "br"):
        for kind in ("tag", "regr"):
            maps = nhwc(LOSSES[f"{corner}_{kind}_map_s{s}"])
            got = gather_feat(maps, TARGETS[f"{corner}_tags"]).numpy()
            np.testing.assert_array_equal(got, LOSSES[f"{corner}_{kind}_gathered_s{s}"])


def test_cornernet_loss_and_gradients_match_golden():
    variables = {key: [tf.Variable(m) for m in maps] for key, maps in golden_outputs().items()}
    with tf.GradientTape() as tape:
        losses = cornernet_loss(variables, golden_targets())
    expected = {
        "focal": "focal_sum", "pull": "pull_weighted_sum", "push": "push_weighted_sum",
        "regr": "regr_sum", "total": "total_loss",
    }  # fmt: skip
    assert set(losses) == set(expected)
    for key, golden_key in expected.items():
        assert losses[key].dtype == tf.float32
        assert rel(losses[key], LOSSES[golden_key]) < 1e-5, key
    grads = tape.gradient(losses["total"], variables)
    for name, key in MAPS.items():
        for s in STACKS:
            got = tf.convert_to_tensor(grads[key][s]).numpy()
            np.testing.assert_allclose(
                got, nhwc(LOSSES[f"grad_total_wrt_{name}_s{s}"]), rtol=0, atol=GRAD_ATOL
            )


def test_encoded_targets_through_tf_data_reproduce_golden_total():
    """End to end: encode the golden boxes in a tf.data pipeline, batch, and take the loss."""
    dets = [
        TARGETS["dets_input_space"][b, : TARGETS["dets_input_space_count"][b]] for b in range(2)
    ]
    ds = tf.data.Dataset.from_generator(
        lambda: ((d[:, :4], d[:, 4].astype(np.int64) - 1) for d in dets),
        output_signature=(tf.TensorSpec([None, 4], tf.float64), tf.TensorSpec([None], tf.int64)),
    )
    ds = ds.map(lambda b, c: encode_targets(b, c, (511, 511), (128, 128), 3)).batch(2)
    targets = next(iter(ds))
    losses = cornernet_loss(golden_outputs(), targets)
    assert rel(losses["total"], LOSSES["total_loss"]) < 1e-5


# ----------------------------------------------------------------------------------- edge cases


def test_ae_loss_edge_cases_match_golden():
    pull, push = ae_loss(EDGE["tl_tag"], EDGE["br_tag"], EDGE["mask"])
    assert rel(pull, EDGE["pull"]) < 1e-5 and rel(push, EDGE["push"]) < 1e-5
    for i, count in enumerate(EDGE["counts"]):
        # batch of one: the official _ae_loss crashes here (squeeze); ours must not
        pull_i, push_i = ae_loss(
            EDGE["tl_tag"][i : i + 1], EDGE["br_tag"][i : i + 1], EDGE["mask"][i : i + 1]
        )
        if count == 0:
            assert float(pull_i) == 0.0 and float(push_i) == 0.0
        else:
            assert rel(pull_i, EDGE["pull_per_image"][i]) < 1e-5
            assert rel(push_i, EDGE["push_per_image"][i]) < (1e-3 if count == 1 else 1e-5)
    one_object_push = ae_loss(EDGE["tl_tag"][1:2], EDGE["br_tag"][1:2], EDGE["mask"][1:2])[1]
    assert float(one_object_push) == pytest.approx(1.0, abs=1e-3)


def test_regr_and_focal_edge_cases_match_golden():
    assert (
        rel(regr_loss(EDGE["regr_pred"], EDGE["regr_gt"], EDGE["mask"]), EDGE["regr_loss"]) < 1e-5
    )
    logits = nhwc(EDGE["focal_nopos_logits"])
    assert rel(focal_loss(logits, nhwc(EDGE["focal_nopos_gt"])), EDGE["focal_nopos_loss"]) < 1e-5
    assert rel(focal_loss(logits, nhwc(EDGE["focal_pos_gt"])), EDGE["focal_pos_loss"]) < 1e-5


def _small_problem(counts, rng, h=16, w=20, c=3, max_objects=8, stacks=2):
    """Random outputs and encoded targets for images with the given object counts."""
    targets = []
    for n in counts:
        x1 = rng.uniform(0, 40, n)
        y1 = rng.uniform(0, 30, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(4, 30, n), y1 + rng.uniform(4, 30, n)], 1)
        targets.append(
            encode_targets(
                boxes, rng.integers(0, c, n), (63, 79), (h, w), c, max_objects=max_objects
            )
        )
    targets = {k: tf.stack([t[k] for t in targets]) for k in targets[0]}
    b = len(counts)
    shapes = {"tl_heat": c, "br_heat": c, "tl_tag": 1, "br_tag": 1, "tl_regr": 2, "br_regr": 2}
    outputs = {
        k: [tf.Variable(rng.normal(size=(b, h, w, ch)).astype(np.float32)) for _ in range(stacks)]
        for k, ch in shapes.items()
    }
    return outputs, targets


@pytest.mark.parametrize(
    "counts",
    [[0, 3], [0, 0], [1], [0], [1, 1], [5]],
    ids=[
        "one-empty-image",
        "all-empty",
        "batch1-one-object",
        "batch1-empty",
        "one-object-each",
        "batch1",
    ],
)
def test_losses_and_gradients_are_finite_on_edge_batches(counts):
    outputs, targets = _small_problem(counts, np.random.default_rng(sum(counts) + len(counts)))
    with tf.GradientTape() as tape:
        losses = cornernet_loss(outputs, targets)
    for key, value in losses.items():
        assert np.isfinite(value.numpy()), key
    grads = tape.gradient(losses["total"], outputs)
    for key, per_stack in grads.items():
        for g in per_stack:
            assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy())), key
    if sum(counts) == 0:
        assert (
            float(losses["pull"]) == 0.0
            and float(losses["push"]) == 0.0
            and float(losses["regr"]) == 0.0
        )
        # no positives: the focal loss is the unnormalised negative part, > 0
        assert float(losses["focal"]) > 0
    if counts in ([1], [1, 1]):  # one object per image: push ~ 1 per image and stack (x 0.1 weight)
        assert float(losses["push"]) == pytest.approx(0.1 * 2 * len(counts), rel=1e-3)


def test_float16_outputs_are_lossed_in_float32():
    half = golden_outputs(tf.float16)
    as_float32 = {k: [tf.cast(m, tf.float32) for m in v] for k, v in half.items()}
    got = cornernet_loss(half, golden_targets())
    ref = cornernet_loss(as_float32, golden_targets())
    for key in got:
        assert got[key].dtype == tf.float32
        assert float(got[key]) == pytest.approx(float(ref[key]), rel=1e-6), key
    assert rel(got["total"], LOSSES["total_loss"]) < 1e-2  # float16 rounding of the inputs only


def test_weights_default_to_train_config_and_can_be_overridden():
    config = TrainConfig()
    assert {
        "focal": config.focal_weight, "pull": config.pull_weight,
        "push": config.push_weight, "regr": config.regr_weight,
    } == loss_weights(config) == resolve_loss_weights(None)  # fmt: skip
    assert loss_weights(TrainConfig(pull_weight=0.5))["pull"] == 0.5
    base = cornernet_loss(golden_outputs(), golden_targets())
    custom = cornernet_loss(golden_outputs(), golden_targets(), weights={"pull": 1.0, "regr": 2.0})
    assert float(custom["pull"]) == pytest.approx(10 * float(base["pull"]), rel=1e-6)
    assert float(custom["regr"]) == pytest.approx(2 * float(base["regr"]), rel=1e-6)
    terms = sum(float(custom[k]) for k in ("focal", "pull", "push", "regr"))
    assert float(custom["total"]) == pytest.approx(terms / 2, rel=1e-6)
    with pytest.raises(KeyError, match="offset"):
        cornernet_loss(golden_outputs(), golden_targets(), weights={"offset": 1.0})


def test_single_stack_tensors_and_bad_structures():
    outputs = {k: v[0] for k, v in golden_outputs().items()}  # plain tensors = one stack
    one = cornernet_loss(outputs, golden_targets())
    expected = (
        LOSSES["focal_tl_s0"] + LOSSES["focal_br_s0"] + 0.1 * LOSSES["pull_s0"] + 0.1 * LOSSES["push_s0"]
        + LOSSES["regr_tl_s0"] + LOSSES["regr_br_s0"]
    )  # fmt: skip
    assert rel(one["total"], expected) < 1e-5
    broken = golden_outputs()
    broken["tl_tag"] = broken["tl_tag"][:1]
    with pytest.raises(ValueError, match="one map per stack"):
        cornernet_loss(broken, golden_targets())
    with pytest.raises(KeyError, match="tag_mask"):
        cornernet_loss(
            golden_outputs(), {k: v for k, v in golden_targets().items() if k != "tag_mask"}
        )


def test_shards_with_global_normalisers_add_up_to_the_batch_loss():
    """The one loss body, given the counts of the whole batch, gives each shard its share."""
    outputs, targets = _small_problem([2, 0, 4, 1], np.random.default_rng(3))
    full = cornernet_loss(outputs, targets)
    normalisers = batch_normalisers(targets)
    assert float(normalisers.objects) == 7.0
    assert float(normalisers.tl_positives) == float(normalisers.br_positives) == 7.0
    shards = []
    for part in (slice(0, 1), slice(1, 4)):  # one image; three images, one of them empty
        shard_outputs = {k: [m[part] for m in v] for k, v in outputs.items()}
        shard_targets = {k: v[part] for k, v in targets.items()}
        shards.append(cornernet_loss(shard_outputs, shard_targets, normalisers=normalisers))
        alone = cornernet_loss(shard_outputs, shard_targets)
        if part.start == 1:  # on its own, the shard divides by its own (smaller) counts
            assert float(alone["focal"]) > float(shards[-1]["focal"])
    for key in ("focal", "pull", "push", "regr", "total"):
        summed = sum(float(shard[key]) for shard in shards)
        assert summed == pytest.approx(float(full[key]), rel=1e-5), key


def test_loss_in_tf_function_with_unknown_batch():
    outputs, targets = _small_problem([2, 0, 4], np.random.default_rng(1))
    eager = cornernet_loss(outputs, targets)
    fn = tf.function(cornernet_loss, reduce_retracing=True)
    for b in (3, 1):
        sliced_out = {k: [m[:b] for m in v] for k, v in outputs.items()}
        sliced_t = {k: v[:b] for k, v in targets.items()}
        got = fn(sliced_out, sliced_t)
        if b == 3:
            assert float(got["total"]) == pytest.approx(float(eager["total"]), rel=1e-6)
        assert np.isfinite(float(got["total"]))


def test_ae_and_regr_gradients_numerically():
    rng = np.random.default_rng(4)
    tl = rng.normal(size=(2, 5, 1)).astype(np.float32)
    br = rng.normal(size=(2, 5, 1)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.float32)
    for fn in (lambda a, b: ae_loss(a, b, mask)[0], lambda a, b: ae_loss(a, b, mask)[1]):
        theoretical, numerical = tf.test.compute_gradient(
            fn, [tf.constant(tl), tf.constant(br)], delta=1e-3
        )
        for t, n in zip(theoretical, numerical):
            np.testing.assert_allclose(t, n, atol=2e-3)
    gt = rng.uniform(0, 1, size=(2, 5, 2)).astype(np.float32)
    pred = (gt + rng.choice([-1, 1], size=gt.shape) * rng.uniform(0.1, 2.5, size=gt.shape)).astype(
        np.float32
    )
    theoretical, numerical = tf.test.compute_gradient(
        lambda p: regr_loss(p, gt, mask), [tf.constant(pred)], delta=1e-3
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-3)
