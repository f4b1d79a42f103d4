"""CornerNet on LiteRT: sizes, latency and what fp16 / int8 quantization keeps.

The path measured is the documented one: official checkpoint -> ``cornernet convert`` ->
``cornernet export-tflite --quantize none|fp16|int8`` -> ``LiteRTDetector``.

Part 1, full-size architectures at 511x511 with **random weights** (Keras initialisation; no
official checkpoint is shipped or downloaded), ``--models`` (default: CornerNet-Squeeze,
``configs/cornernet_squeeze_coco.yaml``, 31.8 M parameters, and Hourglass-52,
``configs/cornernet_hg52.yaml``): ``.tflite`` size, LiteRT latency of the network (batch 1, the
interpreter's default XNNPACK delegate) on 1 and 2 threads, and the agreement of the quantized
maps with float32 (heatmaps after the sigmoid, embeddings, offsets, and the top-K corners).
Random weights say nothing about the accuracy a trained model keeps under int8; they do show
size, speed, that the graph is builtin-only, and how far the quantized maps move.

Part 2, the reduced CornerNet-Squeeze of tests/data/lite with its **official weights** (the
reference ``state_dict`` of the official code), converted through the command line exactly as a
user would convert ``CornerNet_Squeeze_500000.pkl``: agreement of fp16/int8 with float32 on
images (maps, top-K corners, detections).

Part 3 (with ``--shapes-weights``), the accuracy int8 keeps on a trained model: the model of
``benchmarks/learn_shapes.py`` exported to float32 and int8 (calibrated on
``--shapes-calibration`` of its training images), COCO AP of both on the held-out shapes split
through ``LiteRTDetector`` (the deployment test procedure: one scale, no flip, canvas 255x255 so
that the 192x192 images keep their size).

int8 calibration: representative images placed on the canvas as at inference (synthetic shapes
images, or ``--calibration-images DIR``, e.g. a folder of training photos; ``cornernet
export-tflite`` takes ``--representative-images DIR``, default ``export.representative_images`` =
32 of them).

    python benchmarks/lite_tflite.py [--repeats 5] [--calibration 8] [--models squeeze_coco,hg52]
        [--quantizations none,fp16,int8] [--calibration-images DIR]
        [--shapes-weights W --shapes-data DIR] [--skip-golden] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
from harness import interleaved_medians, machine_info, timed  # noqa: E402

QUANTIZATIONS = ("none", "fp16", "int8")
GOLDEN_WEIGHTS = os.path.join(harness.ROOT, "tests", "data", "lite", "squeeze_model_weights.npz")
# The reduced CornerNet-Squeeze of tests/data/lite (README there), in model fields: the tests' own.
sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
from golden import GOLDEN_SQUEEZE_CONFIG as GOLDEN_MODEL  # noqa: E402

TOP_K = 20


def _images(root: str, count: int, size, seed: int) -> tuple[str, list]:
    """A shapes dataset: (train image folder for calibration, ``count`` val images as arrays)."""
    from PIL import Image

    from cornernet_tf.data.shapes import generate_shapes

    generate_shapes(root, seed=seed, size=size, splits={"train": count, "val": count})
    val = sorted(p for p in os.listdir(os.path.join(root, "val", "images")))
    arrays = [
        np.asarray(Image.open(os.path.join(root, "val", "images", p)).convert("RGB")) for p in val
    ]
    return os.path.join(root, "train", "images"), arrays


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _top_corners(heat: np.ndarray, k: int) -> set:
    """(class, y, x) of the ``k`` best corners after the 3x3 max-pool NMS of decoding."""
    from cornernet_tf.detection.decode_np import heatmap_nms

    scores = heatmap_nms(_sigmoid(heat), 3)[0]  # H, W, C
    flat = np.argsort(-scores.reshape(-1), kind="stable")[:k]
    h, w, c = scores.shape
    return {(int(i % c), int(i // c // w), int(i // c % w)) for i in flat}


def _map_agreement(reference: dict, other: dict) -> dict:
    heat = max(
        float(np.max(np.abs(_sigmoid(other[k]) - _sigmoid(reference[k]))))
        for k in ("tl_heat", "br_heat")
    )
    corners = np.mean(
        [
            len(_top_corners(reference[k], TOP_K) & _top_corners(other[k], TOP_K)) / TOP_K
            for k in ("tl_heat", "br_heat")
        ]
    )
    out = {"max_abs_sigmoid_heat": heat, "top20_corner_agreement": float(corners)}
    for kind in ("tag", "regr"):
        diff = max(
            float(np.max(np.abs(other[f"{c}_{kind}"] - reference[f"{c}_{kind}"])))
            for c in ("tl", "br")
        )
        spread = max(float(np.std(reference[f"{c}_{kind}"])) for c in ("tl", "br"))
        out[f"max_abs_{kind}"] = diff
        out[f"{kind}_std_float32"] = spread
    return out


def _box_agreement(reference: dict, other: dict, top: int = 10, iou: float = 0.7) -> float:
    """Fraction of the reference's ``top`` detections found in ``other`` (same class, IoU >= iou)."""
    n = min(top, len(reference["scores"]))
    if n == 0:
        return float(len(other["scores"]) == 0)
    hits = 0
    for box, cls in zip(reference["boxes"][:n], reference["classes"][:n]):
        same = other["boxes"][other["classes"] == cls]
        if len(same):
            lt = np.maximum(box[:2], same[:, :2])
            rb = np.minimum(box[2:], same[:, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
            area = np.prod(box[2:] - box[:2]) + np.prod(same[:, 2:] - same[:, :2], axis=1)
            hits += bool(np.any(inter / np.maximum(area - inter, 1e-9) >= iou))
    return hits / n


def _mean_rows(rows: list) -> dict:
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def _worst_rows(rows: list) -> dict:
    return {
        key: float(min(r[key] for r in rows) if "agreement" in key else max(r[key] for r in rows))
        for key in rows[0]
    }


def full_size(
    tmp: str,
    repeats: int,
    calibration: int,
    images: int,
    model_name: str = "squeeze_coco",
    quantizations=QUANTIZATIONS,
    calibration_dir: str | None = None,
) -> dict:
    """Part 1: a full-size architecture (``configs/cornernet_<model_name>.yaml``) at 511x511,
    random weights."""
    import keras

    from cornernet_tf.config import load_config
    from cornernet_tf.export import postprocess as pp
    from cornernet_tf.export.litert_runner import LiteRTDetector
    from cornernet_tf.export.tflite import convert_variants
    from cornernet_tf.modeling.cornernet import build_model

    keras.utils.set_random_seed(0)
    config = load_config(
        harness.config_path(f"cornernet_{model_name}"), ["model.corner_pool_impl=tf"]
    )
    model = build_model(config.model)
    params = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    train_dir, arrays = _images(
        os.path.join(tmp, "shapes511"), max(calibration, images), (480, 511), 7
    )
    paths = {q: os.path.join(tmp, f"{model_name}_{q}.tflite") for q in quantizations}
    seconds, _ = timed(
        convert_variants,
        model,
        paths,
        config=config,
        input_size=(511, 511),
        representative_images_dir=calibration_dir or train_dir,
        num_representative=calibration,
        category_ids=list(range(1, config.model.num_classes + 1)),
    )
    result = {
        "weights": "random (Keras initialisation)",
        "config": f"configs/cornernet_{model_name}.yaml",
        "trainable_parameters": params,
        "input": [511, 511],
        "conversion_seconds_all_variants": round(seconds, 1),
        "calibration_images": calibration,
        "calibration_source": "folder given" if calibration_dir else "synthetic shapes",
        "variants": {},
    }
    runners = {
        (q, t): LiteRTDetector(paths[q], num_threads=t) for q in quantizations for t in (1, 2)
    }
    first = runners[("none", 1)]
    canvases = [
        pp.prepare_input(a, first.input_hw, first.output_stride)[0] for a in arrays[:images]
    ]
    calls = {f"{q}_{t}": (lambda r=r: r.maps(canvases[0])) for (q, t), r in runners.items()}
    medians = interleaved_medians(calls, repeats=repeats)
    reference = [first.maps(c) for c in canvases]
    for q in quantizations:
        entry = {
            "size_mb": round(os.path.getsize(paths[q]) / 2**20, 2),
            "latency_ms_1_thread": round(1000 * medians[f"{q}_1"], 1),
            "latency_ms_2_threads": round(1000 * medians[f"{q}_2"], 1),
            "operators": len(runners[(q, 1)].metadata["operators"]),
        }
        if q != "none":
            rows = [
                _map_agreement(ref, runners[(q, 2)].maps(c)) for ref, c in zip(reference, canvases)
            ]
            entry["vs_float32_worst"] = _worst_rows(rows)
        result["variants"][q] = entry
    ops = set()
    for q in quantizations:
        ops |= set(runners[(q, 1)].metadata["operators"])
    result["operators"] = sorted(ops)
    result["builtin_only"] = not any(op.startswith("CUSTOM") or "FLEX" in op for op in ops)
    return result


def golden_reduced(tmp: str, calibration: int, images: int) -> dict:
    """Part 2: the reduced official model through `cornernet convert` and `export-tflite`."""
    import yaml

    from cornernet_tf.cli import main
    from cornernet_tf.export import postprocess as pp
    from cornernet_tf.export.litert_runner import LiteRTDetector

    config = os.path.join(tmp, "squeeze_golden.yaml")
    with open(config, "w", encoding="utf-8") as fh:
        yaml.safe_dump(
            {
                "base": harness.config_path("cornernet_squeeze_coco"),
                "name": "squeeze_golden",
                "model": dict(GOLDEN_MODEL, corner_pool_impl="tf"),
                "data": {"input_size": [255, 255]},
            },
            fh,
        )
    weights = os.path.join(tmp, "squeeze_golden.weights.h5")
    assert (
        main(["convert", "--official", GOLDEN_WEIGHTS, "--config", config, "--out", weights]) == 0
    )
    train_dir, arrays = _images(
        os.path.join(tmp, "shapes255"), max(calibration, images), (240, 255), 9
    )
    paths = {}
    for q in QUANTIZATIONS:
        paths[q] = os.path.join(tmp, f"squeeze_golden_{q}.tflite")
        args = ["export-tflite", "--config", config, "--weights", weights, "--out", paths[q]]
        args += ["--quantize", q, "--category-ids", "1,2,3,4,5"]
        if q == "int8":
            args += ["--representative-images", train_dir, "--num-representative", str(calibration)]
        assert main(args) == 0, q
    runners = {q: LiteRTDetector(paths[q], num_threads=2) for q in QUANTIZATIONS}
    ref = runners["none"]
    result = {"weights": "official reference state_dict (tests/data/lite)", "variants": {}}
    detections = [ref.detect(a) for a in arrays[:images]]
    result["float32_detections_per_image"] = [len(d["scores"]) for d in detections]
    canvases = [pp.prepare_input(a, ref.input_hw, ref.output_stride)[0] for a in arrays[:images]]
    reference_maps = [ref.maps(c) for c in canvases]
    for q in ("fp16", "int8"):
        rows = []
        for image, canvas, maps, dets in zip(arrays, canvases, reference_maps, detections):
            row = _map_agreement(maps, runners[q].maps(canvas))
            row["top10_box_agreement"] = _box_agreement(dets, runners[q].detect(image))
            rows.append(row)
        result["variants"][q] = {
            "size_kb": round(os.path.getsize(paths[q]) / 1024, 1),
            "mean": _mean_rows(rows),
            "worst": _worst_rows(rows),
        }
    result["variants"]["none"] = {"size_kb": round(os.path.getsize(paths["none"]) / 1024, 1)}
    return result


def shapes_ap(
    tmp: str, config_path: str, weights: str, data_dir: str, calibration: int, threads: int
) -> dict:
    """Part 3: COCO AP of a trained model on the held-out shapes split, float32 vs int8 LiteRT."""

    from cornernet_tf.config import load_config
    from cornernet_tf.eval.coco_eval import evaluate_detections, to_coco_results
    from cornernet_tf.export.litert_runner import LiteRTDetector
    from cornernet_tf.export.tflite import convert_variants
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    ground_truth, arrays = harness.heldout_shapes(data_dir)
    category_ids = sorted(c["id"] for c in ground_truth["categories"])
    config = load_config(config_path, ["model.corner_pool_impl=tf"])
    model = build_model(config.model)
    load_weights(model, weights)
    quantizations = ("none", "int8")
    paths = {q: os.path.join(tmp, f"shapes_{q}.tflite") for q in quantizations}
    convert_variants(
        model,
        paths,
        config=config,
        input_size=(255, 255),
        representative_images_dir=os.path.join(data_dir, "train", "images"),
        num_representative=calibration,
        category_ids=category_ids,
    )
    out = {
        "weights": os.path.basename(weights),
        "config": os.path.relpath(config_path, harness.ROOT),
        "heldout_images": len(ground_truth["images"]),
        "calibration_images": calibration,
        "test_procedure": "LiteRTDetector: canvas 255x255, one scale, no flip, soft-NMS",
        "variants": {},
    }
    for q in quantizations:
        detector = LiteRTDetector(paths[q], num_threads=threads)
        results, seconds = [], []
        for entry, image in zip(ground_truth["images"], arrays):
            took, dets = timed(detector.detect, image)
            seconds.append(took)
            results += to_coco_results(entry["id"], dets, list(detector.category_ids))
        metrics = evaluate_detections(ground_truth, results, category_ids=category_ids)
        out["variants"][q] = {
            "size_kb": round(os.path.getsize(paths[q]) / 1024, 1),
            **harness.coco_summary(metrics),
            "median_ms_per_image": round(1000 * float(np.median(seconds)), 2),
        }
    for q in quantizations:
        variant = out["variants"][q]
        variant["AP_change_points"] = round(
            100 * (variant["AP"] - out["variants"]["none"]["AP"]), 2
        )
    return out


def _table(result: dict) -> None:
    for full in result.get("full_size", {}).values():
        print(
            f"\n{full['config']} at 511x511 ({full['weights']}), {full['trainable_parameters']:,} parameters"
        )
        print(
            f"{'variant':8} {'MB':>8} {'1 thread ms':>12} {'2 threads ms':>13} "
            f"{'|dsig(heat)|':>13} {'top-20 corners':>15}"
        )
        for q, v in full["variants"].items():
            agree = v.get("vs_float32_worst", {})
            print(
                f"{q:8} {v['size_mb']:8.2f} {v['latency_ms_1_thread']:12.1f} {v['latency_ms_2_threads']:13.1f} "
                f"{agree.get('max_abs_sigmoid_heat', 0):13.4f} {agree.get('top20_corner_agreement', 1):15.2f}"
            )
    gold = result.get("golden_reduced")
    if gold:
        print(f"\nReduced CornerNet-Squeeze, {gold['weights']}")
        for q in ("fp16", "int8"):
            m = gold["variants"][q]["mean"]
            print(
                f"{q:5} |dsig(heat)| {m['max_abs_sigmoid_heat']:.4f}  "
                f"top-20 corners {m['top20_corner_agreement']:.2f}  top-10 boxes {m['top10_box_agreement']:.2f}"
            )
    shapes = result.get("shapes")
    if shapes:
        print(f"\nTrained {shapes['config']} on held-out shapes ({shapes['test_procedure']})")
        for q, v in shapes["variants"].items():
            print(
                f"{q:5} {v['size_kb']:8.1f} KB  AP {v['AP']:.3f}  AP50 {v['AP50']:.3f}  "
                f"AP75 {v['AP75']:.3f}  change {v['AP_change_points']:+.2f} points  "
                f"{v['median_ms_per_image']:.1f} ms/image"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant")
    parser.add_argument("--calibration", type=int, default=8, help="int8 calibration images")
    parser.add_argument("--images", type=int, default=4, help="images for the agreement figures")
    parser.add_argument(
        "--models", default="squeeze_coco,hg52", help="full-size configs (cornernet_<name>.yaml)"
    )
    parser.add_argument("--quantizations", default=",".join(QUANTIZATIONS))
    parser.add_argument(
        "--calibration-images", help="calibrate int8 on this folder (default: synthetic shapes)"
    )
    parser.add_argument("--skip-golden", action="store_true", help="skip part 2")
    parser.add_argument("--shapes-config", default=harness.config_path("cornernet_tiny_learn"))
    parser.add_argument("--shapes-weights", help="weights trained by benchmarks/learn_shapes.py")
    parser.add_argument("--shapes-data", help="its shapes folder (with train/ and heldout/)")
    parser.add_argument("--shapes-calibration", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads for part 3")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    import tensorflow as tf  # noqa: F401  (recorded in machine_info)

    quantizations = tuple(q for q in args.quantizations.split(",") if q)
    with tempfile.TemporaryDirectory(prefix="lite_tflite_") as tmp:
        result = {"machine_before": machine_info()}
        if args.shapes_weights:
            result["shapes"] = shapes_ap(
                tmp,
                args.shapes_config,
                args.shapes_weights,
                args.shapes_data,
                args.shapes_calibration,
                args.threads,
            )
        if not args.skip_golden:
            result["golden_reduced"] = golden_reduced(tmp, args.calibration, args.images)
        result["full_size"] = {}
        for name in (m for m in args.models.split(",") if m):
            result["full_size"][name] = full_size(
                tmp,
                args.repeats,
                args.calibration,
                args.images,
                name,
                quantizations,
                args.calibration_images,
            )
        result["machine_after"] = machine_info()
    harness.report(result, args.json, _table)


if __name__ == "__main__":
    main()
