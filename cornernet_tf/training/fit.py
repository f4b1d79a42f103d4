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

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from cornernet_tf.atomic_files import save_weights
from cornernet_tf.config import Config, ConfigError, load_config
from cornernet_tf.data.image_scale import resolve_image_scale
from cornernet_tf.extras import available
from cornernet_tf.losses import loss_weights
from cornernet_tf.modeling.cornernet import build_model as build_network
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training.lock import workdir_lock
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
from cornernet_tf.training.workdir import WorkdirPaths, check_workdir, save_config

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


def training_batch_format(config: Config) -> str:
    """``dense`` or ``compact``: ``data.batch_format`` resolved for this machine and config."""
    from cornernet_tf.data.finish import accelerator_visible, resolve_batch_format

    return resolve_batch_format(
        config.data.batch_format, config.train.jit_compile, accelerator_visible()
    )


def make_datasets(
    config: Config, strategy: tf.distribute.Strategy, validation: bool, train_source=None
):
    """The training (and validation-loss) datasets; one input pipeline per worker when distributed.

    ``train_source`` reuses training annotations already read (see :func:`training_classes`).
    Both are compact batches when an accelerator finishes them, dense otherwise
    (``data.batch_format``, see :func:`cornernet_tf.data.finish.resolve_batch_format`).
    """
    from cornernet_tf.data.pipeline import build_dataset

    batch = config.train.batch_size
    batch_format = training_batch_format(config)
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
            source=train_source if training else None,
            batch_format=batch_format,
        )
        return ds.repeat() if not training and cycle_validation else ds

    def make(training: bool):
        if strategy.num_replicas_in_sync == 1:
            return one(training)
        return strategy.distribute_datasets_from_function(lambda context: one(training, context))

    return make(True), (make(False) if validation else None)


def training_classes(config: Config, train_dataset=None):
    """``(config, source)``: ``model.num_classes`` settled against the training data before
    anything is built or written (null = the dataset's count; a stated number must match it).

    ``source`` is the loaded training data (None when ``train_dataset`` is given), for
    :func:`make_datasets` to reuse. A given dataset without ``dataset_info`` is not checked.
    """
    from cornernet_tf.data.classes import data_source_name, resolve_num_classes

    if train_dataset is not None:
        info = getattr(train_dataset, "dataset_info", None)
        if info is None:
            if config.model.num_classes is None:
                raise ConfigError(
                    "model.num_classes is null (the dataset's count), but the given training "
                    "dataset carries no dataset_info: set model.num_classes"
                )
            return config, None
        return resolve_num_classes(config, info, "the training dataset"), None
    from cornernet_tf.data.pipeline import load_source

    source = load_source(config.data, training=True)
    name = data_source_name(config.data, training=True)
    return resolve_num_classes(config, source.info, name), source


def validation_epochs(epochs: int, every: int) -> list[int]:
    """The 1-based epochs that validate: every ``every``-th, and the last one."""
    every = max(int(every), 1)
    return sorted(set(range(every, epochs + 1, every)) | {epochs})


def _monitor(ap: bool, validation: bool) -> tuple[str, str]:
    if ap:
        return "val_AP", "max"
    return ("val_loss", "min") if validation else ("loss", "min")


def epoch_plan(resumed_step: int, max_steps: int, steps_per_epoch: int) -> tuple[int, int]:
    """``(initial_epoch, epochs)`` for ``model.fit`` continuing at ``resumed_step``.

    Counted in steps, not in the epochs of the run that wrote the backup: that run may have had
    another ``max_steps`` (hence another effective ``steps_per_epoch``), and raising
    ``train.max_steps`` on a finished run must train the extra steps. A first epoch that starts
    mid-way is cut at ``max_steps`` by ``StopAtStep`` like any other.
    """
    initial_epoch = resumed_step // steps_per_epoch
    remaining = max(max_steps - resumed_step, 0)
    return initial_epoch, initial_epoch + math.ceil(remaining / steps_per_epoch)


def _nothing_to_do(paths: WorkdirPaths, step: int, max_steps: int) -> TrainResult:
    print(
        f"{paths.root}: already trained to step {step} (train.max_steps={max_steps}); nothing to do"
    )
    return TrainResult({}, step, step, 0.0, paths)


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
      ConfigError: bad config, batch that does not divide across replicas, a work directory
        holding another model's checkpoints (or checkpoints without config.yaml), or a
        model.num_classes other than the training data's number of categories; nothing is
        built or written to the work directory before these checks.
      OutputPathError: the work directory is in use by another ``train`` or not writable, or a
        file could not be written (full disk): its previous version is left intact.
      NonFiniteLossError: the loss or the gradients became NaN/inf; the error names the step
        and the image ids of its batch, and ``error.checkpoint`` holds the weights from before it.
    """
    config = load_config(config, list(overrides or []))
    t = config.train
    strategy = make_strategy(t.strategy)
    per_replica_batch_size(t, strategy)  # a clear error before anything is built
    # The number of classes is settled (and saved in config.yaml) before the workdir is touched.
    config, train_source = training_classes(config, train_dataset)
    chief = is_chief(strategy)
    # data.image_scale "auto" becomes a number here, so the saved config.yaml holds it for eval,
    # detect and export of this work directory.
    config = resolve_image_scale(config, announce=chief)
    paths = check_workdir(workdir, config)  # refused before anything is written
    done = cb.read_json(paths.summary).get("final_step", 0)
    if done >= t.max_steps and paths.has_training_state():
        return _nothing_to_do(paths, done, t.max_steps)
    # One run per work directory; taking the lock also proves the folder writable.
    with workdir_lock(paths.root) if chief else contextlib.nullcontext():
        return _train_in(
            config,
            paths,
            strategy,
            chief,
            progress=progress,
            extra_callbacks=extra_callbacks,
            train_dataset=train_dataset,
            train_source=train_source,
            val_dataset=val_dataset,
            return_model=return_model,
            max_seconds=max_seconds,
            evaluate=evaluate,
        )


def _train_in(
    config: Config,
    paths: WorkdirPaths,
    strategy: tf.distribute.Strategy,
    chief: bool,
    progress: bool,
    extra_callbacks: Sequence[keras.callbacks.Callback],
    train_dataset,
    train_source,
    val_dataset,
    return_model: bool,
    max_seconds: float | None,
    evaluate: Callable[..., dict] | None,
) -> TrainResult:
    """``train`` once the work directory is checked and locked."""
    t = config.train
    steps_per_epoch = min(t.steps_per_epoch, t.max_steps)
    validation = has_validation_data(config) or val_dataset is not None
    ap = evaluate is not None and has_validation_data(config) and t.val_ap_images > 0 and chief

    start = time.perf_counter()
    with precision_policy(t.mixed_precision):
        keras.utils.set_random_seed(t.seed)
        model = build_and_compile(config, strategy)
        guard = cb.NonFiniteLossGuard()
        backup = cb.ResumableBackup(
            paths.backup, save_freq=t.backup_every_steps or "epoch", chief=chief, guard=guard
        )
        resumed_step = backup.restore(model)
        if resumed_step >= t.max_steps:  # finished, but stopped before its summary was written
            return _nothing_to_do(paths, resumed_step, t.max_steps)
        initial_epoch, epochs = epoch_plan(resumed_step, t.max_steps, steps_per_epoch)
        validate_at = validation_epochs(epochs, t.val_every_epochs)
        if chief:
            save_config(paths, config)
        if train_dataset is None:
            train_dataset, configured_val = make_datasets(
                config, strategy, has_validation_data(config), train_source
            )
            val_dataset = val_dataset if val_dataset is not None else configured_val
            if chief:
                _save_dataset_info(paths, config, train_dataset)
                from cornernet_tf.data.finish import describe_batches

                print(describe_batches(training_batch_format(config)))

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
                    paths.best, paths.best_state, monitor, mode, guard, history_path=paths.history
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
                initial_epoch=initial_epoch,
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
    info.save(paths.dataset_info)  # written atomically


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
            save_weights(checkpoint, model)
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
