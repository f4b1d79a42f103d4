"""CornerNet-Squeeze layers (Law et al., "CornerNet-Lite", 2020): a light hourglass for mobile use.

What differs from the Hourglass-104 CornerNet (``configs/cornernet_squeeze.yaml``):

* the stem down-samples 8x instead of 4x (conv7x7 stride 2, then two stride-2 residuals), so the
  output maps are ``ceil(H / 8) x ceil(W / 8)``;
* the hourglass is built from *fire modules* (SqueezeNet): a 1x1 "squeeze" convolution + BN, then
  the concatenation of a 1x1 and a depthwise 3x3 "expand" convolution + BN, a skip connection when
  the stride is 1 and the width does not change, ReLU;
* the hourglass down-samples with stride-2 fire modules and up-samples with a 4x4 stride-2
  transposed convolution (instead of nearest-neighbour up-sampling);
* the prediction heads use a 1x1 hidden convolution instead of a 3x3 one.

The corner pooling modules, the ``cnv`` convolution and the merge between stacks are those of
CornerNet. Structure and widths follow the official ``core/models/CornerNet_Squeeze.py``.
Padding is symmetric ``(k - 1) // 2`` everywhere, like PyTorch (TF's ``same`` with stride 2 pads
bottom/right only on even sizes).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cornernet_tf.modeling.heads import PredictionHead
from cornernet_tf.modeling.hourglass import _build_chain, _run
from cornernet_tf.modeling.layers import ConvBN, Residual, make_batch_norm

# Every fire module squeezes to half its output width (official ``sr=2``); the depthwise 3x3
# expand convolution then has one filter per squeezed channel.
SQUEEZE_RATIO = 2
# The stem: conv7x7 stride 2 and two stride-2 residuals.
STEM_STRIDE = 8
# Transposed-convolution up-sampling of the official code: kernel 4, stride 2, padding 1.
UPSAMPLE_KERNEL = 4


@keras.saving.register_keras_serializable(package="cornernet_tf")
class FireModule(layers.Layer):
    """relu(BN(concat(conv1x1(s), dwconv3x3(s))) [+ x]) with s = BN(conv1x1(x)) (official ``fire_module``).

    ``stride`` 2 applies to both expand convolutions; the skip connection exists only when the
    stride is 1 and the input has ``filters`` channels.
    """

    def __init__(
        self,
        filters: int,
        stride: int = 1,
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if filters < 2 or filters % SQUEEZE_RATIO:
            raise ValueError(f"FireModule: filters must be an even number >= 2, got {filters}")
        if stride not in (1, 2):
            raise ValueError(f"FireModule: stride must be 1 or 2, got {stride}")
        self.filters = filters
        self.stride = stride
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        squeezed = filters // SQUEEZE_RATIO
        self.squeeze = layers.Conv2D(squeezed, 1, use_bias=False, name="squeeze")
        self.squeeze_bn = make_batch_norm("squeeze_bn", bn_epsilon, bn_momentum)
        self.expand_1x1 = layers.Conv2D(
            filters // 2, 1, strides=stride, use_bias=False, name="expand_1x1"
        )
        # Stride 1: 'same' is symmetric for a 3x3 kernel; stride 2 pads explicitly in call().
        self.expand_3x3 = layers.DepthwiseConv2D(
            3,
            strides=stride,
            padding="same" if stride == 1 else "valid",
            use_bias=False,
            name="expand_3x3",
        )
        self.expand_bn = make_batch_norm("expand_bn", bn_epsilon, bn_momentum)
        self.has_skip = None

    def build(self, input_shape):
        squeezed = self.filters // SQUEEZE_RATIO
        self.squeeze.build(input_shape)
        squeezed_shape = tuple(input_shape[:-1]) + (squeezed,)
        self.squeeze_bn.build(squeezed_shape)
        self.expand_1x1.build(squeezed_shape)
        self.expand_3x3.build(squeezed_shape)
        self.expand_bn.build(self.compute_output_shape(input_shape))
        self.has_skip = self.stride == 1 and input_shape[-1] == self.filters
        self.built = True

    def call(self, x, training=None):
        s = self.squeeze_bn(self.squeeze(x), training=training)
        padded = s if self.stride == 1 else ops.pad(s, [[0, 0], [1, 1], [1, 1], [0, 0]])
        y = ops.concatenate([self.expand_1x1(s), self.expand_3x3(padded)], axis=-1)
        y = self.expand_bn(y, training=training)
        if self.has_skip:
            y = y + x
        return ops.relu(y)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.stride == 2:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (n, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            stride=self.stride,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
        )
        return config


def _fires(widths: list[int], first_stride: int, name: str, bn: dict) -> list:
    return [
        FireModule(w, stride=first_stride if i == 0 else 1, name=f"{name}_{i}", **bn)
        for i, w in enumerate(widths)
    ]


@keras.saving.register_keras_serializable(package="cornernet_tf")
class SqueezeStem(layers.Layer):
    """conv7x7 stride 2 + BN + ReLU, then two stride-2 residuals: 8x down-sampling (official ``pre``)."""

    def __init__(
        self, dims: list[int], bn_epsilon: float = 1e-5, bn_momentum: float = 0.9, **kwargs
    ):
        super().__init__(**kwargs)
        if len(dims) != 2:
            raise ValueError(f"SqueezeStem: dims must be [conv7x7_out, residual_out], got {dims}")
        self.dims = list(dims)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        self.conv = ConvBN(dims[0], 7, stride=2, name="conv7x7", **bn)
        self.residual1 = Residual(dims[1], stride=2, name="residual1", **bn)
        self.residual2 = Residual(dims[1], stride=2, name="residual2", **bn)

    def build(self, input_shape):
        _build_chain([self.conv, self.residual1, self.residual2], input_shape)
        self.built = True

    def call(self, x, training=None):
        return _run([self.conv, self.residual1, self.residual2], x, training)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for block in (self.conv, self.residual1, self.residual2):
            shape = block.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(dims=self.dims, bn_epsilon=self.bn_epsilon, bn_momentum=self.bn_momentum)
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class SqueezeHourglass(layers.Layer):
    """One fire-module hourglass of depth ``len(dims) - 1``, built recursively (official ``hg_module``).

    up1 = fire modules at full resolution; low1 = fire modules with a stride-2 first module;
    low2 = the inner hourglass, or ``modules[-1]`` fire modules at the bottom; low3 = fire modules
    back to this width (the width changes in the last one); output = up1 + transposed_conv_x2(low3).
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
                f"SqueezeHourglass needs len(dims) == len(modules) >= 2, got {dims}, {modules}"
            )
        self.dims = list(dims)
        self.modules_per_level = list(modules)
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        curr_dim, next_dim = dims[0], dims[1]
        curr_mod, next_mod = modules[0], modules[1]
        self.up1 = _fires([curr_dim] * curr_mod, 1, "up1", bn)
        self.low1 = _fires([next_dim] * curr_mod, 2, "low1", bn)
        if len(dims) > 2:
            self.low2 = SqueezeHourglass(dims[1:], modules[1:], name="low2", **bn)
        else:
            self.low2 = _fires([next_dim] * next_mod, 1, "low2", bn)
        self.low3 = _fires([next_dim] * (curr_mod - 1) + [curr_dim], 1, "low3", bn)
        self.up2 = layers.Conv2DTranspose(
            curr_dim, UPSAMPLE_KERNEL, strides=2, padding="same", name="up2"
        )

    def build(self, input_shape):
        _build_chain(self.up1, input_shape)
        low_shape = _build_chain(self.low1, input_shape)
        if isinstance(self.low2, SqueezeHourglass):
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
        if isinstance(self.low2, SqueezeHourglass):
            low2 = self.low2(low1, training=training)
        else:
            low2 = _run(self.low2, low1, training)
        low3 = _run(self.low3, low2, training)
        return up1 + self.up2(low3)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dims[0],)

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
class PointwisePredictionHead(PredictionHead):
    """conv1x1(bias) + ReLU + conv1x1: the CornerNet-Squeeze heads (1x1 where CornerNet uses 3x3)."""

    def __init__(self, out_dim: int, head_dim: int, bias_init: float = 0.0, **kwargs):
        kwargs.pop("kernel_size", None)
        super().__init__(out_dim, head_dim, bias_init=bias_init, kernel_size=1, **kwargs)
