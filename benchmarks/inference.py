"""Inference latency: decoding alone, and the full test procedure split into its stages.

1. ``decode`` alone on random logits: 80 classes, a 128x128 map (a 511x511 input), K=100, 1000
   pairs kept -- one image, and the image + mirror pair the test runs.
2. The official test procedure (single scale, flip) with ``Detector.detect`` on one image, for the
   tiny config (a 192x192 image) and for HG-104 (a 511x511 image), random weights. Each stage is
   timed on its own in the same run:
     * pre-processing: resize, pad to ``size | 127``, normalise (``prepare_image``);
     * network: the last-stack forward pass on the image + mirror batch;
     * decode: ``decode`` on that batch's maps;
     * post-processing: flip merge, map back, per-class soft-NMS, top 100 (``finalise``);
     * total: ``detect()`` end to end.
   The share of decode + post-processing in the total is what the design bounds (< 5% for HG-104).
   Random weights decide how many pairs reach soft-NMS (often none), so post-processing is also
   timed on the worst case -- all ``num_dets`` pairs of both views valid, in 8 classes -- and the
   goal uses the larger share.

Medians of ``--repeats`` rounds (``--hg104-repeats`` for the slow model) after a warm-up call; each
round times every stage once, so the stages of one model share the machine's load of the moment.

    python benchmarks/inference.py [--repeats 5] [--hg104-repeats 3] [--skip-hg104] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import harness  # noqa: E402  (puts the checkout on sys.path)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from harness import ROOT, interleaved_medians  # noqa: E402

from cornernet_tf.config import load_config  # noqa: E402
from cornernet_tf.decode import decode, decode_outputs  # noqa: E402
from cornernet_tf.inference.detector import Detector, finalise, merge_flip, rescale_detections  # noqa: E402
from cornernet_tf.inference.preprocess import prepare_image  # noqa: E402
from cornernet_tf.modeling.cornernet import build_model  # noqa: E402

GOAL_SHARE_HG104 = 0.05  # decode + post-processing share of the HG-104 test time
WORST_CASE_CLASSES = 8  # classes the worst-case pairs are spread over (a crowded image)


def _sync(result):
    """Force the value (TF eager on CPU is synchronous, but .numpy() makes it explicit)."""
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)


def bench_decode(repeats: int, num_classes=80, size=128, K=100, num_dets=1000) -> dict:
    rng = np.random.default_rng(0)
    out = {"classes": num_classes, "map": [size, size], "K": K, "num_dets": num_dets}
    fn = tf.function(
        lambda *maps: decode(*maps, K=K, kernel=3, ae_threshold=0.5, num_dets=num_dets)
    )
    calls = {}
    for batch in (1, 2):
        maps = [
            rng.normal(
                -4.0, 1.5, (batch, size, size, num_classes)
            ),  # mostly background, as trained maps
            rng.normal(-4.0, 1.5, (batch, size, size, num_classes)),
            rng.normal(0.0, 1.0, (batch, size, size, 1)),
            rng.normal(0.0, 1.0, (batch, size, size, 1)),
            rng.uniform(0.0, 1.0, (batch, size, size, 2)),
            rng.uniform(0.0, 1.0, (batch, size, size, 2)),
        ]
        maps = [tf.constant(m, tf.float32) for m in maps]
        calls[batch] = lambda m=maps: _sync(fn(*m))
    seconds = interleaved_medians(calls, repeats, warmup=2)
    for batch, value in seconds.items():
        out[f"batch{batch}_ms"] = value * 1e3
        out[f"batch{batch}_ms_per_image"] = value * 1e3 / batch
    return out


def worst_case_pairs(num_dets: int, out_hw, num_classes: int, seed: int = 2) -> np.ndarray:
    """[2, num_dets, 8] decoded rows, all valid: random boxes on the output map, random scores."""
    rng = np.random.default_rng(seed)
    h, w = out_hw
    rows = np.zeros((2, num_dets, 8), np.float32)
    x1, y1 = rng.uniform(0, 0.8 * w, (2, num_dets)), rng.uniform(0, 0.8 * h, (2, num_dets))
    rows[..., 0], rows[..., 1] = x1, y1
    rows[..., 2] = np.minimum(x1 + rng.uniform(1, 0.5 * w, (2, num_dets)), w)
    rows[..., 3] = np.minimum(y1 + rng.uniform(1, 0.5 * h, (2, num_dets)), h)
    rows[..., 5:7] = rng.uniform(0.01, 0.9, (2, num_dets, 2))
    rows[..., 4] = rows[..., 5:7].mean(axis=-1)
    rows[..., 7] = rng.integers(0, num_classes, (2, num_dets))
    return rows


def bench_pipeline(name: str, config_path: str, image_hw, repeats: int) -> dict:
    config = load_config(config_path)
    keras.utils.set_random_seed(0)
    build_start = time.perf_counter()
    model = build_model(config.model)
    build_s = time.perf_counter() - build_start
    test = config.test
    detector = Detector(model, test, mean=config.data.mean, std=config.data.std)
    image = np.random.default_rng(1).integers(0, 256, (*image_hw, 3), dtype=np.uint8)

    net_input, geometry = prepare_image(image, 1.0, config.data.mean, config.data.std)
    batch = tf.constant(np.stack([net_input, net_input[:, ::-1]]))
    forward = tf.function(lambda x: model(x, training=False, stacks="last"))
    decode_fn = tf.function(
        lambda outputs: decode_outputs(
            outputs,
            K=test.top_k,
            kernel=test.nms_kernel,
            ae_threshold=test.ae_threshold,
            num_dets=test.num_dets,
        )
    )
    outputs = forward(batch)
    decoded = decode_fn(outputs).numpy()
    raw = rescale_detections(merge_flip(decoded, geometry.out_hw[1]), geometry)
    rows_into_nms = int((raw[:, 4] > -1).sum())
    # Random weights decide how many pairs survive (often none). The worst case for soft-NMS is
    # every one of the num_dets pairs of both views valid; crowd them into a few classes.
    decoded_worst = worst_case_pairs(
        decoded.shape[1], geometry.out_hw, min(WORST_CASE_CLASSES, config.model.num_classes)
    )
    rows_worst = int((decoded_worst[..., 4] > -1).sum())

    stages = interleaved_medians(
        {
            "preprocess": lambda: prepare_image(image, 1.0, config.data.mean, config.data.std),
            "network": lambda: _sync(forward(batch)),
            "decode": lambda: _sync(decode_fn(outputs)),
            "postprocess": lambda: finalise(
                rescale_detections(merge_flip(decoded, geometry.out_hw[1]), geometry), test
            ),
            "postprocess_worst": lambda: finalise(
                rescale_detections(merge_flip(decoded_worst, geometry.out_hw[1]), geometry), test
            ),
            "total": lambda: detector.detect(image),
        },
        repeats,
    )
    ms = {k: v * 1e3 for k, v in stages.items()}
    return {
        "name": name,
        "config": os.path.relpath(config_path, ROOT),
        "image_hw": list(image_hw),
        "network_input_hw": list(geometry.inp_hw),
        "maps_hw": list(geometry.out_hw),
        "parameters": int(model.count_params()),
        "build_s": build_s,
        "repeats": repeats,
        "rows_into_soft_nms": rows_into_nms,
        "rows_into_soft_nms_worst": rows_worst,
        "ms": ms,
        "decode_share": stages["decode"] / stages["total"],
        "postprocess_share": stages["postprocess"] / stages["total"],
        "decode_plus_post_share": (stages["decode"] + stages["postprocess"]) / stages["total"],
        # the same with the worst-case post-processing in place of the measured one
        "decode_plus_post_share_worst": (stages["decode"] + stages["postprocess_worst"])
        / (stages["total"] - stages["postprocess"] + stages["postprocess_worst"]),
        "unaccounted_ms": ms["total"]
        - (ms["preprocess"] + ms["network"] + ms["decode"] + ms["postprocess"]),
    }


def print_table(result: dict) -> None:
    d = result["decode"]
    print(
        f"\ndecode alone ({d['classes']} classes, {d['map'][0]}x{d['map'][1]} map, K={d['K']}, "
        f"top {d['num_dets']} pairs): {d['batch1_ms']:.2f} ms for 1 image, "
        f"{d['batch2_ms']:.2f} ms for image + mirror ({d['batch2_ms_per_image']:.2f} ms per view)"
    )
    print("\nfull test procedure, single scale + flip, random weights (medians, ms)")
    cols = ("preprocess", "network", "decode", "postprocess", "total")
    print(
        f"{'model':<8} {'image':>9} "
        + " ".join(f"{c:>11}" for c in cols)
        + f" {'decode+post':>12} {'worst case':>11}"
    )
    for p in result["pipelines"]:
        image = "x".join(map(str, p["image_hw"]))
        print(
            f"{p['name']:<8} {image:>9} "
            + " ".join(f"{p['ms'][c]:>11.1f}" for c in cols)
            + f" {p['decode_plus_post_share'] * 100:>11.2f}% {p['decode_plus_post_share_worst'] * 100:>10.2f}%"
        )
    for p in result["pipelines"]:
        print(
            f"  {p['name']}: {p['parameters']:,} parameters; {p['rows_into_soft_nms']} rows into soft-NMS "
            f"(worst case: {p['rows_into_soft_nms_worst']} rows in {WORST_CASE_CLASSES} classes, post-processing "
            f"{p['ms']['postprocess_worst']:.1f} ms); {p['unaccounted_ms']:.1f} ms of the total outside "
            "the timed stages (flip copy, array conversions)"
        )
    goal = result.get("goal")
    if goal:
        print(
            f"\ngoal: decode + post-processing < {goal['limit'] * 100:.0f}% of the HG-104 test time: "
            f"{goal['share'] * 100:.2f}% -> {'met' if goal['met'] else 'MISSED'}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=15, help="timed rounds for decode and the tiny model"
    )
    parser.add_argument(
        "--hg104-repeats", type=int, default=3, help="timed repeats for HG-104 (~5 s a pass)"
    )
    parser.add_argument(
        "--skip-hg104", action="store_true", help="time only decode and the tiny config"
    )
    parser.add_argument("--json", help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    result = {
        "benchmark": "inference",
        "machine": harness.machine_info(gpus=len(tf.config.list_physical_devices("GPU"))),
        "decode": bench_decode(args.repeats),
        "pipelines": [
            bench_pipeline(
                "tiny",
                harness.config_path("cornernet_tiny"),
                (192, 192),
                args.repeats,
            )
        ],
    }
    if not args.skip_hg104:
        hg = bench_pipeline(
            "hg104",
            harness.config_path("cornernet_hg104_coco"),
            (511, 511),
            args.hg104_repeats,
        )
        result["pipelines"].append(hg)
        share = max(hg["decode_plus_post_share"], hg["decode_plus_post_share_worst"])
        result["goal"] = {
            "limit": GOAL_SHARE_HG104,
            "share": share,
            "met": share < GOAL_SHARE_HG104,
        }
    harness.report(result, args.json, table=print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
