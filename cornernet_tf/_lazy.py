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

    A module path starting with ``.`` is relative to ``package``. The attribute is imported on
    first access and cached in the package's namespace.
    """
    names = sorted(exports)

    def __getattr__(name: str) -> object:
        try:
            module_path = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(module_path, package)
        value = module if module_path.rsplit(".", 1)[-1] == name else getattr(module, name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        namespace = vars(importlib.import_module(package))
        public = {n for n in namespace if n.startswith("__") or not n.startswith("_")}
        return sorted((public | set(names)) - {"lazy_exports"})

    return __getattr__, __dir__, names
