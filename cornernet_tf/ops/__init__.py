"""Custom operations: corner pooling (native TensorFlow op with portable fallbacks)."""

from cornernet_tf.ops.corner_pool import (
    DIRECTIONS,
    IMPLS,
    NativeOpFallbackWarning,
    NativeOpUnavailableError,
    corner_pool,
    load_native,
    native_available,
    resolve_impl,
)

__all__ = [
    "DIRECTIONS",
    "IMPLS",
    "NativeOpFallbackWarning",
    "NativeOpUnavailableError",
    "corner_pool",
    "load_native",
    "native_available",
    "resolve_impl",
]
