"""What one ``fit``/``evaluate`` step of the task does (``CornerNetTask.train_step`` / ``test_step``).

* The loss of a step is the CornerNet loss of the global batch (see ``global_loss.py``): each
  replica computes its share, Keras sums the gradients over replicas, and BatchNorm statistics
  are synchronised when there are several replicas. The result does not depend on how the
  batch is split (N replicas x B/N == 1 device x B).
* ``loss`` (the official ``AELoss`` value, i.e. the weighted terms summed over stacks and divided
  by the number of stacks) and each weighted term (``focal``, ``pull``, ``push``, ``regr``, summed
  over stacks) are logged as metrics: means over the steps of the epoch so far.
* Mixed precision: ``optimizer.scale_loss`` is applied, so the ``LossScaleOptimizer`` Keras wraps
  around the optimizer under ``mixed_float16`` works as usual; the losses are float32.
* Compact batches (``data.batch_format``, ``cornernet_tf.data.finish``): uint8 images with a
  ``pixel_affine`` are normalised first, and their heatmaps drawn at the size of the network's
  heatmap outputs; dense batches run as they come.
* A non-finite loss, output or gradient fails the step *before* anything is written (weights,
  BatchNorm statistics, optimizer state), with an error that names the step and the image ids
  of the batch; ``fit.train`` turns it into :class:`NonFiniteLossError` with a checkpoint. The
  forward pass runs through ``stateless_call`` so that BatchNorm's moving statistics are only
  assigned after the check. Under XLA (``jit_compile=True``) the check is compiled out, and the
  ``NonFiniteLossGuard`` callback stops training after the step instead.

The functions take the task (a ``keras.Model``) and use only its public attributes: the
optimizer, the variables, ``loss_weights_by_term`` and the trackers it creates in ``compile``.
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

from cornernet_tf.data import finish
from cornernet_tf.detection.contract import TARGET_KEYS
from cornernet_tf.losses import LOSS_TERMS
from cornernet_tf.training.global_loss import replica_loss

IMAGE_ID_KEY = "image_id"
NON_FINITE_MARKER = "CornerNet: non-finite training loss"
_ASSERT_SUMMARIZE = 4096  # print every image id of the batch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; carries the step and the batch's image ids."""

    def __init__(
        self,
        message: str,
        step: int | None = None,
        image_ids: list | None = None,
        checkpoint=None,
    ):
        super().__init__(message)
        self.step = step
        self.image_ids = image_ids or []
        self.checkpoint = checkpoint


def _unpack(data, where: str):
    images, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None:
        raise ValueError(
            f"CornerNet.{where}: sample weights are not supported; batches must be (images, targets)"
        )
    if not isinstance(targets, dict):
        raise ValueError(
            f"CornerNet.{where}: batches must be (images, targets) with targets a dict of encoded targets "
            f"(cornernet_tf.targets.encode_targets, batched); got targets of type {type(targets).__name__}"
        )
    if finish.is_compact(images, targets):
        needed = [k for k in TARGET_KEYS if not k.endswith("_heatmap")] + list(finish.COMPACT_KEYS)
        missing = [k for k in needed if k not in targets]
        if missing:
            raise ValueError(
                f"CornerNet.{where}: a compact batch (uint8 images) needs targets "
                f"{', '.join(missing)} (see build_dataset(batch_format='compact'))"
            )
        return images, targets
    missing = [k for k in TARGET_KEYS if k not in targets]
    if missing:
        raise ValueError(
            f"CornerNet.{where}: targets lack {', '.join(missing)} (see encode_targets)"
        )
    return images, targets


def _finished_targets(targets: dict, outputs) -> dict:
    """Dense targets: a compact batch's heatmaps drawn at the size of the network's heatmaps."""
    if finish.PIXEL_AFFINE_KEY not in targets:
        return targets
    heat = tf.nest.flatten(outputs["tl_heat"])[0]
    static, dynamic = heat.shape.as_list(), tf.shape(heat)
    height, width, channels = (
        static[i] if static[i] is not None else dynamic[i] for i in (1, 2, 3)
    )
    return finish.finish_targets(targets, height, width, int(channels))


def _finished_images(images, targets: dict):
    return finish.finish_images(images, targets) if finish.PIXEL_AFFINE_KEY in targets else images


def _weights(model) -> dict:
    weights = getattr(model, "loss_weights_by_term", None)
    if weights is None:
        raise RuntimeError("CornerNet: call model.compile(optimizer=...) before fit/evaluate")
    return weights


def _all_finite(tensors) -> tf.Tensor:
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


def _guard_finite(model, loss, outputs, gradients, terms: dict, targets: dict):
    """``gradients`` behind a check that fails the step, before any update, on non-finite values.

    The loss alone is not enough: the focal loss clamps probabilities, so a NaN image can give a
    finite loss and NaN gradients. Under a ``LossScaleOptimizer`` non-finite gradients are normal
    (the optimizer skips the step and lowers the scale), so only the loss and the outputs count.
    """
    checks = [tf.reduce_all(tf.math.is_finite(loss)), _all_finite(tf.nest.flatten(outputs))]
    if not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        checks.append(_all_finite([g for g in gradients if g is not None]))
    image_ids = targets.get(IMAGE_ID_KEY)
    if image_ids is None:
        image_ids = tf.constant([], tf.int64)
    data = [
        NON_FINITE_MARKER,
        "at step",
        model.optimizer.iterations + 1,
        "image ids",
        tf.reshape(image_ids, [-1]),
        "terms focal/pull/push/regr",
        tf.stack([terms[k] for k in LOSS_TERMS]),
    ]
    check = tf.debugging.Assert(tf.reduce_all(tf.stack(checks)), data, summarize=_ASSERT_SUMMARIZE)
    with tf.control_dependencies([check]):
        return [None if g is None else tf.identity(g) for g in gradients], tf.identity(loss)


def _track(model, terms: dict):
    """Update the loss trackers with the global-batch terms (summed over replicas)."""
    values = tf.stack([terms["total"]] + [terms[k] for k in LOSS_TERMS])
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        values = context.all_reduce(tf.distribute.ReduceOp.SUM, values)
    model.loss_tracker.update_state(values[0])
    for i, name in enumerate(LOSS_TERMS):
        model.loss_term_trackers[name].update_state(values[i + 1])
    results = model.get_metrics_result()
    if _multi_worker(model.distribute_strategy):
        # Keras (3.15) reduces step outputs with strategy.reduce(MEAN, axis=0) across workers,
        # which needs an axis to reduce: give the (identical) per-replica values one.
        results = {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results


def _multi_worker(strategy) -> bool:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_multi_worker_mode()) if in_multi_worker_mode else True


def train_step(model, data):
    images, targets = _unpack(data, "train_step")
    images = _finished_images(images, targets)
    weights = _weights(model)
    trainable = model.trainable_variables
    with tf.GradientTape() as tape:
        # Stateless forward: BatchNorm's moving statistics come back as values and are written
        # only once the step is known to be finite, so a bad batch leaves the model untouched.
        outputs, new_non_trainable, losses = model.stateless_call(
            trainable, model.non_trainable_variables, images, training=True, return_losses=True
        )
        targets = _finished_targets(targets, outputs)
        terms = replica_loss(outputs, targets, weights)
        loss = terms["total"]
        if losses:  # layer regularisers belong to the model, not to a replica
            loss += tf.add_n(losses) / float(model.distribute_strategy.num_replicas_in_sync)
        scaled = model.optimizer.scale_loss(loss)
    gradients = tape.gradient(scaled, trainable)
    gradients, checked = _guard_finite(model, loss, outputs, gradients, terms, targets)
    # Every write of the step (BatchNorm statistics, weights, optimizer slots and step counter,
    # metrics) waits for the check, so a failed check leaves the whole state as it was.
    with tf.control_dependencies([checked]):
        for variable, value in zip(model.non_trainable_variables, new_non_trainable):
            variable.assign(value)
        model.optimizer.apply_gradients(zip(gradients, trainable))
        return _track(model, terms)


def test_step(model, data):
    images, targets = _unpack(data, "test_step")
    outputs = model(_finished_images(images, targets), training=False)
    targets = _finished_targets(targets, outputs)
    return _track(model, replica_loss(outputs, targets, _weights(model)))


_STEP_RE = re.compile(r"\[at step\]\s*\[(\d+)\]")
_IDS_RE = re.compile(r"\[image ids\]\s*\[([^\]]*)\]")


def non_finite_details(error: BaseException) -> tuple[int, list] | None:
    """(step, image ids) from the error raised by the in-step check, or None for other errors."""
    message = str(getattr(error, "message", None) or error)
    if NON_FINITE_MARKER not in message:
        return None
    step = _STEP_RE.search(message)
    ids = _IDS_RE.search(message)
    image_ids = []
    if ids:
        for token in ids.group(1).replace(",", " ").split():
            token = token.strip("'\"")
            if token == "...":
                continue
            try:
                image_ids.append(int(token))
            except ValueError:
                image_ids.append(token)
    return (int(step.group(1)) if step else -1), image_ids
