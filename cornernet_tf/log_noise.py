"""Keep TensorFlow's harmless messages out of the command line's output, and nothing else.

``cornernet`` calls :func:`quiet_harmless_logs` before TensorFlow is imported: TensorFlow's C++
INFO lines (oneDNN, CPU features, SavedModel reading) are hidden with ``TF_CPP_MIN_LOG_LEVEL=1``
unless the user set that variable; warnings and errors stay. A few Python-side warnings that do
not apply to this project are dropped by message. The library changes no logging settings; only
:func:`drop_native_lines` filters lines that TensorFlow's C++ code writes during one call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

# absl (Python) warnings that are expected here: the exported detection functions are loaded
# for inference only, so their custom gradients (corner pooling) are never needed.
HARMLESS_ABSL = ("with ops with unsaved custom gradients",)


class DropMessages(logging.Filter):
    """Drop records whose message contains one of ``fragments``."""

    def __init__(self, fragments) -> None:
        super().__init__()
        self.fragments = tuple(fragments)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


def quiet_harmless_logs() -> None:
    """Hide TensorFlow's INFO lines and the known harmless warnings (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, DropMessages) for f in absl_logger.filters):
        absl_logger.addFilter(DropMessages(HARMLESS_ABSL))


@contextlib.contextmanager
def drop_native_lines(fragments):
    """Drop the lines containing one of ``fragments`` from what is written to file descriptor 2
    (C++ logging goes there directly) inside the ``with`` block; every other line passes at once.

    The lines are relayed by a thread as they come, so an error message before a crash is not
    held back.
    """
    fragments = tuple(f.encode() if isinstance(f, str) else f for f in fragments)
    try:
        sys.stderr.flush()
        original = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreter): filter nothing
        yield
        return
    read_end, write_end = os.pipe()

    def relay() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(fragment in line for fragment in fragments):
                    os.write(original, line)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the relay sees the end
        thread.join()
        os.close(original)
