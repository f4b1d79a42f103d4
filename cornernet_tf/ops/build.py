"""Build the native libraries: ``python -m cornernet_tf.ops.build [--force]``.

Two independent shared libraries, each rebuilt only when its sources changed:

* the corner-pool TensorFlow op (below);
* the soft-NMS (``kernels/soft_nms.cc`` → ``kernels/_soft_nms.so``): plain C functions loaded with
  ctypes by ``cornernet_tf.detection.soft_nms_native``, no TensorFlow involved, so its name
  carries no version. It is compiled with ``-ffp-contract=off`` (and never ``-ffast-math``) so
  that its results stay bit-identical to the NumPy port; without it soft-NMS uses that port.

Compiles ``kernels/corner_pool_ops.cc``, ``kernels/image_ops.cc`` and ``kernels/heatmap_ops.cc``
(the CPU-only passes of the training pipeline: ``cornernet_tf.ops.image_ops`` and
``cornernet_tf.ops.heatmap_ops``) with g++ against the installed TensorFlow (its
``tf.sysconfig`` compile and link flags) into ``kernels/_corner_pool_ops_tf<version>.so``. The
TensorFlow version is part of the file name because a custom op must be built against the exact
TensorFlow it is loaded into; a library built for another version is simply not found.

The CUDA kernels (``kernels/corner_pool_gpu.cu``) are compiled with nvcc and linked in only when
nvcc is found and TensorFlow is a CUDA build; otherwise the library is CPU-only, and on a GPU
``impl="auto"`` uses the portable TensorFlow ops instead (``native_devices.py``; docs/gpu.md).

Environment: ``CXX`` (default g++), ``CORNERNET_MARCH`` (default ``native``: the build is tuned
for, and only guaranteed to run on, the machine that builds it; set e.g. ``x86-64-v3`` for a
portable build), ``CORNERNET_CUDA_ARCHS`` (e.g. ``80,90``), ``CUDA_HOME``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
CC_SOURCE = KERNEL_DIR / "corner_pool_ops.cc"
# The uint8 fixed-point resize of the training pipeline (CPU only), in the same op library.
IMAGE_OPS_SOURCE = KERNEL_DIR / "image_ops.cc"
# The heatmap drawing of the dense training batches (CPU only), in the same op library.
HEATMAP_OPS_SOURCE = KERNEL_DIR / "heatmap_ops.cc"
CC_SOURCES = (CC_SOURCE, IMAGE_OPS_SOURCE, HEATMAP_OPS_SOURCE)
CU_SOURCE = KERNEL_DIR / "corner_pool_gpu.cu"
GPU_HEADER = KERNEL_DIR / "corner_pool_gpu.h"
SOURCES = (*CC_SOURCES, CU_SOURCE, GPU_HEADER, Path(__file__).resolve())
SOFT_NMS_SOURCE = KERNEL_DIR / "soft_nms.cc"
SOFT_NMS_LIBRARY = KERNEL_DIR / "_soft_nms.so"
SOFT_NMS_SOURCES = (SOFT_NMS_SOURCE, Path(__file__).resolve())
BUILD_COMMAND = f"{Path(sys.executable).name} -m cornernet_tf.ops.build"
# CUDA architectures compiled by default (intersected with what the local nvcc supports);
# PTX for the newest one keeps newer GPUs working through JIT compilation.
DEFAULT_CUDA_ARCHS = (75, 80, 86, 89, 90)


class BuildError(RuntimeError):
    """The native library could not be built; the message says which step failed and why."""


@dataclasses.dataclass
class BuildResult:
    library: Path
    built: bool  # False when an up-to-date library was already there
    cuda: bool  # whether the CUDA kernels are linked in
    cuda_reason: str  # why CUDA was or was not compiled
    seconds: float
    commands: list[list[str]]


def _tf():
    import tensorflow as tf  # deferred: importing TensorFlow takes seconds

    return tf


def library_path() -> Path:
    """Where the library for the installed TensorFlow is built and looked for."""
    return KERNEL_DIR / f"_corner_pool_ops_tf{_tf().__version__}.so"


def find_nvcc() -> str | None:
    """nvcc from $CUDA_HOME/bin, else from PATH; None when absent."""
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home:
        candidate = Path(cuda_home) / "bin" / "nvcc"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("nvcc")


def cuda_root(nvcc: str) -> Path:
    """The CUDA toolkit folder of nvcc ($CUDA_HOME, else nvcc's own TOP: nvcc may be a wrapper)."""
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home:
        return Path(cuda_home)
    try:
        dry = subprocess.run(
            [nvcc, "--dryrun", "-v", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for line in (dry.stderr + dry.stdout).splitlines():
            if "TOP=" in line:
                return Path(line.split("TOP=", 1)[1].strip().strip('"')).resolve()
    except (OSError, subprocess.SubprocessError):
        pass
    return Path(nvcc).resolve().parent.parent


def cuda_include_dirs(nvcc: str) -> list[Path]:
    root = cuda_root(nvcc)
    return [
        d for d in (root / "include", root / "targets" / "x86_64-linux" / "include") if d.is_dir()
    ]


def cuda_status() -> tuple[bool, str]:
    """(whether the CUDA kernels should be built, the reason in words)."""
    nvcc = find_nvcc()
    if nvcc is None:
        return False, "nvcc not found (set CUDA_HOME or put nvcc on PATH)"
    if not _tf().test.is_built_with_cuda():
        return (
            False,
            f"TensorFlow {_tf().__version__} is not a CUDA build (nvcc at {nvcc} is unused)",
        )
    return True, f"nvcc at {nvcc} and a CUDA build of TensorFlow"


def cuda_arch_flags(nvcc: str) -> list[str]:
    """-gencode flags for $CORNERNET_CUDA_ARCHS or the default list, as far as nvcc supports them."""
    wanted_env = os.environ.get("CORNERNET_CUDA_ARCHS", "").strip()
    wanted = (
        [int(a) for a in wanted_env.replace(";", ",").split(",") if a.strip()]
        if wanted_env
        else list(DEFAULT_CUDA_ARCHS)
    )
    try:
        listed = subprocess.run(
            [nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=True
        ).stdout
        supported = {int(tok.split("_")[1]) for tok in listed.split() if tok.startswith("compute_")}
        archs = [a for a in wanted if a in supported] or [min(supported)]
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        archs = wanted
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    flags += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    return flags


def nvcc_compile_command(
    nvcc: str, out: Path, arch_flags: list[str], defines: list[str] = ()
) -> list[str]:
    """The nvcc command that compiles the CUDA kernels to an object file (no TensorFlow headers)."""
    return [
        nvcc,
        "-c",
        str(CU_SOURCE),
        "-o",
        str(out),
        "-O3",
        "-std=c++17",
        *arch_flags,
        "-Xcompiler",
        "-fPIC",
        *defines,
    ]


def _accepted(cxx: str, flag: str) -> bool:
    probe = subprocess.run(
        [cxx, flag, "-Werror", "-x", "c++", "-c", "-", "-o", os.devnull],
        input="int main() { return 0; }\n",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


def _cxx_flags(cxx: str) -> list[str]:
    """-march for $CORNERNET_MARCH (default native) and warning switches, as far as cxx accepts them.
    TensorFlow's headers trigger hundreds of deprecation warnings that would bury real messages."""
    flags = []
    march = os.environ.get("CORNERNET_MARCH", "native").strip()
    if march:
        if not _accepted(cxx, f"-march={march}"):
            raise BuildError(
                f"{cxx} does not accept -march={march} (set CORNERNET_MARCH to another value, "
                "or to an empty string for the compiler default)"
            )
        flags.append(f"-march={march}")
    flags += [
        f for f in ("-Wno-deprecated-declarations", "-Wno-interference-size") if _accepted(cxx, f)
    ]
    return flags


def _run(cmd: list[str], what: str, verbose: bool) -> None:
    if verbose:
        print("  $ " + " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise BuildError(f"{what} failed: cannot run {cmd[0]!r}: {exc}") from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()][:20]
        detail = "\n".join(errors or lines[-40:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{detail}")


def is_up_to_date(lib: Path | None = None, sources: tuple[Path, ...] = SOURCES) -> bool:
    """True when the library exists and is newer than every source file."""
    lib = lib or library_path()
    if not lib.is_file():
        return False
    built = lib.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in sources if src.exists())


def _install(tmp_lib: Path, lib: Path) -> None:
    # Atomic replace: concurrent test workers never load a half-written library.
    staged = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")
    shutil.copyfile(tmp_lib, staged)
    os.replace(staged, lib)


def _compiler() -> str:
    """The C++ compiler (``CXX``, default g++), checked to exist."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise BuildError(f"C++ compiler {cxx!r} not found; install g++ or set CXX")
    return cxx


def build(force: bool = False, verbose: bool = True) -> BuildResult:
    """Compile the library unless it is up to date; raise BuildError with the reason on failure."""
    start = time.perf_counter()
    tf = _tf()
    lib = library_path()
    use_cuda, cuda_reason = cuda_status()
    if not force and is_up_to_date(lib):
        if verbose:
            print(f"corner-pool op: {lib} is up to date (use --force to rebuild)")
        return BuildResult(lib, False, use_cuda, cuda_reason, time.perf_counter() - start, [])

    cxx = _compiler()
    if verbose:
        print(f"corner-pool op: building {lib.name} for TensorFlow {tf.__version__}")
        print(f"  CUDA kernels: {'yes' if use_cuda else 'no'} ({cuda_reason})")

    commands: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="corner_pool_build_") as tmp:
        tmp = Path(tmp)
        extra_objects: list[str] = []
        cuda_flags: list[str] = []
        if use_cuda:
            nvcc = find_nvcc()
            obj = tmp / "corner_pool_gpu.o"
            cmd = nvcc_compile_command(nvcc, obj, cuda_arch_flags(nvcc), ["-DGOOGLE_CUDA=1"])
            commands.append(cmd)
            _run(cmd, "nvcc (CUDA kernels)", verbose)
            root = cuda_root(nvcc)
            lib_dirs = [
                d for d in (root / "lib64", root / "targets" / "x86_64-linux" / "lib") if d.is_dir()
            ]
            extra_objects.append(str(obj))
            cuda_flags = ["-DGOOGLE_CUDA=1"] + [f"-I{d}" for d in cuda_include_dirs(nvcc)]
            cuda_flags += (
                [f"-L{d}" for d in lib_dirs] + [f"-Wl,-rpath,{d}" for d in lib_dirs] + ["-lcudart"]
            )
        tmp_lib = tmp / lib.name
        cmd = [
            cxx,
            "-std=c++17",
            "-O3",
            "-DNDEBUG",
            *_cxx_flags(cxx),
            "-ffp-contract=off",  # the colour map must round like TensorFlow's separate ops
            "-fPIC",
            "-shared",
            *(str(src) for src in CC_SOURCES),
            *extra_objects,
            "-o",
            str(tmp_lib),
            *tf.sysconfig.get_compile_flags(),
            f"-I{KERNEL_DIR}",
            *cuda_flags,
            *tf.sysconfig.get_link_flags(),
        ]
        commands.append(cmd)
        _run(cmd, f"{cxx} (TensorFlow op library)", verbose)
        _install(tmp_lib, lib)
    for stale in KERNEL_DIR.glob("_corner_pool_ops_tf*.so"):
        if stale != lib:
            stale.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    if verbose:
        print(f"corner-pool op: wrote {lib} in {seconds:.1f} s")
    return BuildResult(lib, True, use_cuda, cuda_reason, seconds, commands)


def soft_nms_compile_command(cxx: str, out: Path) -> list[str]:
    """The g++ command for the soft-NMS library: no fused multiply-add, no fast-math (bit-exact)."""
    return [
        cxx,
        "-std=c++17",
        "-O3",
        "-DNDEBUG",
        *_cxx_flags(cxx),
        "-ffp-contract=off",
        "-fPIC",
        "-shared",
        str(SOFT_NMS_SOURCE),
        "-o",
        str(out),
        "-lm",
    ]


def build_soft_nms(force: bool = False, verbose: bool = True) -> BuildResult:
    """Compile the soft-NMS library unless it is up to date; raise BuildError on failure."""
    start = time.perf_counter()
    lib = SOFT_NMS_LIBRARY
    no_cuda = "soft-NMS runs on the CPU"
    if not force and is_up_to_date(lib, SOFT_NMS_SOURCES):
        if verbose:
            print(f"soft-NMS: {lib} is up to date (use --force to rebuild)")
        return BuildResult(lib, False, False, no_cuda, time.perf_counter() - start, [])
    cxx = _compiler()
    if verbose:
        print(f"soft-NMS: building {lib.name}")
    with tempfile.TemporaryDirectory(prefix="soft_nms_build_") as tmp:
        tmp_lib = Path(tmp) / lib.name
        cmd = soft_nms_compile_command(cxx, tmp_lib)
        _run(cmd, f"{cxx} (soft-NMS library)", verbose)
        _install(tmp_lib, lib)
    seconds = time.perf_counter() - start
    if verbose:
        print(f"soft-NMS: wrote {lib} in {seconds:.1f} s")
    return BuildResult(lib, True, False, no_cuda, seconds, [cmd])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=BUILD_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    args = parser.parse_args(argv)
    failed = False
    try:
        build_soft_nms(force=args.force, verbose=not args.quiet)
    except BuildError as exc:
        print(f"error: could not build the native soft-NMS: {exc}", file=sys.stderr)
        print("The NumPy soft-NMS (same results, slower) still works without it.", file=sys.stderr)
        failed = True
    try:
        build(force=args.force, verbose=not args.quiet)
    except BuildError as exc:
        print(f"error: could not build the native corner-pool op: {exc}", file=sys.stderr)
        print(
            "The portable TensorFlow implementation (impl='tf') still works without it.",
            file=sys.stderr,
        )
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
