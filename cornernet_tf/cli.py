"""The ``cornernet`` command line: parses arguments and hands over to ``cornernet_tf.commands``.

Each module in ``cornernet_tf/commands/`` registers its own sub-command with ``register(subparsers)``
and keeps its imports inside the handler, so ``cornernet --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import cornernet_tf.commands as commands_pkg
from cornernet_tf import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cornernet",
        description="CornerNet object detection: train, evaluate, detect, export.",
    )
    parser.add_argument("--version", action="version", version=f"cornernet-tf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from cornernet_tf.config import ConfigError

    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print(f"cornernet {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"cornernet {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
