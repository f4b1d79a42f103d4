"""The CornerNet model: stem -> hourglass stacks -> corner-pool modules -> heads (docs/method.md §2).

``CornerNet`` is a Keras functional model built in ``__init__`` (the keras-hub pattern), so it has a
readable ``summary()``, serialises with ``get_config`` and runs under ``tf.distribute``. Calling it
returns a dict of lists, one NHWC tensor per stack, for every stack whatever ``training`` is
(``training`` only switches BatchNorm). ``stacks="last"`` runs a second graph over the same layers
that skips the earlier stacks' corner modules and heads, for inference.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from cornernet_tf.config import COCO_MEAN_RGB, COCO_STD_RGB, ModelConfig, load_model_config
from cornernet_tf.detection.contract import CORNERS, OUTPUT_KEYS
from cornernet_tf.modeling.corner_pool import CornerPoolModule
from cornernet_tf.modeling.heads import PredictionHead
from cornernet_tf.modeling.hourglass import HourglassModule, StackMerge, Stem
from cornernet_tf.modeling.layers import ConvBN


def _stack_layers(cfg: ModelConfig, index: int) -> dict:
    """Layers of one stack, named after the official modules they mirror."""
    bn = dict(bn_epsilon=cfg.bn_epsilon, bn_momentum=cfg.bn_momentum)
    head_dim = cfg.head_dim or cfg.dims[0]
    stack = {
        "hourglass": HourglassModule(cfg.dims, cfg.modules, name=f"hourglass_{index}", **bn),
        "cnv": ConvBN(cfg.cnv_dim, 3, name=f"cnv_{index}", **bn),
    }
    for corner in CORNERS:
        stack[f"{corner}_pool"] = CornerPoolModule(
            corner,
            cfg.cnv_dim,
            cfg.pool_dim,
            impl=cfg.corner_pool_impl,
            name=f"{corner}_pool_{index}",
            **bn,
        )
        stack[f"{corner}_heat"] = PredictionHead(
            cfg.num_classes, head_dim, bias_init=cfg.heat_bias_init, name=f"{corner}_heat_{index}"
        )
        stack[f"{corner}_tag"] = PredictionHead(1, head_dim, name=f"{corner}_tag_{index}")
        stack[f"{corner}_regr"] = PredictionHead(2, head_dim, name=f"{corner}_regr_{index}")
    return stack


def _heads(stack: dict, cnv) -> dict:
    out = {}
    for corner in CORNERS:
        pooled = stack[f"{corner}_pool"](cnv)
        for kind in ("heat", "tag", "regr"):
            out[f"{corner}_{kind}"] = stack[f"{corner}_{kind}"](pooled)
    return out


def _forward(stem, stacks, merges, images, last_only: bool) -> dict:
    outputs = {key: [] for key in OUTPUT_KEYS}
    inter = stem(images)
    for index, stack in enumerate(stacks):
        cnv = stack["cnv"](stack["hourglass"](inter))
        if not last_only or index == len(stacks) - 1:
            for key, value in _heads(stack, cnv).items():
                outputs[key].append(value)
        if index < len(stacks) - 1:
            inter = merges[index]([inter, cnv])
    return outputs


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerNet(keras.Model):
    """CornerNet on NHWC RGB images, normalised with the COCO mean/std (uint8 input is normalised here)."""

    def __init__(self, model_config: dict | ModelConfig, **kwargs):
        cfg = load_model_config(model_config)
        if cfg.backbone != "hourglass":
            from cornernet_tf.modeling.backbones import build_backbone_stacks  # other backbones

            stem, stacks, merges = build_backbone_stacks(cfg)
        else:
            bn = dict(bn_epsilon=cfg.bn_epsilon, bn_momentum=cfg.bn_momentum)
            stem = Stem(cfg.stem_dims, name="stem", **bn)
            stacks = [_stack_layers(cfg, i) for i in range(cfg.num_stacks)]
            merges = [
                StackMerge(cfg.dims[0], name=f"merge_{i}", **bn) for i in range(cfg.num_stacks - 1)
            ]
        images = keras.Input(shape=(None, None, 3), name="images")
        outputs = _forward(stem, stacks, merges, images, last_only=False)
        kwargs.setdefault("name", "cornernet")
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.model_config = cfg
        self.stem = stem
        self.stacks = stacks
        self.merges = merges
        self._last_stack_model = None

    # ------------------------------------------------------------------ calling
    def call(self, inputs, training=None, mask=None, stacks: str = "all"):
        inputs = self._prepare_images(inputs)
        self._check_image_size(inputs)
        if stacks == "last":
            return self.last_stack_model(inputs, training=training)
        if stacks != "all":
            raise ValueError(f"CornerNet: stacks must be 'all' or 'last', got {stacks!r}")
        return super().call(inputs, training=training, mask=mask)

    @property
    def last_stack_model(self) -> keras.Model:
        """A model over the same layers that computes only the last stack's heads."""
        if self._last_stack_model is None:
            images = keras.Input(shape=(None, None, 3), name="images")
            outputs = _forward(self.stem, self.stacks, self.merges, images, last_only=True)
            self._last_stack_model = keras.Model(images, outputs, name=f"{self.name}_last_stack")
        return self._last_stack_model

    def _check_image_size(self, images) -> None:
        """The 4x map must halve ``n`` times and come back (docs/method.md §2): otherwise the
        hourglass merge fails deep inside with a shape error, so say it here."""
        cfg = self.model_config
        if cfg.backbone != "hourglass":
            return
        levels = 2**cfg.depth
        for axis, name in ((1, "height"), (2, "width")):
            size = images.shape[axis]
            if size is not None and -(-size // 4) % levels:
                fits = cfg.stride_multiple * -(-size // cfg.stride_multiple)
                raise ValueError(
                    f"CornerNet: image {name} {size} gives a {-(-size // 4)}-pixel map, which the depth-{cfg.depth} "
                    f"hourglass cannot halve {cfg.depth} times; pad the image so that ceil({name} / 4) is a "
                    f"multiple of {levels} (e.g. {name} {fits - 1} or {fits})"
                )

    @staticmethod
    def _prepare_images(inputs):
        if not isinstance(inputs, keras.KerasTensor):
            inputs = tf.convert_to_tensor(inputs)
        shape = tuple(inputs.shape)
        if len(shape) != 4 or (shape[-1] is not None and shape[-1] != 3):
            raise ValueError(
                f"CornerNet expects NHWC images of shape [batch, height, width, 3], got shape {tuple(shape)}"
            )
        dtype = tf.as_dtype(inputs.dtype)
        if dtype == tf.uint8:
            # Raw pixels: apply the standard pre-processing so users can feed decoded images.
            images = tf.cast(inputs, tf.float32) / 255.0
            return (images - tf.constant(COCO_MEAN_RGB)) / tf.constant(COCO_STD_RGB)
        if not dtype.is_floating:
            raise ValueError(
                f"CornerNet expects float (normalised) or uint8 images, got dtype {dtype.name}"
            )
        return inputs

    # ------------------------------------------------------------------ weights
    def official_variables(self) -> list:
        """(official state_dict key, variable, transform) for every weight of the model."""
        out = self.stem.official_variables("pre")
        for i, stack in enumerate(self.stacks):
            out += stack["hourglass"].official_variables(f"kps.{i}")
            out += stack["cnv"].official_variables(f"cnvs.{i}")
            for corner in CORNERS:
                out += stack[f"{corner}_pool"].official_variables(f"{corner}_cnvs.{i}")
                for kind, official in (("heat", "heats"), ("tag", "tags"), ("regr", "regrs")):
                    out += stack[f"{corner}_{kind}"].official_variables(f"{corner}_{official}.{i}")
        for i, merge in enumerate(self.merges):
            out += merge.official_variables(i)
        return out

    # ------------------------------------------------------------------ training (model.fit)
    # The step logic lives in cornernet_tf/training/steps.py; these hooks only plug it into Keras,
    # so that ``model.compile(optimizer=...)`` + ``model.fit(dataset)`` trains with the CornerNet
    # loss on (images, targets) batches, under any tf.distribute strategy.
    def compile(
        self, optimizer="adam", loss=None, loss_weights=None, sync_batch_norm="auto", **kwargs
    ):
        """Configure training. ``loss_weights`` maps focal/pull/push/regr to weights (docs/method.md §3 defaults).

        The loss is CornerNet's own; passing ``loss`` is an error. ``sync_batch_norm`` ("auto":
        when the strategy has several replicas) makes BatchNorm use the statistics of the global
        batch, so that N replicas train exactly like one device on the same batch.
        """
        from cornernet_tf.training import steps

        steps.configure_compile(self, loss, loss_weights, sync_batch_norm)
        super().compile(optimizer=optimizer, loss_weights=loss_weights, **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        trackers = getattr(self, "_loss_term_trackers", None) or {}
        return super().metrics + list(trackers.values())

    def train_step(self, data):
        from cornernet_tf.training import steps

        return steps.train_step(self, data)

    def test_step(self, data):
        from cornernet_tf.training import steps

        return steps.test_step(self, data)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds unbuilt models/compiled losses/metrics from a peeked batch here, reducing it
        # across replicas first, which fails under MultiWorkerMirroredStrategy (nested PerReplica
        # values, keras 3.15). CornerNet is built in __init__ and has no compiled loss or metric,
        # so only the optimizer can be left to build.
        if getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def set_batch_norm_synchronized(self, synchronized: bool) -> None:
        """Compute BatchNorm statistics over all replicas (True) or per replica (False)."""
        for layer in self._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = bool(synchronized)

    # ------------------------------------------------------------------ serialisation
    def get_config(self):
        return {"model_config": dataclasses.asdict(self.model_config), "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_model(model_config) -> CornerNet:
    """Build CornerNet from a ModelConfig, a dict of its fields, a full Config, or a YAML path."""
    return CornerNet(load_model_config(model_config))
