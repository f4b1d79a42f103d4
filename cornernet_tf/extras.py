"""Optional dependencies: import one, or fail with one line naming the extra that installs it.

``pip install cornernet-tf`` installs what training, evaluation, detection and the SavedModel
export need; the rest comes with extras (setup.cfg). Code that needs an optional package imports it
with :func:`require`, so a missing one ends a command with ``pip install 'cornernet-tf[EXTRA]'``
instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib

from cornernet_tf.errors import MissingDependencyError

# Top-level module -> (distribution that provides it, extra that installs it).
PROVIDERS = {
    "grpc": ("grpcio", "serving"),
    "tensorflow_serving": ("tensorflow-serving-api", "serving"),
    "ai_edge_litert": ("ai-edge-litert", "tflite"),
    "torch": ("torch", "convert"),
    "tf2onnx": ("tf2onnx", "onnx"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "tensorflow_datasets": ("tensorflow-datasets", "tfds"),
    "tensorboard": ("tensorboard", "tensorboard"),
}


def install_command(extra: str) -> str:
    return f"pip install 'cornernet-tf[{extra}]'"


def missing_dependency(module: str, purpose: str, missing: str | None = None):
    """The :class:`MissingDependencyError` for ``module`` (``missing``: the module that failed to
    import, when it is a dependency of ``module`` rather than ``module`` itself)."""
    root = module.split(".")[0]
    distribution, extra = PROVIDERS[root]
    absent = (missing or root).split(".")[0]
    what = distribution if absent == root else f"{distribution} (its dependency '{absent}')"
    return MissingDependencyError(
        f"{purpose} needs {what}, which is not installed: {install_command(extra)}"
    )


def require(module: str, purpose: str):
    """Import ``module`` (e.g. ``"ai_edge_litert.interpreter"``) for ``purpose`` (what the user
    asked for, e.g. ``"running a .tflite model"``).

    Raises :class:`MissingDependencyError` naming the extra when the package, or a module it
    imports, is absent; any other import failure (a broken install) keeps its own error.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise missing_dependency(module, purpose, exc.name) from exc


def available(module: str) -> bool:
    """Whether the optional ``module`` can be imported (for features that are skipped without it)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        return False
    return True
