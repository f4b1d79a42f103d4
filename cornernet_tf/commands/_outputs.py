"""Output locations checked before the long work starts: a folder that exists or can be made, and
that can be written, so a run never fails at its end for want of a place to put its results."""

from __future__ import annotations

import os
import tempfile

from cornernet_tf.atomic_files import create_folder
from cornernet_tf.errors import OutputPathError


def prepare_output_dir(path: str, flag: str = "--out") -> str:
    """Create ``path`` if needed and prove it writable with a temporary file; returns ``path``.

    Raises :class:`OutputPathError` naming ``flag`` and ``path`` when it is a file, when a parent
    is a file, or when the folder cannot be created or written.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"{flag} {path} is a file, not a folder")
    create_folder(path, flag)
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=".cornernet-write-check-")
        os.close(handle)
        os.remove(probe)
    except OSError as exc:
        raise OutputPathError(f"{flag} {path} is not writable ({exc.strerror or exc})") from None
    return path


def refuse_overwriting(outputs: dict[str, str], inputs: dict[str, str | None]) -> None:
    """Refuse when an output file would replace an input file (same file after resolving links).

    ``outputs`` and ``inputs`` map a description (``"--out/metrics.json"``, ``"--annotations"``)
    to a path; inputs that are None are ignored.
    """
    real_inputs = {
        os.path.realpath(p): (name, p) for name, p in inputs.items() if p and os.path.exists(p)
    }
    for name, path in outputs.items():
        hit = real_inputs.get(os.path.realpath(path))
        if hit:
            raise OutputPathError(
                f"{name} {path} would overwrite the input {hit[0]} {hit[1]}; choose another --out"
            )
