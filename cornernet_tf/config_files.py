"""The YAML configs shipped with the package, and naming one (``--config cornernet_tiny``).

The repository keeps them in ``configs/`` at the top; a wheel installs that folder as
``cornernet_tf/configs/`` (``setup.py`` maps it). A config is given either as a path or by the
name of a shipped file, with or without ``.yaml``; a path that exists always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_SUFFIXES = (".yaml", ".yml")


def config_dir() -> Path | None:
    """The folder of the shipped configs: inside the installed package, else the checkout's."""
    for candidate in (_PACKAGE_DIR / "configs", _PACKAGE_DIR.parent / "configs"):
        if candidate.is_dir():
            return candidate
    return None


def config_names() -> list[str]:
    """Names of the shipped configs (file names without ``.yaml``), sorted."""
    folder = config_dir()
    if folder is None:
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in _SUFFIXES)


def shipped_config(name: str) -> Path | None:
    """The shipped config called ``name`` (``cornernet_tiny`` or ``cornernet_tiny.yaml``), or None."""
    folder = config_dir()
    if folder is None or os.sep in name or "/" in name:
        return None
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix in _SUFFIXES else name
    for suffix in _SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def resolve_config_path(source: str | os.PathLike) -> str:
    """The file to read for ``source``: an existing path as given, else a shipped config of that
    name, else ``source`` unchanged (so that the loader reports the missing file)."""
    text = os.fspath(source)
    if os.path.exists(text):
        return text
    path = shipped_config(text)
    return str(path) if path is not None else text
