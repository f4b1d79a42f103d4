"""``cornernet detect``: detect objects in image files; a JSON and a drawn PNG per image."""

from __future__ import annotations

import sys

from cornernet_tf.commands._common import (
    WEIGHTS_HELP,
    add_config_arguments,
    add_precision_argument,
    load_config_from_args,
)
from cornernet_tf.errors import InvalidValueError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="detect objects in images (JSON + PNG with boxes per image)",
        description=(
            "Run the test procedure of the config on images or folders of images. Writes <name>.json "
            "(boxes x1 y1 x2 y2 in pixels, score, class) and <name>.png (boxes drawn) into --out, "
            "which must not be or contain an input. Files that cannot be decoded are reported and "
            "skipped."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument(
        "inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders of images"
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder; it must not be, or contain, an input (nothing is written over an input)",
    )
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="also read the sub-folders of the folders given; results mirror the folder tree "
        "under --out (which must then lie outside the input folders)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="keep detections with at least this score (default 0.3)",
    )
    parser.add_argument(
        "--heatmaps",
        action="store_true",
        help="also write <name>_heatmaps.png: corner heatmaps over the image (paper Fig. 10)",
    )
    parser.add_argument(
        "--class-names",
        metavar="FILE",
        help="class names, one per line or a COCO JSON (default: dataset_info.json beside the "
        "weights, else from the config)",
    )
    add_precision_argument(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from cornernet_tf.commands._outputs import prepare_output_dir
    from cornernet_tf.eval.detect_images import (
        check_output_apart,
        class_names_for,
        detect_files,
        list_image_sources,
    )
    from cornernet_tf.inference.detector import Detector
    from cornernet_tf.modeling.precision import build_model_in_precision
    from cornernet_tf.weights import load_weights

    if not 0.0 <= args.score_threshold <= 1.0:
        raise InvalidValueError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    # Before loading anything: a missing path, an empty folder, an --out among the inputs or
    # one that cannot be written fail at once.
    sources = list_image_sources(args.inputs, recursive=args.recursive)
    check_output_apart(args.out, args.inputs, recursive=args.recursive)
    prepare_output_dir(args.out)
    config = load_config_from_args(args)
    model = build_model_in_precision(config.model, config.test.precision)
    load_weights(model, args.weights, config_name=args.config)
    names = class_names_for(
        config, config.model.num_classes, args.class_names, weights=args.weights
    )
    detector = Detector(model, config.test, mean=config.data.mean, std=config.data.std)
    summary = detect_files(
        detector,
        [f for f, _ in sources],
        args.out,
        names,
        args.score_threshold,
        args.heatmaps,
        stems=[stem for _, stem in sources],
    )
    print(
        f"{len(summary.processed)} images, {summary.num_detections} detections with score >= "
        f"{args.score_threshold} -> {args.out}"
    )
    if summary.converted:
        print(
            f"{len(summary.converted)} converted to RGB: "
            + ", ".join(f"{p} ({n})" for p, n in summary.converted)
        )
    if summary.skipped:
        print(f"{len(summary.skipped)} skipped (could not be decoded):", file=sys.stderr)
        for _path, reason in summary.skipped:
            print(f"  {reason}", file=sys.stderr)
    return 0 if summary.processed else 1
