"""``cornernet demo``: the whole life of a detector in one command, on synthetic data.

Generates the shapes dataset, trains the tiny CornerNet for a few minutes, evaluates it with the
COCO metrics, exports a TF Serving SavedModel and queries it over gRPC (an in-process server that
implements the real PredictionService), converts the model to TFLite and runs it with LiteRT, and
draws detections on a few validation images. Every step calls the same library functions as the
sub-command of the same name, so the demo is also a smoke test of what the command line runs.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import time

from cornernet_tf.commands._common import config_path

DEFAULT_CONFIG = "cornernet_tiny"
SAMPLE_IMAGES = 4
SCORE_THRESHOLD = 0.3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train, evaluate, export and run a tiny CornerNet on synthetic shapes (a few minutes on CPU)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument(
        "--config",
        type=config_path,
        default=None,
        help=f"config file or shipped config name (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument("--train-images", type=int, default=800, help="training images to generate")
    parser.add_argument("--val-images", type=int, default=100, help="held-out images to generate")
    parser.add_argument(
        "--steps",
        type=int,
        default=1500,
        help="training steps, the last eighth at the decayed learning rate (default 1500, ~5 minutes on 2 CPU cores)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=8.0,
        help="training time budget in minutes, a cap on a slow machine (resumable; default 8)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def _step(number: int, title: str) -> float:
    print(f"\n=== [{number}/7] {title} " + "=" * max(0, 60 - len(title)), flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"--- done in {time.perf_counter() - start:.1f} s", flush=True)


def run(args: argparse.Namespace) -> int:
    from cornernet_tf.config import load_config
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    if args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    out = os.path.abspath(args.out)
    config_file = os.path.abspath(args.config or config_path(DEFAULT_CONFIG))
    shapes = os.path.join(out, "shapes")
    train_dir, val_dir = os.path.join(shapes, "train"), os.path.join(shapes, "val")
    data_overrides = [
        f"data.train_annotations={train_dir}/annotations.json",
        f"data.train_images={train_dir}/images",
        f"data.val_annotations={val_dir}/annotations.json",
        f"data.val_images={val_dir}/images",
    ]

    t = _step(1, "synthetic shapes data")
    _make_shapes(shapes, val_dir, args)
    _done(t)

    t = _step(2, "train the tiny CornerNet")
    weights = _train(config_file, os.path.join(out, "train"), data_overrides, args)
    _done(t)

    config = load_config(config_file, data_overrides)
    model = build_model(config.model)
    load_weights(model, weights, config_name=config_file)

    t = _step(3, "evaluate on the held-out split (COCO metrics)")
    from cornernet_tf.eval.runner import evaluate, format_report

    metrics = evaluate(
        model,
        config,
        out_dir=os.path.join(out, "eval"),
        progress=not args.no_progress,
        extra={"weights": weights, "config": config_file, "overrides": data_overrides},
    )
    print(format_report(metrics))
    _done(t)

    t = _step(4, "detect: draw boxes on a few validation images")
    samples = sorted(glob.glob(os.path.join(val_dir, "images", "*")))[:SAMPLE_IMAGES]
    _detect(model, config, weights, samples, os.path.join(out, "detect"))
    _done(t)

    t = _step(5, "export a TF Serving SavedModel")
    from cornernet_tf.export.saved_model import export_saved_model

    export_dir = os.path.join(out, "export")
    version_dir = export_saved_model(
        config, weights=weights, out_dir=export_dir, version=1, overwrite=True
    )
    print(f"SavedModel -> {version_dir} (signatures serving_default, serving_bytes)")
    _done(t)

    t = _step(6, "query it over gRPC (in-process PredictionService on 127.0.0.1)")
    with _skipped_without_extra():
        _query_grpc(version_dir, samples[0])
    _done(t)

    t = _step(7, "TFLite: convert the tiny model and run it with LiteRT")
    with _skipped_without_extra():
        _tflite(config, weights, os.path.join(out, "cornernet_tiny.tflite"), samples[0])
    _done(t)

    print(f"\nAll outputs are in {out}:")
    for name in (
        "train/loss_curves.png",
        "eval/metrics.json",
        "detect",
        "export/1",
        "cornernet_tiny.tflite",
    ):
        if os.path.exists(os.path.join(out, name)):
            print(f"  {os.path.join(out, name)}")
    return 0


@contextlib.contextmanager
def _skipped_without_extra():
    """A step that needs an extra is skipped, with the pip command, when the extra is missing."""
    from cornernet_tf.errors import MissingDependencyError

    try:
        yield
    except MissingDependencyError as exc:
        print(f"skipped: {exc}", flush=True)


def _make_shapes(shapes: str, val_dir: str, args: argparse.Namespace) -> None:
    from cornernet_tf.data.shapes import generate_shapes

    if os.path.exists(os.path.join(val_dir, "annotations.json")):
        print(f"using the existing dataset in {shapes}")
        return
    splits = {"train": args.train_images, "val": args.val_images}
    for split, path in generate_shapes(shapes, seed=args.seed, splits=splits).items():
        print(f"{split}: {splits[split]} images, annotations {path}")


def _train(config_file: str, workdir: str, data_overrides: list[str], args) -> str:
    """Train a complete short schedule; returns the weights file to use afterwards."""
    from cornernet_tf.eval.runner import evaluate
    from cornernet_tf.training.fit import train

    # A complete short schedule (the ÷10 decay is worth much of the final AP) rather than the
    # first minutes of the config's long one.
    overrides = [
        *data_overrides,
        f"train.max_steps={args.steps}",
        f"train.decay_step={args.steps - args.steps // 8}",
    ]
    result = train(
        config_file,
        workdir,
        progress=not args.no_progress,
        overrides=overrides,
        max_seconds=args.minutes * 60,
        evaluate=evaluate,
    )
    weights = result.paths.last if os.path.exists(result.paths.last) else result.paths.best
    print(
        f"trained to step {result.final_step}; weights {weights}; loss curves {result.paths.curves}"
    )
    return weights


def _detect(model, config, weights: str, samples: list[str], out_dir: str) -> None:
    from cornernet_tf.data.image_scale import scaled_test_config
    from cornernet_tf.eval.detect_images import class_names_for, detect_files
    from cornernet_tf.inference.detector import Detector

    names = class_names_for(config, config.model.num_classes, weights=weights)
    detector = Detector(
        model, scaled_test_config(config), mean=config.data.mean, std=config.data.std
    )
    summary = detect_files(detector, samples, out_dir, names, SCORE_THRESHOLD, heatmaps=True)
    print(
        f"{len(summary.processed)} images, {summary.num_detections} detections with score >= "
        f"{SCORE_THRESHOLD} -> {out_dir}"
    )


def _query_grpc(model_dir: str, image_path: str) -> None:
    from cornernet_tf.serving.client import predict_grpc
    from cornernet_tf.serving.server import serve_in_process

    server, port = serve_in_process(os.path.dirname(model_dir), port=0, model_name="cornernet")
    try:
        with open(image_path, "rb") as fh:
            result = predict_grpc("127.0.0.1", port, fh.read(), model_name="cornernet")
    finally:
        server.stop(None)
    print(f"gRPC Predict on 127.0.0.1:{port} for {os.path.basename(image_path)}:")
    print(json.dumps(_summarise(result), indent=1))


def _tflite(config, weights: str, tflite_path: str, image_path: str) -> None:
    from cornernet_tf.commands.export_tflite import print_tflite_summary
    from cornernet_tf.export.tflite import convert
    from cornernet_tf.extras import require

    require("ai_edge_litert.interpreter", "the LiteRT step")  # before the conversion's minutes
    convert(config, tflite_path, weights=weights, quantize="none")
    print_tflite_summary(tflite_path, "none")
    _run_litert(tflite_path, image_path)


def _run_litert(tflite_path: str, image_path: str) -> None:
    import numpy as np
    from PIL import Image

    from cornernet_tf.export.litert_runner import LiteRTDetector

    detector = LiteRTDetector(tflite_path, num_threads=2)
    image = np.asarray(Image.open(image_path).convert("RGB"))
    dets = detector.detect(image)
    print(f"LiteRT on {os.path.basename(image_path)}: {len(dets['scores'])} detections, top 3:")
    for box, score, category in list(zip(dets["boxes"], dets["scores"], dets["category_ids"]))[:3]:
        print(
            f"  category {int(category)} score {float(score):.3f} box x1y1x2y2 {[round(float(v), 1) for v in box]}"
        )


def _summarise(result: dict, top: int = 3) -> dict:
    n = int(result["num_detections"][0])
    return {
        "num_detections": n,
        "top": [
            {
                "category_id": int(result["detection_classes"][0][i]),
                "score": round(float(result["detection_scores"][0][i]), 3),
                "box_ymin_xmin_ymax_xmax": [
                    round(float(v), 3) for v in result["detection_boxes"][0][i]
                ],
            }
            for i in range(min(n, top))
        ],
    }
