"""Arguments shared by several sub-commands."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required, help="YAML config (see configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=8 (repeatable)",
    )


def load_config_from_args(args: argparse.Namespace):
    from cornernet_tf.config import load_config

    return load_config(args.config, args.overrides)
