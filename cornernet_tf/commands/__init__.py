"""Sub-commands of the ``cornernet`` CLI, one module each, discovered automatically.

A module here defines ``register(subparsers)`` which adds its parser and sets
``handler=<function(args) -> int>`` through ``set_defaults``. Nothing is exported: ``cli`` finds
the modules with ``pkgutil``, and each imports its heavy dependencies inside its handler.
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {})
