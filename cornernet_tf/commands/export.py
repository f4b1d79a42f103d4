"""``cornernet export`` (TF Serving SavedModel), ``cornernet export-tflite`` and ``cornernet serve-client``."""

from __future__ import annotations

import os
import sys

from cornernet_tf.commands._common import add_config_arguments, load_config_from_args

WEIGHTS_HELP = "trained weights: .weights.h5, .keras, or an official .pkl/.pth/.npz checkpoint"


def _category_ids(text):
    if text is None:
        return None
    try:
        ids = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ValueError(f"--category-ids expects comma-separated integers, got {text!r}") from None
    if not ids:
        raise ValueError("--category-ids is empty")
    return ids


def _add_category_arguments(parser) -> None:
    parser.add_argument(
        "--category-ids",
        metavar="ID,ID,...",
        help="dataset category id of each class, in class order (default: from --dataset-info, "
        "a dataset_info.json beside the weights, the config's annotation file, else 1..C)",
    )
    parser.add_argument(
        "--dataset-info", metavar="JSON", help="class names and category ids (DatasetInfo JSON)"
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a TF Serving SavedModel (pre-processing + network + test procedure)",
        description=(
            "Write DIR/VERSION/saved_model.pb + variables: signatures serving_default (images uint8 "
            "[B,H,W,3]) and serving_bytes (image_bytes string [B]), outputs detection_boxes (normalised "
            "ymin xmin ymax xmax), detection_scores, detection_classes (category ids), num_detections. "
            "Only core TF ops (corner pooling impl 'tf'). See serving/README.md."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("--out", required=True, help="model base folder (TF Serving base_path)")
    parser.add_argument(
        "--version", type=int, default=None, help="version folder (default: next free number)"
    )
    parser.add_argument(
        "--max-detections", type=int, default=None, help="default export.max_detections (100)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing version folder"
    )
    _add_category_arguments(parser)
    parser.set_defaults(handler=run_export)

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
    add_config_arguments(parser)
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("--out", required=True, help="output .tflite file")
    parser.add_argument(
        "--quantize",
        choices=("none", "fp16", "int8"),
        default=None,
        help="default export.tflite_quantize (none)",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="fixed input size (default: data.input_size padded to size | 127)",
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
    _add_category_arguments(parser)
    parser.set_defaults(handler=run_export_tflite)

    parser = subparsers.add_parser(
        "serve-client",
        help="send images to a served CornerNet model (gRPC or REST) and print the detections",
        description="The client of serving/client.py (also `python -m serving.client`).",
    )
    from_client = _client_module(required=False)
    if from_client is not None:
        from_client.add_arguments(parser)
    parser.set_defaults(handler=run_serve_client)


def run_export(args) -> int:
    from cornernet_tf.export.saved_model import export_saved_model

    config = load_config_from_args(args)
    path = export_saved_model(
        config,
        weights=args.weights,
        out_dir=args.out,
        version=args.version,
        category_ids=_category_ids(args.category_ids),
        dataset_info=args.dataset_info,
        max_detections=args.max_detections,
        overwrite=args.overwrite,
    )
    print(f"SavedModel -> {path} (signatures serving_default, serving_bytes)")
    return 0


def run_export_tflite(args) -> int:
    from cornernet_tf.export.litert_runner import read_metadata
    from cornernet_tf.export.tflite import convert

    if not args.out.endswith(".tflite"):
        raise ValueError(f"--out must end with .tflite, got {args.out}")
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
        category_ids=_category_ids(args.category_ids),
        dataset_info=args.dataset_info,
    )
    meta = read_metadata(path)
    ops = ", ".join(f"{k} x{v}" for k, v in meta["operators"].items())
    print(
        f"TFLite ({quantize}, input {meta['input']['shape']}) -> {path} ({os.path.getsize(path) / 1e6:.2f} MB)"
    )
    print(f"operators: {ops}")
    return 0


def _client_module(required: bool = True):
    """serving/ is a top-level folder of the repository (``import serving``)."""
    try:
        from serving import client
    except ImportError as exc:
        if required:
            raise ValueError(
                f"cannot import serving.client ({exc}); run from the repository root or install the package"
            ) from None
        return None
    return client


def run_serve_client(args) -> int:
    client = _client_module()
    try:
        return client.run(args)
    except client.PredictionError as exc:
        print(f"cornernet serve-client: {exc}", file=sys.stderr)
        return 1
