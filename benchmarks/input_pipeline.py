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

Per core, against the official sampler (``--official-python PY``, a Python with NumPy and
OpenCV): the official ``kp_detection`` CPU work re-implemented in ``official_sampler.py`` runs in
PY on the same JPEGs and annotations, and ours runs in a child process; both pinned to one CPU
(``--cpu``), one thread each (ours: one map thread, a private tf.data threadpool of 1, intra-op
and inter-op parallelism 1). Both report images/s (wall) and images per CPU-second (process CPU
time, the figure that a shared machine does not distort) and their stage costs: official read,
crop, resize, colour (flip, /255, jitter, lighting, normalise, CHW) and targets (batch arrays,
Gaussians, tags) beside ours decode, crop + resize, flip + colour, encode, batch.
``--batch-format dense,compact`` (default both) picks the training batch formats measured: dense
(float32 images and heatmaps built by the pipeline) and compact (uint8 images with a per-image
pixel affine and sparse heatmap inputs; the stage cuts are then decode, crop + resize, flip +
pixel-affine computation, sparse encode, batch). Compact moves work into the train step, so the
per-core run also measures that finishing (apply_pixel_affine and the heatmap drawing of a
batch, one thread, CPU ms per image on this CPU) beside the pipeline figures.
With the native ops built, dense batches are built like compact ones and finished per batch
by the native colour map and heatmap ops (as ``build_dataset`` does); their augment cut then
has no pass over the pixels and their batch cut holds the finishing.
``--per-core-only`` skips the parallel views. ``--tf-resize`` forces the TensorFlow ops for the
resize, the colour map and the dense finishing instead of the native ops (sets
``CORNERNET_NATIVE_RESIZE=0``, inherited by the child); the per-core result names the paths used
(``resize``, ``colour_map``, ``dense_finish``).

Prints a JSON object and a table. Figures are medians over --repeats.

    python benchmarks/input_pipeline.py [--num-images 240] [--batch-size 8] [--repeats 3]
        [--official-python PY [--per-core-only] [--cpu N]] [--tf-resize]
        [--batch-format dense,compact]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402  (puts the checkout on sys.path)

from cornernet_tf import tf_allocator  # noqa: E402


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


def _cut_pipelines(
    config, source, num_classes: int, batch_size: int, extra_options=None, batch_format="dense"
):
    """Training pipelines cut after each stage (same seeds, same parallelism settings), built
    from the stages ``build_dataset`` chains.

    ``compact``: the augment cut adds flip and the pixel-affine computation (no pass over the
    pixels), the encode cut the sparse targets (no heatmaps). ``dense`` with the native ops (as
    ``build_dataset`` runs it when they are built): the same two cuts, then the batch cut adds
    the batching and the native finish (colour map and heatmaps, per batch)."""
    import tensorflow as tf

    from cornernet_tf.data import pipeline as pl

    finish_dense = pl.finishes_dense_batches(batch_format)
    image_format = "compact" if finish_dense else batch_format

    def base():
        ds = source.elements(
            None, shuffle=True, seed=config.seed, shuffle_buffer=config.shuffle_buffer
        ).repeat()
        return pl.attach_seeds(ds, config.seed, 0)

    def opts(ds):
        ds = ds.prefetch(pl.AUTOTUNE).with_options(pl._options(config, None))
        return ds if extra_options is None else ds.with_options(extra_options)

    def decoded():
        return pl.decode_stage(base(), source, config)

    def cropped():  # the random crop and resize of augment_for_training, without flip or colour
        from cornernet_tf.data import augment as aug

        def fn(el):
            crop_seed = tf.random.experimental.stateless_split(el["seed"], 4)[0]
            image, boxes, classes = aug.random_crop_resize(
                el["image"], el["boxes"], el["classes"], crop_seed, config
            )
            return {"image": image, "boxes": boxes, "classes": classes}

        return decoded().map(fn, num_parallel_calls=pl._parallel(config))

    def augmented():
        return pl.augment_stage(decoded(), config, training=True, batch_format=image_format)

    def encoded():
        return pl.encode_stage(
            augmented(), config, num_classes, image_format, every_object=finish_dense
        )

    def batched():
        return pl.batch_stage(encoded(), config, num_classes, batch_size, True, finish_dense)

    return {
        "decode": (lambda: opts(decoded()), 1),
        "crop_resize": (lambda: opts(cropped()), 1),
        "augment": (lambda: opts(augmented()), 1),
        "encode": (lambda: opts(encoded()), 1),
        "batch": (lambda: opts(batched()), batch_size),
    }


STAGE_CUTS = ("decode", "crop_resize", "augment", "encode", "batch")
# How the official sampler's stages line up with ours (for the per-core table).
STAGE_PAIRS = (
    ("decode", ("read",)),
    ("crop_resize", ("crop", "resize")),
    ("augment", ("colour",)),
    ("encode", ("targets",)),
    ("batch", ()),
)


def _stage_costs(
    config, source, num_classes, batch_size, n, repeats, extra_options=None, batch_format="dense"
):
    """CPU ms per image of each stage, as differences between consecutive one-thread cuts."""
    serial_config = dataclasses.replace(config, num_parallel_calls=1)
    serial = {}
    for name, (make, per) in _cut_pipelines(
        serial_config, source, num_classes, batch_size, extra_options, batch_format
    ).items():
        times = [
            _time_images(make(), max(n // 4, 8 * per), per, warmup=max(2, 8 // per))[1]
            for _ in range(repeats)
        ]
        serial[name] = statistics.median(times)
    stages, previous = {}, 0.0
    for name in STAGE_CUTS:
        stages[name] = round(max(serial[name] - previous, 0.0) * 1e3, 2)
        previous = serial[name]
    return {k: round(v * 1e3, 2) for k, v in serial.items()}, stages


def _finish_cost(config, source, num_classes: int, batch_size: int, repeats: int) -> dict:
    """CPU ms per image of finishing a compact batch as the train step does, on this CPU.

    ``apply_pixel_affine`` (the normalised float32 images) and the heatmap drawing
    (``finish_targets``) of one pipeline batch, each in a ``tf.function`` run over and over:
    the work the compact format moves from the input pipeline into the step (onto the
    accelerator when there is one). Beside them, ``dense_native_finish``: the same batch
    finished by the native ops, as the dense pipeline does per batch (its own stage cuts
    cannot show it: a one-image cut pays per-element overheads that a batch cut does not).
    """
    import tensorflow as tf

    from cornernet_tf.data import build_dataset, finish

    height, width = config.output_hw
    images, targets = next(
        iter(
            build_dataset(
                config,
                True,
                batch_size=batch_size,
                num_classes=num_classes,
                source=source,
                batch_format="compact",
            )
        )
    )
    parts = {
        "pixel_affine": tf.function(lambda i, t: finish.finish_images(i, t)),
        "heatmaps": tf.function(
            lambda i, t: finish.finish_targets(t, height, width, num_classes)["tl_heatmap"]
        ),
    }
    if finish.native_finish_available()[0]:  # what the dense pipeline runs per batch instead
        parts["dense_native_finish"] = tf.function(
            lambda i, t: finish.finish_dense_on_cpu(i, t, height, width, num_classes)[0]
        )
    out = {}
    for name, fn in parts.items():
        for _ in range(3):  # trace and warm up
            fn(images, targets).numpy()
        runs = []
        for _ in range(repeats):
            calls, cpu = 10, time.process_time()
            for _ in range(calls):
                fn(images, targets).numpy()
            runs.append((time.process_time() - cpu) / (calls * batch_size))
        out[name] = round(statistics.median(runs) * 1e3, 2)
    out["total"] = round(out["pixel_affine"] + out["heatmaps"], 2)
    return out


def _make_data(args):
    """The JPEG folder and its annotations (generated unless ``--data-dir`` has them)."""
    from cornernet_tf.data.shapes import generate_shapes

    tmp = args.data_dir or tempfile.mkdtemp(prefix="cornernet_bench_")
    ann = os.path.join(tmp, "train", "annotations.json")
    gen_s = None
    if not os.path.exists(ann):
        t0 = time.perf_counter()
        generate_shapes(tmp, args.num_images, seed=0, size=(480, 640), image_format="jpeg")
        gen_s = time.perf_counter() - t0
    return tmp, ann, os.path.join(tmp, "train", "images"), gen_s


def _data_config(args, ann, images, **changes):
    from cornernet_tf.config import DataConfig

    return DataConfig(
        train_annotations=ann,
        train_images=images,
        input_size=[args.input_size, args.input_size],
        seed=0,
        **changes,
    )


def run(args) -> dict:
    import tensorflow as tf

    from cornernet_tf.data import load_source

    tmp, ann, images, gen_s = _make_data(args)
    config = _data_config(args, ann, images)
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
            "cpu_allocator": "bfc" if tf_allocator.bfc_requested() else "default",
        },
    }

    if args.official_python:
        result["per_core"] = per_core_comparison(args, tmp, ann, images)

    if not args.per_core_only:
        result["formats"] = {}
        for batch_format in args.batch_formats:
            result["formats"][batch_format] = _parallel_views(args, config, source, n, batch_format)
    result["machine"]["load_average_at_end"] = harness.load_average()

    if not args.data_dir and not args.keep_data:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _time_full_pipeline(args, config, source, n: int, batch_format: str, options=None) -> list:
    """(wall s, CPU s) per image of the full pipeline, exactly as training builds it, per repeat."""
    from cornernet_tf.data import build_dataset

    runs = []
    for _ in range(args.repeats):
        ds = build_dataset(
            config,
            True,
            batch_size=args.batch_size,
            num_classes=args.num_classes,
            source=source,
            batch_format=batch_format,
        )
        if options is not None:
            ds = ds.with_options(options)
        runs.append(_time_images(ds, n, args.batch_size, warmup=2))
    return runs


def _parallel_views(args, config, source, n: int, batch_format: str) -> dict:
    """Full pipeline throughput, cuts with the configured parallelism, one-thread stage costs."""
    out = {}
    full = _time_full_pipeline(args, config, source, n, batch_format)
    out["full_pipeline_images_per_s"] = round(1.0 / statistics.median(w for w, _ in full), 2)
    out["full_pipeline_cpu_ms_per_image"] = round(statistics.median(c for _, c in full) * 1e3, 2)
    parallel = {}
    for name, (make, per) in _cut_pipelines(
        config, source, args.num_classes, args.batch_size, batch_format=batch_format
    ).items():
        times = [
            _time_images(make(), n, per, warmup=max(2, 8 // per))[0] for _ in range(args.repeats)
        ]
        parallel[name] = statistics.median(times)
    out["parallel_cut_images_per_s"] = {k: round(1.0 / v, 2) for k, v in parallel.items()}
    # One thread: per-stage cost (CPU time, robust to a shared machine).
    serial, stages = _stage_costs(
        config, source, args.num_classes, args.batch_size, n, args.repeats, None, batch_format
    )
    out["serial_ms_per_image"] = serial
    out["stage_ms_per_image"] = stages
    return out


# --------------------------------------------------------------------------- per core


def _one_core_options():
    """tf.data options that keep the pipeline's own work on one thread."""
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.cpu_budget = 1
    return options


def _affinity() -> list[int] | None:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def run_per_core_child(args) -> dict:
    """Ours on one core (this process pinned to ``--cpu`` before TensorFlow starts)."""
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cornernet_tf.data import load_source
    from cornernet_tf.data import pipeline as pl
    from cornernet_tf.ops.image_ops import native_pixel_affine_available, native_resize_available

    _, ann, images, _ = _make_data(args)
    config = _data_config(args, ann, images, num_parallel_calls=1)
    source = load_source(config, training=True)
    n, one_core = args.num_images, _one_core_options()
    out = {
        "cpu_affinity": _affinity(),
        "resize": "native" if native_resize_available()[0] else "tf",
        "colour_map": "native" if native_pixel_affine_available()[0] else "tf",
        "dense_finish": "native, per batch"
        if pl.finishes_dense_batches("dense")
        else "tf, per image",
        "cpu_allocator": "bfc" if tf_allocator.bfc_requested() else "default",
    }
    for batch_format in args.batch_formats:
        full = _time_full_pipeline(args, config, source, n, batch_format, one_core)
        _, stages = _stage_costs(
            config,
            source,
            args.num_classes,
            args.batch_size,
            n,
            args.repeats,
            one_core,
            batch_format,
        )
        wall, cpu = (statistics.median(v[i] for v in full) for i in (0, 1))
        out[batch_format] = {
            "images_per_s": round(1.0 / wall, 2),
            "images_per_cpu_s": round(1.0 / cpu, 2),
            "cpu_ms_per_image": round(cpu * 1e3, 2),
            "stage_cpu_ms_per_image": stages,
        }
    if "compact" in args.batch_formats:
        out["step_finish_cpu_ms_per_image"] = _finish_cost(
            config, source, args.num_classes, args.batch_size, args.repeats
        )
    return out


def _run_json(command: list[str]) -> dict:
    """Run ``command`` and parse the JSON object on the last line of its output."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_core_comparison(args, data_dir: str, ann: str, images: str) -> dict:
    """The official sampler and ours, each in its own process on the same CPU and files."""
    here = os.path.dirname(os.path.abspath(__file__))
    cpu = args.cpu
    if cpu is None and hasattr(os, "sched_getaffinity"):  # Linux: pin both to the last CPU
        cpu = max(os.sched_getaffinity(0))
    common = ["--num-images", str(args.num_images), "--batch-size", str(args.batch_size)]
    common += ["--repeats", str(args.repeats)] + ([] if cpu is None else ["--cpu", str(cpu)])
    official_cmd = [args.official_python, os.path.join(here, "official_sampler.py")]
    official_cmd += ["--images", images, "--annotations", ann] + common
    ours_cmd = [sys.executable, os.path.abspath(__file__), "--per-core-child"]
    ours_cmd += ["--data-dir", data_dir, "--input-size", str(args.input_size)]
    ours_cmd += ["--num-classes", str(args.num_classes)] + common
    ours_cmd += ["--batch-format", ",".join(args.batch_formats)]
    official = _run_json(official_cmd)
    ours = _run_json(ours_cmd)
    ratios = {
        f: {
            "images_per_cpu_s": round(
                ours[f]["images_per_cpu_s"] / official["images_per_cpu_s"], 3
            ),
            "images_per_s": round(ours[f]["images_per_s"] / official["images_per_s"], 3),
        }
        for f in args.batch_formats
    }
    return {"cpu": cpu, "official": official, "ours": ours, "ratios": ratios, "goal_ratio": 1.5}


def print_per_core(pc: dict) -> None:
    off, ours = pc["official"], pc["ours"]
    formats = [f for f in ("dense", "compact") if f in ours]
    where = f"CPU {pc['cpu']}" if pc["cpu"] is not None else "not pinned"
    print(f"\nper core ({where}, one thread each), same JPEGs and annotations:")
    print(
        f"ours: {ours.get('resize', '?')} resize, {ours.get('colour_map', '?')} colour map, "
        f"dense batches finished {ours.get('dense_finish', '?')}, "
        f"{ours.get('cpu_allocator', '?')} CPU allocator"
    )
    print(f"{'':<24}{'images/s':>10}{'images/CPU-s':>14}{'CPU ms/image':>14}")
    rows = [("official sampler", off)] + [(f"ours ({f} batches)", ours[f]) for f in formats]
    for name, r in rows:
        print(
            f"{name:<24}{r['images_per_s']:>10.1f}{r['images_per_cpu_s']:>14.1f}"
            f"{r['cpu_ms_per_image']:>14.2f}"
        )
    for f in formats:
        ratio = pc["ratios"][f]
        print(
            f"ours ({f}) / official: {ratio['images_per_cpu_s']:.2f}x per CPU-second, "
            f"{ratio['images_per_s']:.2f}x wall (goal {pc['goal_ratio']}x)"
        )
    header = "".join(f"{f + ' CPU ms':>16}" for f in formats)
    print(f"{'stage (ours)':<14}{header}   {'official stages':<18}{'CPU ms':>8}")
    for ours_stage, official_stages in STAGE_PAIRS:
        ms = sum(off["stage_cpu_ms_per_image"][s] for s in official_stages)
        label = " + ".join(official_stages) or "(in targets)"
        cells = "".join(f"{ours[f]['stage_cpu_ms_per_image'][ours_stage]:>16.2f}" for f in formats)
        print(f"{ours_stage:<14}{cells}   {label:<18}{ms:>8.2f}")
    finish = ours.get("step_finish_cpu_ms_per_image")
    if finish:
        print(
            f"compact: finishing in the train step costs {finish['total']:.2f} CPU ms per image on "
            f"this CPU, one thread (pixel affine {finish['pixel_affine']:.2f}, heatmaps "
            f"{finish['heatmaps']:.2f}); on a GPU trainer it runs on the accelerator"
        )
        if "dense_native_finish" in finish:
            print(
                f"dense: the native finish of the same batch in the pipeline costs "
                f"{finish['dense_native_finish']:.2f} CPU ms per image"
            )


def print_table(result: dict) -> None:
    setup = result["setup"]
    print(
        f"\ninput pipeline: {setup['images']} shapes images {setup['image_size']} -> {setup['input_size']}^2, "
        f"{setup['num_classes']} classes, batch {setup['batch_size']}, {result['machine']['cpus']} CPUs"
    )
    for batch_format, views in result.get("formats", {}).items():
        print(
            f"{batch_format} batches: full training pipeline {views['full_pipeline_images_per_s']:.1f} "
            f"images/s ({views['full_pipeline_cpu_ms_per_image']:.1f} CPU ms per image)"
        )
        print(
            f"{'stage':<12}{'pipeline cut here: images/s':>30}{'stage CPU ms/image (1 thread)':>32}"
        )
        for name in STAGE_CUTS:
            print(
                f"{name:<12}{views['parallel_cut_images_per_s'][name]:>30.1f}"
                f"{views['stage_ms_per_image'][name]:>32.2f}"
            )
    if "per_core" in result:
        print_per_core(result["per_core"])
    print(
        f"load average: {result['machine']['load_average']} at start, "
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
    parser.add_argument(
        "--official-python",
        default=None,
        help="a Python with NumPy and OpenCV: compare per core with the official sampler",
    )
    parser.add_argument("--per-core-only", action="store_true", help="only the per-core comparison")
    parser.add_argument(
        "--cpu", type=int, default=None, help="the CPU of the per-core runs (default: the last)"
    )
    parser.add_argument(
        "--batch-format",
        default="dense,compact",
        help="comma-separated batch formats to measure: dense, compact (default both)",
    )
    parser.add_argument("--per-core-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", dest="json_out", default=None, help="also write the JSON here")
    parser.add_argument(
        "--tf-resize",
        action="store_true",
        help="force the TensorFlow ops for the resize, the colour map and the dense finishing "
        "(not the native ops)",
    )
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="TensorFlow's default CPU allocator instead of BFC (as `cornernet` sets it)",
    )
    args = parser.parse_args(argv)
    args.batch_formats = [f.strip() for f in args.batch_format.split(",") if f.strip()]
    if not args.batch_formats or set(args.batch_formats) - {"dense", "compact"}:
        parser.error(f"--batch-format takes dense and/or compact, got {args.batch_format!r}")
    if args.tf_resize:
        os.environ["CORNERNET_NATIVE_RESIZE"] = "0"
    if args.default_allocator:
        os.environ[tf_allocator.ENV] = "false"
    else:
        tf_allocator.prefer_bfc_cpu_allocator()  # as `cornernet train` runs; children inherit it
    if args.per_core_child:
        print(json.dumps(run_per_core_child(args)))
        return 0
    if args.per_core_only and not args.official_python:
        parser.error("--per-core-only needs --official-python")
    harness.report(run(args), args.json_out, table=print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
