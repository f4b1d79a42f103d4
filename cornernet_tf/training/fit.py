"""``train(config, workdir)``: the whole training run around one ``model.fit`` call.

Strategy and precision come from ``train.*``; the model is built and compiled in the strategy's
scope with Adam and the official step decay; the input pipeline is
``cornernet_tf.data.build_dataset`` (one pipeline per worker under tf.distribute). Callbacks
(in this order, each sees what the previous added to the logs): fault-tolerance backup, step
budget, non-finite guard, learning-rate logger, validation AP, checkpoints (last and best), CSV
history, TensorBoard. At the end the loss curves are drawn and ``summary.json`` is written.
See ``workdir.py`` for the files.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from cornernet_tf.config import Config, load_config
from cornernet_tf.extras import available
from cornernet_tf.losses import loss_weights
from cornernet_tf.modeling.cornernet import build_model as build_network
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training.plots import plot_history
from cornernet_tf.training.progress import LOG_EVERY_STEPS, ProgressLines, is_terminal
from cornernet_tf.training.schedule import build_schedule
from cornernet_tf.training.steps import NonFiniteLossError, non_finite_details
from cornernet_tf.training.strategy import (
    is_chief,
    make_strategy,
    per_replica_batch_size,
    precision_policy,
)
from cornernet_tf.training.task import CornerNetTask
from cornernet_tf.training.workdir import WorkdirPaths, prepare_workdir

logger = logging.getLogger("cornernet_tf.training")


@dataclasses.dataclass
class TrainResult:
    """What a run leaves behind: the Keras history of this call and the files in the work directory."""

    history: dict
    final_step: int
    resumed_from_step: int
    seconds: float
    paths: WorkdirPaths
    model: keras.Model | None = None


def has_validation_data(config: Config) -> bool:
    data = config.data
    return bool(data.val_annotations or data.val_images or data.val_tfrecords or data.tfds_name)


def build_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam with the official step decay (docs/method.md §4)."""
    return keras.optimizers.Adam(learning_rate=build_schedule(config.train))


def build_and_compile(config: Config, strategy: tf.distribute.Strategy) -> CornerNetTask:
    """The CornerNet task, compiled for training, with its variables in ``strategy``'s scope.

    The network and everything ``compile`` creates (optimizer, trackers) live in the scope; the
    task around the network is created outside it (see task.py) and trains under the network's
    strategy.
    """
    with strategy.scope():
        network = build_network(config.model)
    task = CornerNetTask(network)
    with strategy.scope():
        task.compile(
            optimizer=build_optimizer(config),
            loss_weights=loss_weights(config.train),
            jit_compile=bool(config.train.jit_compile),
        )
        task.optimizer.build(task.trainable_variables)
    return task


def make_datasets(config: Config, strategy: tf.distribute.Strategy, validation: bool):
    """The training (and validation-loss) datasets; one input pipeline per worker when distributed."""
    from cornernet_tf.data.pipeline import build_dataset

    batch = config.train.batch_size
    # With a fixed number of validation batches, a small validation set is cycled rather than
    # running out (Keras would warn and validate on fewer batches).
    cycle_validation = config.train.validation_steps is not None

    def one(training: bool, context=None):
        ds = build_dataset(
            config.data,
            training,
            batch_size=batch,
            input_context=context,
            model_config=config.model,
        )
        return ds.repeat() if not training and cycle_validation else ds

    def make(training: bool):
        if strategy.num_replicas_in_sync == 1:
            return one(training)
        return strategy.distribute_datasets_from_function(lambda context: one(training, context))

    return make(True), (make(False) if validation else None)


def validation_epochs(epochs: int, every: int) -> list[int]:
    """The 1-based epochs that validate: every ``every``-th, and the last one."""
    every = max(int(every), 1)
    return sorted(set(range(every, epochs + 1, every)) | {epochs})


def _monitor(ap: bool, validation: bool) -> tuple[str, str]:
    if ap:
        return "val_AP", "max"
    return ("val_loss", "min") if validation else ("loss", "min")


def _read_summary(paths: WorkdirPaths) -> dict:
    import json

    if not os.path.exists(paths.summary):
        return {}
    with open(paths.summary, encoding="utf-8") as fh:
        return json.load(fh)


def train(
    config: Config | dict | str | os.PathLike,
    workdir: str,
    progress: bool = True,
    overrides: Sequence[str] | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    train_dataset=None,
    val_dataset=None,
    return_model: bool = False,
    max_seconds: float | None = None,
    evaluate: Callable[..., dict] | None = None,
) -> TrainResult:
    """Train CornerNet as configured, resuming from ``workdir`` when it holds a run of the same model.

    Args:
      config: a Config, a dict, or a YAML path; ``overrides`` are ``a.b=c`` strings on top.
      workdir: output folder (see ``workdir.py``); re-running the same command resumes.
      progress: a Keras progress bar on a terminal, one line every ``LOG_EVERY_STEPS`` steps and
        one per epoch otherwise (redirected output); False: one line per epoch.
      extra_callbacks: appended after the standard ones.
      train_dataset, val_dataset: replace the configured input pipeline (elements as
        ``build_dataset``: ``(images, targets)`` with the *global* batch for one replica).
      return_model: keep the trained model in the result.
      max_seconds: stop after this much training time (the run can be resumed later).
      evaluate: validation COCO AP, e.g. ``cornernet_tf.eval.runner.evaluate`` (what
        ``cornernet train`` passes): with a validation set and ``train.val_ap_images > 0`` it runs
        at the validation epochs and ``best.weights.h5`` follows the AP; without it, the
        validation loss.

    Raises:
      ConfigError: bad config, batch that does not divide across replicas, or a work directory
        holding another model's checkpoints.
      NonFiniteLossError: the loss or the gradients became NaN/inf; the error names the step
        and the image ids of its batch, and ``error.checkpoint`` holds the weights from before it.
    """
    config = load_config(config, list(overrides or []))
    t = config.train
    strategy = make_strategy(t.strategy)
    per_replica_batch_size(t, strategy)  # a clear error before anything is built
    chief = is_chief(strategy)
    paths = prepare_workdir(workdir, config, write=chief)
    done = _read_summary(paths).get("final_step", 0)
    if done >= t.max_steps and paths.has_training_state():
        print(
            f"{paths.root}: already trained to step {done} (train.max_steps={t.max_steps}); nothing to do"
        )
        return TrainResult({}, done, done, 0.0, paths)

    steps_per_epoch = min(t.steps_per_epoch, t.max_steps)
    epochs = math.ceil(t.max_steps / steps_per_epoch)
    validation = has_validation_data(config) or val_dataset is not None
    validate_at = validation_epochs(epochs, t.val_every_epochs)
    ap = evaluate is not None and has_validation_data(config) and t.val_ap_images > 0 and chief

    start = time.perf_counter()
    with precision_policy(t.mixed_precision):
        keras.utils.set_random_seed(t.seed)
        model = build_and_compile(config, strategy)
        if train_dataset is None:
            train_dataset, configured_val = make_datasets(
                config, strategy, has_validation_data(config)
            )
            val_dataset = val_dataset if val_dataset is not None else configured_val
            if chief:
                _save_dataset_info(paths, config, train_dataset)

        guard = cb.NonFiniteLossGuard()
        backup = cb.ResumableBackup(
            paths.backup, save_freq=t.backup_every_steps or "epoch", chief=chief, guard=guard
        )
        callbacks = [backup, cb.StopAtStep(t.max_steps), guard, cb.LearningRateLogger()]
        if max_seconds is not None:
            callbacks.append(cb.TimeBudget(max_seconds))
        if ap:
            callbacks.append(
                cb.CocoAPCallback(config, t.val_ap_images, validate_at, evaluate, verbose=True)
            )
        if chief:
            monitor, mode = _monitor(ap, validation)
            callbacks += [
                cb.LastCheckpoint(paths.last, t.checkpoint_every_epochs, guard),
                cb.BestCheckpoint(
                    paths.best,
                    monitor=monitor,
                    mode=mode,
                    save_best_only=True,
                    save_weights_only=True,
                    verbose=0,
                ),
                cb.EpochTimer(),  # after the checkpoints and COCO AP: their time is in epoch_seconds
                cb.CSVHistory(paths.history),
            ]
            callbacks += _tensorboard(paths)
        callbacks += list(extra_callbacks)
        bar = progress and is_terminal()
        if not bar:  # plain lines, last: it prints what the callbacks above logged
            callbacks.append(
                ProgressLines(epochs, steps_per_epoch, LOG_EVERY_STEPS if progress else 0)
            )

        try:
            history = model.fit(
                train_dataset,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                validation_data=val_dataset,
                validation_steps=t.validation_steps,
                validation_freq=validate_at,
                callbacks=callbacks,
                verbose=1 if bar else 0,
                shuffle=False,  # the input pipeline shuffles
            )
        except tf.errors.InvalidArgumentError as error:
            details = non_finite_details(error)
            if details is None:
                raise
            step, image_ids = details
            raise _non_finite(model, paths, chief, step, image_ids) from None

    if guard.tripped:
        raise _non_finite(model, paths, chief, guard.step, None)
    final_step = int(model.optimizer.iterations.numpy())
    seconds = time.perf_counter() - start
    result = TrainResult(
        history.history,
        final_step,
        backup.restored_step,
        seconds,
        paths,
        model if return_model else None,
    )
    if chief:
        _finish(result, config)
    return result


def _save_dataset_info(paths: WorkdirPaths, config: Config, train_dataset) -> None:
    """Class names and category ids beside the weights, so export and detect map classes back."""
    info = getattr(train_dataset, "dataset_info", None)
    if info is None:  # a distributed dataset does not carry it: read the source's header again
        from cornernet_tf.data import dataset_info

        info = dataset_info(config.data, training=True)
    info.save(paths.dataset_info)


def _tensorboard(paths: WorkdirPaths) -> list:
    """TensorBoard logs when the ``[tensorboard]`` extra is installed; without it nothing is said
    (history.csv and loss_curves.png hold the same curves)."""
    if not available("tensorboard"):
        logger.info("tensorboard is not installed: no TensorBoard logs")
        return []
    return [keras.callbacks.TensorBoard(paths.tensorboard, update_freq="epoch", write_graph=False)]


def _non_finite(
    model, paths: WorkdirPaths, chief: bool, step: int, image_ids
) -> NonFiniteLossError:
    if image_ids is not None:
        # The in-step check failed before any variable was written: these are the weights
        # (and optimizer state) from before the bad step.
        checkpoint = paths.before_step(step)
        if chief:
            model.save_weights(checkpoint, overwrite=True)
        ids = (
            ", ".join(str(i) for i in image_ids)
            if image_ids
            else "unknown (no image_id in the targets)"
        )
        message = (
            f"training stopped: non-finite loss or gradients at step {step}; image ids of that batch: {ids}. "
            f"Weights and optimizer state from before step {step}: {checkpoint}"
        )
    else:
        # XLA: detected after the update; the last backup (saved before the bad step) is the state to use.
        checkpoint = os.path.join(paths.backup, "latest.weights.h5")
        message = (
            f"training stopped: non-finite loss at step {step} (jit_compile: image ids unavailable). "
            f"Last good backup: {checkpoint}"
        )
    return NonFiniteLossError(
        message, step=step, image_ids=list(image_ids or []), checkpoint=checkpoint
    )


def _finish(result: TrainResult, config: Config) -> None:
    rows = cb.read_history(result.paths.history)
    if rows:
        try:
            plot_history(
                rows, result.paths.curves, title=f"{config.name}: step {result.final_step}"
            )
        except ValueError as exc:  # nothing to plot
            logger.warning("no loss curves: %s", exc)
    cb.write_json(
        result.paths.summary,
        {
            "final_step": result.final_step,
            "resumed_from_step": result.resumed_from_step,
            "seconds": round(result.seconds, 1),
            "last_checkpoint": result.paths.last,
            "best_checkpoint": result.paths.best if os.path.exists(result.paths.best) else None,
            "loss_curves": result.paths.curves if os.path.exists(result.paths.curves) else None,
            "config": result.paths.config,
            "final_logs": {k: float(v[-1]) for k, v in result.history.items() if v},
        },
    )
