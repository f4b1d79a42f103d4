"""Deployment benchmark: the TF Serving SavedModel against the in-memory detector, and TFLite variants.

Part 1 (tiny hourglass, ``configs/cornernet_tiny.yaml``): per-image latency of
  * ``Detector.detect`` (in memory: Keras model + TF decode in a tf.function + NumPy soft-NMS),
  * the exported SavedModel's ``serving_default`` (uint8 pixels) and ``serving_bytes`` (PNG bytes),
    loaded with ``tf.saved_model.load`` (what TF Serving runs, without the RPC),
measured round-robin over the same images (median, batch 1); goal: SavedModel <= 1.1x the detector.
AP of both on the held-out split tells whether they detect the same things.

Part 2: for the tiny hourglass and CornerNet-Squeeze (``configs/cornernet_squeeze_tiny.yaml``) x
quantization (none / fp16 / int8): file size, LiteRT latency (batch 1, ``--threads`` threads;
network only, and with the NumPy pre/post-processing), and AP on the held-out shapes split, next to
the Keras model run through the same fixed-input pipeline.

Weights: ``--weights-tiny`` / ``--weights-squeeze`` (e.g. ``WORKDIR/best.weights.h5`` from
``cornernet train``); without them the models keep their random initialisation and the AP column
only shows that the pipeline runs (the JSON says which). Data: ``--data DIR`` is a shapes folder
with ``train/`` and ``val/`` (``cornernet data shapes``); by default a small one is generated.

    python benchmarks/deploy.py [--data DIR] [--weights-tiny W] [--weights-squeeze W] [--images 50]
                                [--latency-images 20] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
from harness import median_ms, timed  # noqa: E402

VARIANTS = {
    "tiny_hourglass": "configs/cornernet_tiny.yaml",
    "squeeze": "configs/cornernet_squeeze_tiny.yaml",
}
QUANTIZATIONS = ("none", "fp16", "int8")
GOAL_SAVED_MODEL_RATIO = 1.1


def load_split(root: str, split: str, limit: int):
    """(annotation path, [(image id, file path, uint8 RGB array)])."""
    from PIL import Image

    path = os.path.join(root, split, "annotations.json")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    items = []
    for record in sorted(data["images"], key=lambda r: r["id"])[:limit]:
        file_path = os.path.join(root, split, "images", record["file_name"])
        items.append((record["id"], file_path, np.asarray(Image.open(file_path).convert("RGB"))))
    return path, items


def build(config_path: str, weights, overrides=()):
    from cornernet_tf.config import load_config
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    config = load_config(config_path, ["model.corner_pool_impl=tf", *overrides])
    model = build_model(config.model)
    if weights:
        load_weights(model, weights, config_path)
    return model, config


def coco_ap(annotations: str, items, results_per_image, category_ids) -> dict:
    from cornernet_tf.eval.coco_eval import evaluate_detections, to_coco_results

    results = []
    for (image_id, _, _), dets in zip(items, results_per_image):
        results += to_coco_results(image_id, dets, category_ids)
    if not results:
        return {"AP": 0.0, "AP50": 0.0}
    metrics = evaluate_detections(annotations, results, image_ids=[i for i, _, _ in items])
    return {"AP": max(0.0, metrics["AP"]), "AP50": max(0.0, metrics["AP50"])}


# ------------------------------------------------------------------------------------- SavedModel


def bench_saved_model(args, val_items, annotations, workdir: str) -> dict:
    import tensorflow as tf

    from cornernet_tf.export.saved_model import export_saved_model
    from cornernet_tf.inference.detector import Detector

    model, config = build(VARIANTS["tiny_hourglass"], args.weights_tiny)
    export_dir = os.path.join(workdir, "saved_model")
    start = time.perf_counter()
    version_dir = export_saved_model(
        model, out_dir=export_dir, version=1, config=config, warmup=False
    )
    export_s = time.perf_counter() - start
    loaded = tf.saved_model.load(version_dir)
    serve_images, serve_bytes = (
        loaded.signatures["serving_default"],
        loaded.signatures["serving_bytes"],
    )
    detector = Detector(model, config.test, mean=config.data.mean, std=config.data.std)
    png = {path: open(path, "rb").read() for _, path, _ in val_items}

    def run_images(image):
        return {k: v.numpy() for k, v in serve_images(images=tf.constant(image[None])).items()}

    def run_bytes(path):
        return {k: v.numpy() for k, v in serve_bytes(image_bytes=tf.constant([png[path]])).items()}

    # Warm-up: every distinct size traces once per path.
    for _, path, image in val_items[:2]:
        detector.detect(image)
        run_images(image)
        run_bytes(path)
    times = {"detector": [], "saved_model_uint8": [], "saved_model_bytes": []}
    for _ in range(args.repeats):
        for _, path, image in val_items[: args.latency_images]:
            times["detector"].append(timed(detector.detect, image)[0])
            times["saved_model_uint8"].append(timed(run_images, image)[0])
            times["saved_model_bytes"].append(timed(run_bytes, path)[0])
    medians = {k: median_ms(v) for k, v in times.items()}

    # Accuracy of both paths on the held-out split.
    ids = list(range(1, config.model.num_classes + 1))
    official, exported = [], []
    for _, path, image in val_items:
        official.append(detector.detect(image))
        out = run_bytes(path)
        h, w = image.shape[:2]
        n = int(out["num_detections"][0])
        boxes = out["detection_boxes"][0, :n][:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
        exported.append(
            {
                "boxes": boxes,
                "scores": out["detection_scores"][0, :n],
                "classes": out["detection_classes"][0, :n].astype(np.int64) - 1,
            }
        )
    return {
        "config": VARIANTS["tiny_hourglass"],
        "weights": args.weights_tiny or "random initialisation",
        "export_seconds": export_s,
        "median_ms": medians,
        "ratio_uint8_over_detector": medians["saved_model_uint8"] / medians["detector"],
        "ratio_bytes_over_detector": medians["saved_model_bytes"] / medians["detector"],
        "goal_ratio": GOAL_SAVED_MODEL_RATIO,
        "AP_detector": coco_ap(annotations, val_items, official, ids),
        "AP_saved_model": coco_ap(annotations, val_items, exported, ids),
        "latency_images": min(args.latency_images, len(val_items)),
        "repeats": args.repeats,
    }


# ------------------------------------------------------------------------------------- TFLite


def bench_tflite(
    args, variant: str, weights, train_dir, val_items, annotations, workdir: str
) -> dict:
    from cornernet_tf.export import postprocess as pp
    from cornernet_tf.export.litert_runner import LiteRTDetector
    from cornernet_tf.export.tflite import convert_variants

    model, config = build(VARIANTS[variant], weights)
    paths = {q: os.path.join(workdir, f"{variant}_{q}.tflite") for q in QUANTIZATIONS}
    start = time.perf_counter()
    convert_variants(
        model,
        paths,
        representative_images_dir=train_dir,
        num_representative=args.representative,
        config=config,
    )
    convert_s = time.perf_counter() - start
    runners = {q: LiteRTDetector(p, num_threads=args.threads) for q, p in paths.items()}
    reference = runners["none"]
    prepared = [
        pp.prepare_input(image, reference.input_hw, reference.output_stride)
        for _, _, image in val_items
    ]
    ids = list(reference.category_ids)

    import tensorflow as tf

    forward = tf.function(
        lambda x: model(x, training=False, stacks="last")
    )  # traced once: fixed size

    def keras_maps(canvas):
        out = forward(tf.constant(canvas))
        return {name: out[name][-1].numpy() for name in pp.MAP_NAMES}

    rows = {}
    # Keras through the same fixed-input pipeline: the reference for AP and for latency.
    keras_dets, keras_times = [], []
    keras_maps(prepared[0][0])
    for _ in range(args.repeats):
        for canvas, _ in prepared[: args.latency_images]:
            keras_times.append(timed(keras_maps, canvas)[0])
    for canvas, geometry in prepared:
        keras_dets.append(pp.postprocess(keras_maps(canvas), geometry, reference.config))
    rows["keras"] = {
        "size_mb": None,
        "network_ms": median_ms(keras_times),
        **coco_ap(annotations, val_items, keras_dets, ids),
    }
    for quantize, runner in runners.items():
        runner.maps(prepared[0][0])
        net, full = [], []
        for _ in range(args.repeats):
            for (canvas, _), (_, _, image) in zip(prepared[: args.latency_images], val_items):
                net.append(timed(runner.maps, canvas)[0])
                full.append(timed(runner.detect, image)[0])
        dets = [runner.detect(image) for _, _, image in val_items]
        rows[quantize] = {
            "size_mb": os.path.getsize(paths[quantize]) / 1e6,
            "network_ms": median_ms(net),
            "detect_ms": median_ms(full),
            **coco_ap(annotations, val_items, dets, ids),
        }
    return {
        "config": VARIANTS[variant],
        "weights": weights or "random initialisation",
        "input_size": list(reference.input_hw),
        "threads": args.threads,
        "convert_seconds": convert_s,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------- main


def ensure_data(args, workdir: str) -> str:
    if args.data:
        return args.data
    from cornernet_tf.data.shapes import generate_shapes

    root = os.path.join(workdir, "shapes")
    generate_shapes(root, seed=7, splits={"train": args.representative, "val": args.images})
    return root


def print_table(result: dict) -> None:
    sm = result["saved_model"]
    m = sm["median_ms"]
    print(
        f"\nSavedModel vs in-memory detector ({sm['config']}, weights: {sm['weights']}; "
        f"median of {sm['latency_images']} images x {sm['repeats']})"
    )
    print(f"{'path':<28}{'ms/image':>10}{'ratio':>8}{'AP':>8}{'AP50':>8}")
    print(
        f"{'Detector (in memory)':<28}{m['detector']:>10.1f}{1.0:>8.2f}"
        f"{sm['AP_detector']['AP']:>8.3f}{sm['AP_detector']['AP50']:>8.3f}"
    )
    print(
        f"{'SavedModel serving_default':<28}{m['saved_model_uint8']:>10.1f}{sm['ratio_uint8_over_detector']:>8.2f}"
        f"{sm['AP_saved_model']['AP']:>8.3f}{sm['AP_saved_model']['AP50']:>8.3f}"
    )
    print(
        f"{'SavedModel serving_bytes':<28}{m['saved_model_bytes']:>10.1f}{sm['ratio_bytes_over_detector']:>8.2f}"
        f"{'':>8}{'':>8}"
    )
    print(f"goal: ratio <= {sm['goal_ratio']}")
    for variant, block in result["tflite"].items():
        print(
            f"\nTFLite {variant} ({block['config']}, input {block['input_size']}, {block['threads']} threads, "
            f"weights: {block['weights']})"
        )
        print(f"{'model':<10}{'size MB':>9}{'net ms':>9}{'detect ms':>11}{'AP':>8}{'AP50':>8}")
        for name, row in block["rows"].items():
            size = f"{row['size_mb']:.2f}" if row["size_mb"] else "-"
            detect = f"{row['detect_ms']:.1f}" if "detect_ms" in row else "-"
            print(
                f"{name:<10}{size:>9}{row['network_ms']:>9.1f}{detect:>11}{row['AP']:>8.3f}{row['AP50']:>8.3f}"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="shapes folder with train/ and val/ (default: generated)")
    parser.add_argument("--weights-tiny", help="weights for configs/cornernet_tiny.yaml")
    parser.add_argument("--weights-squeeze", help="weights for configs/cornernet_squeeze_tiny.yaml")
    parser.add_argument("--images", type=int, default=50, help="held-out images for AP")
    parser.add_argument("--latency-images", type=int, default=20, help="images timed per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--representative", type=int, default=32, help="int8 calibration images")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT interpreter threads")
    parser.add_argument("--skip", choices=("saved_model", "tflite"), action="append", default=[])
    parser.add_argument("--json", help="also write the JSON object to this file")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    result = {"benchmark": "deploy", "machine": harness.machine_info(tensorflow=tf.__version__)}
    with tempfile.TemporaryDirectory(prefix="cornernet_deploy_") as workdir:
        data = ensure_data(args, workdir)
        annotations, val_items = load_split(data, "val", args.images)
        train_dir = os.path.join(data, "train", "images")
        result["data"] = {"root": data, "val_images": len(val_items)}
        if "saved_model" not in args.skip:
            result["saved_model"] = bench_saved_model(args, val_items, annotations, workdir)
        if "tflite" not in args.skip:
            weights = {"tiny_hourglass": args.weights_tiny, "squeeze": args.weights_squeeze}
            result["tflite"] = {
                v: bench_tflite(args, v, weights[v], train_dir, val_items, annotations, workdir)
                for v in VARIANTS
            }
    table = print_table if "saved_model" in result and "tflite" in result else None
    harness.report(result, args.json, table=table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
