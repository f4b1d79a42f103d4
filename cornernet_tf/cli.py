"""The ``cornernet`` command line: parses arguments and hands over to ``cornernet_tf.commands``.

Each module in ``cornernet_tf/commands/`` registers its own sub-command with ``register(subparsers)``
and keeps its imports inside the handler, so ``cornernet --help`` answers without loading TensorFlow.

Errors: a :class:`cornernet_tf.errors.UserError` (a bad argument, config, file or a missing extra)
and an ``OSError`` (a missing, unwritable or full location: the environment, not the code) end the
command with one line on stderr naming the file or value, exit status 2 for a configuration error
and 1 otherwise. Anything else is a bug and keeps its traceback. ``--debug`` (before or after the
sub-command) or ``CORNERNET_DEBUG=1`` shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import cornernet_tf.commands as commands_pkg
from cornernet_tf import __version__
from cornernet_tf.commands._ranges import check_option_ranges
from cornernet_tf.log_noise import quiet_harmless_logs
from cornernet_tf.tf_allocator import prefer_bfc_cpu_allocator

DEBUG_ENV = "CORNERNET_DEBUG"
DEBUG_HELP = f"show the full traceback of any error (also {DEBUG_ENV}=1)"
EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cornernet",
        description="CornerNet object detection: train, evaluate, detect, export.",
    )
    parser.add_argument("--version", action="version", version=f"cornernet-tf {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        module.register(subparsers)
    for sub in subparsers.choices.values():  # `cornernet detect ... --debug` works too
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def debug_requested(args: argparse.Namespace) -> bool:
    """``--debug`` given, or ``CORNERNET_DEBUG`` set to anything but empty/0/false/no."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no")


def one_line(error: BaseException) -> str:
    """The error's message on one line (multi-line messages joined with spaces)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def report_error(command: str, error: BaseException) -> int | None:
    """Print a user-facing error as one line and return the exit status; None for a bug."""
    from cornernet_tf.config import ConfigError
    from cornernet_tf.errors import UserError

    if isinstance(error, ConfigError):
        print(f"cornernet {command}: configuration error: {one_line(error)}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if isinstance(error, (UserError, OSError)):
        print(f"cornernet {command}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    return None


def main(argv: list[str] | None = None) -> int:
    quiet_harmless_logs()  # before any command imports TensorFlow
    prefer_bfc_cpu_allocator()  # likewise: TensorFlow reads it when it creates its allocator
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        check_option_ranges(args)  # numeric options, before any work
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        if debug_requested(args):
            raise
        print(f"cornernet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        status = None if debug_requested(args) else report_error(args.command, error)
        if status is None:
            raise
        return status


if __name__ == "__main__":
    sys.exit(main())
