"""Inference precision (``test.precision``): accuracy and speed of float32, bfloat16 and float16.

In one run:

1. ``golden``: the golden reduced model (official weights, the golden input) in each precision
   against float32: the largest |difference| of every map, and the mean relative heatmap error.
2. ``hg104``: Hourglass-104 random weights, the flip test's network + decoding -- a 511x511 image
   and its mirror through the last stack, then ``decode`` (``Detector``'s traced function) -- per
   precision, timed in interleaved rounds (medians).
3. ``shapes`` (with ``--shapes-weights``): COCO AP on the held-out shapes split of
   ``benchmarks/learn_shapes.py`` (its model, its test procedure) in each precision.

Also prints the CPU flags that decide whether bfloat16 can pay (``avx512_bf16``, ``amx_bf16``) and
the load average. oneDNN runs bfloat16 convolutions on CPUs without those flags by converting to
float32 inside each kernel, so there bfloat16 cannot be faster than float32.

    python benchmarks/precision.py [--repeats 2] [--precisions float32,bfloat16,float16]
        [--shapes-weights W --shapes-data DIR] [--skip-hg104] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import ROOT, interleaved_medians, load_average  # noqa: E402

from cornernet_tf.detection.contract import OUTPUT_KEYS  # noqa: E402
from cornernet_tf.inference.detector import Detector  # noqa: E402
from cornernet_tf.modeling.cornernet import build_model  # noqa: E402
from cornernet_tf.modeling.precision import (  # noqa: E402
    CPU_BFLOAT16_FLAGS,
    cpu_flags,
    model_in_precision,
)

FLAGS_OF_INTEREST = ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")


def golden_errors(precisions) -> dict:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from golden import GOLDEN_MODEL_CONFIG, load_golden

    from cornernet_tf.convert import load_official_weights

    model = build_model(GOLDEN_MODEL_CONFIG)
    load_official_weights(model, load_golden("model_weights.npz"))
    x = tf.constant(np.transpose(load_golden("model_io.npz")["input"], (0, 2, 3, 1)))
    reference = model(x, training=False, stacks="last")
    out = {}
    for name in precisions:
        if name == "float32":
            continue
        maps = model_in_precision(model, name)(x, training=False, stacks="last")
        row = {}
        for key in OUTPUT_KEYS:
            got, want = maps[key][-1].numpy(), reference[key][-1].numpy()
            row[f"max_abs_{key}"] = float(np.abs(got - want).max())
        heat_err = [
            np.abs(maps[k][-1].numpy() - reference[k][-1].numpy()).mean()
            / np.abs(reference[k][-1].numpy()).mean()
            for k in ("tl_heat", "br_heat")
        ]
        row["max_abs_all_maps"] = max(v for k, v in row.items() if k.startswith("max_abs_"))
        row["mean_rel_heat"] = float(max(heat_err))
        out[name] = row
    return out


def hg104_times(precisions, repeats: int, size: int) -> dict:
    from cornernet_tf.config import load_config

    config = load_config(os.path.join(ROOT, "configs", "cornernet_hg104_coco.yaml"))
    model = build_model(config.model)
    rng = np.random.default_rng(0)
    image = rng.normal(size=(size, size, 3)).astype(np.float32)
    batch = tf.constant(np.stack([image, image[:, ::-1]]))  # the flip test's pair
    calls = {}
    for name in precisions:
        detector = Detector(model, dataclasses.replace(config.test, precision=name))
        calls[name] = lambda d=detector: d._forward(batch).numpy()
    seconds = interleaved_medians(calls, repeats=repeats, warmup=1)
    base = seconds.get("float32")
    return {
        name: {"seconds": round(s, 3), "vs_float32": round(s / base, 3) if base else None}
        for name, s in seconds.items()
    }


def shapes_ap(precisions, config_path: str, weights: str, data_dir: str) -> dict:
    from cornernet_tf.config import load_config
    from cornernet_tf.eval.runner import evaluate
    from cornernet_tf.weights import load_weights

    annotations = os.path.join(data_dir, "heldout", "annotations.json")
    images = os.path.join(data_dir, "heldout", "images")
    config = load_config(config_path)
    model = build_model(config.model)
    load_weights(model, weights)
    out = {}
    for name in precisions:
        config.test.precision = name
        metrics = evaluate(model, config, annotations=annotations, images=images, progress=False)
        out[name] = harness.coco_summary(metrics)
    for name in precisions:
        out[name]["AP_change_points"] = round(100 * (out[name]["AP"] - out["float32"]["AP"]), 2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precisions", default="float32,bfloat16,float16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=511)
    parser.add_argument("--skip-hg104", action="store_true")
    parser.add_argument("--shapes-config", default=harness.config_path("cornernet_tiny_learn"))
    parser.add_argument("--shapes-weights", help="weights trained by benchmarks/learn_shapes.py")
    parser.add_argument("--shapes-data", help="its shapes folder (with heldout/)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    precisions = args.precisions.split(",")
    if "float32" not in precisions:
        precisions.insert(0, "float32")
    flags = cpu_flags()
    result = {
        "cpu_flags": {f: f in flags for f in FLAGS_OF_INTEREST},
        "hardware_bfloat16": any(f in flags for f in CPU_BFLOAT16_FLAGS),
        "load_average_before": load_average(),
        "golden": golden_errors(precisions),
    }
    if not args.skip_hg104:
        result["hg104"] = hg104_times(precisions, args.repeats, args.size)
    if args.shapes_weights:
        result["shapes"] = shapes_ap(
            precisions, args.shapes_config, args.shapes_weights, args.shapes_data
        )
    result["load_average_after"] = load_average()
    result["machine"] = harness.machine_info(intra_op_threads=os.cpu_count())
    harness.report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
