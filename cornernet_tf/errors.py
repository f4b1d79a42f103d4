"""The project's exception for mistakes a user can fix: a bad value, path, file or missing extra.

The ``cornernet`` command prints a :class:`UserError` as one line on stderr and exits non-zero;
any other exception is a bug and keeps its traceback (``--debug`` or ``CORNERNET_DEBUG=1`` shows
the traceback for user errors too). The message names the file, flag or key and the value.

The subclasses also derive from the built-in type callers already catch (``ValueError``,
``FileNotFoundError``, ``ImportError``), so ``except ValueError`` around a library call still works.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the input (arguments, config, files) that the user can fix; one line."""


class InvalidValueError(UserError, ValueError):
    """A value given by the user is malformed or out of range."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder named by the user does not exist."""


class OutputPathError(UserError, OSError):
    """An output location cannot be used: not a folder, not writable, or it would overwrite an input."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""
