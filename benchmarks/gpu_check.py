"""GPU check: everything about the GPU path that a CPU cannot prove, in one command.

    python benchmarks/gpu_check.py [--json out.json] [--skip-hg104] [--no-build]

Run it on a machine with one or more NVIDIA GPUs, a CUDA build of TensorFlow and nvcc (see
docs/gpu.md for the official TensorFlow GPU container). Stages:

  a. build   Rebuilds the native corner-pool op with its CUDA kernels for the GPUs found
             (CORNERNET_CUDA_ARCHS from their compute capability unless set) and reports nvcc,
             the architectures, TensorFlow's CUDA/cuDNN versions and whether the library
             registered GPU kernels.
  b. op      The native op on every GPU against the native op on the CPU and the portable op
             (impl='tf') on the GPU: forward and gradient, all four directions, float32, float16,
             bfloat16 and float64, odd and HG-104-sized tensors, ties. Also that impl='auto'
             chooses the native op on every GPU (its self-check passes there).
  c. train   model.fit under MirroredStrategy on all visible GPUs, float32 and mixed_float16:
             20 steps of the tiny config and 5 of HG-104 on synthetic shapes data. The first
             step's loss must match the CPU's (same weights, same batch, computed in a separate
             CPU-only process) and every logged loss must be finite. TF32 is switched off in the
             float32 runs so that they compare with the CPU at float32 precision.
  c2. compact The compact training batch (data.batch_format, the default on GPUs) of the tiny
             config's pipeline finished on every GPU (normalised images, heatmaps drawn with one
             scatter) against the dense batch of the same pipeline, which the CPU builds: equal
             to float32 rounding (bitwise where the GPU keeps the CPU's arithmetic), and the
             finishing time per image on the first GPU.
  d. timing  The HG-104 511x511 single-scale flip test (Detector.detect: forward + decode +
             soft-NMS) with the native and the portable corner pools, and the training step's
             images per second per GPU (HG-104, float32 with TF32 and mixed_float16:
             --timing-steps more steps of stage c's models once the CPU reference has ended;
             median after the first).
  e. report  A table and a JSON document (stdout, and --json FILE); exit code 1 on any failed
             check, 0 when all pass.

On a machine without a visible GPU it prints one line, "no GPU visible ...", and exits with
code 2 before doing anything else. The run is sized for under 8 minutes on one H100, build
included: one CUDA architecture is compiled, the CPU reference runs in its own process while the
GPUs train, and HG-104 tracing takes most of the time; --skip-hg104 leaves out the HG-104 parts,
--no-build reuses the built library. Every stage prints its start time.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when loaded by file path
import harness  # noqa: E402

ROOT = harness.ROOT
SMALL_CONFIG = os.path.join(ROOT, "configs", "cornernet_tiny.yaml")
HG104_CONFIG = os.path.join(ROOT, "configs", "cornernet_hg104_coco.yaml")
DIRECTIONS = ("top", "left", "bottom", "right")
NO_GPU_EXIT = 2


# ---------------------------------------------------------------------------------------------
# Arguments and the no-GPU exit (before TensorFlow is imported: that alone takes seconds)


def parse_args(argv=None) -> argparse.Namespace:
    parser = harness.script_parser(__doc__, "gpu_check.py")
    parser.add_argument("--json", metavar="FILE", help="also write the JSON report to FILE")
    parser.add_argument("--no-build", action="store_true", help="stage a: use the built library")
    parser.add_argument("--skip-hg104", action="store_true", help="stages c, d: tiny config only")
    parser.add_argument("--small-steps", type=int, default=20, help="stage c (default 20)")
    parser.add_argument("--hg104-steps", type=int, default=5, help="stage c (default 5)")
    parser.add_argument(
        "--batch-per-gpu",
        type=int,
        default=2,
        help="stage c: images per GPU per step (default 2; the global batch is this x GPUs)",
    )
    parser.add_argument(
        "--timing-repeats", type=int, default=10, help="stage d: flip-test runs (default 10)"
    )
    parser.add_argument(
        "--timing-steps", type=int, default=6, help="stage d: training steps timed (default 6)"
    )
    parser.add_argument(
        "--rtol-float32",
        type=float,
        default=2e-3,
        help="stage c: first-step loss vs the CPU's, float32 (default 2e-3)",
    )
    parser.add_argument(
        "--rtol-mixed",
        type=float,
        default=3e-2,
        help="stage c: first-step loss vs the CPU's float32 loss, mixed_float16 (default 3e-2)",
    )
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="test this script without a GPU: two logical CPU devices stand in for GPUs and the "
        "models are shrunk; proves nothing about GPUs",
    )
    parser.add_argument("--cpu-reference", metavar="DIR", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def gpu_hardware_present() -> bool:
    """Whether an NVIDIA device node or driver entry exists (cheap; no TensorFlow)."""
    if glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*"):
        return True
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
            return "GPU" in out.stdout
        except (OSError, subprocess.SubprocessError):
            return False
    return False


# ---------------------------------------------------------------------------------------------
# Shared helpers (imported lazily: TensorFlow)


def load_configs(args, workdir: str) -> dict:
    """name -> (config path, overrides) of the models trained in stage c, with shapes data."""
    data = [
        f"data.train_annotations={os.path.join(workdir, 'shapes', 'train', 'annotations.json')}",
        f"data.train_images={os.path.join(workdir, 'shapes', 'train', 'images')}",
        "data.val_annotations=null",
        "data.val_images=null",
        "data.seed=0",
        "data.shuffle_buffer=16",
    ]
    configs = {"tiny": (SMALL_CONFIG, data)}
    if not args.skip_hg104:
        hg = data + ["model.num_classes=3", "train.learning_rate=0.00025"]
        if args.cpu_dry_run:  # the same code, shrunk: 2 stacks, 3 levels, narrow
            hg += [
                "model.dims=[16,16,24,32]",
                "model.modules=[1,1,1,2]",
                "model.stem_dims=[8,16]",
                "model.cnv_dim=16",
                "model.pool_dim=8",
                "model.head_dim=8",
                "data.input_size=[63,63]",
            ]
        configs["hg104"] = (HG104_CONFIG, hg)
    return configs


def fixed_batch(config, global_batch: int) -> tuple:
    """One augmented batch of the configured pipeline, as NumPy (images, targets)."""
    from cornernet_tf.data import build_dataset

    ds = build_dataset(config.data, True, batch_size=global_batch, model_config=config.model)
    images, targets = next(iter(ds))
    return images.numpy(), {k: v.numpy() for k, v in targets.items()}


def batch_dataset(images, targets):
    import tensorflow as tf

    n = images.shape[0]
    ds = tf.data.Dataset.from_tensor_slices((images, targets)).batch(n).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


def make_step_recorder():
    import keras

    class StepRecorder(keras.callbacks.Callback):
        """Loss (Keras' running mean: exact at step 1) and wall time of every step; reading the
        loss waits for the step, so the times are step times."""

        def __init__(self):
            super().__init__()
            self.losses, self.times = [], []
            self._last = None

        def on_train_begin(self, logs=None):
            self._last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))
            now = time.perf_counter()
            self.times.append(now - self._last)
            self._last = now

    return StepRecorder()


def compile_model(config, strategy, policy: str):
    """CornerNet built and compiled in ``strategy``'s scope under the Keras dtype ``policy``
    (mixed_float16: compile wraps the optimizer in a LossScaleOptimizer)."""
    import keras

    import cornernet_tf

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with strategy.scope():
            model = cornernet_tf.build_model(config.model)
            model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def fit_steps(model, images, targets, steps: int) -> dict:
    """model.fit for ``steps`` steps on the fixed batch: losses and step times."""
    recorder = make_step_recorder()
    model.fit(
        batch_dataset(images, targets),
        epochs=1,
        steps_per_epoch=steps,
        callbacks=[recorder],
        verbose=0,
    )
    return {"losses": recorder.losses, "step_seconds": recorder.times}


# ---------------------------------------------------------------------------------------------
# CPU reference (a separate process: GPUs hidden before TensorFlow starts)


def cpu_reference_main(directory: str) -> int:
    """The first training step's loss on the CPU for every model in ``directory``/jobs.json."""
    import numpy as np
    import tensorflow as tf

    import cornernet_tf

    tf.config.set_visible_devices([], "GPU")
    # Leave cores to the GPU process, which trains meanwhile.
    tf.config.threading.set_intra_op_parallelism_threads(max(1, (os.cpu_count() or 2) - 2))
    jobs = json.load(open(os.path.join(directory, "jobs.json"), encoding="utf-8"))
    out = {}
    for name, job in jobs.items():
        config = cornernet_tf.load_config(job["config"], job["overrides"])
        arrays = np.load(os.path.join(directory, f"{name}_batch.npz"))
        images = arrays["images"]
        targets = {k[2:]: arrays[k] for k in arrays.files if k.startswith("t_")}
        w = np.load(os.path.join(directory, f"{name}_weights.npz"))
        start = time.perf_counter()
        model = compile_model(config, tf.distribute.get_strategy(), "float32")
        model.set_weights([w[f"w{i}"] for i in range(len(w.files))])
        loss = fit_steps(model, images, targets, 1)["losses"][0]
        out[name] = {"loss": loss, "seconds": time.perf_counter() - start}
    json.dump(out, open(os.path.join(directory, "cpu_losses.json"), "w", encoding="utf-8"))
    return 0


# ---------------------------------------------------------------------------------------------
# Stages


class Report:
    def __init__(self):
        self.data: dict = {"failures": []}
        self.started = time.perf_counter()

    def fail(self, stage: str, message: str) -> None:
        self.data["failures"].append(f"{stage}: {message}")
        print(f"  FAIL {stage}: {message}", flush=True)

    def stage(self, name: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f} s] stage {name}", flush=True)


def stage_build(args, report: Report, devices: list, device_type: str) -> None:
    import tensorflow as tf

    from cornernet_tf.ops import build

    report.stage("a: build")
    info: dict = {"tensorflow": tf.__version__, "built_with_cuda": tf.test.is_built_with_cuda()}
    build_info = tf.sysconfig.get_build_info()
    info.update(
        {k: build_info.get(k) for k in ("cuda_version", "cudnn_version") if k in build_info}
    )
    archs = sorted({d["compute_capability"] for d in devices if d.get("compute_capability")})
    if archs and not os.environ.get("CORNERNET_CUDA_ARCHS"):
        os.environ["CORNERNET_CUDA_ARCHS"] = ",".join(f"{a}{b}" for a, b in archs)
    info["cuda_archs"] = os.environ.get("CORNERNET_CUDA_ARCHS")
    nvcc = build.find_nvcc()
    info["nvcc"] = nvcc
    if nvcc:
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        info["nvcc_version"] = version.strip().splitlines()[-1] if version.strip() else None
    try:
        result = build.build(force=not args.no_build, verbose=False)
        info.update(
            library=str(result.library),
            built=result.built,
            cuda_kernels_compiled=result.cuda,
            cuda_reason=result.cuda_reason,
            build_seconds=round(result.seconds, 1),
        )
    except build.BuildError as exc:
        report.fail("build", str(exc).splitlines()[0])
        report.data["build"] = info
        return
    import importlib

    corner_pool_module = importlib.import_module("cornernet_tf.ops.corner_pool")
    native_devices = importlib.import_module("cornernet_tf.ops.native_devices")
    corner_pool_module.reset_native_state()
    ok, reason = corner_pool_module.native_available()
    info["library_loads"] = ok
    if not ok:
        report.fail("build", f"the library does not load: {reason}")
    else:
        types = sorted({t for t, _ in native_devices.registered_kernels("CornerPool")})
        info["kernel_device_types"] = types
        if device_type not in types:
            report.fail(
                "build",
                f"the library has no {device_type} kernels ({info.get('cuda_reason')})",
            )
    report.data["build"] = info
    for key, value in info.items():
        print(f"  {key}: {value}")


def _pool_and_grad(module, x, dy, direction, device, impl):
    import tensorflow as tf

    from cornernet_tf.ops import corner_pool

    with tf.device(device):
        x = tf.identity(x)
        dy = tf.identity(dy)
        if impl == "native":
            y = module.corner_pool(x, direction=direction)
            dx = module.corner_pool_grad(y, dy, direction=direction)
        else:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = corner_pool(x, direction, impl="tf")
            dx = tape.gradient(y, x, output_gradients=dy)
    return y, dx


def stage_op(args, report: Report, device_names: list, device_type: str) -> None:
    import importlib

    import numpy as np
    import tensorflow as tf

    report.stage("b: op")
    corner_pool_module = importlib.import_module("cornernet_tf.ops.corner_pool")
    rows = []
    if not corner_pool_module.native_available()[0]:
        report.fail("op", "the native op is not available (stage a)")
        report.data["op"] = rows
        return
    module = corner_pool_module.load_native()
    auto = {}
    for name in device_names:
        key = f"{device_type}:{name.rsplit(':', 1)[-1]}"
        auto[key] = corner_pool_module.resolve_impl("auto", device=key)
        if auto[key] != "native":
            report.fail("op", f"impl='auto' does not choose the native op on {key} (warning above)")
    shapes = [(2, 9, 7, 5), (1, 33, 65, 3), (4, 128, 128, 128)]
    if args.cpu_dry_run:
        shapes = shapes[:2]
    rng = np.random.default_rng(0)
    for dtype in (tf.float32, tf.float16, tf.bfloat16, tf.float64):
        for shape in shapes:
            # small integers: ties everywhere, and every sum is exact in every dtype
            x = tf.cast(rng.integers(-3, 3, size=shape), dtype)
            dy = tf.cast(rng.integers(-2, 3, size=shape), dtype)
            worst = {"forward": 0.0, "gradient": 0.0}
            for d in DIRECTIONS:
                want = _pool_and_grad(module, x, dy, d, "/CPU:0", "native")
                for device in device_names:
                    for impl in ("native", "tf"):
                        got = _pool_and_grad(module, x, dy, d, device, impl)
                        if impl == "native" and device_type not in got[0].device:
                            report.fail("op", f"the native op ran on {got[0].device}, not {device}")
                        for part, a, b in zip(("forward", "gradient"), got, want):
                            diff = float(
                                tf.reduce_max(
                                    tf.abs(tf.cast(a, tf.float64) - tf.cast(b, tf.float64))
                                )
                            )
                            worst[part] = max(worst[part], diff)
            row = {"dtype": dtype.name, "shape": list(shape), **worst}
            rows.append(row)
            if worst["forward"] or worst["gradient"]:
                report.fail("op", f"{dtype.name} {shape}: GPU differs from CPU by {worst}")
    # Random (non-integer) float32: gradients are sums in the same order on both devices.
    x = tf.constant(rng.standard_normal((2, 64, 96, 128)), tf.float32)
    dy = tf.constant(rng.standard_normal((2, 64, 96, 128)), tf.float32)
    worst = 0.0
    for d in DIRECTIONS:
        want = _pool_and_grad(module, x, dy, d, "/CPU:0", "native")
        got = _pool_and_grad(module, x, dy, d, device_names[0], "native")
        worst = max(worst, float(tf.reduce_max(tf.abs(got[1] - want[1]))))
        if not bool(tf.reduce_all(got[0] == want[0])):
            report.fail("op", f"random float32 forward ({d}) differs from the CPU")
    rows.append({"dtype": "float32 random", "shape": [2, 64, 96, 128], "gradient": worst})
    if worst > 1e-5:
        report.fail("op", f"random float32 gradient differs from the CPU by {worst:g}")
    report.data["op"] = {"auto": auto, "checks": rows}
    print(
        f"  auto: {auto}; {len(rows)} dtype/shape checks, worst gradient diff "
        f"{max(r.get('gradient', 0.0) for r in rows):g}"
    )


def stage_train(args, report: Report, device_names: list, workdir: str) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import cornernet_tf
    from cornernet_tf.data import generate_shapes

    report.stage("c: train")
    configs = load_configs(args, workdir)
    global_batch = args.batch_per_gpu * len(device_names)
    size = 128 if args.cpu_dry_run else 512
    generate_shapes(
        os.path.join(workdir, "shapes"),
        seed=0,
        size=(size, size),
        splits={"train": max(2 * global_batch, 8)},
    )
    strategy = tf.distribute.MirroredStrategy(device_names)
    ref_dir = os.path.join(workdir, "cpu_reference")
    os.makedirs(ref_dir, exist_ok=True)
    jobs, prepared = {}, {}
    for name, (path, overrides) in configs.items():
        config = cornernet_tf.load_config(path, overrides)
        images, targets = fixed_batch(config, global_batch)
        keras.utils.set_random_seed(0)
        model = compile_model(config, strategy, "float32")
        weights = model.get_weights()
        np.savez(
            os.path.join(ref_dir, f"{name}_batch.npz"),
            images=images,
            **{f"t_{k}": v for k, v in targets.items()},
        )
        np.savez(
            os.path.join(ref_dir, f"{name}_weights.npz"),
            **{f"w{i}": w for i, w in enumerate(weights)},
        )
        jobs[name] = {"config": path, "overrides": overrides}
        prepared[name] = (config, images, targets, weights, model)
    json.dump(jobs, open(os.path.join(ref_dir, "jobs.json"), "w", encoding="utf-8"))

    # The CPU reference runs in its own process while the GPUs train (stage d waits for it).
    print(f"  CPU reference started (first step, float32, global batch {global_batch})", flush=True)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    reference = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--cpu-reference", ref_dir],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    rows, models = [], {}
    for name, (config, images, targets, weights, f32_model) in prepared.items():
        steps = args.small_steps if name == "tiny" else args.hg104_steps
        for policy in ("float32", "mixed_float16"):
            if not args.cpu_dry_run:  # float32 compares with the CPU at float32 precision
                tf.config.experimental.enable_tensor_float_32_execution(policy != "float32")
            start = time.perf_counter()
            try:
                if policy == "float32":
                    model = f32_model
                else:
                    model = compile_model(config, strategy, policy)
                    model.set_weights(weights)
                result = fit_steps(model, images, targets, steps)
            except Exception as exc:  # noqa: BLE001 - reported as a failed check, run goes on
                report.fail("train", f"{name} {policy}: {type(exc).__name__}: {str(exc)[:500]}")
                continue
            finally:
                if not args.cpu_dry_run:
                    tf.config.experimental.enable_tensor_float_32_execution(True)
            losses = result["losses"]
            row = {
                "model": name,
                "policy": policy,
                "replicas": strategy.num_replicas_in_sync,
                "global_batch": global_batch,
                "input": list(config.data.input_size),
                "steps": len(losses),
                "first_loss": losses[0],
                "last_loss": losses[-1],
                "all_finite": bool(np.isfinite(losses).all()),
                "first_step_seconds": result["step_seconds"][0],
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            print(f"  {name} {policy}: losses {[round(v, 4) for v in losses]}", flush=True)
            if len(losses) != steps:
                report.fail("train", f"{name} {policy}: {len(losses)} of {steps} steps ran")
            if not row["all_finite"]:
                report.fail("train", f"{name} {policy}: non-finite loss in {losses}")
            models[(name, policy)] = (config, model, images, targets)

    output, _ = reference.communicate()
    losses_path = os.path.join(ref_dir, "cpu_losses.json")
    if reference.returncode != 0 or not os.path.exists(losses_path):
        report.fail("train", "the CPU reference failed: " + output.strip()[-2000:])
        cpu = {}
    else:
        cpu = json.load(open(losses_path, encoding="utf-8"))
    for row in rows:
        if row["model"] not in cpu:
            continue
        reference_loss = cpu[row["model"]]["loss"]
        rtol = args.rtol_float32 if row["policy"] == "float32" else args.rtol_mixed
        rel = abs(row["first_loss"] - reference_loss) / max(abs(reference_loss), 1e-12)
        row.update(cpu_first_loss=reference_loss, relative_difference=rel, rtol=rtol)
        print(
            f"  {row['model']} {row['policy']}: first loss {row['first_loss']:.6g}, CPU "
            f"{reference_loss:.6g} (relative {rel:.2e}, tolerance {rtol:g})"
        )
        if rel > rtol:
            report.fail(
                "train",
                f"{row['model']} {row['policy']}: first-step loss {row['first_loss']:.6g} vs CPU "
                f"{reference_loss:.6g} (relative {rel:.2e} > {rtol:g})",
            )
    report.data["train"] = rows
    report.data["cpu_reference_seconds"] = {k: round(v["seconds"], 1) for k, v in cpu.items()}
    return models


def stage_compact(args, report: Report, device_names: list, workdir: str) -> None:
    """Compact batches finished on each device against the dense batch the CPU pipeline builds."""
    import numpy as np
    import tensorflow as tf

    import cornernet_tf
    from cornernet_tf.data import build_dataset
    from cornernet_tf.data.finish import finish_batch

    report.stage("c2: compact batches")
    path, overrides = load_configs(args, workdir)["tiny"]
    config = cornernet_tf.load_config(path, overrides)
    # Two pipelines with the same seed give the same images only in deterministic order.
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, deterministic=True))
    batch = args.batch_per_gpu

    def first(batch_format):
        ds = build_dataset(
            config.data,
            True,
            batch_size=batch,
            model_config=config.model,
            batch_format=batch_format,
        )
        return next(iter(ds))

    dense_images, dense_targets = first("dense")
    images, targets = first("compact")
    out_h, out_w = (int(v) for v in dense_targets["tl_heatmap"].shape[1:3])
    classes = int(dense_targets["tl_heatmap"].shape[3])
    finish = tf.function(lambda i, t: finish_batch(i, t, out_h, out_w, classes))
    rows = []
    for device in device_names:
        with tf.device(device):
            got_images, got_targets = finish(images, targets)
        row = {"device": device, "ran_on": got_images.device}
        pairs = [("images", got_images, dense_images)] + [
            (k, got_targets[k], dense_targets[k]) for k in ("tl_heatmap", "br_heatmap")
        ]
        for name, got, want in pairs:
            got, want = np.asarray(got), np.asarray(want)
            row[name] = {
                "max_abs_diff": float(np.abs(got - want).max()),
                "bitwise": bool(np.array_equal(got, want)),
            }
            if row[name]["max_abs_diff"] > 1e-5:
                report.fail("compact", f"{name} finished on {device} differs from the dense batch")
        for key in ("tl_tag", "br_tag", "tl_regr", "br_regr", "tag_mask"):
            if not np.array_equal(np.asarray(got_targets[key]), np.asarray(dense_targets[key])):
                report.fail("compact", f"{key} of the compact batch differs from the dense one")
        rows.append(row)
    with tf.device(device_names[0]):
        finish(images, targets)  # warm
        times = []
        for _ in range(5):
            start = time.perf_counter()
            out = finish(images, targets)
            float(tf.reduce_sum(out[0]))  # waits for the device
            times.append(time.perf_counter() - start)
    per_image_ms = 1000.0 * statistics.median(times) / batch
    report.data["compact"] = {"checks": rows, "finish_ms_per_image": round(per_image_ms, 3)}
    print(
        f"  {len(rows)} devices checked; finishing {per_image_ms:.2f} ms per image on {device_names[0]}"
    )


def stage_timing(args, report: Report, models: dict, device_names: list) -> None:
    import numpy as np
    import tensorflow as tf

    import cornernet_tf

    report.stage("d: timing")
    timing: dict = {"training": []}
    # Training throughput, the train functions already traced in stage c.
    for (name, policy), (config, model, images, targets) in models.items():
        if name != "hg104" and not args.cpu_dry_run:
            continue
        times = fit_steps(model, images, targets, args.timing_steps)["step_seconds"]
        step = statistics.median(times[1:] or times)
        batch = images.shape[0]
        timing["training"].append(
            {
                "model": name,
                "policy": policy,
                "input": list(config.data.input_size),
                "global_batch": batch,
                "step_seconds_median": step,
                "images_per_second_per_device": batch / step / len(device_names),
            }
        )
        print(
            f"  train step {name} {policy}: {step * 1000:.0f} ms, "
            f"{batch / step / len(device_names):.1f} images/s per device"
        )
    if ("hg104", "float32") not in models:
        timing["flip_test"] = "skipped: no HG-104 model (--skip-hg104 or stage c failed)"
        report.data["timing"] = timing
        return
    config, trained, _, _ = models[("hg104", "float32")]
    size = 63 if args.cpu_dry_run else 511
    image = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    flip = {"image": [size, size], "test": "single scale, flip", "repeats": args.timing_repeats}
    device_type = "CPU" if args.cpu_dry_run else "GPU"
    impls = ("native", "tf")
    if device_type not in (report.data.get("build", {}).get("kernel_device_types") or []):
        impls = ("tf",)  # the explicit native op would run on the CPU: not a GPU timing
        flip["native"] = "skipped: the op library has no GPU kernels (stage a)"
    for impl in impls:
        with tf.device(device_names[0]):
            pools = dataclasses.replace(config.model, corner_pool_impl=impl)
            model = cornernet_tf.build_model(pools)
            model.set_weights(trained.get_weights())
            detector = cornernet_tf.Detector(model, {"scales": [1.0], "flip": True})
            start = time.perf_counter()
            detector.detect(image)
            first = time.perf_counter() - start
            detector.detect(image)
            times = []
            for _ in range(args.timing_repeats):
                start = time.perf_counter()
                detector.detect(image)
                times.append(time.perf_counter() - start)
        flip[impl] = {
            "median_ms": 1000 * statistics.median(times),
            "min_ms": 1000 * min(times),
            "first_call_s": first,
        }
        print(f"  flip test, {impl} corner pools: {flip[impl]['median_ms']:.1f} ms median")
    if "native" in impls:
        flip["native_speedup"] = flip["tf"]["median_ms"] / flip["native"]["median_ms"]
    timing["flip_test"] = flip
    report.data["timing"] = timing


# ---------------------------------------------------------------------------------------------
# Report


def print_table(data: dict) -> None:
    print("\n== gpu_check summary ==")
    machine = data.get("machine", {})
    print(f"devices: {machine.get('devices')}  TensorFlow {machine.get('tensorflow')}")
    b = data.get("build", {})
    print(
        f"build: CUDA kernels {'yes' if b.get('cuda_kernels_compiled') else 'no'} "
        f"(archs {b.get('cuda_archs')}, {b.get('nvcc_version')}), kernel devices "
        f"{b.get('kernel_device_types')}"
    )
    op = data.get("op") or {}
    if op:
        print(f"op: auto -> {op.get('auto')}; {len(op.get('checks', []))} GPU-vs-CPU checks")
    compact = data.get("compact") or {}
    if compact:
        worst = max(
            (c[k]["max_abs_diff"] for c in compact["checks"] for k in ("images", "tl_heatmap")),
            default=0.0,
        )
        print(
            f"compact batches: finished on {len(compact['checks'])} devices, worst diff from the "
            f"dense batch {worst:g}, {compact['finish_ms_per_image']} ms per image"
        )
    rows = data.get("train") or []
    if rows:
        print(
            f"{'model':6} {'policy':14} {'GPUs':>4} {'batch':>5} {'loss 1':>10} {'CPU loss 1':>10} "
            f"{'rel diff':>9} {'last loss':>10} {'finite':>6}"
        )
        for r in rows:
            cpu = r.get("cpu_first_loss")
            print(
                f"{r['model']:6} {r['policy']:14} {r['replicas']:>4} {r['global_batch']:>5} "
                f"{r['first_loss']:>10.5g} {cpu if cpu is None else format(cpu, '.5g'):>10} "
                f"{format(r.get('relative_difference', float('nan')), '.2e'):>9} "
                f"{r['last_loss']:>10.5g} {str(r['all_finite']):>6}"
            )
    timing = data.get("timing") or {}
    for t in timing.get("training", []):
        print(
            f"train step {t['model']} {t['policy']} {t['input'][0]}x{t['input'][1]}, batch "
            f"{t['global_batch']}: {1000 * t['step_seconds_median']:.0f} ms, "
            f"{t['images_per_second_per_device']:.1f} images/s per GPU"
        )
    flip = timing.get("flip_test")
    if isinstance(flip, dict):
        parts = [
            f"{impl} {flip[impl]['median_ms']:.1f} ms"
            for impl in ("native", "tf")
            if isinstance(flip.get(impl), dict)
        ]
        speedup = f" (native {flip['native_speedup']:.2f}x)" if "native_speedup" in flip else ""
        print(
            f"HG-104 {flip['image'][0]}x{flip['image'][1]} flip test: {', '.join(parts)}{speedup}"
        )
    failures = data.get("failures", [])
    print(
        f"result: {'PASS' if not failures else 'FAIL'} ({len(failures)} failed checks) "
        f"in {data.get('seconds', 0):.0f} s"
    )
    for f in failures:
        print(f"  - {f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    if args.cpu_reference:
        return cpu_reference_main(args.cpu_reference)
    if not args.cpu_dry_run and not gpu_hardware_present():
        print("no GPU visible (no NVIDIA device or driver found); nothing to check")
        return NO_GPU_EXIT

    import tensorflow as tf

    if args.cpu_dry_run:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        device_type = "CPU"
        device_names = [d.name for d in tf.config.list_logical_devices("CPU")]
        details = [{"device_name": "logical CPU"} for _ in device_names]
    else:
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            print(
                "no GPU visible to TensorFlow "
                f"(CUDA build: {tf.test.is_built_with_cuda()}; CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
            return NO_GPU_EXIT
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        device_type = "GPU"
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        device_names = [d.name for d in tf.config.list_logical_devices("GPU")]

    report = Report()
    report.data["machine"] = {
        "devices": [d.get("device_name") for d in details],
        "compute_capability": [d.get("compute_capability") for d in details],
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "dry_run": args.cpu_dry_run,
    }
    workdir = tempfile.mkdtemp(prefix="gpu_check_")
    try:
        stage_build(args, report, details, device_type)
        stage_op(args, report, device_names, device_type)
        models = stage_train(args, report, device_names, workdir)
        stage_compact(args, report, device_names, workdir)
        stage_timing(args, report, models, device_names)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.stage("e: report")
    report.data["seconds"] = time.perf_counter() - report.started
    print_table(report.data)
    document = json.dumps(report.data, indent=2, default=str)
    print(document)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(document + "\n")
    return 1 if report.data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
