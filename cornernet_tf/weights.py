"""Load trained weights into a CornerNet model, whatever file they come in.

One entry point for ``eval``, ``detect``, ``export`` and resumed training, so every command accepts
the same files and fails the same way when they do not fit the model:

* ``.weights.h5``: Keras ``model.save_weights``;
* ``.keras``: a whole saved model (its weights are copied after checking its model config);
* ``.pkl`` / ``.pth`` / ``.npz``: an official PyTorch checkpoint, converted on the fly by
  :mod:`cornernet_tf.convert`.

Keras reports a mismatch as "layer X expected N variables"; that says nothing about *which* config
and *which* file disagree, which is what a user needs to know, so every failure is re-raised as a
:class:`WeightsError` naming both.
"""

from __future__ import annotations

import dataclasses
import os

from cornernet_tf.errors import UserError

OFFICIAL_SUFFIXES = (".pkl", ".pth", ".npz")
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
KERAS_MODEL_SUFFIX = ".keras"
# Model-config fields that change how the model computes, not which weights it has.
_RUNTIME_FIELDS = ("corner_pool_impl",)


class WeightsError(UserError, ValueError):
    """The weights file cannot be read, or it describes another architecture than the config."""


def weights_format(path: str) -> str:
    """``keras_weights`` | ``keras_model`` | ``official`` from the file name (error otherwise)."""
    name = os.fspath(path).lower()
    if name.endswith(KERAS_WEIGHTS_SUFFIX):
        return "keras_weights"
    if name.endswith(KERAS_MODEL_SUFFIX):
        return "keras_model"
    if name.endswith(OFFICIAL_SUFFIXES):
        return "official"
    raise WeightsError(
        f"{path}: unknown weights format; expected {KERAS_WEIGHTS_SUFFIX} (Keras save_weights), "
        f"{KERAS_MODEL_SUFFIX} (Keras model) or {'/'.join(OFFICIAL_SUFFIXES)} (official PyTorch checkpoint)"
    )


def _describe(model, config_name: str | None) -> str:
    cfg = getattr(model, "model_config", None)
    what = f"config {config_name}" if config_name else "the model configuration"
    if cfg is None:
        return what
    return (
        f"{what} (num_classes={cfg.num_classes}, num_stacks={cfg.num_stacks}, dims={cfg.dims}, "
        f"modules={cfg.modules}, cnv_dim={cfg.cnv_dim})"
    )


def _architecture(cfg) -> dict:
    fields = dataclasses.asdict(cfg)
    for name in _RUNTIME_FIELDS:
        fields.pop(name, None)
    return fields


def load_weights(model, path: str, config_name: str | None = None) -> dict:
    """Load ``path`` into ``model`` in place; returns ``{"format", "path", "tensors"}``.

    ``config_name`` (e.g. the YAML path) only improves the error message. Raises
    :class:`FileNotFoundError` for a missing file and :class:`WeightsError` when the file does
    not fit the model or holds NaN/inf values (naming the tensors).
    """
    path = os.fspath(path)
    fmt = weights_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    where = _describe(model, config_name)
    if fmt == "official":
        from cornernet_tf.convert import (
            NonFiniteWeightsError,
            load_official_weights,
            read_official_checkpoint,
        )

        try:
            report = load_official_weights(model, read_official_checkpoint(path))
        except NonFiniteWeightsError as exc:
            raise WeightsError(f"{path}: {exc}; nothing was loaded") from None
        except (ValueError, KeyError) as exc:
            raise WeightsError(f"{path} does not fit {where}: {exc}") from None
        return {"format": fmt, "path": path, "tensors": report["tensors"]}
    if fmt == "keras_weights":
        try:
            model.load_weights(path)
        except (ValueError, KeyError, OSError) as exc:
            raise WeightsError(
                f"{path} does not fit {where}; was it saved from a model of another config? Keras says: {exc}"
            ) from None
        _check_finite([(v.path, v.numpy()) for v in model.weights], path)
        return {"format": fmt, "path": path, "tensors": len(model.weights)}
    return _load_keras_model(model, path, where)


def _load_keras_model(model, path: str, where: str) -> dict:
    import keras

    import cornernet_tf.training.task  # noqa: F401  (registers CornerNet and its task for deserialisation)

    try:
        saved = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise WeightsError(
            f"{path}: cannot be read as a Keras model ({type(exc).__name__}: {exc})"
        ) from None
    ours, theirs = getattr(model, "model_config", None), getattr(saved, "model_config", None)
    if ours is not None and theirs is not None:
        a, b = _architecture(ours), _architecture(theirs)
        diff = [
            f"{k}: file {b.get(k)!r} vs config {a.get(k)!r}"
            for k in sorted(a)
            if a.get(k) != b.get(k)
        ]
        if diff:
            raise WeightsError(
                f"{path} holds another architecture than {where}: " + "; ".join(diff)
            )
    values = saved.get_weights()
    if len(values) != len(model.weights) or any(
        tuple(v.shape) != tuple(w.shape) for v, w in zip(values, model.weights)
    ):
        raise WeightsError(
            f"{path} does not fit {where}: {len(values)} tensors in the file, {len(model.weights)} in the model"
        )
    _check_finite([(w.path, v) for w, v in zip(saved.weights, values)], path)
    model.set_weights(values)
    return {"format": "keras_model", "path": path, "tensors": len(values)}


def _check_finite(named_arrays, path: str) -> None:
    """NaN or inf weights are refused (a model with them detects nothing, silently)."""
    from cornernet_tf.convert import NonFiniteWeightsError, check_finite

    try:
        check_finite(named_arrays)
    except NonFiniteWeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
