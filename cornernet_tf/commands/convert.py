"""``cornernet convert``: official PyTorch checkpoint -> Keras ``.weights.h5``."""

from __future__ import annotations

from cornernet_tf.commands._common import add_config_arguments, load_config_from_args
from cornernet_tf.errors import InvalidValueError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert official PyTorch CornerNet / CornerNet-Lite weights to Keras",
        description=(
            "Read an official checkpoint (.pkl/.pth with torch, or .npz) of CornerNet or "
            "CornerNet-Lite (CornerNet-Squeeze, or Lite's CornerNet) and write Keras weights; "
            "the key naming is read from the checkpoint, the architecture from --config."
        ),
    )
    parser.add_argument(
        "--official", required=True, help="official checkpoint (.pkl, .pth or .npz)"
    )
    add_config_arguments(parser)
    parser.add_argument("--out", required=True, help="output weights file (.weights.h5)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from cornernet_tf.atomic_files import save_weights
    from cornernet_tf.convert import load_official_weights, read_official_checkpoint
    from cornernet_tf.modeling.cornernet import build_model

    if not args.out.endswith(".weights.h5"):
        raise InvalidValueError(
            f"--out must end with .weights.h5 (Keras weights format), got {args.out}"
        )
    config = load_config_from_args(args)
    model = build_model(config.model)
    report = load_official_weights(model, read_official_checkpoint(args.official))
    save_weights(args.out, model)
    print(
        f"loaded {report['tensors']} tensors ({report['parameters']:,} values, "
        f"{report['naming']} names) -> {args.out}"
    )
    return 0
