"""Input pipeline throughput: images/s of the full training pipeline and the cost of each stage.

Data: the synthetic shapes generator at a COCO-like size (640x480 JPEG, default 240 images),
written to a temporary folder. Pipeline: the official training recipe (511x511 crops, random
scale, flip, colour jitter, lighting) and targets for 80 classes (128x128 heatmaps), as
``build_dataset`` assembles it.

Two views, measured in the same run:
* throughput of the pipeline cut after each stage (decode; + augment; + encode; + batch), with
  the configured parallelism -- what training sees;
* per-stage cost in CPU ms per image with one map thread (``num_parallel_calls=1``), as
  differences between consecutive cuts -- where the CPU time goes.

Prints a JSON object and a table. Figures are medians over --repeats.

    python benchmarks/input_pipeline.py [--num-images 240] [--batch-size 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402  (puts the checkout on sys.path)


def _time_images(ds, num_images: int, per_element: int = 1, warmup: int = 8) -> tuple[float, float]:
    """(wall s, process CPU s) per image, pulling ``num_images`` images after a warm-up.

    CPU time (all threads of this process) is reported beside wall time because the machine may
    be shared: wall time then stretches, CPU time per image does not.
    """
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    steps = max(1, num_images // per_element)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        next(it)
    n = steps * per_element
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


def _cut_pipelines(config, source, num_classes: int, batch_size: int):
    """Training pipelines cut after each stage (same seeds, same parallelism settings)."""
    from cornernet_tf.data import pipeline as pl

    def base():
        ds = source.elements(
            None, shuffle=True, seed=config.seed, shuffle_buffer=config.shuffle_buffer
        ).repeat()
        return pl.attach_seeds(ds, config.seed, 0)

    def opts(ds):
        return ds.prefetch(pl.AUTOTUNE).with_options(pl._options(config, None))

    def decoded():
        return pl.decode_stage(base(), source, config)

    def augmented():
        return pl.augment_stage(decoded(), config, training=True)

    def encoded():
        return pl.encode_stage(augmented(), config, num_classes)

    def batched():
        return encoded().batch(
            batch_size, drop_remainder=True, num_parallel_calls=pl._parallel(config)
        )

    return {
        "decode": (lambda: opts(decoded()), 1),
        "augment": (lambda: opts(augmented()), 1),
        "encode": (lambda: opts(encoded()), 1),
        "batch": (lambda: opts(batched()), batch_size),
    }


def run(args) -> dict:
    import tensorflow as tf

    from cornernet_tf.config import DataConfig
    from cornernet_tf.data import build_dataset, load_source
    from cornernet_tf.data.shapes import generate_shapes

    tmp = args.data_dir or tempfile.mkdtemp(prefix="cornernet_bench_")
    ann = os.path.join(tmp, "train", "annotations.json")
    if not os.path.exists(ann):
        t0 = time.perf_counter()
        generate_shapes(tmp, args.num_images, seed=0, size=(480, 640), image_format="jpeg")
        gen_s = time.perf_counter() - t0
    else:
        gen_s = None
    config = DataConfig(
        train_annotations=ann,
        train_images=os.path.join(tmp, "train", "images"),
        input_size=[args.input_size, args.input_size],
        seed=0,
    )
    source = load_source(config, training=True)
    n = args.num_images

    result = {
        "machine": harness.machine_info(tensorflow=tf.__version__),
        "setup": {
            "images": n,
            "image_size": "640x480 jpeg",
            "input_size": args.input_size,
            "output_size": list(config.output_hw),
            "num_classes": args.num_classes,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "generation_images_per_s": round(n / gen_s, 1) if gen_s else None,
        },
    }

    # Full pipeline, exactly as training builds it.
    full = []
    for _ in range(args.repeats):
        ds = build_dataset(
            config, True, batch_size=args.batch_size, num_classes=args.num_classes, source=source
        )
        full.append(_time_images(ds, n, args.batch_size, warmup=2))
    result["full_pipeline_images_per_s"] = round(1.0 / statistics.median(w for w, _ in full), 2)
    result["full_pipeline_cpu_ms_per_image"] = round(statistics.median(c for _, c in full) * 1e3, 2)

    # Cuts with the configured parallelism.
    parallel = {}
    for name, (make, per) in _cut_pipelines(
        config, source, args.num_classes, args.batch_size
    ).items():
        times = [
            _time_images(make(), n, per, warmup=max(2, 8 // per))[0] for _ in range(args.repeats)
        ]
        parallel[name] = statistics.median(times)
    result["parallel_cut_images_per_s"] = {k: round(1.0 / v, 2) for k, v in parallel.items()}

    # One thread: per-stage cost (CPU time, robust to a shared machine).
    serial_config = dataclasses.replace(config, num_parallel_calls=1)
    serial = {}
    for name, (make, per) in _cut_pipelines(
        serial_config, source, args.num_classes, args.batch_size
    ).items():
        times = [
            _time_images(make(), max(n // 4, 8 * per), per, warmup=max(2, 8 // per))[1]
            for _ in range(args.repeats)
        ]
        serial[name] = statistics.median(times)
    stages, previous = {}, 0.0
    for name in ("decode", "augment", "encode", "batch"):
        stages[name] = round(max(serial[name] - previous, 0.0) * 1e3, 2)
        previous = serial[name]
    result["serial_ms_per_image"] = {k: round(v * 1e3, 2) for k, v in serial.items()}
    result["stage_ms_per_image"] = stages
    result["machine"]["load_average_at_end"] = harness.load_average()

    if not args.data_dir and not args.keep_data:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def print_table(result: dict) -> None:
    setup = result["setup"]
    print(
        f"\ninput pipeline: {setup['images']} shapes images {setup['image_size']} -> {setup['input_size']}^2, "
        f"{setup['num_classes']} classes, batch {setup['batch_size']}, {result['machine']['cpus']} CPUs"
    )
    print(
        f"full training pipeline: {result['full_pipeline_images_per_s']:.1f} images/s "
        f"({result['full_pipeline_cpu_ms_per_image']:.1f} CPU ms per image)"
    )
    print(f"{'stage':<10}{'pipeline cut here: images/s':>30}{'stage CPU ms/image (1 thread)':>32}")
    for name in ("decode", "augment", "encode", "batch"):
        print(
            f"{name:<10}{result['parallel_cut_images_per_s'][name]:>30.1f}{result['stage_ms_per_image'][name]:>32.2f}"
        )
    print(
        f"load average: {result['machine']['load_average_at_start']} at start, "
        f"{result['machine']['load_average_at_end']} at end"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--num-images", type=int, default=240, help="images generated and timed (>= 200)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=511)
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--data-dir", default=None, help="reuse (or create) the generated data here"
    )
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    harness.report(run(args), args.json_out, table=print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
