"""CornerNet forward latency (batch 1, inference mode) on this machine.

Groups (a model at an input size) and, in each, the variants timed:
  * the tiny config (configs/cornernet_tiny.yaml) at its training size 191x191 and at 511x511;
  * Hourglass-104 (configs/cornernet_hg104_coco.yaml) at 511x511, all stacks' heads and the last
    stack's only (what inference needs);
  * each as a ``tf.function`` graph and, unless ``--no-xla``, as ``tf.function(jit_compile=True)``;
  * with ``--torch-python PY``, the official architecture in PyTorch too
    (benchmarks/forward_official_torch.py, run by PY as a server).
Within a group the variants are called in turn, one call each per round, so a change in the load
of this shared machine hits all of them alike; ratios are the median of the per-round ratios.
Reported per variant: the median of the timed rounds (after the first call and ``--warmup`` more),
the minimum, and the first call (tracing / XLA compilation). Weights are random (timings do not
depend on them; outputs are checked finite). The 1-minute load average is printed before/after.

    python benchmarks/forward.py [--repeats 9] [--hg104-repeats 5] [--warmup 1] [--no-xla] [--no-hg104]
                                 [--torch-python /path/to/python-with-torch] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import ROOT  # noqa: E402

from cornernet_tf.config import load_model_config  # noqa: E402
from cornernet_tf.modeling.cornernet import build_model  # noqa: E402

TINY = os.path.join(ROOT, "configs", "cornernet_tiny.yaml")
HG104 = os.path.join(ROOT, "configs", "cornernet_hg104_coco.yaml")
TORCH_SCRIPT = os.path.join(ROOT, "benchmarks", "forward_official_torch.py")
tf.get_logger().setLevel("ERROR")  # one tf.function per variant is intended, not retracing


class TorchServer:
    """The official architecture in PyTorch, in another interpreter, one forward per request."""

    def __init__(self, python: str, threads: int = 0):
        command = [python, TORCH_SCRIPT, "--serve"] + (
            ["--threads", str(threads)] if threads else []
        )
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{TORCH_SCRIPT} --serve exited (code {self.proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{TORCH_SCRIPT}: {reply['error']}")
        return reply

    def request(self, **message) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def official_arch(config_path: str) -> dict:
    cfg = load_model_config(config_path)
    return {
        "n": cfg.depth,
        "nstack": cfg.num_stacks,
        "dims": cfg.dims,
        "modules": cfg.modules,
        "pre_dims": cfg.stem_dims,
        "cnv_dim": cfg.cnv_dim,
        "pool_dim": cfg.pool_dim,
        "head_dim": cfg.head_dim or cfg.dims[0],
        "out_dim": cfg.num_classes,
    }


def tf_variant(model, x, stacks: str, xla: bool):
    """A callable that runs one forward pass and returns (seconds, outputs finite)."""
    if stacks == "last":
        _ = model.last_stack_model  # build the last-stack graph outside the trace

    @tf.function(jit_compile=xla, reduce_retracing=True)
    def forward(images):
        return model(images, training=False, stacks=stacks)

    def run():
        start = time.perf_counter()
        out = [t.numpy() for ts in forward(x).values() for t in ts]  # results exist on return
        seconds = time.perf_counter() - start
        return seconds, all(bool(np.isfinite(a).all()) for a in out)

    return run


def torch_variant(server: TorchServer, model_id: int, stacks: str):
    def run():
        reply = server.request(cmd="run", id=model_id, stacks=stacks)
        return reply["seconds"], reply["finite"]

    return run


def bench_group(name, config_path, size, stacks_modes, args, server):
    """Every variant of one model at one size, called round-robin."""
    x = tf.constant(np.random.default_rng(0).standard_normal((1, size, size, 3), dtype=np.float32))
    model = build_model(config_path)
    variants = []  # (labels, run)
    for stacks in stacks_modes:
        for mode in ("graph",) if args.no_xla else ("graph", "xla"):
            variants.append(
                (
                    {"framework": "tf", "stacks": stacks, "mode": mode},
                    tf_variant(model, x, stacks, mode == "xla"),
                )
            )
    if server is not None:
        model_id = server.request(cmd="build", arch=official_arch(config_path), size=size)["id"]
        for stacks in stacks_modes:
            variants.append(
                (
                    {"framework": "torch", "stacks": stacks, "mode": "eager"},
                    torch_variant(server, model_id, stacks),
                )
            )
    repeats = args.hg104_repeats if name == "hg104" else args.repeats
    first, finite = [], []
    for labels, run in variants:
        seconds, ok = run()
        first.append(seconds)
        finite.append(ok)
        print(
            f"  {name} {size}x{size} {labels['framework']} {labels['stacks']} {labels['mode']}: "
            f"first call {seconds:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    for _ in range(args.warmup):
        for _, run in variants:
            run()
    times = [[] for _ in variants]
    for _ in range(repeats):
        for i, (_, run) in enumerate(variants):
            times[i].append(run()[0])
    rows = []
    for (labels, _), ts, f, ok in zip(variants, times, first, finite):
        rows.append(
            {
                "model": name,
                "input": f"{size}x{size}",
                **labels,
                "median_ms": statistics.median(ts) * 1e3,
                "min_ms": min(ts) * 1e3,
                "first_call_s": f,
                "repeats": repeats,
                "finite": ok,
            }
        )
    ratios = {}
    labels = [v[0] for v in variants]

    def paired(a: dict, b: dict):
        if a in labels and b in labels:
            ta, tb = times[labels.index(a)], times[labels.index(b)]
            return statistics.median(x / y for x, y in zip(ta, tb))
        return None

    prefix = f"{name}_{size}"
    for stacks in stacks_modes:
        graph = {"framework": "tf", "stacks": stacks, "mode": "graph"}
        torch_ = {"framework": "torch", "stacks": stacks, "mode": "eager"}
        for key, value in (
            (f"{prefix}_{stacks}_xla_over_graph", paired({**graph, "mode": "xla"}, graph)),
            (f"{prefix}_{stacks}_tf_graph_over_torch", paired(graph, torch_)),
            (f"{prefix}_{stacks}_tf_xla_over_torch", paired({**graph, "mode": "xla"}, torch_)),
        ):
            if value is not None:
                ratios[key] = value
    if "last" in stacks_modes and "all" in stacks_modes:
        for framework, mode in (("tf", "graph"), ("tf", "xla"), ("torch", "eager")):
            value = paired(
                {"framework": framework, "stacks": "last", "mode": mode},
                {"framework": framework, "stacks": "all", "mode": mode},
            )
            if value is not None:
                ratios[f"{prefix}_{framework}_{mode}_last_over_all"] = value
    return rows, ratios


def print_table(rows: list, ratios: dict, info: dict) -> None:
    header = (
        f"{'framework':9s} {'model':6s} {'input':8s} {'stacks':6s} {'mode':6s} {'median ms':>10s} "
        f"{'min ms':>9s} {'first s':>8s} {'n':>3s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['framework']:9s} {r['model']:6s} {r['input']:8s} {r['stacks']:6s} {r['mode']:6s} "
            f"{r['median_ms']:10.1f} {r['min_ms']:9.1f} {r['first_call_s']:8.2f} {r['repeats']:3d}"
        )
    print()
    for key, value in ratios.items():
        print(f"{key:40s} {value:6.2f}")
    print(
        f"load average (1 min): {info['load_average_1min_before']} before, "
        f"{info['load_average_1min_after']} after, on {info['cpus']} CPUs"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=9, help="timed rounds for the tiny config (>= 5)"
    )
    parser.add_argument(
        "--hg104-repeats", type=int, default=5, help="timed rounds for Hourglass-104 (>= 5)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds after the first call")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True variants")
    parser.add_argument("--no-hg104", action="store_true", help="only the tiny config")
    parser.add_argument(
        "--torch-python", help="a Python with torch: also time the official architecture"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch.set_num_threads (default: torch's)"
    )
    args = parser.parse_args(argv)
    if min(args.repeats, args.hg104_repeats) < 5:
        parser.error("use at least 5 repeats: the figures are medians")

    info = harness.machine_info(corner_pool_impl=load_model_config(HG104).corner_pool_impl)
    try:
        from cornernet_tf.ops import native_available

        info["native_corner_pool"] = bool(native_available())
    except ImportError:
        info["native_corner_pool"] = False
    server = TorchServer(args.torch_python, args.torch_threads) if args.torch_python else None
    if server is not None:
        info["torch"] = server.info
    groups = [("tiny", TINY, 191, ("all",)), ("tiny", TINY, 511, ("all",))]
    if not args.no_hg104:
        groups.append(("hg104", HG104, 511, ("all", "last")))
    rows, ratios = [], {}
    try:
        for group in groups:
            group_rows, group_ratios = bench_group(*group, args, server)
            rows += group_rows
            ratios.update(group_ratios)
    finally:
        if server is not None:
            server.close()
    info["load_average_after"] = harness.load_average()
    print_table(rows, ratios, info)
    harness.report({"info": info, "rows": rows, "ratios": ratios}, indent=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
