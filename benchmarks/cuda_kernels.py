"""The corner-pool CUDA kernels on a real GPU, without TensorFlow: correctness, sanitizers, speed.

    python benchmarks/cuda_kernels.py [--json out.json] [--batch 8] [--no-sanitizer]

The op's GPU kernels live in cornernet_tf/ops/kernels/corner_pool_gpu.cu, a file that needs no
TensorFlow header. This script compiles that very file with nvcc (and the small C host file
benchmarks/cuda_kernels_host.cu) for the GPU it finds and drives it through ctypes, so it runs on
any machine with a GPU, nvcc, NumPy and ml_dtypes, also where no CUDA build of TensorFlow can be
installed. benchmarks/gpu_check.py checks the op inside TensorFlow where one can.

  build     nvcc -O3 for the GPU's compute capability.
  check     forward and backward, all four directions, float32/float64/float16/bfloat16, against
            a NumPy reference of the official code (strict '>' tie routing): odd sizes, an
            HG-104-sized tensor full of ties, and one with more lanes than a launch has threads
            (the grid-stride loop). Guard bands around every buffer must stay untouched, every
            output must be written, dx may overwrite dy, and a second run must give the same bits.
  sanitize  compute-sanitizer memcheck and racecheck over the small cases (when installed).
  speed     forward and backward per direction at the training size [B, 128, 128, 128] against a
            device-to-device copy of the same bytes (the memory-bandwidth floor); when PyTorch
            with CUDA is installed, also the official CornerNet pooling on the same GPU (the
            algorithm of its C++ extension written with PyTorch ops, as it runs there) and
            torch.cummax; the official results must equal ours bit for bit.

Exit code 1 on any failed check, 2 when no GPU is visible, 0 otherwise. --emulated compiles with g++ against
tests/cuda_emulation and runs on the CPU: it tests this script, not a GPU.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when loaded by file path
import harness  # noqa: E402

# The NumPy oracle of the tests (validated there on the official golden tensors; NumPy only).
sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
from corner_pool_reference import reference_backward, reference_forward  # noqa: E402

ROOT = harness.ROOT
KERNEL_DIR = os.path.join(ROOT, "cornernet_tf", "ops", "kernels")
CU_SOURCE = os.path.join(KERNEL_DIR, "corner_pool_gpu.cu")
HOST_SOURCE = os.path.join(ROOT, "benchmarks", "cuda_kernels_host.cu")
EMULATION_DIR = os.path.join(ROOT, "tests", "cuda_emulation")

DIRECTIONS = ("top", "left", "bottom", "right")
# DType codes of corner_pool_gpu.h
DTYPES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
NUMPY_DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}
NO_GPU_EXIT = 2
GUARD = 256  # elements of sentinel on each side of every device buffer
SENTINEL = 1000.0  # exact in every float type tested
SMALL_SHAPES = [(1, 1, 1, 1), (2, 5, 3, 4), (1, 7, 13, 37), (3, 9, 1, 129), (1, 33, 31, 9)]
HG104_SHAPE = (2, 128, 128, 128)  # a pool's input in HG-104 training: 128 channels at 128x128
# Pooling over H has W*C lanes: more than 65535 blocks of 256 threads run the grid-stride loop.
GRID_STRIDE_SHAPE = (1, 3, 4099, 4097)


# ---------------------------------------------------------------------------------------------
# Geometry and inputs (the reference: tests/corner_pool_reference.py)


def geometry(shape, direction):
    """(outer, len, inner, from_end) of an NHWC tensor, as the op computes it."""
    n, h, w, c = shape
    from_end = direction in ("top", "left")
    if direction in ("top", "bottom"):
        return n, h, w * c, from_end
    return n * h, w, c, from_end


def with_ties(shape, rng) -> np.ndarray:
    """Small integers: many ties, exact in every float type tested."""
    return rng.integers(-6, 7, size=shape).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Building and driving the kernels


def nvcc_path() -> str | None:
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and os.path.exists(os.path.join(cuda_home, "bin", "nvcc")):
        return os.path.join(cuda_home, "bin", "nvcc")
    return shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None
    )


def gpu_compute_capability() -> str | None:
    """'90' for an H100/H200, from nvidia-smi; None when it cannot tell."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out[0].replace(".", "") if out else None


def build(out_dir: str, emulated: bool, arch: str | None) -> dict:
    library = os.path.join(out_dir, "corner_pool_cuda_check.so")
    if emulated:
        cmd = ["g++", "-std=c++17", "-O2", "-shared", "-fPIC", "-Wall", "-Werror"]
        cmd += [f"-I{EMULATION_DIR}", f"-I{KERNEL_DIR}", "-DCORNERNET_CUDA_EMULATION"]
        cmd += ["-x", "c++", CU_SOURCE, HOST_SOURCE, "-o", library]
        compiler = "g++ (host emulation)"
    else:
        nvcc = nvcc_path()
        if nvcc is None:
            raise SystemExit("nvcc not found: set CUDA_HOME or put nvcc on PATH")
        arch = arch or gpu_compute_capability() or "90"
        cmd = [nvcc, "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC", f"-I{KERNEL_DIR}"]
        cmd += ["-gencode", f"arch=compute_{arch},code=sm_{arch}", CU_SOURCE, HOST_SOURCE]
        cmd += ["-o", library]
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        compiler = version.strip().splitlines()[-1] if version.strip() else nvcc
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kernel build failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return {"library": library, "compiler": compiler, "arch": arch, "seconds": round(seconds, 1)}


class CudaError(RuntimeError):
    pass


class Kernels:
    """The host entry points of cuda_kernels_host.cu through ctypes."""

    def __init__(self, library: str):
        lib = ctypes.CDLL(library)
        i64, ptr, cint = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
        geometry_args = [i64, i64, i64, cint]
        lib.ck_device.argtypes = [ctypes.c_char_p, cint] + [ctypes.POINTER(cint)] * 3
        lib.ck_malloc.argtypes = [ctypes.POINTER(ptr), i64]
        lib.ck_free.argtypes = [ptr]
        lib.ck_to_device.argtypes = [ptr, ptr, i64]
        lib.ck_to_host.argtypes = [ptr, ptr, i64]
        lib.ck_forward.argtypes = [cint, ptr, ptr, *geometry_args]
        lib.ck_backward.argtypes = [cint, ptr, ptr, ptr, *geometry_args]
        timing = [cint, ctypes.POINTER(ctypes.c_float)]
        lib.ck_time_forward.argtypes = [cint, ptr, ptr, *geometry_args, *timing]
        lib.ck_time_backward.argtypes = [cint, ptr, ptr, ptr, *geometry_args, *timing]
        lib.ck_time_copy.argtypes = [ptr, ptr, i64, *timing]
        lib.ck_error.restype = ctypes.c_char_p
        self.lib = lib

    def check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise CudaError(f"{what}: CUDA error {rc} ({self.lib.ck_error(rc).decode()})")

    def device(self) -> dict:
        name = ctypes.create_string_buffer(256)
        major, minor, sms = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.ck_device(name, 256, major, minor, sms), "cudaGetDeviceProperties")
        return {
            "name": name.value.decode(),
            "compute_capability": f"{major.value}.{minor.value}",
            "multiprocessors": sms.value,
        }


class DeviceBuffer:
    """A device array with GUARD sentinel elements on each side."""

    def __init__(self, kernels: Kernels, values: np.ndarray):
        self.k, self.shape, self.dtype = kernels, values.shape, values.dtype
        self.size = values.size
        self.raw = ctypes.c_void_p()
        total = (self.size + 2 * GUARD) * values.itemsize
        kernels.check(kernels.lib.ck_malloc(ctypes.byref(self.raw), total), "cudaMalloc")
        storage = np.full(self.size + 2 * GUARD, SENTINEL, values.dtype)
        storage[GUARD:-GUARD] = values.ravel()
        kernels.check(
            kernels.lib.ck_to_device(self.raw, storage.ctypes.data, storage.nbytes), "copy in"
        )

    @property
    def ptr(self) -> int:
        return self.raw.value + GUARD * np.dtype(self.dtype).itemsize

    def fetch(self) -> tuple[np.ndarray, bool]:
        """(the body, whether both guard bands still hold the sentinel)."""
        storage = np.empty(self.size + 2 * GUARD, self.dtype)
        self.k.check(
            self.k.lib.ck_to_host(storage.ctypes.data, self.raw, storage.nbytes), "copy out"
        )
        guards = np.concatenate([storage[:GUARD], storage[-GUARD:]]).astype(np.float64)
        return storage[GUARD:-GUARD].reshape(self.shape), bool((guards == SENTINEL).all())

    def free(self) -> None:
        if self.raw.value:
            self.k.lib.ck_free(self.raw)
            self.raw = ctypes.c_void_p()


# ---------------------------------------------------------------------------------------------
# check: exact agreement with the reference


def run_case(k: Kernels, x: np.ndarray, g: np.ndarray, direction: str) -> dict:
    """Forward and backward (into a fresh dx, and over dy) on the device, as NumPy arrays."""
    geo = geometry(x.shape, direction)
    code = DTYPES[str(np.dtype(x.dtype))]
    nan = np.full(x.shape, np.nan, x.dtype)
    xb, yb, gb, dxb, gb2 = (DeviceBuffer(k, a) for a in (x, nan, g, nan, g))
    try:
        k.check(k.lib.ck_forward(code, xb.ptr, yb.ptr, *geo), "forward")
        k.check(k.lib.ck_backward(code, yb.ptr, gb.ptr, dxb.ptr, *geo), "backward")
        k.check(k.lib.ck_backward(code, yb.ptr, gb2.ptr, gb2.ptr, *geo), "backward over dy")
        (x_after, x_ok), (y, y_ok), (g_after, g_ok) = xb.fetch(), yb.fetch(), gb.fetch()
        (dx, dx_ok), (dx_alias, alias_ok) = dxb.fetch(), gb2.fetch()
    finally:
        for b in (xb, yb, gb, dxb, gb2):
            b.free()
    return {
        "y": y,
        "dx": dx,
        "dx_alias": dx_alias,
        "guards_intact": x_ok and y_ok and g_ok and dx_ok and alias_ok,
        "inputs_intact": np.array_equal(x_after, x) and np.array_equal(g_after, g),
    }


def check_shape(k: Kernels, shape, dtypes, seed: int) -> list[dict]:
    """Every direction and dtype on one shape; the reference is computed once per direction."""
    rng = np.random.default_rng(seed)
    x64, g64 = with_ties(shape, rng), rng.integers(-4, 5, size=shape).astype(np.float64)
    results = []
    for direction in DIRECTIONS:
        want_y64 = reference_forward(x64, direction)
        want_dx64 = reference_backward(x64, g64, direction)
        for dtype in dtypes:
            np_dtype = NUMPY_DTYPES[dtype]
            x, g = x64.astype(np_dtype), g64.astype(np_dtype)
            want_y, want_dx = want_y64.astype(np_dtype), want_dx64.astype(np_dtype)
            first, second = run_case(k, x, g, direction), run_case(k, x, g, direction)
            problems = []
            if not np.array_equal(first["y"], want_y):
                problems.append(f"forward differs at {int((first['y'] != want_y).sum())} elements")
            if not np.array_equal(first["dx"], want_dx):
                problems.append(
                    f"backward differs at {int((first['dx'] != want_dx).sum())} elements"
                )
            if not np.array_equal(first["dx_alias"], want_dx):
                problems.append("backward with dx over dy differs")
            if not first["guards_intact"]:
                problems.append("a kernel wrote outside its tensor")
            if not first["inputs_intact"]:
                problems.append("a kernel changed its input")
            for name in ("y", "dx", "dx_alias"):
                if first[name].tobytes() != second[name].tobytes():
                    problems.append(f"a second run gave other bits ({name})")
            results.append(
                {
                    "check": f"{direction} {dtype} {'x'.join(map(str, shape))}",
                    "ok": not problems,
                    "problem": "; ".join(problems),
                }
            )
    return results


def stage_check(k: Kernels, small_only: bool, emulated: bool) -> list[dict]:
    cases = [(shape, tuple(DTYPES)) for shape in SMALL_SHAPES]
    if not small_only:
        cases.append(((1, 16, 16, 8) if emulated else HG104_SHAPE, tuple(DTYPES)))
        if not emulated:
            cases.append((GRID_STRIDE_SHAPE, ("float32",)))
    results = []
    for seed, (shape, dtypes) in enumerate(cases):
        start = time.perf_counter()
        results += check_shape(k, shape, dtypes, seed)
        failed = sum(not r["ok"] for r in results[-4 * len(dtypes) :])
        print(f"  {shape}: {failed} failed, {time.perf_counter() - start:.1f} s", flush=True)
    return results


def stage_sanitize(args, library: str) -> list[dict]:
    """compute-sanitizer over this script's small checks, one run per tool."""
    sanitizer = shutil.which("compute-sanitizer")
    nvcc = nvcc_path()
    if sanitizer is None and nvcc:
        candidate = os.path.join(os.path.dirname(nvcc), "compute-sanitizer")
        sanitizer = candidate if os.path.exists(candidate) else None
    if sanitizer is None:
        return [{"check": "compute-sanitizer", "ok": None, "problem": "not installed"}]
    results = []
    for tool in ("memcheck", "racecheck"):
        cmd = [sanitizer, "--tool", tool, "--error-exitcode", "86", sys.executable, __file__]
        cmd += ["--library", library, "--small-only", "--no-speed", "--no-sanitizer"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.sanitizer_timeout
            )
        except subprocess.TimeoutExpired:
            problem = f"not finished in {args.sanitizer_timeout} s"
            results.append({"check": f"compute-sanitizer {tool}", "ok": None, "problem": problem})
            continue
        summary = re.findall(r"ERROR SUMMARY: .*|RACECHECK SUMMARY: .*", proc.stdout + proc.stderr)
        results.append(
            {
                "check": f"compute-sanitizer {tool}",
                "ok": proc.returncode == 0,
                "problem": "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-1500:],
                "summary": summary[-1] if summary else "",
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return results


# ---------------------------------------------------------------------------------------------
# speed


def median_ms(timer, reps: int, repeats: int) -> float:
    timer(max(1, reps // 4))  # warm-up
    return statistics.median(timer(reps) / reps for _ in range(repeats))


def time_ours(k: Kernels, shape, dtype: str, reps: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(NUMPY_DTYPES[dtype])
    g = rng.standard_normal(shape).astype(NUMPY_DTYPES[dtype])
    code, nbytes = DTYPES[dtype], x.nbytes
    xb, yb, gb, dxb = (DeviceBuffer(k, a) for a in (x, x, g, g))
    ms = ctypes.c_float()

    def timed(call):
        def timer(n):
            k.check(call(n), "timing")
            return ms.value

        return median_ms(timer, reps, repeats)

    try:
        copy = timed(lambda n: k.lib.ck_time_copy(yb.ptr, xb.ptr, nbytes, n, ctypes.byref(ms)))
        out = {"copy_ms": copy, "bytes": nbytes}
        for direction in DIRECTIONS:
            geo = geometry(shape, direction)
            fwd = timed(
                lambda n, geo=geo: k.lib.ck_time_forward(
                    code, xb.ptr, yb.ptr, *geo, n, ctypes.byref(ms)
                )
            )
            bwd = timed(
                lambda n, geo=geo: k.lib.ck_time_backward(
                    code, yb.ptr, gb.ptr, dxb.ptr, *geo, n, ctypes.byref(ms)
                )
            )
            out[direction] = {"forward_ms": fwd, "backward_ms": bwd}
    finally:
        for b in (xb, yb, gb, dxb):
            b.free()
    return out


def official_forward(x, dim: int, from_end: bool):
    """The official extension's forward as it runs on a GPU: log-step doubling with max_out."""
    import torch

    out = x.clone()
    size, step = x.size(dim), 1
    while step < size:
        keep = slice(0, size - step) if from_end else slice(step, size)
        other = slice(step, size) if from_end else slice(0, size - step)
        index = [slice(None)] * x.dim()
        index[dim] = keep
        target = out[tuple(index)]
        current = target.clone()
        index[dim] = other
        torch.maximum(current, out[tuple(index)].clone(), out=target)
        step <<= 1
    return out


def official_backward(x, grad, dim: int, from_end: bool):
    """The official extension's backward: a row-by-row loop that keeps the running maximum and
    its index (float32 and int64 buffers) and scatter-adds each row's gradient to the index."""
    import torch

    size = x.size(dim)
    first = size - 1 if from_end else 0
    out = torch.zeros_like(x)
    max_val = x.select(dim, first).clone()
    max_ind = torch.full_like(max_val, first, dtype=torch.int64)
    out.select(dim, first).copy_(grad.select(dim, first))
    index = max_ind.unsqueeze(dim)
    for step in range(1, size):
        row = first - step if from_end else step
        current = x.select(dim, row)
        greater = current > max_val
        max_val.masked_scatter_(greater, torch.masked_select(current, greater))
        max_ind.masked_fill_(greater, row)
        out.scatter_add_(dim, index, grad.select(dim, row).unsqueeze(dim))
    return out


def cummax_forward(x, dim: int, from_end: bool):
    import torch

    if from_end:
        return torch.flip(torch.cummax(torch.flip(x, [dim]), dim)[0], [dim])
    return torch.cummax(x, dim)[0]


def stage_torch(shape, reps: int, repeats: int, k: Kernels) -> dict:
    """Official pooling and torch.cummax in PyTorch on the same GPU, float32, NCHW; the official
    results compared with ours."""
    try:
        import torch
    except ImportError:
        return {"skipped": "PyTorch is not installed"}
    if not torch.cuda.is_available():
        return {"skipped": "PyTorch sees no CUDA device"}
    rng = np.random.default_rng(3)
    x_nhwc = with_ties(shape, rng).astype(np.float32)
    g_nhwc = rng.integers(-4, 5, size=shape).astype(np.float32)
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous().cuda()
    g = torch.from_numpy(g_nhwc).permute(0, 3, 1, 2).contiguous().cuda()

    def cuda_ms(fn) -> float:
        def timer(n):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop)

        return median_ms(timer, reps, repeats)

    out = {"version": torch.__version__, "agreement": {}}
    for direction in DIRECTIONS:
        dim = 2 if direction in ("top", "bottom") else 3
        from_end = direction in ("top", "left")
        y = official_forward(x, dim, from_end)
        dx = official_backward(x, g, dim, from_end)
        ours_run = run_case(k, x_nhwc, g_nhwc, direction)
        to_nhwc = lambda t: t.permute(0, 2, 3, 1).cpu().numpy()  # noqa: E731
        out["agreement"][direction] = bool(
            np.array_equal(to_nhwc(y), ours_run["y"])
            and np.array_equal(to_nhwc(dx), ours_run["dx"])
        )
        out[direction] = time_torch_direction(x, g, dim, from_end, cuda_ms)
    return out


def time_torch_direction(x, g, dim: int, from_end: bool, cuda_ms) -> dict:
    import torch

    xr = x.clone().requires_grad_(True)
    yr = cummax_forward(xr, dim, from_end)
    return {
        "official_forward_ms": cuda_ms(lambda: official_forward(x, dim, from_end)),
        "official_backward_ms": cuda_ms(lambda: official_backward(x, g, dim, from_end)),
        "cummax_forward_ms": cuda_ms(lambda: cummax_forward(x, dim, from_end)),
        "cummax_backward_ms": cuda_ms(lambda: torch.autograd.grad(yr, xr, g, retain_graph=True)),
    }


def stage_speed(k: Kernels, args) -> dict:
    shape = (args.batch, 128, 128, 128) if not args.emulated else (1, 8, 8, 8)
    reps = args.reps if not args.emulated else 2
    speed = {"shape_nhwc": list(shape), "dtypes": {}}
    for dtype in ("float32", "bfloat16", "float16"):
        speed["dtypes"][dtype] = time_ours(k, shape, dtype, reps, args.repeats)
    speed["torch"] = (
        stage_torch(shape, max(1, reps // 4), args.repeats, k)
        if not args.emulated
        else {"skipped": "emulated"}
    )
    return speed


# ---------------------------------------------------------------------------------------------
# report


def gb_per_s(tensor_bytes: int, tensors_moved: int, ms: float) -> float:
    """Forward and copy read one tensor and write one; backward reads two and writes one."""
    return tensors_moved * tensor_bytes / ms / 1e6


def print_report(report: dict) -> None:
    checks = report["checks"]
    failed = [c for c in checks if c["ok"] is False]
    print(f"\nchecks: {sum(c['ok'] is True for c in checks)} passed, {len(failed)} failed")
    for c in failed:
        print(f"  FAILED {c['check']}: {c['problem']}")
    for c in checks:
        if c["check"].startswith("compute-sanitizer"):
            status = {True: "ok", False: "FAILED", None: "not run"}[c["ok"]]
            print(f"  {c['check']}: {status} {c.get('summary') or c['problem']}")
    speed = report.get("speed")
    if not speed:
        return
    print(f"\nspeed, NHWC {speed['shape_nhwc']}, median ms per call (GB/s moved)")
    print("| dtype | direction | forward | backward | copy of the tensor |")
    print("|---|---|---|---|---|")
    for dtype, t in speed["dtypes"].items():
        nbytes, copy = t["bytes"], t["copy_ms"]
        for d in DIRECTIONS:
            f, b = t[d]["forward_ms"], t[d]["backward_ms"]
            print(
                f"| {dtype} | {d} | {f:.4f} ({gb_per_s(nbytes, 2, f):.0f}) "
                f"| {b:.4f} ({gb_per_s(nbytes, 3, b):.0f}) "
                f"| {copy:.4f} ({gb_per_s(nbytes, 2, copy):.0f}) |"
            )
    tt = speed["torch"]
    if "skipped" in tt:
        print(f"\nPyTorch comparison skipped: {tt['skipped']}")
        return
    ours = speed["dtypes"]["float32"]
    print(f"\nfloat32 against PyTorch {tt['version']} on the same GPU, median ms per call")
    print(
        "| direction | ours fwd | official fwd | cummax fwd | ours bwd | official bwd "
        "| cummax bwd | equal to official |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for d in DIRECTIONS:
        o, t = ours[d], tt[d]
        print(
            f"| {d} | {o['forward_ms']:.4f} | {t['official_forward_ms']:.3f} "
            f"| {t['cummax_forward_ms']:.4f} | {o['backward_ms']:.4f} "
            f"| {t['official_backward_ms']:.3f} | {t['cummax_backward_ms']:.4f} "
            f"| {tt['agreement'][d]} |"
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = harness.script_parser(__doc__, "cuda_kernels.py")
    parser.add_argument("--json", metavar="FILE", help="also write the report to FILE")
    parser.add_argument("--arch", help="compute capability to build for, e.g. 90")
    parser.add_argument("--batch", type=int, default=8, help="speed: batch of [B,128,128,128]")
    parser.add_argument("--reps", type=int, default=40, help="speed: calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="speed: timings per median")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed stage")
    parser.add_argument("--no-sanitizer", action="store_true", help="skip compute-sanitizer")
    parser.add_argument("--sanitizer-timeout", type=int, default=300, help="seconds per tool")
    parser.add_argument("--small-only", action="store_true", help="check: small shapes only")
    parser.add_argument("--emulated", action="store_true", help="g++ host emulation (CPU)")
    parser.add_argument("--library", help=argparse.SUPPRESS)  # reuse a build (sanitizer runs)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = {"host": platform.node(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def stage(name: str) -> None:
        """Saves what has run so far (a run cut short still leaves its report), then logs."""
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)

    if not args.emulated and gpu_compute_capability() is None:
        print("no GPU visible (nvidia-smi lists none); --emulated runs the checks on the CPU")
        return NO_GPU_EXIT
    with tempfile.TemporaryDirectory() as tmp:
        if args.library:
            report["build"] = {"library": args.library}
        else:
            stage("build")
            report["build"] = build(tmp, args.emulated, args.arch)
        k = Kernels(report["build"]["library"])
        report["device"] = k.device()
        stage(f"check on {report['device']['name']}")
        report["checks"] = stage_check(k, args.small_only, args.emulated)
        if not (args.no_sanitizer or args.emulated):
            stage("compute-sanitizer")
            report["checks"] += stage_sanitize(args, report["build"]["library"])
        if not args.no_speed:
            stage("speed")
            report["speed"] = stage_speed(k, args)
            for direction, same in report["speed"]["torch"].get("agreement", {}).items():
                report["checks"].append(
                    {
                        "check": f"{direction} float32 equal to the official pooling in PyTorch",
                        "ok": same,
                        "problem": "" if same else "forward or backward differs",
                    }
                )
    stage("report")
    print_report(report)
    return 1 if any(c["ok"] is False for c in report["checks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
