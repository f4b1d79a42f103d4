"""``cornernet export``: a TF Serving SavedModel holding the whole test procedure."""

from __future__ import annotations

from cornernet_tf.commands._common import (
    add_category_arguments,
    add_export_arguments,
    add_precision_argument,
    load_config_from_args,
    parse_category_ids,
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
    add_export_arguments(parser, "model base folder (TF Serving base_path)")
    parser.add_argument(
        "--version", type=int, default=None, help="version folder (default: next free number)"
    )
    parser.add_argument(
        "--max-detections", type=int, default=None, help="default export.max_detections (100)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing version folder"
    )
    add_precision_argument(parser)
    add_category_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from cornernet_tf.export.saved_model import export_saved_model

    config = load_config_from_args(args)
    path = export_saved_model(
        config,
        weights=args.weights,
        out_dir=args.out,
        version=args.version,
        category_ids=parse_category_ids(args.category_ids),
        dataset_info=args.dataset_info,
        max_detections=args.max_detections,
        overwrite=args.overwrite,
    )
    print(f"SavedModel -> {path} (signatures serving_default, serving_bytes)")
    return 0
