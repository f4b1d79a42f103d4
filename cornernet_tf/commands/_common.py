"""Arguments shared by several sub-commands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from cornernet_tf.errors import InvalidValueError

WEIGHTS_HELP = "trained weights: .weights.h5, .keras, or an official .pkl/.pth/.npz checkpoint"


def config_path(text: str) -> str:
    """argparse ``type`` of ``--config``: a YAML path, or the name of a shipped config."""
    from cornernet_tf.config_files import config_names, resolve_config_path

    path = resolve_config_path(text)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a config file")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a config file nor a shipped config "
            f"(shipped: {', '.join(config_names()) or 'none found'})"
        )
    return path


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        required=required,
        type=config_path,
        metavar="CONFIG",
        help="YAML config file, or the name of a shipped config (e.g. cornernet_tiny)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_size=8 (repeatable)",
    )


def add_export_arguments(
    parser: argparse.ArgumentParser, out_help: str, fixed_input_size: bool = False
) -> None:
    """What every export command takes: config, ``--weights``, ``--out`` (and, for the fixed-size
    formats, ``--input-size``); ``--category-ids`` / ``--dataset-info`` are added last."""
    add_config_arguments(parser)
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("--out", required=True, help=out_help)
    if fixed_input_size:
        parser.add_argument(
            "--input-size",
            type=int,
            nargs=2,
            metavar=("H", "W"),
            default=None,
            help="fixed input size (default: data.input_size padded to size | 127)",
        )


def print_fixed_size_summary(kind: str, path: str, meta: dict) -> None:
    """One line for an exported fixed-size model (kind, input shape, size), one for its operators."""
    size_mb = os.path.getsize(path) / 1e6
    print(f"{kind}, input {meta['input']['shape']}) -> {path} ({size_mb:.2f} MB)")
    print("operators: " + ", ".join(f"{k} x{v}" for k, v in meta["operators"].items()))


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision``: the network's compute dtype, overriding ``test.precision``."""
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16", "auto"),
        default=None,
        help="dtype the network computes in (default test.precision, float32); maps and decoding "
        "stay float32; auto = bfloat16 on CPUs with avx512_bf16/AMX and GPUs from Ampere",
    )


def load_config_from_args(args: argparse.Namespace):
    """The config of ``--config`` and ``--set``; a null ``model.num_classes`` is taken from the
    dataset info beside ``--weights`` or from the configured data (data/classes.py)."""
    from cornernet_tf.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "precision", None):
        overrides.append(f"test.precision={args.precision}")
    config = load_config(args.config, overrides)
    if config.model.num_classes is None:
        from cornernet_tf.data.classes import num_classes_for_weights

        config = num_classes_for_weights(config, getattr(args, "weights", None))
    return config


def add_category_arguments(parser: argparse.ArgumentParser) -> None:
    """``--category-ids`` / ``--dataset-info``: the dataset ids an export reports (see export/common)."""
    parser.add_argument(
        "--category-ids",
        metavar="ID,ID,...",
        help="dataset category id of each class, in class order (default: from --dataset-info, "
        "a dataset_info.json beside the weights, the config's annotation file, else 1..C)",
    )
    parser.add_argument(
        "--dataset-info", metavar="JSON", help="class names and category ids (DatasetInfo JSON)"
    )


def parse_category_ids(text: str | None) -> Sequence[int] | None:
    """``"1,2,3"`` -> ``[1, 2, 3]``; None stays None."""
    if text is None:
        return None
    try:
        ids = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise InvalidValueError(
            f"--category-ids expects comma-separated integers, got {text!r}"
        ) from None
    if not ids:
        raise InvalidValueError("--category-ids is empty")
    return ids
