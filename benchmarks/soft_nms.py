"""Per-class soft-NMS time: the compiled library against the NumPy port, on realistic row counts.

A trained model's test procedure (flip, two scales) gives thousands of decoded rows per image,
most of them in one class, as overlapping candidates around a few objects. For each row count
this builds such a class (boxes clustered around a few centres, scores skewed low, some ties)
and times ``soft_nms`` (exp, the CornerNet test) and ``soft_nms_merge`` (exp, weight_exp 10, the
multi-scale test) through both implementations, round-robin (harness.interleaved_medians) so
that load bursts hit both alike. Every timed pair is also checked to give bit-identical arrays.

    python benchmarks/soft_nms.py [--rows 500 1000 3000] [--repeats 7] [--json out.json]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 1000, 3000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    available, reason = soft_nms_native.available()
    if not available:
        print(f"native soft-NMS unavailable: {reason}")
        return 2
    before = harness.load_average()
    result = bench(args.rows, args.repeats)
    result = {
        "machine": harness.machine_info(),
        "load_before": before,
        "load_after": harness.load_average(),
        **result,
    }
    harness.report(result, args.json, table)
    return 0 if all(r["bit_identical"] for r in result["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
