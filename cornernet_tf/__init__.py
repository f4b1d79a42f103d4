"""CornerNet (Law & Deng) as TensorFlow / Keras 3 software.

The public surface is small on purpose: build a model from a config, load a config, and run the
official test procedure. Heavy modules are imported lazily so ``import cornernet_tf`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["build_model", "load_config", "Detector", "__version__"]


def __getattr__(name):
    if name == "build_model":
        from cornernet_tf.modeling.cornernet import build_model

        return build_model
    if name == "load_config":
        from cornernet_tf.config import load_config

        return load_config
    if name == "Detector":
        from cornernet_tf.inference.detector import Detector

        return Detector
    raise AttributeError(f"module 'cornernet_tf' has no attribute {name!r}")
