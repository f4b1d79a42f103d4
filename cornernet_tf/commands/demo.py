"""``cornernet demo``: the whole life of a detector in one command, on synthetic data.

Generates the shapes dataset, trains the tiny CornerNet for a few minutes, evaluates it with the
COCO metrics, exports a TF Serving SavedModel and queries it over gRPC (an in-process server that
implements the real PredictionService), converts the model to TFLite and runs it with LiteRT, and
draws detections on a few validation images. Every step calls the same code as the sub-command
of the same name, so the demo is also a smoke test of the command line.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

DEFAULT_CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "configs", "cornernet_tiny.yaml"
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train, evaluate, export and run a tiny CornerNet on synthetic shapes (a few minutes on CPU)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument(
        "--config", default=None, help="config (default: configs/cornernet_tiny.yaml)"
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


def _cli(argv: list[str]) -> None:
    from cornernet_tf.cli import main

    code = main(argv)
    if code:
        raise SystemExit(f"cornernet {' '.join(argv[:2])} failed with exit code {code}")


def run(args: argparse.Namespace) -> int:
    out = os.path.abspath(args.out)
    config = os.path.abspath(args.config or DEFAULT_CONFIG)
    shapes = os.path.join(out, "shapes")
    train_dir, val_dir = os.path.join(shapes, "train"), os.path.join(shapes, "val")
    workdir = os.path.join(out, "train")
    data_overrides = [
        "--set",
        f"data.train_annotations={train_dir}/annotations.json",
        "--set",
        f"data.train_images={train_dir}/images",
        "--set",
        f"data.val_annotations={val_dir}/annotations.json",
        "--set",
        f"data.val_images={val_dir}/images",
    ]
    progress = [] if not args.no_progress else ["--no-progress"]

    t = _step(1, "synthetic shapes data")
    if os.path.exists(os.path.join(val_dir, "annotations.json")):
        print(f"using the existing dataset in {shapes}")
    else:
        _cli(
            [
                "data",
                "shapes",
                "--out",
                shapes,
                "--seed",
                str(args.seed),
                "--splits",
                f"train={args.train_images},val={args.val_images}",
            ]
        )
    _done(t)

    t = _step(2, "train the tiny CornerNet")
    from cornernet_tf.training.fit import train

    overrides = [value for flag, value in zip(data_overrides[::2], data_overrides[1::2])]
    if args.steps < 1:
        raise SystemExit(f"--steps must be >= 1, got {args.steps}")
    # A complete short schedule (the ÷10 decay is worth much of the final AP) rather than the
    # first minutes of the config's long one.
    overrides += [
        f"train.max_steps={args.steps}",
        f"train.decay_step={args.steps - args.steps // 8}",
    ]
    result = train(
        config,
        workdir,
        progress=not args.no_progress,
        overrides=overrides,
        max_seconds=args.minutes * 60,
    )
    weights = result.paths.last if os.path.exists(result.paths.last) else result.paths.best
    print(
        f"trained to step {result.final_step}; weights {weights}; loss curves {result.paths.curves}"
    )
    _done(t)

    t = _step(3, "evaluate on the held-out split (COCO metrics)")
    _cli(
        [
            "eval",
            "--config",
            config,
            *data_overrides,
            "--weights",
            weights,
            "--out",
            os.path.join(out, "eval"),
            *progress,
        ]
    )
    _done(t)

    t = _step(4, "detect: draw boxes on a few validation images")
    samples = sorted(glob.glob(os.path.join(val_dir, "images", "*")))[:4]
    _cli(
        [
            "detect",
            "--config",
            config,
            *data_overrides,
            "--weights",
            weights,
            "--out",
            os.path.join(out, "detect"),
            "--heatmaps",
            *samples,
        ]
    )
    _done(t)

    t = _step(5, "export a TF Serving SavedModel")
    export_dir = os.path.join(out, "export")
    _cli(
        [
            "export",
            "--config",
            config,
            *data_overrides,
            "--weights",
            weights,
            "--out",
            export_dir,
            "--version",
            "1",
            "--overwrite",
        ]
    )
    _done(t)

    t = _step(6, "query it over gRPC (in-process PredictionService on 127.0.0.1)")
    _query_grpc(os.path.join(export_dir, "1"), samples[0])
    _done(t)

    t = _step(7, "TFLite: convert the tiny model and run it with LiteRT")
    tflite_path = os.path.join(out, "cornernet_tiny.tflite")
    _cli(
        [
            "export-tflite",
            "--config",
            config,
            *data_overrides,
            "--weights",
            weights,
            "--out",
            tflite_path,
            "--quantize",
            "none",
        ]
    )
    _run_litert(tflite_path, samples[0])
    _done(t)

    print(f"\nAll outputs are in {out}:")
    for name in (
        "train/loss_curves.png",
        "eval/metrics.json",
        "detect",
        "export/1",
        "cornernet_tiny.tflite",
    ):
        print(f"  {os.path.join(out, name)}")
    return 0


def _query_grpc(model_dir: str, image_path: str) -> None:
    from serving.client import predict_grpc
    from serving.server import serve_in_process

    server, port = serve_in_process(os.path.dirname(model_dir), port=0, model_name="cornernet")
    try:
        with open(image_path, "rb") as fh:
            result = predict_grpc("127.0.0.1", port, fh.read(), model_name="cornernet")
    finally:
        server.stop(None)
    print(f"gRPC Predict on 127.0.0.1:{port} for {os.path.basename(image_path)}:")
    print(json.dumps(_summarise(result), indent=1))


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
