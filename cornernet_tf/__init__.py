"""CornerNet (Law & Deng) as TensorFlow / Keras 3 software.

The public surface is small on purpose: build a model from a config, load a config, run the
official test procedure, and load a ready detector in one call (``load_detector``). Names are
imported on first use so ``import cornernet_tf`` stays cheap.
"""

from cornernet_tf._lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, _names = lazy_exports(
    __name__,
    {
        "build_model": "cornernet_tf.training.task",
        "load_config": "cornernet_tf.config",
        "Detector": "cornernet_tf.inference.detector",
        "Detections": "cornernet_tf.inference.detections",
        "load_detector": "cornernet_tf.load",
        "build_inference_model": "cornernet_tf.load",
    },
)
__all__ = [*_names, "__version__"]
