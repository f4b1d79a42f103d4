"""The CornerNet model: stem -> hourglass stacks -> corner-pool modules -> heads (docs/method.md §2).

``CornerNet`` maps images to maps and nothing more: a Keras functional model built in ``__init__``
(the keras-hub pattern), so it has a readable ``summary()``, serialises with ``get_config`` and runs
under ``tf.distribute``. Calling it returns a dict of lists, one NHWC tensor per stack, for every
stack whatever ``training`` is (``training`` only switches BatchNorm). ``stacks="last"`` runs a
second graph over the same layers that skips the earlier stacks' corner modules and heads, for
inference. The backbone's layers come from the registry in ``backbones.py``; what training adds
(the loss, ``compile``, ``train_step``) is the task in ``cornernet_tf/training/task.py``.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from cornernet_tf.config import (
    COCO_MEAN_RGB,
    COCO_STD_RGB,
    ConfigError,
    ModelConfig,
    load_model_config,
)
from cornernet_tf.detection.contract import CORNERS, OUTPUT_KEYS
from cornernet_tf.modeling.backbones import HEAD_KINDS, build_backbone, get_backbone
from cornernet_tf.modeling.official_names import get_naming


def _heads(stack: dict, cnv) -> dict:
    out = {}
    for corner in CORNERS:
        pooled = stack[f"{corner}_pool"](cnv)
        for kind in HEAD_KINDS:
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
        stem, stacks, merges = build_backbone(cfg)
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
        """The stem's map must halve ``n`` times and come back (docs/method.md §2): otherwise the
        hourglass merge fails deep inside with a shape error, so say it here."""
        cfg = self.model_config
        stride, levels = cfg.output_stride, 2**cfg.depth
        for axis, name in ((1, "height"), (2, "width")):
            size = images.shape[axis]
            if size is not None and -(-size // stride) % levels:
                fits = cfg.stride_multiple * -(-size // cfg.stride_multiple)
                raise ValueError(
                    f"CornerNet: image {name} {size} gives a {-(-size // stride)}-pixel map, which the "
                    f"depth-{cfg.depth} hourglass cannot halve {cfg.depth} times; pad the image so that "
                    f"ceil({name} / {stride}) is a multiple of {levels} (e.g. {name} {fits - 1} or {fits})"
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
    @property
    def official_namings(self) -> tuple:
        """Key namings of the official checkpoints of this backbone, the default first."""
        return get_backbone(self.model_config).official_namings

    def official_variables(self, naming: str | None = None) -> list:
        """(official state_dict key, variable, transform) for every weight of the model.

        ``naming`` is ``cornernet`` (the original repository's keys) or ``cornernet_lite``
        (CornerNet-Lite's); by default the backbone's first (modeling/official_names.py).
        """
        naming = naming or self.official_namings[0]
        if naming not in self.official_namings:
            raise ValueError(
                f"the {self.model_config.backbone} backbone has no official weights under "
                f"{naming!r} names; it has {list(self.official_namings)}"
            )
        names = get_naming(naming)
        out = self.stem.official_variables(names.stem)
        for i, stack in enumerate(self.stacks):
            out += stack["hourglass"].official_variables(f"{names.hourglass}.{i}")
            out += stack["cnv"].official_variables(f"{names.cnv}.{i}")
            for corner in CORNERS:
                module = f"{corner}_{names.corner_module}.{i}"
                out += stack[f"{corner}_pool"].official_variables(module)
                for kind in HEAD_KINDS:
                    head = f"{corner}_{names.head(kind)}.{i}"
                    out += stack[f"{corner}_{kind}"].official_variables(head)
        for i, merge in enumerate(self.merges):
            out += merge.official_variables(i, prefix=names.merge)
        return out

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """The network has no loss of its own: compiling it without one is a mistake that Keras
        would only report at the first ``fit`` step ("No loss to compute"), so say what to do."""
        if loss is None:
            raise ValueError(
                "CornerNet is the network only (images -> maps) and has no loss; to train, use the "
                "task: cornernet_tf.build_model(config) or "
                "cornernet_tf.training.CornerNetTask(network), then compile(optimizer=...)"
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

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
    """Build CornerNet from a ModelConfig, a dict of its fields, a full Config, or a YAML path.

    The network alone (inference, export, weight conversion); ``cornernet_tf.build_model``
    returns it inside the training task, which adds ``compile``/``fit`` with the CornerNet loss.
    """
    config = load_model_config(model_config)
    if config.num_classes is None:
        raise ConfigError(
            "model.num_classes is null (the dataset's number of categories) and was not resolved: "
            "train with a dataset, use the training work directory's config.yaml, or set it"
        )
    return CornerNet(config)
