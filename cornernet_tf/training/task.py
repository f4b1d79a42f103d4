"""The training task: CornerNet with its loss, ``compile``, ``train_step`` and ``test_step``.

As keras-hub separates a backbone from its task, the network (``modeling.CornerNet``: images to
maps) knows nothing of training; :class:`CornerNetTask` wraps it and adds what ``model.fit`` needs:

    task = cornernet_tf.build_model("configs/cornernet_tiny.yaml")
    task.compile(optimizer=keras.optimizers.Adam(2.5e-4))
    task.fit(dataset)  # (images, targets) batches, targets from cornernet_tf.targets

The task is a functional model over the network's own layers, so calling it is calling the
network (same arguments, ``stacks="last"`` included, same maps) and its ``.weights.h5`` files
are the network's: weights saved from either load into the other. What one step computes is in
``steps.py``.

The task trains under the strategy its network was created in (``distribute_strategy``). Under
``MultiWorkerMirroredStrategy``, Keras (3.15) ``fit`` first peeks at a batch and reduces it
across workers when the model itself was created inside a strategy scope, which fails on
per-replica values. The network's variables must be created in the scope, but the task owns
none of its own until ``compile``: ``fit.build_and_compile`` therefore wraps the network outside
the scope and compiles inside it, and Keras skips that peek.
"""

from __future__ import annotations

import keras

from cornernet_tf.losses import LOSS_TERMS, resolve_loss_weights
from cornernet_tf.modeling.cornernet import CornerNet
from cornernet_tf.modeling.cornernet import build_model as build_network
from cornernet_tf.training import steps


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerNetTask(keras.Model):
    """A CornerNet network that trains with the CornerNet loss under ``compile``/``fit``/``evaluate``."""

    def __init__(self, backbone: CornerNet, **kwargs):
        if not isinstance(backbone, CornerNet):
            raise TypeError(f"CornerNetTask wraps a CornerNet model, got {type(backbone).__name__}")
        kwargs.setdefault("name", backbone.name)
        super().__init__(inputs=backbone.inputs, outputs=backbone.output, **kwargs)
        self.backbone = backbone
        self.loss_weights_by_term: dict | None = None
        self.loss_tracker = None
        self.loss_term_trackers: dict = {}

    # ------------------------------------------------------------------ the network
    def call(self, inputs, training=None, mask=None, stacks: str = "all"):
        return self.backbone(inputs, training=training, stacks=stacks)

    @property
    def distribute_strategy(self):
        """The strategy the network's variables were created under (the task may be created
        outside its scope, see the module docstring)."""
        return self.backbone.distribute_strategy

    @property
    def model_config(self):
        return self.backbone.model_config

    @property
    def official_namings(self) -> tuple:
        return self.backbone.official_namings

    def official_variables(self, naming: str | None = None) -> list:
        """(official state_dict key, variable, transform) for every weight (see CornerNet)."""
        return self.backbone.official_variables(naming)

    # ------------------------------------------------------------------ training
    def compile(
        self, optimizer="adam", loss=None, loss_weights=None, sync_batch_norm="auto", **kwargs
    ):
        """Configure training. ``loss_weights`` maps focal/pull/push/regr to weights (docs/method.md §3 defaults).

        The loss is CornerNet's own; passing ``loss`` is an error. ``sync_batch_norm`` ("auto":
        when the strategy has several replicas) makes BatchNorm use the statistics of the global
        batch, so that N replicas train exactly like one device on the same batch.
        """
        if loss is not None:
            raise ValueError(
                "CornerNet.compile: the model trains with its own CornerNet loss; do not pass `loss` "
                "(use loss_weights={'focal': ..., 'pull': ..., 'push': ..., 'regr': ...} to weight its terms)"
            )
        weights = resolve_loss_weights(loss_weights)
        strategy = self.distribute_strategy
        if sync_batch_norm == "auto":
            sync_batch_norm = strategy.num_replicas_in_sync > 1
        if not isinstance(sync_batch_norm, bool):
            raise ValueError(
                f"CornerNet.compile: sync_batch_norm must be 'auto', True or False, got {sync_batch_norm!r}"
            )
        self.backbone.set_batch_norm_synchronized(sync_batch_norm)
        super().compile(optimizer=optimizer, loss_weights=loss_weights, **kwargs)
        with strategy.scope():
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.loss_term_trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_TERMS}
        self.loss_weights_by_term = weights

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        """The logged loss and its weighted terms (the documented way to own a step's metrics)."""
        if self.loss_tracker is None:
            return []
        return [self.loss_tracker, *self.loss_term_trackers.values()]

    def train_step(self, data):
        return steps.train_step(self, data)

    def test_step(self, data):
        return steps.test_step(self, data)

    # ------------------------------------------------------------------ serialisation
    def get_config(self):
        return {"backbone": keras.saving.serialize_keras_object(self.backbone), "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone, **config)


def build_model(model_config) -> CornerNetTask:
    """CornerNet, ready for ``compile``/``fit``, from anything ``load_model_config`` accepts
    (a ModelConfig, a dict of its fields, a full Config, or a YAML path)."""
    return CornerNetTask(build_network(model_config))
