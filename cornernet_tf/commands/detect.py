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
            "Run the test procedure of the config on images or folders of images. Writes into --out "
            "<name>.json (COCO-style results: category_id = the dataset's category id, bbox = x y "
            "w h in pixels, score, class_name, image_id), <name>.png (boxes drawn) and "
            "detections.json (the COCO results of all images, with file_name; image_id is the "
            "number a file is named, e.g. COCO's 000000397133.jpg, else 1, 2, ... in input order). "
            "--out must not be or contain an input. Files that cannot be decoded are reported and "
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
        help="class names, one per line or a COCO JSON (whose category ids are then used too; "
        "default: dataset_info.json beside the weights, else from the config)",
    )
    add_precision_argument(parser)
    parser.set_defaults(handler=run)


def _refuse_overwriting_inputs(args, stems) -> None:
    """No result file may replace ``--class-names``, ``--weights`` or the dataset info beside
    the weights (an image called ``classes.png`` would write ``classes.json``)."""
    import os

    from cornernet_tf.commands._outputs import refuse_overwriting
    from cornernet_tf.data.info import dataset_info_beside

    suffixes = (".json", ".png") + (("_heatmaps.png",) if args.heatmaps else ())
    outputs = {
        f"--out/{stem}{suffix}": os.path.join(args.out, stem + suffix)
        for stem in stems
        for suffix in suffixes
    }
    inputs = {
        "--class-names": args.class_names,
        "--weights": args.weights,
        "dataset info": None if args.class_names else dataset_info_beside(args.weights),
    }
    refuse_overwriting(outputs, inputs)


def run(args) -> int:
    from cornernet_tf.commands._outputs import prepare_output_dir
    from cornernet_tf.data.image_scale import scaled_test_config
    from cornernet_tf.eval.detect_images import (
        check_output_apart,
        class_names_for,
        detect_files,
        list_image_sources,
    )
    from cornernet_tf.inference.detector import Detector
    from cornernet_tf.load import category_ids_for
    from cornernet_tf.modeling.precision import build_model_in_precision
    from cornernet_tf.weights import load_weights

    if not 0.0 <= args.score_threshold <= 1.0:
        raise InvalidValueError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    # Before loading anything: a missing path, an empty folder, an --out among the inputs or
    # one that cannot be written fail at once.
    sources = list_image_sources(args.inputs, recursive=args.recursive)
    check_output_apart(args.out, args.inputs, recursive=args.recursive)
    _refuse_overwriting_inputs(args, [stem for _, stem in sources])
    prepare_output_dir(args.out)
    config = load_config_from_args(args)
    model = build_model_in_precision(config.model, config.test.precision)
    load_weights(model, args.weights, config_name=args.config)
    names = class_names_for(
        config, config.model.num_classes, args.class_names, weights=args.weights
    )
    category_ids = category_ids_for(config, args.weights, args.class_names)
    detector = Detector(
        model, scaled_test_config(config), mean=config.data.mean, std=config.data.std
    )
    summary = detect_files(
        detector,
        [f for f, _ in sources],
        args.out,
        names,
        args.score_threshold,
        args.heatmaps,
        stems=[stem for _, stem in sources],
        category_ids=category_ids,
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
        print(
            f"{len(summary.skipped)} skipped (could not be decoded or too large):", file=sys.stderr
        )
        for _path, reason in summary.skipped:
            print(f"  {reason}", file=sys.stderr)
    return 0 if summary.processed else 1
