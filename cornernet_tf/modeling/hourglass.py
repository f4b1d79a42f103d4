"""The hourglass: stem, the recursive hourglass module, and the merge between stacks.

One module serves both backbones (docs/method.md §2): CornerNet's hourglass is built from residual
blocks and up-samples by nearest neighbour; CornerNet-Squeeze's from fire modules, up-sampling by a
4x4 stride-2 transposed convolution. Structure and naming follow the official ``kp_module`` /
``hg_module``, so each layer can list its variables under the official ``state_dict`` keys.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cornernet_tf.modeling.layers import (
    CONV,
    CONV_TRANSPOSE,
    VECTOR,
    ConvBN,
    FireModule,
    Residual,
    _bn_variables,
    make_batch_norm,
)

# The blocks an hourglass is made of; both take (filters, stride=, name=, bn_epsilon=, bn_momentum=).
BLOCKS = {"residual": Residual, "fire": FireModule}
UPSAMPLINGS = ("nearest", "transposed")
# Transposed-convolution up-sampling of the official CornerNet-Squeeze: kernel 4, stride 2,
# padding 1 (TF's "same" pads the same way for this kernel and stride).
TRANSPOSED_KERNEL = 4


def _build_chain(blocks: list, shape):
    for block in blocks:
        block.build(shape)
        shape = block.compute_output_shape(shape)
    return shape


def _run(blocks: list, x, training):
    for block in blocks:
        x = block(x, training=training)
    return x


def _official_chain(blocks: list, prefix: str) -> list:
    out = []
    for i, block in enumerate(blocks):
        out += block.official_variables(f"{prefix}.{i}")
    return out


@keras.saving.register_keras_serializable(package="cornernet_tf")
class Stem(layers.Layer):
    """conv7x7 stride 2 + BN + ReLU, then ``residuals`` stride-2 residuals (official ``pre``).

    One residual gives CornerNet's 4x down-sampling, two CornerNet-Squeeze's 8x.
    """

    def __init__(
        self,
        dims: list[int],
        residuals: int = 1,
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(dims) != 2:
            raise ValueError(f"Stem: dims must be [conv7x7_out, residual_out], got {dims}")
        if residuals < 1:
            raise ValueError(f"Stem: residuals must be >= 1, got {residuals}")
        self.dims = list(dims)
        self.residuals = residuals
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        self.conv = ConvBN(dims[0], 7, stride=2, name="conv7x7", **bn)
        self.blocks = [
            Residual(dims[1], stride=2, name=f"residual{'' if i == 0 else i + 1}", **bn)
            for i in range(residuals)
        ]

    def build(self, input_shape):
        _build_chain([self.conv, *self.blocks], input_shape)
        self.built = True

    def call(self, x, training=None):
        return _run([self.conv, *self.blocks], x, training)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for block in (self.conv, *self.blocks):
            shape = block.compute_output_shape(shape)
        return shape

    def official_variables(self, prefix: str = "pre") -> list:
        # The official network reads BGR, ours RGB: the stem's input channels are reversed.
        out = self.conv.official_variables(f"{prefix}.0", bgr_input=True)
        for i, block in enumerate(self.blocks):
            out += block.official_variables(f"{prefix}.{i + 1}")
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            dims=self.dims,
            residuals=self.residuals,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
        )
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class HourglassModule(layers.Layer):
    """One hourglass of depth ``len(dims) - 1``, built recursively (official ``kp_module``/``hg_module``).

    up1 = blocks at full resolution (the skip branch); low1 = blocks with a stride-2 first block
    (the official code down-samples by convolution, ``max1`` is identity); low2 = the inner
    hourglass, or ``modules[-1]`` blocks at the bottom; low3 = blocks back to this width (the
    last one changes it); output = up1 + up2(low3), a plain sum. ``block`` is ``residual`` or
    ``fire``; ``upsample`` (up2) is ``nearest`` (x2) or ``transposed`` (4x4 stride-2 conv).
    """

    def __init__(
        self,
        dims: list[int],
        modules: list[int],
        block: str = "residual",
        upsample: str = "nearest",
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(dims) < 2 or len(dims) != len(modules):
            raise ValueError(
                f"HourglassModule needs len(dims) == len(modules) >= 2, got {dims}, {modules}"
            )
        if block not in BLOCKS:
            raise ValueError(
                f"HourglassModule: block must be one of {sorted(BLOCKS)}, got {block!r}"
            )
        if upsample not in UPSAMPLINGS:
            raise ValueError(
                f"HourglassModule: upsample must be one of {UPSAMPLINGS}, got {upsample!r}"
            )
        self.dims = list(dims)
        self.modules_per_level = list(modules)
        self.block = block
        self.upsample = upsample
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        block_class = BLOCKS[block]
        curr_dim, next_dim = dims[0], dims[1]
        curr_mod, next_mod = modules[0], modules[1]

        def chain(widths: list[int], first_stride: int, name: str) -> list:
            return [
                block_class(width, stride=first_stride if i == 0 else 1, name=f"{name}_{i}", **bn)
                for i, width in enumerate(widths)
            ]

        self.up1 = chain([curr_dim] * curr_mod, 1, "up1")
        self.low1 = chain([next_dim] * curr_mod, 2, "low1")
        if len(dims) > 2:
            self.low2 = HourglassModule(
                dims[1:], modules[1:], block=block, upsample=upsample, name="low2", **bn
            )
        else:
            self.low2 = chain([next_dim] * next_mod, 1, "low2")
        self.low3 = chain([next_dim] * (curr_mod - 1) + [curr_dim], 1, "low3")
        if upsample == "nearest":
            self.up2 = layers.UpSampling2D(size=2, interpolation="nearest", name="up2")
        else:
            self.up2 = layers.Conv2DTranspose(
                curr_dim, TRANSPOSED_KERNEL, strides=2, padding="same", name="up2"
            )

    @property
    def _inner(self) -> bool:
        return isinstance(self.low2, HourglassModule)

    def build(self, input_shape):
        _build_chain(self.up1, input_shape)
        low_shape = _build_chain(self.low1, input_shape)
        if self._inner:
            self.low2.build(low_shape)
            low_shape = self.low2.compute_output_shape(low_shape)
        else:
            low_shape = _build_chain(self.low2, low_shape)
        low_shape = _build_chain(self.low3, low_shape)
        self.up2.build(low_shape)
        self.built = True

    def call(self, x, training=None):
        up1 = _run(self.up1, x, training)
        low1 = _run(self.low1, x, training)
        low2 = (
            self.low2(low1, training=training) if self._inner else _run(self.low2, low1, training)
        )
        low3 = _run(self.low3, low2, training)
        return up1 + self.up2(low3)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dims[0],)

    def official_variables(self, prefix: str) -> list:
        out = _official_chain(self.up1, f"{prefix}.up1") + _official_chain(
            self.low1, f"{prefix}.low1"
        )
        if self._inner:
            out += self.low2.official_variables(f"{prefix}.low2")
        else:
            out += _official_chain(self.low2, f"{prefix}.low2")
        out += _official_chain(self.low3, f"{prefix}.low3")
        if self.upsample == "transposed":
            out += [
                (f"{prefix}.up2.weight", self.up2.kernel, CONV_TRANSPOSE),
                (f"{prefix}.up2.bias", self.up2.bias, VECTOR),
            ]
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            dims=self.dims,
            modules=self.modules_per_level,
            block=self.block,
            upsample=self.upsample,
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

    def official_variables(self, index: int, prefix: str = "") -> list:
        """Official ``inters_``, ``cnvs_`` and ``inters`` (under ``hg.`` in CornerNet-Lite)."""
        out = [(f"{prefix}inters_.{index}.0.weight", self.inter_conv.kernel, CONV)]
        out += _bn_variables(self.inter_bn, f"{prefix}inters_.{index}.1")
        out += [(f"{prefix}cnvs_.{index}.0.weight", self.cnv_conv.kernel, CONV)]
        out += _bn_variables(self.cnv_bn, f"{prefix}cnvs_.{index}.1")
        out += self.residual.official_variables(f"{prefix}inters.{index}")
        return out

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, bn_epsilon=self.bn_epsilon, bn_momentum=self.bn_momentum)
        return config
