"""Files and folders that are either the old version or the complete new one, never half written.

Every artifact (weights, configs, histories, plots, exports, evaluation results, TFRecords) is
written to a temporary name in its own folder and renamed onto the destination with
``os.replace``, which is atomic within one file system. A failed write (disk full, file-size limit,
permissions) removes the temporary and raises :class:`~cornernet_tf.errors.OutputPathError` naming
the destination, so the command ends with one line and the previous version stays readable.

The temporary keeps the destination's suffix (``last.tmp-<pid>-<n>.weights.h5``) because some
writers choose the format by it (Keras ``save_weights`` needs ``.weights.h5``, matplotlib ``.png``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterator

from cornernet_tf.errors import OutputPathError

# Suffixes made of two parts that a writer checks as a whole.
_DOUBLE_SUFFIXES = (".weights.h5", ".onnx.json", ".info.json", ".tflite.json")
_counter = itertools.count()


def _split_suffix(name: str) -> tuple[str, str]:
    for suffix in _DOUBLE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    stem, ext = os.path.splitext(name)
    return stem, ext


def temporary_name(path: str) -> str:
    """A fresh name in ``path``'s folder with ``path``'s suffix, unique to this process and call."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, suffix = _split_suffix(name)
    return os.path.join(folder, f"{stem}.tmp-{os.getpid()}-{next(_counter)}{suffix}")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`temporary_name`'s (left behind only by a killed process)."""
    stem, _ = _split_suffix(os.path.basename(name))
    return ".tmp-" in stem


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def create_folder(path: str, label: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, failing with one line that names ``label`` (the
    option that gave the folder) and ``path``."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f"{label} {path}: cannot create the folder ({exc.strerror or exc})"
        ) from None


def write_failed(path: str, error: BaseException) -> OutputPathError:
    """The one-line error for a destination that could not be written."""
    return OutputPathError(
        f"{path}: could not be written ({_reason(error)}); the previous version, if any, is unchanged"
    )


def _fsync(path: str) -> None:
    """Flush a written file to disk so that a full disk shows up here, not after the rename."""
    if os.path.isfile(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _removed_on_failure(tmp: str, path: str, errors: tuple) -> Iterator[None]:
    """Remove ``tmp`` if the block fails; an ``OSError`` (or one of ``errors``) becomes the
    one-line :class:`OutputPathError` naming ``path``, anything else propagates."""
    try:
        yield
    except OutputPathError:
        _remove(tmp)
        raise
    except (OSError, *errors) as exc:
        _remove(tmp)
        raise write_failed(path, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def replacing(path: str, errors: tuple[type[BaseException], ...] = ()) -> Iterator[str]:
    """Yield a temporary path to write ``path``'s new content to; rename it onto ``path`` after.

    For writers that take a file name (``save_weights``, ``savefig``, ``TFRecordWriter``). On an
    ``OSError`` (or one of ``errors``, e.g. ``tf.errors.OpError``) the temporary is removed and
    :class:`OutputPathError` is raised; any other exception removes it and propagates.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = temporary_name(path)
    with _removed_on_failure(tmp, path, errors):
        os.makedirs(folder, exist_ok=True)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)


@contextlib.contextmanager
def open_atomic(path: str, mode: str = "w", **kwargs) -> Iterator:
    """``open(path, mode)`` whose content replaces ``path`` only when the block completes."""
    if not mode.startswith("w"):
        raise ValueError(f"open_atomic writes a new file; mode must start with 'w', got {mode!r}")
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with replacing(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_bytes(path: str, data: bytes) -> None:
    with open_atomic(path, "wb") as fh:
        fh.write(data)


def write_text(path: str, text: str) -> None:
    with open_atomic(path, "w") as fh:
        fh.write(text)


def write_json(path: str, payload, **dumps) -> None:
    """``json.dump(payload)`` into ``path`` atomically (``dumps``: e.g. ``indent``, ``sort_keys``)."""
    with open_atomic(path, "w") as fh:
        json.dump(payload, fh, **dumps)


def write_with(path: str, writer: Callable[[str], object], errors=()) -> None:
    """Call ``writer(temporary_path)`` and rename the result onto ``path``."""
    with replacing(path, errors) as tmp:
        writer(tmp)


class _InMemoryWeights(io.BytesIO):
    """A ``.weights.h5`` in memory: Keras checks the name's suffix; h5py writes into the buffer."""

    def __str__(self) -> str:
        return "in-memory.weights.h5"


def save_weights(path: str, model) -> None:
    """``model.save_weights(path)`` (Keras ``.weights.h5``, optimizer state included), atomically.

    The HDF5 file is built in memory and written with plain file I/O. HDF5 writing to a full disk
    itself leaves a file open with unwritten data whose later flushes fail again and again and
    crash the process when it exits; a plain write fails once, with ``ENOSPC``/``EFBIG``. The
    cost is one copy of the weights in host memory while saving.
    """
    buffer = _InMemoryWeights()
    model.save_weights(buffer)
    write_bytes(path, buffer.getbuffer())


@contextlib.contextmanager
def replacing_dir(path: str, errors: tuple[type[BaseException], ...] = ()) -> Iterator[str]:
    """Yield a temporary folder to build ``path``'s new content in (e.g. a SavedModel).

    When the block completes the folder is renamed onto ``path``; an existing ``path`` is first
    moved aside and removed after, so ``path`` is the old or the new folder except for the moment
    between the two renames. On failure the temporary folder is removed (``OutputPathError`` as in
    :func:`replacing`).
    """
    tmp = temporary_name(path.rstrip(os.sep))
    with _removed_on_failure(tmp, path, errors):
        os.makedirs(tmp)
        yield tmp
        if os.path.isdir(path):
            old = temporary_name(path.rstrip(os.sep))
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
