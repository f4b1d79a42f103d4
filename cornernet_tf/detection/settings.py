"""Test-procedure settings: every one comes from :class:`cornernet_tf.config.TestConfig`.

The decoders, the final soft-NMS and the exporters read their settings through these helpers, so
there is no second set of defaults. TensorFlow-free (the LiteRT path uses it).
"""

from __future__ import annotations

from collections.abc import Mapping

from cornernet_tf.config import TestConfig, load_config

# The TestConfig fields the fixed-size (TFLite / LiteRT) path applies: it runs one scale without
# the mirrored copy and keeps the live boxes of soft-NMS, so scales, flip and box merging do not
# apply there.
FIXED_SIZE_FIELDS = (
    "top_k",
    "ae_threshold",
    "nms_kernel",
    "num_dets",
    "max_per_image",
    "nms_algorithm",
    "nms_sigma",
    "nms_threshold",
    "score_threshold",
)


def as_test_config(test_config: TestConfig | Mapping | None) -> TestConfig:
    """A validated :class:`TestConfig` from a TestConfig, a mapping of its fields, or None (defaults).

    An unknown field or a bad value is a ``ConfigError`` naming it."""
    if test_config is None:
        config = TestConfig()
    elif isinstance(test_config, TestConfig):
        config = test_config
    elif isinstance(test_config, Mapping):
        config = load_config({"test": dict(test_config)}).test
    else:
        raise TypeError(
            f"test_config must be a TestConfig, a dict or None, got {type(test_config).__name__}"
        )
    config.validate("test")
    return config


def decode_settings(config: TestConfig) -> dict:
    """The keyword arguments of ``decode`` (TF or NumPy) for ``config``."""
    return {
        "K": config.top_k,
        "kernel": config.nms_kernel,
        "ae_threshold": config.ae_threshold,
        "num_dets": config.num_dets,
    }


def fixed_size_settings(config: TestConfig) -> dict:
    """The fields of ``config`` that the fixed-size path applies (written beside a TFLite model)."""
    return {name: getattr(config, name) for name in FIXED_SIZE_FIELDS}
