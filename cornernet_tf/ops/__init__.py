"""Custom operations: corner pooling (native TensorFlow op with portable fallbacks)."""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        name: "cornernet_tf.ops.corner_pool"
        for name in (
            "DIRECTIONS",
            "IMPLS",
            "NativeOpFallbackWarning",
            "NativeOpUnavailableError",
            "corner_pool",
            "load_native",
            "native_available",
            "resolve_impl",
        )
    },
)
