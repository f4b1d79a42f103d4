"""Per-class soft-NMS time: the compiled library against the NumPy port, on realistic row counts.

A trained model's test procedure (flip, two scales) gives thousands of decoded rows per image,
most of them in one class, as overlapping candidates around a few objects. For each row count
this builds such a class (boxes clustered around a few centres, scores skewed low, some ties)
and times ``soft_nms`` (exp, the CornerNet test) and ``soft_nms_merge`` (exp, weight_exp 10, the
multi-scale test) through both implementations, round-robin (harness.interleaved_medians) so
that load bursts hit both alike. Every timed pair is also checked to give bit-identical arrays.

With ``--detector-weights`` (a model trained by ``benchmarks/learn_shapes.py``) it also splits
``Detector.detect`` on the held-out shapes images into the network + decoding + flip/scale merge
(``raw_detections``) and the rest (``finalise``: per-class soft-NMS and the top-k), finalising the
same rows with each implementation and checking that the detections are identical.

    python benchmarks/soft_nms.py [--rows 500 1000 3000] [--repeats 7] [--json out.json]
        [--detector-weights W --detector-data DIR [--detector-config C] [--images 40]]
"""

from __future__ import annotations

import argparse
import functools
import os

import harness  # (puts the checkout on sys.path)
import numpy as np

from cornernet_tf.detection import soft_nms_native
from cornernet_tf.detection.soft_nms import soft_nms, soft_nms_merge

VARIANTS = {
    "exp": (soft_nms, dict(sigma=0.5, Nt=0.5, threshold=0.001, method="exp")),
    "exp_merge_w10": (
        soft_nms_merge,
        dict(sigma=0.5, Nt=0.5, threshold=0.001, method="exp", weight_exp=10),
    ),
}


def clustered_class(rows: int, seed: int = 0) -> np.ndarray:
    """[rows, 7] float32 candidates of one class: ~rows/40 objects on a 511-pixel image, each
    with many jittered copies; scores ~U^3 (most low), tl/br scores in (0.05, 1)."""
    rng = np.random.default_rng(seed)
    objects = max(1, rows // 40)
    centres = rng.uniform(40, 470, size=(objects, 2))
    sizes = rng.uniform(15, 120, size=(objects, 2))
    which = rng.integers(0, objects, rows)
    c = centres[which] + rng.normal(0, 4, size=(rows, 2))
    wh = sizes[which] * rng.uniform(0.7, 1.3, size=(rows, 2))
    boxes = np.zeros((rows, 7), np.float32)
    boxes[:, 0:2] = c - wh / 2
    boxes[:, 2:4] = c + wh / 2
    boxes[:, 4] = rng.uniform(0, 1, rows) ** 3
    boxes[:, 5:7] = rng.uniform(0.05, 1.0, size=(rows, 2))
    boxes[rng.integers(0, rows, rows // 20), 4] = 0.5  # ties
    return boxes


def run_once(fn, kwargs, boxes: np.ndarray, impl: str):
    os.environ[soft_nms_native.ENV] = impl
    out = boxes.copy()
    return fn(out, **kwargs), out


def bench(rows_list, repeats: int) -> dict:
    results = []
    for rows in rows_list:
        boxes = clustered_class(rows)
        for name, (fn, kwargs) in VARIANTS.items():
            (n_np, a_np), (n_c, a_c) = (run_once(fn, kwargs, boxes, i) for i in ("numpy", "native"))
            identical = n_np == n_c and a_np.tobytes() == a_c.tobytes()
            calls = {
                impl: functools.partial(run_once, fn, kwargs, boxes, impl)
                for impl in ("numpy", "native")
            }
            medians = harness.interleaved_medians(calls, repeats=repeats)
            results.append(
                {
                    "rows": rows,
                    "variant": name,
                    "live": int(n_c),
                    "numpy_ms": round(1000 * medians["numpy"], 3),
                    "native_ms": round(1000 * medians["native"], 3),
                    "speedup": round(medians["numpy"] / medians["native"], 1),
                    "bit_identical": bool(identical),
                }
            )
    return {"results": results}


def detector_split(config_path: str, weights: str, data_dir: str, images: int) -> dict:
    """Median ms per image of ``raw_detections`` and of ``finalise`` (NumPy port and native)."""
    import statistics

    from cornernet_tf.config import load_config
    from cornernet_tf.detection.finalise import finalise
    from cornernet_tf.inference.detector import Detector
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    config = load_config(config_path)
    model = build_model(config.model)
    load_weights(model, weights)
    detector = Detector(model, config.test)
    arrays = harness.heldout_shapes(data_dir, images)[1]
    detector.detect(arrays[0])  # traces the network
    times: dict = {"raw": [], "numpy": [], "native": []}
    rows, largest_class, identical = [], [], True
    for image in arrays:
        seconds, raw = harness.timed(detector.raw_detections, image)
        times["raw"].append(seconds)
        valid = raw[raw[:, 4] > -1]
        rows.append(len(valid))
        largest_class.append(int(np.bincount(valid[:, -1].astype(int)).max()) if len(valid) else 0)
        results = {}
        for impl in ("numpy", "native"):
            os.environ[soft_nms_native.ENV] = impl
            seconds, results[impl] = harness.timed(finalise, raw.copy(), detector.config)
            times[impl].append(seconds)
        identical &= all(
            np.array_equal(results["numpy"][k], results["native"][k]) for k in results["numpy"]
        )
    ms = {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}
    return {
        "config": os.path.relpath(config_path, harness.ROOT),
        "test": {"scales": config.test.scales, "flip": config.test.flip},
        "images": len(arrays),
        "median_valid_rows": int(statistics.median(rows)),
        "median_rows_of_largest_class": int(statistics.median(largest_class)),
        "median_ms": {
            "raw_detections": ms["raw"],
            "finalise_numpy": ms["numpy"],
            "finalise_native": ms["native"],
        },
        "finalise_share_numpy": round(ms["numpy"] / (ms["raw"] + ms["numpy"]), 3),
        "finalise_share_native": round(ms["native"] / (ms["raw"] + ms["native"]), 3),
        "detect_speedup": round((ms["raw"] + ms["numpy"]) / (ms["raw"] + ms["native"]), 2),
        "identical_detections": bool(identical),
    }


def table(result: dict) -> None:
    print(f"load average before / after: {result['load_before']} / {result['load_after']}")
    print(
        f"{'rows':>6} {'variant':>14} {'live':>6} {'numpy ms':>10} {'native ms':>10} {'x':>7}  same"
    )
    for r in result["results"]:
        print(
            f"{r['rows']:>6} {r['variant']:>14} {r['live']:>6} {r['numpy_ms']:>10.2f} "
            f"{r['native_ms']:>10.3f} {r['speedup']:>7.1f}  {r['bit_identical']}"
        )
    split = result.get("detector")
    if split:
        ms = split["median_ms"]
        print(
            f"Detector.detect on {split['images']} held-out images ({split['median_valid_rows']} "
            f"valid rows, {split['median_rows_of_largest_class']} in the largest class): network + "
            f"decode + merge {ms['raw_detections']:.1f} ms, finalise NumPy {ms['finalise_numpy']:.1f} "
            f"ms / native {ms['finalise_native']:.1f} ms; detect {split['detect_speedup']}x faster"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 1000, 3000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    parser.add_argument("--detector-config", default=harness.config_path("cornernet_tiny_learn"))
    parser.add_argument("--detector-weights", help="weights trained by benchmarks/learn_shapes.py")
    parser.add_argument("--detector-data", help="its shapes folder (with heldout/)")
    parser.add_argument("--images", type=int, default=40, help="held-out images for the split")
    args = parser.parse_args()
    available, reason = soft_nms_native.available()
    if not available:
        print(f"native soft-NMS unavailable: {reason}")
        return 2
    before = harness.load_average()
    result = bench(args.rows, args.repeats)
    if args.detector_weights:
        result["detector"] = detector_split(
            args.detector_config, args.detector_weights, args.detector_data, args.images
        )
    result = {
        "machine": harness.machine_info(),
        "load_before": before,
        "load_after": harness.load_average(),
        **result,
    }
    harness.report(result, args.json, table)
    same = all(r["bit_identical"] for r in result["results"])
    return 0 if same and result.get("detector", {}).get("identical_detections", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
