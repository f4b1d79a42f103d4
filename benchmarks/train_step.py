"""Training-step time on this machine's CPU: Hourglass-104 at batch 1 and the tiny config at batch 8.

Each case runs ``model.fit`` (the real ``CornerNet.train_step``: forward, CornerNet loss,
gradients, non-finite check, Adam update) on a synthetic batch of the configured input size with
encoded targets for random boxes, and records the wall time of every step with a callback. The
first step (tracing) is reported apart; the median and minimum are over the following steps
after ``--warmup``.

In the same run, the tiny config is also timed with the non-finite check switched off, so the
check's cost is a ratio measured under the same load. The 1-minute load average is printed
before and after (the machine may be shared).

    python benchmarks/train_step.py [--steps 8] [--hg104-steps 3] [--warmup 1] [--no-hg104]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import harness  # noqa: E402  (puts the checkout on sys.path)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import ROOT  # noqa: E402

from cornernet_tf.config import load_config  # noqa: E402
from cornernet_tf.targets import encode_targets  # noqa: E402
from cornernet_tf.training import steps as train_steps  # noqa: E402
from cornernet_tf.training.fit import build_and_compile  # noqa: E402


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def synthetic_dataset(config, batch: int, seed: int = 0) -> tf.data.Dataset:
    """One batch of noise images with 1-6 random boxes each, encoded, repeated forever."""
    rng = np.random.default_rng(seed)
    height, width = config.data.input_size
    out_h, out_w = config.data.output_hw
    images = rng.normal(size=(batch, height, width, 3)).astype("float32")
    encoded = []
    for _ in range(batch):
        k = int(rng.integers(1, 7))
        x1 = rng.uniform(0, width * 0.6, k)
        y1 = rng.uniform(0, height * 0.6, k)
        boxes = np.stack(
            [x1, y1, x1 + rng.uniform(8, width * 0.4, k), y1 + rng.uniform(8, height * 0.4, k)], 1
        )
        t = encode_targets(
            boxes,
            rng.integers(0, config.model.num_classes, k),
            (height, width),
            (out_h, out_w),
            config.model.num_classes,
            max_objects=config.data.max_objects,
        )
        encoded.append(t)
    targets = {key: tf.stack([t[key] for t in encoded]) for key in encoded[0]}
    return tf.data.Dataset.from_tensors((images, targets)).repeat()


def time_case(config_path: str, batch: int, steps: int, warmup: int, overrides=()) -> dict:
    config = load_config(config_path, [f"train.batch_size={batch}"] + list(overrides))
    keras.utils.set_random_seed(0)
    model = build_and_compile(config, tf.distribute.get_strategy())
    timer = StepTimer()
    model.fit(
        synthetic_dataset(config, batch),
        epochs=1,
        steps_per_epoch=1 + warmup + steps,
        callbacks=[timer],
        verbose=0,
    )
    timed = timer.times[1 + warmup :]
    return {
        "config": os.path.relpath(config_path, ROOT),
        "batch": batch,
        "input_size": list(config.data.input_size),
        "parameters": int(model.count_params()),
        "first_step_s": round(timer.times[0], 2),
        "median_s": round(statistics.median(timed), 4),
        "min_s": round(min(timed), 4),
        "steps_timed": len(timed),
        "images_per_s": round(batch / statistics.median(timed), 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps of the tiny config")
    parser.add_argument("--hg104-steps", type=int, default=3, help="timed steps of Hourglass-104")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first")
    parser.add_argument("--no-hg104", action="store_true")
    args = parser.parse_args(argv)

    tiny = harness.config_path("cornernet_tiny")
    hg104 = harness.config_path("cornernet_hg104_coco")
    load_before = harness.load_average()[:1]
    results = {"tiny_b8": time_case(tiny, 8, args.steps, args.warmup)}

    # Same case without the non-finite check (its cost = the ratio of the two medians).
    original = train_steps._guard_finite
    train_steps._guard_finite = lambda model, loss, outputs, gradients, terms, targets: (
        gradients,
        tf.identity(loss),
    )
    try:
        results["tiny_b8_no_check"] = time_case(tiny, 8, args.steps, args.warmup)
    finally:
        train_steps._guard_finite = original
    if not args.no_hg104:
        results["hg104_b1"] = time_case(hg104, 1, args.hg104_steps, args.warmup)

    report = {
        "device": "CPU",
        "machine": harness.machine_info(keras=keras.__version__),
        "load_average_1min": load_before + harness.load_average()[:1],
        "results": results,
        "check_overhead_ratio": round(
            results["tiny_b8"]["median_s"] / results["tiny_b8_no_check"]["median_s"], 3
        ),
    }
    harness.report(report, indent=2)
    print(
        f"\n{'case':<18} {'input':>9} {'batch':>5} {'params':>12} "
        f"{'first step':>11} {'median':>9} {'min':>9} {'img/s':>7}"
    )
    for name, r in results.items():
        size = "x".join(str(v) for v in r["input_size"])
        print(
            f"{name:<18} {size:>9} {r['batch']:>5} {r['parameters']:>12,} {r['first_step_s']:>10.1f}s "
            f"{r['median_s']:>8.3f}s {r['min_s']:>8.3f}s {r['images_per_s']:>7.2f}"
        )
    print(f"non-finite check overhead (tiny, median ratio): {report['check_overhead_ratio']:.3f}")
    print(f"load average (1 min) before/after: {report['load_average_1min']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
