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
    },
)
