"""The CornerNet loss of the *global* batch, computed shard by shard under ``tf.distribute``.

The official loss is a per-batch quantity: the focal term is divided by the positive corners of
the whole batch and the offset term by its objects (docs/method.md §8, "Loss normalisations").
When a global batch is split across replicas, each replica sees only its shard. Here every
replica divides its own numerators by the normalisers *summed over all replicas*, so that the
replicas' losses add up to exactly the loss of the global batch; the optimizer then sums the
replicas' gradients (Keras all-reduces with SUM), which gives the gradient of the global-batch
loss. Together with synchronised BatchNorm statistics this makes N replicas x B/N images train
like one device with B images (tests/test_training_distributed.py checks it).

The pull and push terms are sums over images, so they need no correction. With one replica
the official :func:`cornernet_tf.losses.cornernet_loss` is used unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cornernet_tf.losses import (
    NORM_EPS,
    ae_loss,
    cornernet_loss,
    focal_loss,
    gather_feat,
    regr_loss,
    resolve_loss_weights,
    split_stacks,
)


def replica_loss(
    outputs: Mapping[str, object],
    targets: Mapping[str, tf.Tensor],
    weights: Mapping[str, float] | None = None,
) -> dict[str, tf.Tensor]:
    """This replica's share of the global-batch loss terms (``focal, pull, push, regr, total``).

    Summed over replicas, each term equals :func:`cornernet_loss` of the concatenated batch.
    Must be called in a replica context (inside ``strategy.run`` or without any strategy).
    """
    weights = resolve_loss_weights(weights)
    context = tf.distribute.get_replica_context()
    if context is None:
        raise RuntimeError("replica_loss must be called in a replica context (inside strategy.run)")
    if context.num_replicas_in_sync == 1:
        return cornernet_loss(outputs, targets, weights)

    stacks = split_stacks(outputs)
    gt_tl, gt_br = (
        tf.cast(targets["tl_heatmap"], tf.float32),
        tf.cast(targets["br_heatmap"], tf.float32),
    )
    mask = tf.cast(targets["tag_mask"], tf.float32)
    local = tf.stack(
        [
            tf.reduce_sum(tf.cast(tf.equal(gt_tl, 1.0), tf.float32)),
            tf.reduce_sum(tf.cast(tf.equal(gt_br, 1.0), tf.float32)),
            tf.reduce_sum(mask),
        ]
    )
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
    # focal_loss divides by max(num_pos, 1) (the unnormalised no-positive case included), and
    # regr_loss by (objects + 1e-4): undo the shard's normaliser, apply the global one.
    tl_factor = tf.maximum(local[0], 1.0) / tf.maximum(total[0], 1.0)
    br_factor = tf.maximum(local[1], 1.0) / tf.maximum(total[1], 1.0)
    regr_factor = (local[2] + NORM_EPS) / (total[2] + NORM_EPS)

    focal = pull = push = regr = tf.constant(0.0, tf.float32)
    tl_inds, br_inds = targets["tl_tag"], targets["br_tag"]
    for s in range(len(stacks["tl_heat"])):
        focal += tl_factor * focal_loss(stacks["tl_heat"][s], gt_tl)
        focal += br_factor * focal_loss(stacks["br_heat"][s], gt_br)
        stack_pull, stack_push = ae_loss(
            gather_feat(stacks["tl_tag"][s], tl_inds),
            gather_feat(stacks["br_tag"][s], br_inds),
            mask,
        )
        pull += stack_pull
        push += stack_push
        regr += regr_factor * regr_loss(
            gather_feat(stacks["tl_regr"][s], tl_inds), targets["tl_regr"], mask
        )
        regr += regr_factor * regr_loss(
            gather_feat(stacks["br_regr"][s], br_inds), targets["br_regr"], mask
        )

    terms = {
        "focal": weights["focal"] * focal,
        "pull": weights["pull"] * pull,
        "push": weights["push"] * push,
        "regr": weights["regr"] * regr,
    }
    terms["total"] = (terms["focal"] + terms["pull"] + terms["push"] + terms["regr"]) / float(
        len(stacks["tl_heat"])
    )
    return terms
