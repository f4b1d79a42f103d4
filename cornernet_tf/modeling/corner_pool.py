"""The corner pooling module of Fig. 7 (left): the official ``pool`` class of models/CornerNet.py."""

from __future__ import annotations

import keras
from keras import layers, ops

from cornernet_tf.modeling.layers import CONV, ConvBN, _bn_variables, make_batch_norm, make_conv
from cornernet_tf.ops.corner_pool import corner_pool

# Which two pools each corner type sums (docs/method.md §2).
CORNER_DIRECTIONS = {"tl": ("top", "left"), "br": ("bottom", "right")}


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerPool(layers.Layer):
    """A single corner-pool direction as a Keras layer (no weights)."""

    def __init__(self, direction: str, impl: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.direction = direction
        self.impl = impl

    def call(self, x):
        return corner_pool(x, self.direction, impl=self.impl)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(direction=self.direction, impl=self.impl)
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerPoolModule(layers.Layer):
    """Two conv-BN-ReLU branches pooled in two directions and summed, conv-BN, plus a 1x1 conv-BN
    skip, ReLU, then conv-BN-ReLU: what lets a corner see the object's edges."""

    def __init__(
        self,
        corner: str,
        dim: int,
        pool_dim: int = 128,
        impl: str = "auto",
        bn_epsilon: float = 1e-5,
        bn_momentum: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if corner not in CORNER_DIRECTIONS:
            raise ValueError(f"CornerPoolModule: corner must be 'tl' or 'br', got {corner!r}")
        self.corner = corner
        self.dim = dim
        self.pool_dim = pool_dim
        self.impl = impl
        self.bn_epsilon = bn_epsilon
        self.bn_momentum = bn_momentum
        bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
        first, second = CORNER_DIRECTIONS[corner]
        self.p1_conv1 = ConvBN(pool_dim, 3, name="p1_conv1", **bn)
        self.p2_conv1 = ConvBN(pool_dim, 3, name="p2_conv1", **bn)
        self.pool1 = CornerPool(first, impl, name=f"{first}_pool")
        self.pool2 = CornerPool(second, impl, name=f"{second}_pool")
        self.p_conv1 = make_conv(dim, 3, name="p_conv1")
        self.p_bn1 = make_batch_norm("p_bn1", bn_epsilon, bn_momentum)
        self.conv1 = layers.Conv2D(dim, 1, use_bias=False, name="conv1")
        self.bn1 = make_batch_norm("bn1", bn_epsilon, bn_momentum)
        self.conv2 = ConvBN(dim, 3, name="conv2", **bn)

    def build(self, input_shape):
        self.p1_conv1.build(input_shape)
        self.p2_conv1.build(input_shape)
        pooled_shape = tuple(input_shape[:-1]) + (self.pool_dim,)
        out_shape = tuple(input_shape[:-1]) + (self.dim,)
        self.p_conv1.build(pooled_shape)
        self.p_bn1.build(out_shape)
        self.conv1.build(input_shape)
        self.bn1.build(out_shape)
        self.conv2.build(out_shape)
        self.built = True

    def call(self, x, training=None):
        pool1 = self.pool1(self.p1_conv1(x, training=training))
        pool2 = self.pool2(self.p2_conv1(x, training=training))
        p_bn1 = self.p_bn1(self.p_conv1(pool1 + pool2), training=training)
        bn1 = self.bn1(self.conv1(x), training=training)
        return self.conv2(ops.relu(p_bn1 + bn1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dim,)

    def official_variables(self, prefix: str) -> list:
        out = self.p1_conv1.official_variables(f"{prefix}.p1_conv1")
        out += self.p2_conv1.official_variables(f"{prefix}.p2_conv1")
        out += [(f"{prefix}.p_conv1.weight", self.p_conv1.kernel, CONV)]
        out += _bn_variables(self.p_bn1, f"{prefix}.p_bn1")
        out += [(f"{prefix}.conv1.weight", self.conv1.kernel, CONV)]
        out += _bn_variables(self.bn1, f"{prefix}.bn1")
        out += self.conv2.official_variables(f"{prefix}.conv2")
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            corner=self.corner,
            dim=self.dim,
            pool_dim=self.pool_dim,
            impl=self.impl,
            bn_epsilon=self.bn_epsilon,
            bn_momentum=self.bn_momentum,
        )
        return config
