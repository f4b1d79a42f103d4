"""One ``train`` per work directory: an exclusive ``flock`` on ``WORKDIR/.lock`` held for the run.

The kernel releases a ``flock`` when its process ends, however it ends, so a lock file left by a
killed run does not block the next one. The file holds the owner's process id for the message.
Taking the lock also proves the work directory writable before any long work starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

from cornernet_tf.atomic_files import create_folder
from cornernet_tf.errors import OutputPathError

logger = logging.getLogger("cornernet_tf.training")


def _owner(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            pid = fh.read().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def _acquire(path: str, root: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputPathError(
                f"--workdir {root} is not writable ({exc.strerror or exc})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputPathError(
                f"--workdir {root} is in use by another `cornernet train`{_owner(path)}; "
                "wait for it to end or use another --workdir"
            ) from None
        except OSError as exc:  # a file system without locks (some bucket mounts)
            logger.warning(
                "%s: cannot lock (%s); a second train on this work directory is not detected",
                path,
                exc.strerror or exc,
            )
            return fd
        # The previous owner removes the file when it ends: make sure ours is still the one in place.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def workdir_lock(root: str) -> Iterator[str]:
    """Hold ``root/.lock`` for the block (creating ``root`` if needed); removed again at the end.

    Raises :class:`OutputPathError` naming ``root`` when another process holds it or when the
    folder cannot be created or written.
    """
    create_folder(root, "--workdir")
    path = os.path.join(root, ".lock")
    fd = _acquire(path, root)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            raise OutputPathError(
                f"--workdir {root} is not writable ({exc.strerror or exc})"
            ) from None
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd)
