"""The CornerNet network in Keras: backbones, corner pooling, prediction heads.

:func:`build_model` turns a model config into a :class:`CornerNet`, which maps images to the
per-stack heatmaps, embeddings and offsets (docs/method.md §2).
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CornerNet": "cornernet_tf.modeling.cornernet",
        "build_model": "cornernet_tf.modeling.cornernet",
        "BACKBONES": "cornernet_tf.modeling.backbones",
        "build_backbone": "cornernet_tf.modeling.backbones",
        "HourglassModule": "cornernet_tf.modeling.hourglass",
        "Stem": "cornernet_tf.modeling.hourglass",
        "StackMerge": "cornernet_tf.modeling.hourglass",
        "PredictionHead": "cornernet_tf.modeling.heads",
        "CornerPoolModule": "cornernet_tf.modeling.corner_pool",
        "FireModule": "cornernet_tf.modeling.layers",
        "Residual": "cornernet_tf.modeling.layers",
        "ConvBN": "cornernet_tf.modeling.layers",
    },
)
