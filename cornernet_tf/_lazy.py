"""One way for every package ``__init__`` to export names lazily.

Importing ``cornernet_tf`` (or a sub-package) must stay cheap and must not pull in TensorFlow
where only NumPy is needed (the LiteRT runner, data checks), yet ``dir()`` and tab completion
should list the public names. Each ``__init__`` therefore declares ``name -> module`` and calls
:func:`lazy_exports`, which returns the module-level ``__getattr__``, ``__dir__`` and ``__all__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``exports`` (name -> module).

    Each name is an attribute of its module, imported on first access and cached in the
    package's namespace. (Sub-modules need no entry: ``from package import module`` works.)

    A name that is also the name of the sub-module defining it (``ops.corner_pool``, the function
    in ``ops/corner_pool.py``) is bound at once: Python sets the package attribute to the
    sub-module when that is first imported, which would hide a lazy name for good.
    """
    names = sorted(exports)
    namespace = vars(importlib.import_module(package))

    def __getattr__(name: str) -> object:
        try:
            module_path = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module_path), name)
        namespace[name] = value
        return value

    for name, module_path in exports.items():
        if module_path == f"{package}.{name}":
            namespace[name] = getattr(importlib.import_module(module_path), name)

    def __dir__() -> list[str]:
        public = {n for n in namespace if n.startswith("__") or not n.startswith("_")}
        return sorted((public | set(names)) - {"lazy_exports"})

    return __getattr__, __dir__, names
