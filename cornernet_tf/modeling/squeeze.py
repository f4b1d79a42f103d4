"""Old import path of the fire module; CornerNet-Squeeze is now a configuration of the shared
layers (the ``squeeze`` entry of ``modeling/backbones.py``)."""

from cornernet_tf.modeling.layers import SQUEEZE_RATIO, FireModule

__all__ = ["SQUEEZE_RATIO", "FireModule"]
