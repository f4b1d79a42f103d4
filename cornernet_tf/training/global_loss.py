"""The CornerNet loss of the *global* batch, computed shard by shard under ``tf.distribute``.

The official loss is a per-batch quantity: the focal term is divided by the positive corners of
the whole batch and the offset term by its objects (docs/method.md §8, "Loss normalisations").
When a global batch is split across replicas, each replica sees only its shard. Here the replicas
sum those counts (one all-reduce) and every replica divides by the global counts, so that the
replicas' losses add up to exactly the loss of the global batch; the optimizer then sums the
replicas' gradients (Keras all-reduces with SUM), which gives the gradient of the global-batch
loss. Together with synchronised BatchNorm statistics this makes N replicas x B/N images train
like one device with B images (tests/test_training_distributed.py checks it).

The loss itself is :func:`cornernet_tf.losses.cornernet_loss`; only the normalisers are computed
here. The pull and push terms are sums over images, so they need no correction.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cornernet_tf.losses import LossNormalisers, batch_normalisers, cornernet_loss


def global_normalisers(targets: Mapping[str, tf.Tensor]) -> LossNormalisers | None:
    """The loss normalisers summed over all replicas; None with a single replica (the batch's own
    counts are then the global ones). Must be called in a replica context."""
    context = tf.distribute.get_replica_context()
    if context is None:
        raise RuntimeError("replica_loss must be called in a replica context (inside strategy.run)")
    if context.num_replicas_in_sync == 1:
        return None
    local = tf.stack(list(batch_normalisers(targets)))  # one all-reduce for the three counts
    return LossNormalisers(*tf.unstack(context.all_reduce(tf.distribute.ReduceOp.SUM, local)))


def replica_loss(
    outputs: Mapping[str, object],
    targets: Mapping[str, tf.Tensor],
    weights: Mapping[str, float] | None = None,
) -> dict[str, tf.Tensor]:
    """This replica's share of the global-batch loss terms (``focal, pull, push, regr, total``).

    Summed over replicas, each term equals :func:`cornernet_loss` of the concatenated batch.
    Must be called in a replica context (inside ``strategy.run`` or without any strategy).
    """
    return cornernet_loss(outputs, targets, weights, normalisers=global_normalisers(targets))
