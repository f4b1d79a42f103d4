"""``cornernet eval``: COCO AP of a trained model on a validation set, plus the paper's analyses."""

from __future__ import annotations

import os

from cornernet_tf.commands._common import (
    WEIGHTS_HELP,
    add_config_arguments,
    add_precision_argument,
    load_config_from_args,
)
from cornernet_tf.errors import InvalidValueError

ORACLE_CHOICES = ("heatmaps", "heatmaps+offsets")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model with COCO metrics (AP, AR, AP at IoU 0.6-0.9, per-class AP)",
        description=(
            "Run the test procedure of the config over a dataset, write COCO results and metrics.json, "
            "and print the COCO table. The dataset is --annotations/--images, --tfds, or else the "
            "config's validation data."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument(
        "--annotations", help="COCO-format JSON (or a folder of VOC XML) of the evaluation set"
    )
    parser.add_argument("--images", help="folder the JSON's file_name entries are relative to")
    parser.add_argument(
        "--tfds", metavar="NAME", help="a TensorFlow Datasets detection dataset, e.g. coco/2017"
    )
    parser.add_argument("--split", help="TFDS split (default: data.tfds_val_split)")
    parser.add_argument(
        "--tfrecords",
        metavar="GLOB",
        help="TFRecord shards written by `cornernet data to-tfrecord`",
    )
    parser.add_argument("--out", help="folder for detections.json and metrics.json")
    parser.add_argument("--max-images", type=int, help="evaluate only the first N images")
    parser.add_argument(
        "--oracle",
        choices=ORACLE_CHOICES,
        help="replace the predicted heatmaps (and offsets) with ground truth (paper Table 6)",
    )
    parser.add_argument(
        "--quadrants",
        action="store_true",
        help="also report corner-detection mAP per image quadrant (paper Table 3)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_precision_argument(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from cornernet_tf.commands._outputs import prepare_output_dir, refuse_overwriting
    from cornernet_tf.eval.runner import DETECTIONS_FILE, METRICS_FILE, evaluate, format_report
    from cornernet_tf.modeling.precision import build_model_in_precision
    from cornernet_tf.weights import load_weights

    if args.max_images is not None and args.max_images < 1:
        raise InvalidValueError(f"--max-images must be >= 1, got {args.max_images}")
    if args.out:  # checked before the evaluation, not after it
        refuse_overwriting(
            {
                f"--out/{name}": os.path.join(args.out, name)
                for name in (DETECTIONS_FILE, METRICS_FILE)
            },
            {"--annotations": args.annotations, "--weights": args.weights, "--config": args.config},
        )
        prepare_output_dir(args.out)
    config = load_config_from_args(args)
    model = build_model_in_precision(config.model, config.test.precision)
    load_weights(model, args.weights, config_name=args.config)
    metrics = evaluate(
        model,
        config,
        annotations=args.annotations,
        images=args.images,
        tfds=args.tfds,
        tfds_split=args.split,
        tfrecords=args.tfrecords,
        out_dir=args.out,
        max_images=args.max_images,
        oracle=args.oracle,
        quadrants=args.quadrants,
        progress=not args.no_progress,
        extra={"weights": args.weights, "config": args.config, "overrides": list(args.overrides)},
    )
    print(format_report(metrics))
    if args.out:
        print(f" results written to {args.out}/detections.json and {args.out}/metrics.json")
    return 0
