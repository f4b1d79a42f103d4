"""``cornernet export-tflite``: a TFLite (LiteRT) model of the network, builtin operators only."""

from __future__ import annotations

from cornernet_tf.commands._common import (
    add_category_arguments,
    add_export_arguments,
    load_config_from_args,
    parse_category_ids,
    print_fixed_size_summary,
)
from cornernet_tf.errors import InvalidValueError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-tflite",
        help="export a TFLite (LiteRT) model: none | fp16 | int8, builtin operators only",
        description=(
            "SavedModel -> TFLiteConverter.from_saved_model with TFLITE_BUILTINS only (conversion fails "
            "rather than needing Flex ops). Input uint8 [1,S,S,3] at a fixed size, outputs the six raw maps; "
            "decoding and soft-NMS run in NumPy (cornernet_tf.export.postprocess), configured by FILE.json "
            "written beside the model."
        ),
    )
    add_export_arguments(parser, "output .tflite file", fixed_input_size=True)
    parser.add_argument(
        "--quantize",
        choices=("none", "fp16", "int8"),
        default=None,
        help="default export.tflite_quantize (none)",
    )
    parser.add_argument(
        "--representative-images",
        metavar="DIR",
        help="images for int8 calibration (default: data.train_images)",
    )
    parser.add_argument(
        "--num-representative",
        type=int,
        default=None,
        help="calibration images (default export.representative_images)",
    )
    add_category_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from cornernet_tf.export.tflite import convert

    if not args.out.endswith(".tflite"):
        raise InvalidValueError(f"--out must end with .tflite, got {args.out}")
    config = load_config_from_args(args)
    quantize = args.quantize or config.export.tflite_quantize
    path = convert(
        config,
        args.out,
        weights=args.weights,
        quantize=quantize,
        input_size=args.input_size,
        representative_images_dir=args.representative_images,
        num_representative=args.num_representative,
        category_ids=parse_category_ids(args.category_ids),
        dataset_info=args.dataset_info,
    )
    print_tflite_summary(path, quantize)
    return 0


def print_tflite_summary(path: str, quantize: str) -> None:
    """One line for the file (quantisation, input shape, size), one for its operators."""
    from cornernet_tf.export.litert_runner import read_metadata

    print_fixed_size_summary(f"TFLite ({quantize}", path, read_metadata(path))
