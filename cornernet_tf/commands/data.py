"""``cornernet data``: make the synthetic shapes dataset, check a dataset, write TFRecord shards,
look at augmented training samples."""

from __future__ import annotations

import argparse
import os
import sys
import time

from cornernet_tf.atomic_files import write_json
from cornernet_tf.commands._common import add_config_arguments, load_config_from_args
from cornernet_tf.errors import InvalidValueError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="datasets: synthetic shapes, validation, TFRecord conversion",
        description="Dataset tools. Run `cornernet data ACTION --help` for each action.",
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _no_action(parser))

    shapes = actions.add_parser(
        "shapes",
        help="generate the synthetic shapes dataset (images + COCO JSON)",
        description=(
            "Filled shapes on textured backgrounds; "
            "writes OUT/<split>/images and OUT/<split>/annotations.json."
        ),
    )
    shapes.add_argument("--out", required=True, help="output folder")
    shapes.add_argument(
        "--num-images", type=int, default=None, help="images in total (over all splits)"
    )
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="image height and width (default 192 192)",
    )
    shapes.add_argument(
        "--splits",
        default=None,
        help="e.g. train=0.8,val=0.2 (fractions) or train=800,val=200 (counts); default: all train",
    )
    shapes.add_argument("--format", choices=("png", "jpeg"), default="png", help="image format")
    shapes.add_argument(
        "--classes",
        type=int,
        default=None,
        help="number of shape classes: 3 (rectangle, ellipse, triangle) or 4 (+ cross)",
    )
    shapes.add_argument(
        "--max-objects", type=int, default=6, help="at most this many shapes per image"
    )
    shapes.set_defaults(handler=_shapes)

    check = actions.add_parser(
        "check",
        help="validate a COCO-format dataset and print a summary",
        description="Exit status 1 when the dataset cannot be used (or, with --strict, when any problem is found).",
    )
    check.add_argument(
        "--annotations", required=True, help="COCO JSON file, or a folder of Pascal VOC XML files"
    )
    check.add_argument("--images", required=True, help="image folder")
    check.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=(127, 127),
        help="network input for the data.image_scale auto figure (default 127 127, the custom "
        "and tiny configs)",
    )
    check.add_argument(
        "--scan",
        choices=("decode", "header", "none"),
        default="decode",
        help="how to look at the image files (decode finds truncated files; default)",
    )
    check.add_argument("--max-objects", type=int, default=128)
    check.add_argument("--max-listed", type=int, default=50, help="problems printed")
    check.add_argument("--strict", action="store_true", help="any problem is an error")
    check.add_argument(
        "--json", dest="json_out", default=None, help="also write the report as JSON here"
    )
    check.set_defaults(handler=_check)

    voc = actions.add_parser(
        "from-voc",
        help="convert Pascal VOC XML annotations to one COCO JSON file",
        description=(
            "Reads every .xml file of --annotations (one per image) and writes the COCO JSON that "
            "every command reads. Classes in alphabetical order (category ids 1..C); difficult "
            "objects become iscrowd (ignored in training and evaluation). A folder of VOC XML is "
            "also accepted directly wherever a COCO JSON file is."
        ),
    )
    voc.add_argument("--annotations", required=True, help="folder of VOC .xml files (or one file)")
    voc.add_argument("--images", required=True, help="the image folder the XML files describe")
    voc.add_argument("--out", required=True, help="COCO JSON file to write")
    voc.set_defaults(handler=_from_voc)

    tfr = actions.add_parser(
        "to-tfrecord",
        help="write a COCO-format dataset as TFRecord shards",
        description="Shards PREFIX-00000-of-0000N.tfrecord plus PREFIX.info.json (class names, category ids).",
    )
    tfr.add_argument("--annotations", required=True, help="COCO JSON file")
    tfr.add_argument("--images", required=True, help="image folder")
    tfr.add_argument(
        "--out", required=True, metavar="PREFIX", help="shard path prefix, e.g. data/train"
    )
    tfr.add_argument("--num-shards", type=int, default=1)
    tfr.add_argument("--scan", choices=("header", "decode", "none"), default="header")
    tfr.set_defaults(handler=_to_tfrecord)

    browse = actions.add_parser(
        "browse",
        help="draw augmented training samples with their boxes and corner heatmaps to PNGs",
        description=(
            "Runs the training input pipeline (same config and --set overrides as `cornernet train`) and "
            "writes one PNG per sample to OUT: left, the augmented image with the target boxes and class "
            "names; right, the top-left (red) and bottom-right (blue) corner heatmaps. Boxes are read back "
            "from the encoded targets, so they show what the network is trained on."
        ),
    )
    add_config_arguments(browse)
    browse.add_argument("--out", required=True, help="output folder for sample_NNN.png")
    browse.add_argument("--num-samples", type=int, default=8, help="samples to draw (default 8)")
    browse.add_argument(
        "--seed",
        type=int,
        default=None,
        help="augmentation seed (default data.seed; unset: random)",
    )
    browse.add_argument(
        "--zoom",
        type=int,
        default=None,
        help="whole enlargement factor (default: the shorter side becomes >= 256 pixels)",
    )
    browse.set_defaults(handler=_browse)


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _shapes(args) -> int:
    from cornernet_tf.data.shapes import (
        DEFAULT_NUM_CLASSES,
        DEFAULT_SIZE,
        generate_shapes,
        parse_splits,
    )

    counts = parse_splits(args.splits, args.num_images)
    start = time.perf_counter()
    outputs = generate_shapes(
        args.out,
        seed=args.seed,
        size=args.size or DEFAULT_SIZE,
        splits=counts,
        image_format=args.format,
        num_classes=args.classes or DEFAULT_NUM_CLASSES,
        max_objects=args.max_objects,
    )
    elapsed = time.perf_counter() - start
    total = sum(counts.values())
    for split, path in outputs.items():
        print(f"{split}: {counts[split]} images, annotations {path}")
    print(f"{total} images in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.0f} images/s)")
    return 0


def _check(args) -> int:
    from cornernet_tf.data.check import check_dataset

    result = check_dataset(
        args.annotations,
        args.images,
        scan=args.scan,
        max_objects=args.max_objects,
        max_listed=args.max_listed,
        input_size=args.input_size,
    )
    print(result.text)
    if args.json_out:
        write_json(args.json_out, result.report.to_dict(), indent=1)
    if result.fatal:
        print("dataset check: FAILED (fatal problems)", file=sys.stderr)
        return 1
    if args.strict and result.report.problems:
        print(
            f"dataset check: FAILED ({len(result.report.problems)} problems, --strict)",
            file=sys.stderr,
        )
        return 1
    return 0


def _from_voc(args) -> int:
    from cornernet_tf.data.voc_convert import convert_voc

    summary = convert_voc(args.annotations, args.images, args.out)
    print(summary)
    return 0


def _to_tfrecord(args) -> int:
    from cornernet_tf.data.coco import load_coco
    from cornernet_tf.data.tfrecord import info_path, write_shards

    dataset = load_coco(args.annotations, args.images, scan=args.scan)
    paths = write_shards(dataset.records, dataset.info, args.out, args.num_shards, dataset.report)
    print(dataset.report.summary())
    print(f"wrote {len(paths)} shard(s): {paths[0]}{' ...' if len(paths) > 1 else ''}")
    print(f"dataset info: {info_path(args.out)}")
    return 0


def _browse(args) -> int:
    from cornernet_tf.data.browse import browse_samples
    from cornernet_tf.inference.draw import save_png
    from cornernet_tf.inference.draw_samples import sample_picture

    if args.num_samples < 1:
        raise InvalidValueError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.zoom is not None and args.zoom < 1:
        raise InvalidValueError(f"--zoom must be >= 1, got {args.zoom}")
    overrides = list(args.overrides) + ([f"data.seed={args.seed}"] if args.seed is not None else [])
    config = load_config_from_args(argparse.Namespace(config=args.config, overrides=overrides))
    class_names, samples = browse_samples(config, args.num_samples)
    os.makedirs(args.out, exist_ok=True)
    written = 0
    for index, sample in enumerate(samples):
        path = os.path.join(args.out, f"sample_{index:03d}.png")
        picture = sample_picture(
            sample.image,
            sample.boxes,
            sample.classes,
            sample.tl_heat,
            sample.br_heat,
            class_names=class_names,
            zoom=args.zoom,
        )
        save_png(picture, path)
        names = [class_names[c] if c < len(class_names) else str(c) for c in sample.classes]
        dropped = f", {sample.num_dropped} past data.max_objects" if sample.num_dropped else ""
        print(
            f"{path}: image {sample.image_id}, {len(names)} objects ({', '.join(names)}){dropped}"
        )
        written += 1
    size = config.data.input_size
    print(f"{written} augmented samples ({size[0]}x{size[1]} network input) -> {args.out}")
    return 0
