"""The CUDA kernels' logic, run on the CPU: cornernet_tf/ops/kernels/corner_pool_gpu.cu itself (the
file nvcc compiles, not a copy) is compiled as host C++ with g++ against tests/cuda_emulation,
which replaces the CUDA headers and runs each kernel launch as loops over the grid the launcher
computed. Checked against the official tensors (golden corner_pool.npz) and the NumPy reference:
forward and backward, tie routing, all four directions, odd sizes, several blocks, grid-stride
loops, float16/bfloat16/float32/float64, no write outside the tensor, every output written.

What this cannot prove (see cuda_emulation.h): coalescing and speed, races between threads that
really run at once, and nvcc-specific code generation; ``benchmarks/gpu_check.py`` covers those
on a GPU.
"""

import ctypes
import importlib.util
import shutil
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from test_corner_pool import CASES, nhwc, reference_backward, reference_forward, with_ties

from cornernet_tf.ops import DIRECTIONS, build

EMULATION_DIR = Path(__file__).parent / "cuda_emulation"
BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "cuda_kernels.py"
THREADS = 256  # kThreads in corner_pool_gpu.cu
# DType codes of corner_pool_gpu.h
DTYPES = {
    np.dtype(np.float32): 0,
    np.dtype(np.float64): 1,
    np.dtype(np.float16): 2,
    np.dtype(ml_dtypes.bfloat16): 3,
}
GUARD = 64  # elements of sentinel on each side of every buffer
SENTINEL = 1000.0  # exact in every float type tested


def load_benchmark():
    """benchmarks/cuda_kernels.py: its C host file and its geometry are the ones tested here."""
    spec = importlib.util.spec_from_file_location("cuda_kernels", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CUDA_KERNELS = load_benchmark()
geometry = CUDA_KERNELS.geometry  # (outer, len, inner, from_end), as MakeGeometry in the op


def compile_emulated(out: Path, max_blocks: int | None = None) -> ctypes.CDLL:
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found: the emulated CUDA kernels are compiled with g++")
    cmd = [
        cxx,
        "-std=c++17",
        "-O1",
        "-shared",
        "-fPIC",
        "-Wall",
        "-Werror",
        f"-I{EMULATION_DIR}",
        f"-I{build.KERNEL_DIR}",
        *([f"-DCORNERNET_GPU_MAX_BLOCKS={max_blocks}"] if max_blocks else []),
        "-x",
        "c++",
        str(build.CU_SOURCE),  # the very file nvcc compiles
        CUDA_KERNELS.HOST_SOURCE,  # the C entry points the GPU benchmark drives
        str(EMULATION_DIR / "driver.cc"),
        "-o",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lib = CUDA_KERNELS.Kernels(str(out)).lib
    lib.emu_launch_log.argtypes = [ctypes.POINTER(ctypes.c_int64)] * 3
    return lib


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return Kernels(compile_emulated(tmp_path_factory.mktemp("emu") / "emu.so"))


@pytest.fixture(scope="module")
def kernels_few_blocks(tmp_path_factory):
    """At most 3 blocks of 256 threads: tensors with more lanes run the grid-stride loops."""
    return Kernels(compile_emulated(tmp_path_factory.mktemp("emu3") / "emu3.so", max_blocks=3))


@pytest.fixture(scope="module")
def golden():
    from conftest import load_golden

    return load_golden("corner_pool.npz")


class Buffer:
    """A C-contiguous array with GUARD sentinel elements on each side."""

    def __init__(self, values: np.ndarray, fill=None):
        self.shape, self.dtype = values.shape, values.dtype
        self.storage = np.full(values.size + 2 * GUARD, SENTINEL, values.dtype)
        body = self.body()
        body[...] = values if fill is None else fill

    def body(self) -> np.ndarray:
        return self.storage[GUARD:-GUARD].reshape(self.shape)

    @property
    def ptr(self) -> int:
        return self.storage.ctypes.data + GUARD * self.storage.itemsize

    def assert_guards_intact(self, what):
        guards = np.concatenate([self.storage[:GUARD], self.storage[-GUARD:]]).astype(np.float64)
        assert (guards == SENTINEL).all(), f"{what}: a kernel wrote outside the tensor"


class Kernels:
    def __init__(self, lib):
        self.lib = lib

    def launch_log(self):
        vals = [ctypes.c_int64() for _ in range(3)]
        self.lib.emu_launch_log(*[ctypes.byref(v) for v in vals])
        return tuple(v.value for v in vals)

    def forward(self, x: np.ndarray, direction: str) -> np.ndarray:
        xb = Buffer(np.ascontiguousarray(x))
        yb = Buffer(x, fill=np.nan)  # every output must be written
        rc = self.lib.ck_forward(DTYPES[x.dtype], xb.ptr, yb.ptr, *geometry(x.shape, direction))
        assert rc == 0
        xb.assert_guards_intact("forward input")
        yb.assert_guards_intact("forward output")
        np.testing.assert_array_equal(xb.body(), x, err_msg="the forward kernel changed its input")
        return yb.body().copy()

    def backward(self, y: np.ndarray, dy: np.ndarray, direction: str, alias=False) -> np.ndarray:
        yb, dyb = Buffer(np.ascontiguousarray(y)), Buffer(np.ascontiguousarray(dy))
        dxb = dyb if alias else Buffer(dy, fill=np.nan)
        rc = self.lib.ck_backward(
            DTYPES[y.dtype], yb.ptr, dyb.ptr, dxb.ptr, *geometry(y.shape, direction)
        )
        assert rc == 0
        for what, b in (("y", yb), ("dy", dyb), ("dx", dxb)):
            b.assert_guards_intact(f"backward {what}")
        np.testing.assert_array_equal(yb.body(), y, err_msg="the backward kernel changed y")
        return dxb.body().copy()

    def pool_and_grad(self, x, g, direction):
        y = self.forward(x, direction)
        return y, self.backward(y, g, direction)


def as64(a):
    return np.asarray(a, np.float64)


# ---------------------------------------------------------------------------------------------
# Golden tensors of the official code


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_golden_forward_and_backward(kernels, golden, case, dtype):
    """Cases 1 and 2 are the tie cases that tell the official routing from torch.cummax's."""
    x = nhwc(golden[f"case{case}_x"]).astype(dtype)
    g = nhwc(golden[f"case{case}_g"]).astype(dtype)
    for d in DIRECTIONS:
        y, dx = kernels.pool_and_grad(x, g, d)
        np.testing.assert_array_equal(as64(y), as64(nhwc(golden[f"case{case}_{d}"]).astype(dtype)))
        np.testing.assert_allclose(
            as64(dx), nhwc(golden[f"case{case}_grad_{d}"]), atol=1e-5, err_msg=d
        )


def test_golden_tie_cases_route_like_the_official_code(kernels, golden):
    """The tie cases give a different gradient under cummax-style routing; the kernel matches
    the official one, not that."""
    for case in (1, 2):
        x, g = nhwc(golden[f"case{case}_x"]), nhwc(golden[f"case{case}_g"])
        for d in DIRECTIONS:
            _, dx = kernels.pool_and_grad(x, g, d)
            assert not np.allclose(dx, nhwc(golden[f"case{case}_grad_{d}_cummax_autograd"]))


# ---------------------------------------------------------------------------------------------
# Sizes, dtypes, grids

# Odd sizes; lanes (W*C for H pooling, N*H*C for W pooling) above 256 need several blocks.
SHAPES = [
    (1, 1, 1, 1),
    (2, 5, 3, 4),
    (1, 7, 13, 37),
    (3, 9, 1, 129),
    (2, 1, 17, 11),
    (1, 33, 31, 9),
]


@pytest.mark.parametrize(
    "dtype",
    [np.float32, np.float64, np.float16, ml_dtypes.bfloat16],
    ids=["float32", "float64", "float16", "bfloat16"],
)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes_and_dtypes_match_reference(kernels, shape, dtype):
    """Small integers with many ties: exact in every float type, so the comparison is exact."""
    x = with_ties(shape, seed=sum(shape), dtype=np.float64)
    g = np.random.default_rng(5).integers(-4, 5, size=shape).astype(np.float64)
    for d in DIRECTIONS:
        y, dx = kernels.pool_and_grad(x.astype(dtype), g.astype(dtype), d)
        assert y.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(as64(y), reference_forward(x, d), err_msg=d)
        np.testing.assert_array_equal(as64(dx), reference_backward(x, g, d), err_msg=d)
        outer, _, inner, _ = geometry(shape, d)
        blocks, threads, _ = kernels.launch_log()
        assert (blocks, threads) == (-(-outer * inner // THREADS), THREADS)


def test_16_bit_rounding_of_gradient_sums(kernels):
    """Sums are accumulated in float and rounded once, as the CPU kernel does: 1 + 2^-10 * k
    summed over a run differs from summing in 16-bit steps."""
    shape = (1, 6, 2, 3)
    x = np.zeros(shape)  # one run per lane: every gradient goes to the scan's first position
    g = np.full(shape, 1 + 2.0**-9)
    for d in DIRECTIONS:
        dx = kernels.backward(x.astype(np.float16), g.astype(np.float16), d)
        want = reference_backward(x, g.astype(np.float16).astype(np.float64), d)
        np.testing.assert_array_equal(as64(dx), want.astype(np.float16).astype(np.float64))


def test_grid_stride_loops(kernels_few_blocks):
    """With at most 3 blocks, each thread handles several lanes (lanes > 3 * 256)."""
    shape = (2, 40, 30, 17)  # H pooling: 1020 lanes; W pooling: 1360 lanes
    x = with_ties(shape, seed=8)
    g = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    for d in DIRECTIONS:
        y, dx = kernels_few_blocks.pool_and_grad(x, g, d)
        assert kernels_few_blocks.launch_log()[:2] == (3, THREADS)
        np.testing.assert_array_equal(y, reference_forward(x, d))
        np.testing.assert_allclose(dx, reference_backward(x, g, d), atol=1e-5)


def test_result_does_not_depend_on_thread_order(kernels):
    shape = (2, 9, 21, 19)
    x = with_ties(shape, seed=10)
    g = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    for d in DIRECTIONS:
        forward_order = kernels.pool_and_grad(x, g, d)
        kernels.lib.emu_set_reverse_order(1)
        try:
            reverse_order = kernels.pool_and_grad(x, g, d)
        finally:
            kernels.lib.emu_set_reverse_order(0)
        for a, b in zip(forward_order, reverse_order):
            np.testing.assert_array_equal(a, b)


def test_gradient_may_overwrite_upstream_gradient(kernels):
    """The TensorFlow op forwards dy's buffer to dx when it can (corner_pool_gpu.h allows it)."""
    shape = (2, 6, 11, 5)
    x = with_ties(shape, seed=12)
    g = np.random.default_rng(13).standard_normal(shape).astype(np.float32)
    for d in DIRECTIONS:
        y = kernels.forward(x, d)
        dx = kernels.backward(y, g, d, alias=True)
        np.testing.assert_allclose(dx, reference_backward(x, g, d), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 0, 5, 3), (1, 4, 0, 3), (0, 3, 3, 2), (1, 3, 3, 0)], ids=str)
def test_empty_tensors_launch_nothing(kernels, shape):
    x = np.zeros(shape, np.float32)
    for d in DIRECTIONS:
        before = kernels.launch_log()[2]
        kernels.forward(x, d)
        kernels.backward(x, x, d)
        assert kernels.launch_log()[2] == before


def test_unknown_dtype_is_an_error(kernels):
    x = np.zeros((1, 2, 2, 1), np.float32)
    assert kernels.lib.ck_forward(7, x.ctypes.data, x.ctypes.data, 1, 2, 2, 1) != 0
