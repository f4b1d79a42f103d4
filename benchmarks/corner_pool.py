"""Corner pooling speed: every impl and direction against the memory-bandwidth floor.

For each shape (NHWC float32) it times, with tf.function-compiled callables, warm-up and the
median of several repeats (round-robin, see bench_shape):
  * floor:    one elementwise pass over the tensor (``x * 2.0``: read once, write once);
  * forward:  ``corner_pool(x, direction, impl)``;
  * fwd+bwd:  forward plus the gradient for a given upstream gradient.
Ratios are to the floor measured in the same run. Prints a table and a JSON object.

    python benchmarks/corner_pool.py [--repeats 9] [--scan-repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cornernet_tf.ops import corner_pool, native_available  # noqa: E402

tf.get_logger().setLevel("ERROR")  # many small tf.functions are traced on purpose

DEFAULT_SHAPES = ("4x128x128x128", "1x128x128x256")
DIRECTIONS = ("top", "left", "bottom", "right")
IMPLS = ("native", "tf", "scan")
GOALS = {"native_fwd_over_floor": 1.5, "native_fwdbwd_over_floor": 4.0}


def time_once(fn, args) -> float:
    start = time.perf_counter()
    fn(*args)  # eager execution on CPU is synchronous: the result is ready on return
    return time.perf_counter() - start


def make_forward(direction: str, impl: str):
    return tf.function(lambda x: corner_pool(x, direction, impl=impl))


def make_forward_backward(direction: str, impl: str):
    def fwd_bwd(x, g):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = corner_pool(x, direction, impl=impl)
        return tape.gradient(y, x, output_gradients=g)

    return tf.function(fwd_bwd)


def bench_shape(shape, impls, directions, repeats, scan_repeats, warmup):
    """Round-robin timing: every round times the floor and each callable once, so a change of
    machine load hits all of them alike (the machine may be shared). Ratios are per round, to
    the floor of the same round, then the median is taken."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    g = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    floor_fn = tf.function(lambda v: v * 2.0)
    entries = []  # (key, fn, args, repeats)
    for direction in directions:
        for impl in impls:
            reps = scan_repeats if impl == "scan" else repeats
            entries.append(
                ((direction, impl, "forward"), make_forward(direction, impl), (x,), reps)
            )
            entries.append(
                ((direction, impl, "fwd_bwd"), make_forward_backward(direction, impl), (x, g), reps)
            )
    for _ in range(warmup):
        time_once(floor_fn, (x,))
    for key, fn, args, _ in entries:
        for _ in range(warmup if key[1] != "scan" else 1):
            time_once(fn, args)
    floors, times, ratios = [], {e[0]: [] for e in entries}, {e[0]: [] for e in entries}
    for r in range(max(repeats, scan_repeats)):
        floor = time_once(floor_fn, (x,))
        floors.append(floor)
        for key, fn, args, reps in entries:
            if r < reps:
                t = time_once(fn, args)
                times[key].append(t)
                ratios[key].append(t / floor)
    rows = []
    for direction in directions:
        for impl in impls:
            fwd, fb = (direction, impl, "forward"), (direction, impl, "fwd_bwd")
            rows.append(
                {
                    "direction": direction,
                    "impl": impl,
                    "repeats": len(times[fwd]),
                    "forward_ms": statistics.median(times[fwd]) * 1e3,
                    "fwd_bwd_ms": statistics.median(times[fb]) * 1e3,
                    "forward_over_floor": statistics.median(ratios[fwd]),
                    "fwd_bwd_over_floor": statistics.median(ratios[fb]),
                }
            )
    return {
        "shape": list(shape),
        "floor_ms": statistics.median(floors) * 1e3,
        "floor_min_ms": min(floors) * 1e3,
        "floor_max_ms": max(floors) * 1e3,
        "rows": rows,
    }


def faster(a, b) -> bool:
    """Whether row a beats row b, forward or fwd+bwd, on the per-round ratios to the floor (the
    load-robust measure; plain medians can be skewed by a burst of load on the slow rounds)."""
    return (
        a["forward_over_floor"] < b["forward_over_floor"]
        or a["fwd_bwd_over_floor"] < b["fwd_bwd_over_floor"]
    )


def check_goals(result) -> list[str]:
    """Goals from the design: native fwd <= 1.5x floor, fwd+bwd <= 4x, native fastest, tf < scan."""
    misses = []
    for entry in result["shapes"]:
        shape = "x".join(map(str, entry["shape"]))
        by = {(r["direction"], r["impl"]): r for r in entry["rows"]}
        for direction in {r["direction"] for r in entry["rows"]}:
            native, tfi, scan = (by.get((direction, i)) for i in IMPLS)
            if native:
                if native["forward_over_floor"] > GOALS["native_fwd_over_floor"]:
                    misses.append(
                        f"{shape} {direction}: native forward {native['forward_over_floor']:.2f}x floor"
                    )
                if native["fwd_bwd_over_floor"] > GOALS["native_fwdbwd_over_floor"]:
                    misses.append(
                        f"{shape} {direction}: native fwd+bwd {native['fwd_bwd_over_floor']:.2f}x floor"
                    )
                for other in (tfi, scan):
                    if other and faster(other, native):
                        misses.append(f"{shape} {direction}: {other['impl']} faster than native")
            if tfi and scan and faster(scan, tfi):
                misses.append(f"{shape} {direction}: scan faster than tf")
    return misses


def print_table(result) -> None:
    for entry in result["shapes"]:
        shape = "x".join(map(str, entry["shape"]))
        print(
            f"\n{shape} float32: floor (x * 2.0) median {entry['floor_ms']:.2f} ms "
            f"(min {entry['floor_min_ms']:.2f}, max {entry['floor_max_ms']:.2f}); "
            "x floor = median over rounds of time / floor of the same round"
        )
        print(
            f"{'direction':<9} {'impl':<7} {'forward ms':>11} {'x floor':>8} {'fwd+bwd ms':>11} {'x floor':>8}"
        )
        for r in entry["rows"]:
            print(
                f"{r['direction']:<9} {r['impl']:<7} {r['forward_ms']:>11.2f} {r['forward_over_floor']:>8.2f} "
                f"{r['fwd_bwd_ms']:>11.2f} {r['fwd_bwd_over_floor']:>8.2f}"
            )
    print(
        "\ngoals: native forward <= 1.5x floor, native fwd+bwd <= 4x floor, native fastest, tf faster than scan"
    )
    print("missed: " + ("; ".join(result["goals_missed"]) if result["goals_missed"] else "none"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="NxHxWxC shapes")
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--directions", nargs="+", default=list(DIRECTIONS), choices=DIRECTIONS)
    parser.add_argument(
        "--repeats", type=int, default=9, help="timed repeats (median) for native and tf"
    )
    parser.add_argument(
        "--scan-repeats", type=int, default=5, help="timed repeats for the slow scan impl"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    impls = list(args.impls)
    ok, reason = native_available()
    if "native" in impls and not ok:
        print(f"native op unavailable ({reason}); timing the other impls only", file=sys.stderr)
        impls.remove("native")
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes]
    result = {
        "benchmark": "corner_pool",
        "machine": harness.machine_info(
            intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads()
        ),
        "repeats": args.repeats,
        "scan_repeats": args.scan_repeats,
        "warmup": args.warmup,
        "shapes": [
            bench_shape(s, impls, args.directions, args.repeats, args.scan_repeats, args.warmup)
            for s in shapes
        ],
    }
    result["goals_missed"] = check_goals(result)
    harness.report(result, args.json, table=print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
