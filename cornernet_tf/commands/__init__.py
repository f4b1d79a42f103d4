"""Sub-commands of the ``cornernet`` CLI, one module each, discovered automatically.

A module here defines ``register(subparsers)`` which adds its parser and sets
``handler=<function(args) -> int>`` through ``set_defaults``.
"""
