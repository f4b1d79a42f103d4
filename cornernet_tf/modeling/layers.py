"""Basic building blocks: convolution + BatchNorm (+ ReLU), the residual block and the fire module.

They mirror the official ``convolution``, ``residual`` and ``fire_module`` modules: symmetric
``(k - 1) // 2`` padding, bias-free convolutions before BN, torch's BN epsilon. Layers list their
variables under the official PyTorch ``state_dict`` names (``official_variables``) so the converter
can load the published checkpoints without a hand-written key table.
"""

from __future__ import annotations

import keras
from keras import layers, ops

# Kinds of tensor transforms the converter applies (see cornernet_tf/convert.py).
CONV = "conv"  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
CONV_BGR = "conv_bgr"  # as CONV, and the input-channel axis reversed (BGR -> RGB)
DEPTHWISE = "depthwise"  # torch grouped (C, 1, kh, kw), groups = C -> keras (kh, kw, C, 1)
CONV_TRANSPOSE = (
    "conv_transpose"  # torch ConvTranspose2d (in, out, kh, kw) -> keras (kh, kw, out, in)
)
VECTOR = "vector"  # copied as is


def _bn_variables(bn: layers.BatchNormalization, prefix: str) -> list:
    return [
        (f"{prefix}.weight", bn.gamma, VECTOR),
        (f"{prefix}.bias", bn.beta, VECTOR),
        (f"{prefix}.running_mean", bn.moving_mean, VECTOR),
        (f"{prefix}.running_var", bn.moving_variance, VECTOR),
    ]


def make_batch_norm(
    name: str, epsilon: float = 1e-5, momentum: float = 0.9
) -> layers.BatchNormalization:
    return layers.BatchNormalization(axis=-1, epsilon=epsilon, momentum=momentum, name=name)


def make_conv(
    filters: int, kernel_size: int, stride: int = 1, use_bias: bool = False, name: str = None
):
    """A Conv2D with symmetric padding; stride-2 'same' in TF would pad only bottom/right."""
    if stride == 1:
        return layers.Conv2D(filters, kernel_size, padding="same", use_bias=use_bias, name=name)
    return _PaddedConv2D(filters, kernel_size, stride=stride, use_bias=use_bias, name=name)


class _PaddedConv2D(layers.Conv2D):
    """Conv2D with explicit symmetric zero padding of (k - 1) // 2, as torch's ``padding=pad``."""

    def __init__(self, filters, kernel_size, stride=1, **kwargs):
        kwargs.pop("strides", None)
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, strides=stride, padding="valid", **kwargs)

    def call(self, inputs):
        kh, kw = self.kernel_size
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        inputs = ops.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        kh, kw = self.kernel_size
        n, h, w, c = input_shape
        pad_h, pad_w = 2 * ((kh - 1) // 2), 2 * ((kw - 1) // 2)
        padded = (n, None if h is None else h + pad_h, None if w is None else w + pad_w, c)
        return super().compute_output_shape(padded)

    def get_config(self):
        config = super().get_config()
        config["stride"] = self.strides[0]
        for key in ("strides", "padding"):
            config.pop(key, None)
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class ConvBN(layers.Layer):
    """conv(k, stride) -> BN -> ReLU; ``with_bn=False`` gives conv(bias) -> ReLU (official heads)."""

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        stride: int = 1,
        with_bn: bool = True,
        activation: bool = True,
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.with_bn = with_bn
        self.activation = activation
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.conv = make_conv(filters, kernel_size, stride, use_bias=not with_bn, name="conv")
        self.bn = make_batch_norm("bn", bn_epsilon, bn_momentum) if with_bn else None

    def build(self, input_shape):
        self.conv.build(input_shape)
        out_shape = self.conv.compute_output_shape(input_shape)
        if self.bn is not None:
            self.bn.build(out_shape)
        self.built = True

    def call(self, x, training=None):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return ops.relu(x) if self.activation else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def official_variables(self, prefix: str, bgr_input: bool = False) -> list:
        kind = CONV_BGR if bgr_input else CONV
        out = [(f"{prefix}.conv.weight", self.conv.kernel, kind)]
        if self.bn is not None:
            out += _bn_variables(self.bn, f"{prefix}.bn")
        else:
            out.append((f"{prefix}.conv.bias", self.conv.bias, VECTOR))
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            stride=self.stride,
            with_bn=self.with_bn,
            activation=self.activation,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
        )
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class Residual(layers.Layer):
    """relu(BN(conv3x3(relu(BN(conv3x3(x))))) + skip(x)); skip = 1x1 conv + BN when shape changes."""

    def __init__(
        self,
        filters: int,
        stride: int = 1,
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.stride = stride
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        self.conv1 = make_conv(filters, 3, stride, name="conv1")
        self.bn1 = make_batch_norm("bn1", bn_epsilon, bn_momentum)
        self.conv2 = make_conv(filters, 3, 1, name="conv2")
        self.bn2 = make_batch_norm("bn2", bn_epsilon, bn_momentum)
        self.skip_conv = None
        self.skip_bn = None

    def build(self, input_shape):
        in_channels = input_shape[-1]
        self.conv1.build(input_shape)
        mid_shape = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(mid_shape)
        self.conv2.build(mid_shape)
        self.bn2.build(mid_shape)
        if self.stride != 1 or in_channels != self.filters:
            self.skip_conv = layers.Conv2D(
                self.filters,
                1,
                strides=self.stride,
                padding="valid",
                use_bias=False,
                name="skip_conv",
            )
            self.skip_conv.build(input_shape)
            self.skip_bn = make_batch_norm("skip_bn", self.bn_epsilon, self.bn_momentum)
            self.skip_bn.build(mid_shape)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)
        skip = x if self.skip_conv is None else self.skip_bn(self.skip_conv(x), training=training)
        return ops.relu(y + skip)

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def official_variables(self, prefix: str) -> list:
        out = [(f"{prefix}.conv1.weight", self.conv1.kernel, CONV)]
        out += _bn_variables(self.bn1, f"{prefix}.bn1")
        out += [(f"{prefix}.conv2.weight", self.conv2.kernel, CONV)]
        out += _bn_variables(self.bn2, f"{prefix}.bn2")
        if self.skip_conv is not None:
            out += [(f"{prefix}.skip.0.weight", self.skip_conv.kernel, CONV)]
            out += _bn_variables(self.skip_bn, f"{prefix}.skip.1")
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            stride=self.stride,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
        )
        return config


# Every fire module squeezes to half its output width (official ``sr=2``); the depthwise 3x3
# expand convolution then has one filter per squeezed channel.
SQUEEZE_RATIO = 2


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

    def official_variables(self, prefix: str) -> list:
        """The official ``fire_module``: conv1/bn1 squeeze, conv_1x1 + conv_3x3 expand, bn2."""
        out = [(f"{prefix}.conv1.weight", self.squeeze.kernel, CONV)]
        out += _bn_variables(self.squeeze_bn, f"{prefix}.bn1")
        out += [
            (f"{prefix}.conv_1x1.weight", self.expand_1x1.kernel, CONV),
            (f"{prefix}.conv_3x3.weight", self.expand_3x3.kernel, DEPTHWISE),
        ]
        return out + _bn_variables(self.expand_bn, f"{prefix}.bn2")

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
