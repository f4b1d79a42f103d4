"""Prediction heads: conv3x3(bias) + ReLU + conv1x1, one per output (official ``make_kp_layer``)."""

from __future__ import annotations

import keras
from keras import layers

from cornernet_tf.modeling.layers import CONV, VECTOR, ConvBN


@keras.saving.register_keras_serializable(package="cornernet_tf")
class PredictionHead(layers.Layer):
    """Heatmap logits (C channels), embeddings (1) or offsets (2); heat bias starts at the focal prior.

    ``kernel_size`` is that of the hidden convolution: 3 in CornerNet, 1 in CornerNet-Squeeze.

    The final convolution computes in float32 so that mixed-precision training keeps exact logits.
    """

    def __init__(
        self, out_dim: int, head_dim: int, bias_init: float = 0.0, kernel_size: int = 3, **kwargs
    ):
        super().__init__(**kwargs)
        self.out_dim = out_dim
        self.head_dim = head_dim
        self.bias_init = bias_init
        self.kernel_size = kernel_size
        self.hidden = ConvBN(head_dim, kernel_size, with_bn=False, name="hidden")
        self.out = layers.Conv2D(
            out_dim,
            1,
            use_bias=True,
            bias_initializer=keras.initializers.Constant(bias_init),
            dtype="float32",
            name="out",
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build(self.hidden.compute_output_shape(input_shape))
        self.built = True

    def call(self, x, training=None):
        return self.out(self.hidden(x, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_dim,)

    def official_variables(self, prefix: str) -> list:
        return self.hidden.official_variables(f"{prefix}.0") + [
            (f"{prefix}.1.weight", self.out.kernel, CONV),
            (f"{prefix}.1.bias", self.out.bias, VECTOR),
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            out_dim=self.out_dim,
            head_dim=self.head_dim,
            bias_init=self.bias_init,
            kernel_size=self.kernel_size,
        )
        return config
