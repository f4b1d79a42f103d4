"""The hourglass backbone: stem, recursive hourglass module, and the merge between stacks.

Structure and naming follow the official ``kp_module`` / ``kp`` (models/py_utils/kp.py), so each
layer can list its variables under the official ``state_dict`` keys.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cornernet_tf.modeling.layers import CONV, ConvBN, Residual, _bn_variables, make_batch_norm


def _residual_stack(
    filters_in_out: list[tuple[int, int]], first_stride: int, name: str, bn: dict
) -> list:
    return [
        Residual(out, stride=first_stride if i == 0 else 1, name=f"{name}_{i}", **bn)
        for i, (_, out) in enumerate(filters_in_out)
    ]


def _build_chain(blocks: list, shape):
    for block in blocks:
        block.build(shape)
        shape = block.compute_output_shape(shape)
    return shape


def _run(blocks: list, x, training):
    for block in blocks:
        x = block(x, training=training)
    return x


@keras.saving.register_keras_serializable(package="cornernet_tf")
class Stem(layers.Layer):
    """conv7x7 stride 2 + BN + ReLU, then a stride-2 residual: 4x down-sampling (official ``pre``)."""

    def __init__(
        self, dims: list[int], bn_epsilon: float = 1e-5, bn_momentum: float = 0.9, **kwargs
    ):
        super().__init__(**kwargs)
        self.dims = list(dims)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        self.conv = ConvBN(dims[0], 7, stride=2, name="conv7x7", **bn)
        self.residual = Residual(dims[1], stride=2, name="residual", **bn)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.residual.build(self.conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=None):
        return self.residual(self.conv(x, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return self.residual.compute_output_shape(self.conv.compute_output_shape(input_shape))

    def official_variables(self, prefix: str = "pre") -> list:
        # The official network reads BGR, ours RGB: the stem's input channels are reversed.
        return self.conv.official_variables(
            f"{prefix}.0", bgr_input=True
        ) + self.residual.official_variables(f"{prefix}.1")

    def get_config(self):
        config = super().get_config()
        config.update(dims=self.dims, bn_epsilon=self.bn_epsilon, bn_momentum=self.bn_momentum)
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class HourglassModule(layers.Layer):
    """One hourglass of depth ``len(dims) - 1``, built recursively.

    up1 = residuals at full resolution (the skip branch); low1 = residuals with a stride-2 first
    block (the official code down-samples by convolution, ``max1`` is identity); low2 = the inner
    hourglass, or ``modules[-1]`` residuals at the bottom; low3 = residuals back to this width;
    output = up1 + nearest_upsample_x2(low3).
    """

    def __init__(
        self,
        dims: list[int],
        modules: list[int],
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(dims) < 2 or len(dims) != len(modules):
            raise ValueError(
                f"HourglassModule needs len(dims) == len(modules) >= 2, got {dims}, {modules}"
            )
        self.dims = list(dims)
        self.modules_per_level = list(modules)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        curr_dim, next_dim = dims[0], dims[1]
        curr_mod, next_mod = modules[0], modules[1]
        self.up1 = _residual_stack([(curr_dim, curr_dim)] * curr_mod, 1, "up1", bn)
        self.low1 = _residual_stack(
            [(curr_dim, next_dim)] + [(next_dim, next_dim)] * (curr_mod - 1), 2, "low1", bn
        )
        if len(dims) > 2:
            self.low2 = HourglassModule(dims[1:], modules[1:], name="low2", **bn)
        else:
            self.low2 = _residual_stack([(next_dim, next_dim)] * next_mod, 1, "low2", bn)
        self.low3 = _residual_stack(
            [(next_dim, next_dim)] * (curr_mod - 1) + [(next_dim, curr_dim)], 1, "low3", bn
        )
        self.upsample = layers.UpSampling2D(size=2, interpolation="nearest", name="up2")

    def build(self, input_shape):
        _build_chain(self.up1, input_shape)
        low_shape = _build_chain(self.low1, input_shape)
        if isinstance(self.low2, HourglassModule):
            self.low2.build(low_shape)
        else:
            low_shape = _build_chain(self.low2, low_shape)
        low_shape = _build_chain(self.low3, low_shape)
        self.upsample.build(low_shape)
        self.built = True

    def call(self, x, training=None):
        up1 = _run(self.up1, x, training)
        low1 = _run(self.low1, x, training)
        if isinstance(self.low2, HourglassModule):
            low2 = self.low2(low1, training=training)
        else:
            low2 = _run(self.low2, low1, training)
        low3 = _run(self.low3, low2, training)
        return up1 + self.upsample(low3)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dims[0],)

    def official_variables(self, prefix: str) -> list:
        out = []
        for i, block in enumerate(self.up1):
            out += block.official_variables(f"{prefix}.up1.{i}")
        for i, block in enumerate(self.low1):
            out += block.official_variables(f"{prefix}.low1.{i}")
        if isinstance(self.low2, HourglassModule):
            out += self.low2.official_variables(f"{prefix}.low2")
        else:
            for i, block in enumerate(self.low2):
                out += block.official_variables(f"{prefix}.low2.{i}")
        for i, block in enumerate(self.low3):
            out += block.official_variables(f"{prefix}.low3.{i}")
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            dims=self.dims,
            modules=self.modules_per_level,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
        )
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class StackMerge(layers.Layer):
    """Input of the next stack: relu(BN(conv1x1(inter)) + BN(conv1x1(cnv))) followed by a residual."""

    def __init__(self, dim: int, bn_epsilon: float = 1e-5, bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.inter_conv = layers.Conv2D(dim, 1, use_bias=False, name="inter_conv")
        self.inter_bn = make_batch_norm("inter_bn", bn_epsilon, bn_momentum)
        self.cnv_conv = layers.Conv2D(dim, 1, use_bias=False, name="cnv_conv")
        self.cnv_bn = make_batch_norm("cnv_bn", bn_epsilon, bn_momentum)
        self.residual = Residual(
            dim, name="residual", bn_epsilon=bn_epsilon, bn_momentum=bn_momentum
        )

    def build(self, input_shape):
        inter_shape, cnv_shape = input_shape
        self.inter_conv.build(inter_shape)
        self.cnv_conv.build(cnv_shape)
        out_shape = tuple(inter_shape[:-1]) + (self.dim,)
        self.inter_bn.build(out_shape)
        self.cnv_bn.build(out_shape)
        self.residual.build(out_shape)
        self.built = True

    def call(self, inputs, training=None):
        inter, cnv = inputs
        merged = self.inter_bn(self.inter_conv(inter), training=training) + self.cnv_bn(
            self.cnv_conv(cnv), training=training
        )
        return self.residual(ops.relu(merged), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (self.dim,)

    def official_variables(self, index: int) -> list:
        out = [(f"inters_.{index}.0.weight", self.inter_conv.kernel, CONV)]
        out += _bn_variables(self.inter_bn, f"inters_.{index}.1")
        out += [(f"cnvs_.{index}.0.weight", self.cnv_conv.kernel, CONV)]
        out += _bn_variables(self.cnv_bn, f"cnvs_.{index}.1")
        out += self.residual.official_variables(f"inters.{index}")
        return out

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, bn_epsilon=self.bn_epsilon, bn_momentum=self.bn_momentum)
        return config
