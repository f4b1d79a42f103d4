"""``cornernet export-onnx``: an ONNX model of the network (tf2onnx), run with onnxruntime."""

from __future__ import annotations

import sys

from cornernet_tf.commands._common import (
    add_category_arguments,
    add_export_arguments,
    load_config_from_args,
    parse_category_ids,
    print_fixed_size_summary,
)
from cornernet_tf.errors import InvalidValueError

DEFAULT_OPSET = 17  # cornernet_tf.export.onnx.DEFAULT_OPSET, repeated so that --help loads no TF


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export an ONNX model of the network (tf2onnx), for onnxruntime",
        description=(
            "The network at a fixed input size as ONNX (tf2onnx): input uint8 images [1,S,S,3], outputs "
            "the six raw maps. Decoding and soft-NMS run in NumPy (cornernet_tf.export.OnnxDetector), "
            "configured by FILE.json written beside the model. Needs the [onnx] extra "
            "(pip install 'cornernet-tf[onnx]')."
        ),
    )
    add_export_arguments(parser, "output .onnx file", fixed_input_size=True)
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    add_category_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    if not args.out.endswith(".onnx"):
        raise InvalidValueError(f"--out must end with .onnx, got {args.out}")
    from cornernet_tf.export.onnx import MissingPackageError, export_onnx, read_onnx_metadata

    config = load_config_from_args(args)
    try:
        path = export_onnx(
            config,
            args.out,
            weights=args.weights,
            input_size=args.input_size,
            opset=args.opset,
            category_ids=parse_category_ids(args.category_ids),
            dataset_info=args.dataset_info,
        )
    except MissingPackageError as exc:
        print(f"cornernet export-onnx: error: {exc}", file=sys.stderr)
        return 1
    meta = read_onnx_metadata(path)
    print_fixed_size_summary(f"ONNX (opset {meta['opset']}", path, meta)
    return 0
