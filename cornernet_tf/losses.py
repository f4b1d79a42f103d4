"""CornerNet training losses (docs/method.md §3), normalised exactly as the official ``AELoss``.

* focal: the penalty-reduced focal loss on corner heatmaps (alpha 2, beta 4) with the official
  clamp of the sigmoid to [1e-4, 1 - 1e-4], normalised by the positives of the whole batch;
* pull / push: the associative-embedding losses on the tags gathered at the ground-truth
  corners, including the official ``j = k`` terms of push (one object gives push ~ 1);
* regr: smooth-L1 on the gathered offsets, divided by the objects of the whole batch.

Everything is vectorised over the batch with masks (no Python loop over images; the only loop
is over the few hourglass stacks) and computed in float32 whatever the model's dtype, so mixed
precision training gets float32 losses. Unlike the official ``_ae_loss`` a batch of one works.
The constants below are those of the official code (docs/method.md §8, "Loss normalisations").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import tensorflow as tf

from cornernet_tf.config import TrainConfig
from cornernet_tf.detection.contract import OUTPUT_KEYS, TARGET_KEYS

FOCAL_ALPHA = 2  # (1 - p)^alpha on positives, p^alpha on negatives
FOCAL_BETA = 4  # (1 - y)^beta penalty reduction around each corner
SIGMOID_CLAMP = 1e-4  # official _sigmoid: clamp(sigmoid(x), 1e-4, 1 - 1e-4)
PUSH_MARGIN = 1.0  # Delta of the push loss
NORM_EPS = 1e-4  # added to every object count the official code divides by

LOSS_TERMS = ("focal", "pull", "push", "regr")


class LossNormalisers(NamedTuple):
    """The batch-level counts the loss divides by (float32 scalars).

    By default they are those of the batch the loss sees; under ``tf.distribute`` the replicas
    pass the counts summed over the global batch (``training/global_loss.py``), so that their
    losses add up to the loss of the global batch.
    """

    tl_positives: tf.Tensor  # pixels with y == 1 in the top-left heatmaps
    br_positives: tf.Tensor  # pixels with y == 1 in the bottom-right heatmaps
    objects: tf.Tensor  # real objects (tag_mask)


def _f32(x) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    return x if x.dtype == tf.float32 else tf.cast(x, tf.float32)


def _int_power(x: tf.Tensor, n: int) -> tf.Tensor:
    """``x ** n`` for a non-negative integer ``n`` by repeated squaring: cheaper than ``tf.pow``
    on the full heatmaps, which this loss touches every training step."""
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    return tf.ones_like(x) if result is None else result


def focal_loss(
    heat_logits: tf.Tensor, gt_heatmap: tf.Tensor, num_pos: tf.Tensor | None = None
) -> tf.Tensor:
    """Variant focal loss of one heatmap (logits and ground truth ``[B, H, W, C]``), a scalar.

    ``-(sum_pos log(p)(1-p)^2 + sum_neg log(1-p) p^2 (1-y)^4) / num_pos`` with ``p`` the clamped
    sigmoid and ``num_pos`` the ``y == 1`` pixels of the whole batch (counted here unless given);
    with no positive at all the official code returns the negative part unnormalised, which
    dividing by ``max(num_pos, 1)`` reproduces (the positive part is then 0).
    """
    logits, gt = _f32(heat_logits), _f32(gt_heatmap)
    p = tf.clip_by_value(tf.sigmoid(logits), SIGMOID_CLAMP, 1.0 - SIGMOID_CLAMP)
    pos = tf.cast(tf.equal(gt, 1.0), tf.float32)
    neg = tf.cast(tf.less(gt, 1.0), tf.float32)
    pos_loss = tf.math.log(p) * _int_power(1.0 - p, FOCAL_ALPHA) * pos
    neg_loss = (
        tf.math.log(1.0 - p) * _int_power(p, FOCAL_ALPHA) * _int_power(1.0 - gt, FOCAL_BETA) * neg
    )
    num_pos = tf.reduce_sum(pos) if num_pos is None else _f32(num_pos)
    return -(tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / tf.maximum(num_pos, 1.0)


def _tags(tag: tf.Tensor) -> tf.Tensor:
    tag = _f32(tag)
    if tag.shape.rank == 3:
        tag = tag[
            :, :, 0
        ]  # [B, M, 1] -> [B, M]; never squeeze the batch axis (official bug at B=1)
    if tag.shape.rank != 2:
        raise ValueError(
            f"ae_loss: tags must be [B, max_objects, 1] or [B, max_objects], got {tag.shape}"
        )
    return tag


def ae_loss(tl_tag: tf.Tensor, br_tag: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Pull and push losses of gathered tags ``[B, M, 1]`` with ``mask [B, M]``, each a scalar.

    Per image with N objects and ``e_k = (tl_k + br_k) / 2``:
    pull = sum_k [(tl_k - e_k)^2 + (br_k - e_k)^2] / (N + 1e-4);
    push = sum over all ordered pairs (j, k) of valid objects, *including* j = k, of
    ``[relu(1 - |e_j - e_k|) - 1 / (N + 1e-4)] / (N (N - 1) + 1e-4)``.
    Both are summed (not averaged) over the images. An image without objects adds exactly 0;
    an image with one object adds ~1 to push (the official quirk, kept for parity).
    """
    t0, t1 = _tags(tl_tag), _tags(br_tag)
    m = _f32(mask)
    num = tf.reduce_sum(m, axis=1, keepdims=True)  # [B, 1]
    mean = (t0 + t1) / 2.0
    pull = tf.reduce_sum(
        (tf.square(t0 - mean) / (num + NORM_EPS) + tf.square(t1 - mean) / (num + NORM_EPS)) * m
    )

    pairs = m[:, None, :] * m[:, :, None]  # [B, M, M]
    num = num[:, :, None]  # [B, 1, 1]
    num2 = (num - 1.0) * num
    dist = mean[:, None, :] - mean[:, :, None]
    dist = tf.nn.relu(PUSH_MARGIN - tf.abs(dist))
    dist = (dist - 1.0 / (num + NORM_EPS)) / (num2 + NORM_EPS)
    push = tf.reduce_sum(dist * pairs)
    return pull, push


def regr_loss(
    regr: tf.Tensor, gt_regr: tf.Tensor, mask: tf.Tensor, num_objects: tf.Tensor | None = None
) -> tf.Tensor:
    """Smooth-L1 (beta 1) of gathered offsets ``[B, M, 2]`` over valid slots / (objects + 1e-4),
    the objects of the whole batch (counted from ``mask`` unless given)."""
    regr, gt_regr, m = _f32(regr), _f32(gt_regr), _f32(mask)
    diff = regr - gt_regr
    abs_diff = tf.abs(diff)
    per_entry = tf.where(abs_diff < 1.0, 0.5 * tf.square(diff), abs_diff - 0.5)
    num_objects = tf.reduce_sum(m) if num_objects is None else _f32(num_objects)
    return tf.reduce_sum(per_entry * m[:, :, None]) / (num_objects + NORM_EPS)


def gather_feat(feature_map: tf.Tensor, inds: tf.Tensor) -> tf.Tensor:
    """Values of an NHWC map at flat pixel indices ``inds = y * W + x`` (``[B, M]``): ``[B, M, C]``.

    The official ``_tranpose_and_gather_feat`` for NHWC maps.
    """
    shape = tf.shape(feature_map)
    channels = feature_map.shape[-1] if feature_map.shape[-1] is not None else shape[3]
    flat = tf.reshape(feature_map, [shape[0], shape[1] * shape[2], channels])
    return tf.gather(flat, inds, batch_dims=1)


def split_stacks(outputs: Mapping[str, tf.Tensor | Sequence[tf.Tensor]]) -> dict[str, list]:
    """The six output maps as one list per key (one entry per stack), checked for completeness."""
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        raise KeyError(
            f"cornernet_loss: outputs lacks {', '.join(missing)} (needs {', '.join(OUTPUT_KEYS)})"
        )
    stacks = {
        k: list(outputs[k]) if isinstance(outputs[k], (list, tuple)) else [outputs[k]]
        for k in OUTPUT_KEYS
    }
    counts = {k: len(v) for k, v in stacks.items()}
    if len(set(counts.values())) != 1 or counts["tl_heat"] == 0:
        raise ValueError(
            f"cornernet_loss: every output needs one map per stack, got counts {counts}"
        )
    return stacks


class UnknownLossTermError(KeyError, ValueError):
    """A loss weight for a term that does not exist (a KeyError for lookups, a ValueError for configs)."""


def loss_weights(train: TrainConfig | None = None) -> dict[str, float]:
    """The focal/pull/push/regr weights of a :class:`TrainConfig`: their one home (the defaults
    1, 0.1, 0.1, 1 are the official ones)."""
    train = train or TrainConfig()
    return {
        "focal": float(train.focal_weight),
        "pull": float(train.pull_weight),
        "push": float(train.push_weight),
        "regr": float(train.regr_weight),
    }


def resolve_loss_weights(weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """focal/pull/push/regr weights with :class:`TrainConfig`'s defaults for the missing ones."""
    resolved = loss_weights()
    if weights:
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise UnknownLossTermError(
                f"loss weights: unknown term(s) {', '.join(unknown)}; known: {', '.join(LOSS_TERMS)}"
            )
        resolved.update({k: float(v) for k, v in weights.items()})
    return resolved


def batch_normalisers(targets: Mapping[str, tf.Tensor]) -> LossNormalisers:
    """The :class:`LossNormalisers` of the batch in ``targets``."""

    def positives(heatmap):
        return tf.reduce_sum(tf.cast(tf.equal(_f32(heatmap), 1.0), tf.float32))

    return LossNormalisers(
        tl_positives=positives(targets["tl_heatmap"]),
        br_positives=positives(targets["br_heatmap"]),
        objects=tf.reduce_sum(_f32(targets["tag_mask"])),
    )


def cornernet_loss(
    outputs: Mapping[str, tf.Tensor | Sequence[tf.Tensor]],
    targets: Mapping[str, tf.Tensor],
    weights: Mapping[str, float] | None = None,
    normalisers: LossNormalisers | None = None,
) -> dict[str, tf.Tensor]:
    """The official ``AELoss`` on full head maps, with its terms.

    Args:
      outputs: ``tl_heat, br_heat`` (logits ``[B, H, W, C]``), ``tl_tag, br_tag`` (``[B, H, W, 1]``),
        ``tl_regr, br_regr`` (``[B, H, W, 2]``), each a list with one map per stack (a single
        tensor counts as one stack). Any float dtype; the loss is computed in float32.
      targets: :func:`cornernet_tf.targets.encode_targets` output with a leading batch axis.
      weights: optional ``focal / pull / push / regr`` weights; defaults from
        :class:`cornernet_tf.config.TrainConfig` (1, 0.1, 0.1, 1).
      normalisers: the counts the focal and offset terms divide by; by default those of this
        batch (:func:`batch_normalisers`). The pull and push terms are sums over images and need
        none.

    Returns float32 scalars: ``focal`` = weight x (focal loss summed over stacks and over both
    corner types); ``pull`` and ``push`` = weight x (sum over stacks); ``regr`` = weight x (smooth-L1
    summed over stacks and both corner types); ``total = (focal + pull + push + regr) / num_stacks``,
    the value the official ``AELoss`` returns for the same batch.
    """
    stacks = split_stacks(outputs)
    missing = [k for k in TARGET_KEYS if k not in targets]
    if missing:
        raise KeyError(f"cornernet_loss: targets lacks {', '.join(missing)} (see encode_targets)")
    w = resolve_loss_weights(weights)
    n = batch_normalisers(targets) if normalisers is None else normalisers
    mask = _f32(targets["tag_mask"])
    gt_tl_heat, gt_br_heat = _f32(targets["tl_heatmap"]), _f32(targets["br_heatmap"])
    gt_tl_regr, gt_br_regr = _f32(targets["tl_regr"]), _f32(targets["br_regr"])
    tl_inds, br_inds = targets["tl_tag"], targets["br_tag"]

    focal = pull = push = regr = tf.constant(0.0, tf.float32)
    num_stacks = len(stacks["tl_heat"])
    for s in range(num_stacks):
        focal += focal_loss(stacks["tl_heat"][s], gt_tl_heat, n.tl_positives) + focal_loss(
            stacks["br_heat"][s], gt_br_heat, n.br_positives
        )
        stack_pull, stack_push = ae_loss(
            gather_feat(stacks["tl_tag"][s], tl_inds),
            gather_feat(stacks["br_tag"][s], br_inds),
            mask,
        )
        pull += stack_pull
        push += stack_push
        tl_offsets = gather_feat(stacks["tl_regr"][s], tl_inds)
        br_offsets = gather_feat(stacks["br_regr"][s], br_inds)
        regr += regr_loss(tl_offsets, gt_tl_regr, mask, n.objects)
        regr += regr_loss(br_offsets, gt_br_regr, mask, n.objects)

    terms = {
        "focal": w["focal"] * focal,
        "pull": w["pull"] * pull,
        "push": w["push"] * push,
        "regr": w["regr"] * regr,
    }
    terms["total"] = (terms["focal"] + terms["pull"] + terms["push"] + terms["regr"]) / float(
        num_stacks
    )
    return terms
