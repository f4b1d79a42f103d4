"""benchmarks/gpu_check.py without a GPU: one line and exit code 2, at once; --help documents
every stage. (The check itself needs a GPU; docs/gpu.md.)"""

import importlib.util
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args):
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_no_gpu_exits_at_once_with_code_2():
    if load_script().gpu_hardware_present():
        pytest.skip("this machine has an NVIDIA GPU: the check would run for real")
    start = time.perf_counter()
    proc = run()
    seconds = time.perf_counter() - start
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no GPU visible"), proc.stdout
    assert seconds < 10  # before TensorFlow is imported


def test_help_documents_every_stage():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for stage in ("a. build", "b. op", "c. train", "c2. compact", "d. timing", "e. report"):
        assert stage in proc.stdout, stage
    for option in ("--json", "--skip-hg104", "--no-build", "--cpu-dry-run"):
        assert option in proc.stdout, option
    assert "no GPU visible" in proc.stdout and "code 2" in proc.stdout
