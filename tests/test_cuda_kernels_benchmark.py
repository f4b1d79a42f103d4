"""benchmarks/cuda_kernels.py, the GPU check of the CUDA kernels that needs no TensorFlow, run
in its host emulation (--emulated): the script works end to end, its checks pass on the real
kernels and fail on a kernel with a planted tie-routing bug, and without a GPU it says so in one
line. (On a GPU it compiles the same file with nvcc; docs/gpu.md.)"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "cuda_kernels.py")

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulation needs g++")


def load_script():
    spec = importlib.util.spec_from_file_location("cuda_kernels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_emulated_run_passes_every_check_and_reports_speed(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--emulated", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    checks = report["checks"]
    # 6 shapes x 4 dtypes x 4 directions
    assert len(checks) == 96 and all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
    speed = report["speed"]["dtypes"]
    assert set(speed) == {"float32", "bfloat16", "float16"}
    for timing in speed.values():
        for direction in ("top", "left", "bottom", "right"):
            assert timing[direction]["forward_ms"] > 0 and timing[direction]["backward_ms"] > 0
    assert "checks: 96 passed, 0 failed" in proc.stdout


@pytest.mark.parametrize(
    "original, planted, wrong",
    [
        # the forward scan stops one short: the last output of every lane is never written
        ("for (int64_t s = 1; s < len; ++s)", "for (int64_t s = 1; s < len - 1; ++s)", "forward"),
        # every position keeps its own gradient instead of the first maximum's run
        ("(s == 0) || cur != before", "true", "backward"),
    ],
    ids=["forward_scan_short", "backward_routing"],
)
def test_checks_catch_a_planted_kernel_bug(tmp_path, monkeypatch, original, planted, wrong):
    ck = load_script()
    source = open(ck.CU_SOURCE).read()
    assert source.count(original) == 1
    broken = tmp_path / "corner_pool_gpu.cu"
    broken.write_text(source.replace(original, planted))
    monkeypatch.setattr(ck, "CU_SOURCE", str(broken))
    kernels = ck.Kernels(ck.build(str(tmp_path), emulated=True, arch=None)["library"])
    results = ck.check_shape(kernels, (2, 5, 3, 4), ("float32",), seed=0)
    assert len(results) == 4 and not any(r["ok"] for r in results)
    assert all(f"{wrong} differs" in r["problem"] for r in results), results


def test_without_a_gpu_it_says_so_in_one_line():
    if load_script().gpu_compute_capability() is not None:
        pytest.skip("this machine has an NVIDIA GPU: the check would run for real")
    proc = subprocess.run(
        [sys.executable, SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines() == [
        "no GPU visible (nvidia-smi lists none); --emulated runs the checks on the CPU"
    ]


def test_nvcc_builds_the_benchmark_library(tmp_path):
    """Where nvcc is installed (with or without a GPU), the script's build links the kernels and
    the host file into one library with every entry point."""
    ck = load_script()
    if ck.nvcc_path() is None:
        pytest.skip("nvcc not installed")
    library = ck.build(str(tmp_path), emulated=False, arch="90")["library"]
    symbols = subprocess.run(["nm", "-D", library], capture_output=True, text=True).stdout
    for name in ("ck_forward", "ck_backward", "ck_time_forward", "ck_time_copy", "ck_device"):
        assert f" T {name}" in symbols, name
