"""Load the official PyTorch CornerNet and CornerNet-Lite weights into the Keras model.

Keys are matched by name through each layer's ``official_variables`` (no hand-written table), and
the load is all-or-nothing: every official key must be consumed and every model weight assigned,
or a :class:`WeightMismatchError` lists what is missing, extra or mis-shaped. The checkpoint's
naming (original CornerNet or CornerNet-Lite, modeling/official_names.py) is read from its keys.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import numpy as np

from cornernet_tf.errors import MissingDependencyError, UserError
from cornernet_tf.modeling.layers import CONV, CONV_BGR, CONV_TRANSPOSE, DEPTHWISE, VECTOR
from cornernet_tf.modeling.official_names import DESCRIPTIONS, detect_naming

# Buffers of the official checkpoints that carry no model state.
IGNORED_SUFFIXES = (".num_batches_tracked",)
_MAX_LISTED = 20


class WeightMismatchError(UserError, ValueError):
    """The checkpoint and the model do not describe the same architecture."""


class NonFiniteWeightsError(UserError, ValueError):
    """Weights hold NaN or inf: a model loaded from them would only ever detect nothing."""


def check_finite(named_arrays, what: str = "the weights") -> None:
    """Raise :class:`NonFiniteWeightsError` naming the tensors of ``(name, array)`` pairs that
    hold NaN or inf (how many values, of how many)."""
    bad = []
    for name, array in named_arrays:
        array = np.asarray(array)
        if array.dtype.kind in "fc":
            count = int(array.size - np.count_nonzero(np.isfinite(array)))
            if count:
                bad.append(f"{name} ({count} of {array.size} values)")
    if bad:
        raise NonFiniteWeightsError(f"{what} hold NaN or inf: " + _listing("tensors", bad))


def _strip_prefix(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


# torch axes -> Keras axes of each kernel kind. A ConvTranspose2d weight (in, out, kh, kw) takes
# the same permutation as a convolution's (out, in, kh, kw): Keras stores (kh, kw, out, in). Both
# frameworks' transposed convolution is the adjoint of their (unflipped) correlation: no flip.
_AXES = {
    CONV: (2, 3, 1, 0),
    CONV_BGR: (2, 3, 1, 0),
    CONV_TRANSPOSE: (2, 3, 1, 0),
    DEPTHWISE: (2, 3, 0, 1),  # (C, 1, kh, kw) -> (kh, kw, C, 1)
}


def _transform(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == VECTOR:
        return array
    if kind not in _AXES:
        raise ValueError(f"unknown weight transform {kind!r}")
    kernel = np.transpose(array, _AXES[kind])
    if kind == CONV_BGR:
        kernel = kernel[:, :, ::-1, :]
    return np.ascontiguousarray(kernel)


def official_shape(keras_shape, kind: str) -> tuple:
    """The torch shape of the official tensor that fills a variable of ``keras_shape``."""
    if kind == VECTOR:
        return tuple(keras_shape)
    inverse = np.argsort(_AXES[kind])
    return tuple(int(keras_shape[axis]) for axis in inverse)


def expected_official_shapes(model, naming: str | None = None) -> dict:
    """Official key -> torch shape of every tensor ``model`` loads under ``naming`` (its
    ``official_variables``), ``num_batches_tracked`` left out."""
    return {
        key: official_shape(variable.shape, kind)
        for key, variable, kind in model.official_variables(naming)
    }


def _listing(title: str, names: list) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return f"{title} ({len(names)}): {shown}{more}"


def load_official_weights(model, state_dict: Mapping[str, np.ndarray]) -> dict:
    """Assign an official ``state_dict`` (key -> array, with or without ``module.``) to ``model``.

    Checkpoints of the original CornerNet repository and of CornerNet-Lite (CornerNet-Squeeze, or
    its CornerNet) are told apart by their keys. Returns a small report: the naming, the number
    of tensors and of parameters loaded.
    """
    weights = {}
    for key, value in state_dict.items():
        key = _strip_prefix(key)
        if key.endswith(IGNORED_SUFFIXES):
            continue
        weights[key] = np.asarray(value)
    naming = detect_naming(weights).name
    if naming not in model.official_namings:
        backbone = model.model_config.backbone
        raise WeightMismatchError(
            f"the checkpoint has the {DESCRIPTIONS[naming]}, but the {backbone} backbone's "
            f"official weights come with the "
            f"{' or '.join(DESCRIPTIONS[n] for n in model.official_namings)}; nothing was loaded"
        )
    mapping = model.official_variables(naming)
    expected = {key for key, _, _ in mapping}
    missing = sorted(expected - set(weights))
    unexpected = sorted(set(weights) - expected)
    converted, wrong_shape = [], []
    for key, variable, kind in mapping:
        if key not in weights:
            continue
        value = _transform(weights[key], kind)
        if tuple(value.shape) != tuple(variable.shape):
            wrong_shape.append(
                f"{key} {tuple(weights[key].shape)} -> model {tuple(variable.shape)}"
            )
        else:
            converted.append((variable, value))
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(_listing("missing from the checkpoint", missing))
        if unexpected:
            parts.append(_listing("not in the model", unexpected))
        if wrong_shape:
            parts.append(_listing("wrong shape", wrong_shape))
        raise WeightMismatchError(
            "the checkpoint does not match the model configuration; nothing was loaded.\n  "
            + "\n  ".join(parts)
        )
    check_finite([(key, weights[key]) for key, _, _ in mapping], "the checkpoint's weights")
    for variable, value in converted:
        variable.assign(value.astype(variable.dtype))
    return {
        "naming": naming,
        "tensors": len(converted),
        "parameters": int(sum(v.size for _, v in converted)),
    }


def read_official_checkpoint(path: str) -> dict:
    """Read an official checkpoint (.pkl / .pth via torch, or an .npz of the same mapping)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.endswith(".npz"):
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading {path} needs PyTorch: pip install 'cornernet-tf[convert]' (or convert it to .npz)"
        ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as exc:  # not a (complete) checkpoint
        raise WeightMismatchError(f"{path}: not a PyTorch state_dict checkpoint ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightMismatchError(
            f"{path}: expected a state_dict (mapping of names to tensors), got {type(state)}"
        )
    return {
        key: value.detach().cpu().numpy()
        for key, value in state.items()
        if hasattr(value, "detach")
    }
