"""The native corner-pool op (cornernet_tf/ops/kernels): build, golden data, agreement with the
portable implementations, gradients, dtypes, the large-tensor streaming path, and the CUDA sources.

The library is built once per test run if it is missing or stale (``make test`` builds it first);
a build failure fails these tests rather than skipping them.
"""

import importlib
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import tensorflow as tf
from test_corner_pool import (
    CASES,
    RANDOM_SHAPES,
    nhwc,
    pool_with_gradient,
    reference_backward,
    reference_forward,
    tie_free,
    with_ties,
)

from cornernet_tf.ops import DIRECTIONS, NativeOpUnavailableError, build, corner_pool

corner_pool_module = importlib.import_module("cornernet_tf.ops.corner_pool")


@pytest.fixture(scope="session", autouse=True)
def native():
    """Builds the library once per test run when it is missing or stale, and loads it; any
    failure is a test failure."""
    try:
        build.build(verbose=False)
        build.build_soft_nms(verbose=False)  # the build entry point's tests cover both libraries
    except build.BuildError as exc:
        pytest.fail(f"a native library does not build here: {exc}")
    corner_pool_module.reset_native_state()
    available, reason = corner_pool_module.native_available()
    assert available, reason
    return corner_pool_module.load_native()


@pytest.fixture(scope="module")
def golden():
    from golden import load_golden

    return load_golden("corner_pool.npz")


# ---------------------------------------------------------------------------------------------
# Build


def test_build_entry_point_reports_up_to_date(capsys):
    assert build.main([]) == 0
    out = capsys.readouterr().out
    assert "corner-pool op:" in out and "soft-NMS:" in out
    assert out.count("up to date") == 2
    assert build.library_path().is_file()
    assert tf.__version__ in build.library_path().name


def test_build_failure_exits_non_zero_with_reason(monkeypatch, capsys):
    before = build.library_path().stat().st_mtime
    soft_nms_before = build.SOFT_NMS_LIBRARY.stat().st_mtime
    monkeypatch.setenv("CXX", "no-such-compiler-cornernet")
    assert build.main(["--force"]) == 1
    err = capsys.readouterr().err
    assert "no-such-compiler-cornernet" in err and "could not build" in err
    assert "native soft-NMS" in err and "native corner-pool op" in err  # each library says so
    assert build.library_path().stat().st_mtime == before  # the working library is untouched
    assert build.SOFT_NMS_LIBRARY.stat().st_mtime == soft_nms_before


def test_soft_nms_library_builds_without_contraction_or_fast_math():
    """Bit-exactness with the NumPy port needs IEEE single steps: no fused multiply-add."""
    result = build.build_soft_nms(force=True, verbose=False)
    assert result.built and result.library == build.SOFT_NMS_LIBRARY
    (cmd,) = result.commands
    assert "-ffp-contract=off" in cmd
    assert not [f for f in cmd if "fast-math" in f or f == "-Ofast"]
    assert build.is_up_to_date(result.library, build.SOFT_NMS_SOURCES)


def test_auto_uses_native():
    assert corner_pool_module.resolve_impl("auto") == "native"
    fn = tf.function(lambda x: corner_pool(x, "top"))
    graph = fn.get_concrete_function(tf.TensorSpec([1, 4, 4, 2])).graph
    assert "CornerPool" in {op.type for op in graph.get_operations()}


# ---------------------------------------------------------------------------------------------
# Golden data and references


@pytest.mark.parametrize("case", CASES)
def test_golden_forward_and_gradient(golden, case):
    x, g = nhwc(golden[f"case{case}_x"]), nhwc(golden[f"case{case}_g"])
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(x, g, d, "native")
        np.testing.assert_array_equal(y, nhwc(golden[f"case{case}_{d}"]), err_msg=d)
        np.testing.assert_allclose(dx, nhwc(golden[f"case{case}_grad_{d}"]), atol=1e-5, err_msg=d)


@pytest.mark.parametrize("case", CASES)
def test_golden_corner_combinations(golden, case):
    x, x2, g = (tf.constant(nhwc(golden[f"case{case}_{k}"])) for k in ("x", "x2", "g"))
    for corner, (first, second) in {"tl": ("top", "left"), "br": ("bottom", "right")}.items():
        with tf.GradientTape() as tape:
            tape.watch([x, x2])
            out = corner_pool(x, first, impl="native") + corner_pool(x2, second, impl="native")
        dx, dx2 = tape.gradient(out, [x, x2], output_gradients=g)
        np.testing.assert_array_equal(out.numpy(), nhwc(golden[f"case{case}_{corner}"]))
        np.testing.assert_allclose(
            dx.numpy(), nhwc(golden[f"case{case}_{corner}_grad_x"]), atol=1e-5
        )
        np.testing.assert_allclose(
            dx2.numpy(), nhwc(golden[f"case{case}_{corner}_grad_x2"]), atol=1e-5
        )


@pytest.mark.parametrize("shape", RANDOM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_random_shapes_agree_with_reference_and_other_impls(shape):
    x = with_ties(shape, seed=sum(shape))
    g = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(x, g, d, "native")
        np.testing.assert_array_equal(y, reference_forward(x, d), err_msg=d)
        np.testing.assert_allclose(dx, reference_backward(x, g, d), atol=1e-5, err_msg=d)
        for impl in ("tf", "scan"):
            y_other, dx_other = pool_with_gradient(x, g, d, impl)
            np.testing.assert_array_equal(y, y_other)
            np.testing.assert_allclose(dx, dx_other, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64], ids=lambda t: t.name)
def test_other_float_dtypes(dtype):
    """Integer inputs and upstream gradients keep every sum exact, so the comparison is exact."""
    shape = (2, 7, 6, 5)
    x = with_ties(shape, seed=3, dtype=np.float64)
    g = with_ties(shape, seed=4, dtype=np.float64)
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(tf.cast(x, dtype), tf.cast(g, dtype), d, "native")
        assert y.dtype == dtype.as_numpy_dtype and dx.dtype == dtype.as_numpy_dtype
        np.testing.assert_array_equal(y.astype(np.float64), reference_forward(x, d))
        np.testing.assert_array_equal(dx.astype(np.float64), reference_backward(x, g, d))


def test_numerical_gradient():
    x = tie_free((2, 4, 5, 3), seed=0)  # float64, no ties: the op is smooth around x
    for d in DIRECTIONS:
        theoretical, numerical = tf.test.compute_gradient(
            lambda v: corner_pool(v, d, impl="native"), [x], delta=1e-3
        )
        np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6, err_msg=d)


# Large float32 tensors take the streaming path (kStreamingMinBytes = 8 MiB in the kernel); the
# shapes cover whole register strips (C=256), partial strips (C=48) and rows that are not
# SIMD-aligned (C=130, general path).
LARGE_SHAPES = [(1, 64, 128, 256), (4, 96, 112, 48), (1, 100, 160, 130)]


@pytest.mark.parametrize("shape", LARGE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_large_tensors(shape):
    x = with_ties(shape, seed=15)
    g = np.random.default_rng(16).standard_normal(shape).astype(np.float32)
    directions = DIRECTIONS if shape[-1] != 48 else ("left", "bottom")
    for d in directions:
        y, dx = pool_with_gradient(x, g, d, "native")
        np.testing.assert_array_equal(y, reference_forward(x, d), err_msg=d)
        np.testing.assert_allclose(dx, reference_backward(x, g, d), atol=1e-4, err_msg=d)


@pytest.mark.parametrize("shape", [(2, 9, 7, 16), (1, 64, 128, 256)], ids=["small", "large"])
def test_in_place_buffers(shape):
    """Inside a graph the op may overwrite its input (and the gradient its upstream gradient)."""
    x = with_ties(shape, seed=17)
    g = np.random.default_rng(18).standard_normal(shape).astype(np.float32)
    for d in ("top", "right"):

        @tf.function
        def pool_and_grad(v, gg):
            with tf.GradientTape() as tape:
                tape.watch(v)
                temp = v * 1.0  # a temporary that only the op consumes
                y = corner_pool(temp, d, impl="native")
            return y, tape.gradient(y, v, output_gradients=gg * 1.0)

        y, dx = pool_and_grad(tf.constant(x), tf.constant(g))
        np.testing.assert_array_equal(y.numpy(), reference_forward(x, d))
        np.testing.assert_allclose(dx.numpy(), reference_backward(x, g, d), atol=1e-4)


def test_dynamic_shape_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def pool(x):
        return [corner_pool(x, d, impl="native") for d in DIRECTIONS]

    for shape in [(1, 5, 7, 3), (2, 3, 2, 3)]:
        x = with_ties(shape, seed=19)
        for d, y in zip(DIRECTIONS, pool(x)):
            np.testing.assert_array_equal(y.numpy(), reference_forward(x, d))


@pytest.mark.parametrize("shape", [(1, 0, 5, 3), (1, 4, 0, 3), (0, 3, 3, 2), (1, 3, 3, 0)], ids=str)
def test_empty_dimensions(shape):
    x = np.zeros(shape, np.float32)
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(x, x, d, "native")
        assert y.shape == shape and dx.shape == shape


def test_xla_with_native_is_a_clear_error():
    fn = tf.function(
        lambda x: corner_pool(x, "top", impl="native"), jit_compile=True, autograph=False
    )
    with pytest.raises(NativeOpUnavailableError, match="XLA"):
        fn(tf.zeros((1, 3, 3, 2)))


def test_raw_op_validates_its_inputs(native):
    x = tf.zeros((1, 3, 3, 2))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="direction"):
        native.corner_pool(x, direction="diagonal")
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank 4|4-D"):
        native.corner_pool(tf.zeros((3, 3, 2)), direction="top")
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="shape"):
        native.corner_pool_grad(x, tf.zeros((1, 3, 4, 2)), direction="top")


def test_model_layer_with_native_impl():
    from cornernet_tf.modeling.corner_pool import CornerPool

    x = with_ties((1, 5, 4, 3), seed=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the library is there
        out = CornerPool("bottom", impl="native")(x)
    np.testing.assert_array_equal(np.asarray(out), reference_forward(x, "bottom"))


# ---------------------------------------------------------------------------------------------
# CUDA sources (this machine may have nvcc without a GPU or a CUDA build of TensorFlow)


def test_cuda_kernels_compile_with_nvcc(tmp_path):
    """The CUDA translation unit compiles on its own (no TensorFlow headers) to an object file."""
    nvcc = build.find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    obj = tmp_path / "corner_pool_gpu.o"
    cmd = build.nvcc_compile_command(nvcc, obj, ["-arch=sm_80"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert obj.stat().st_size > 0
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
        for name in ("LaunchForward", "LaunchBackward", "ErrorString"):
            assert f"cornernet::corner_pool_gpu::{name}" in symbols


def test_gpu_kernel_registration_compiles(tmp_path):
    """The `#if GOOGLE_CUDA` part of the op library is valid C++ against TensorFlow's headers."""
    nvcc = build.find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found: no CUDA headers to compile the GPU registration against")
    includes = build.cuda_include_dirs(nvcc)
    if not any((d / "cuda_runtime.h").is_file() for d in includes):
        pytest.skip(
            f"cuda_runtime.h not found in the CUDA toolkit of {nvcc} ({build.cuda_root(nvcc)})"
        )
    cmd = [
        os.environ.get("CXX", "g++"),
        "-std=c++17",
        "-fsyntax-only",
        "-DGOOGLE_CUDA=1",
        *[f"-I{d}" for d in includes],
        f"-I{build.KERNEL_DIR}",
        "-Wno-deprecated-declarations",
        str(build.CC_SOURCE),
        *tf.sysconfig.get_compile_flags(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 0, "\n".join(errors[:20])


def _gpu_kernels_available() -> tuple[bool, str]:
    if not tf.test.is_built_with_cuda():
        return False, "TensorFlow is not a CUDA build"
    if not tf.config.list_physical_devices("GPU"):
        return False, "no GPU visible"
    return True, ""


def test_gpu_matches_cpu():
    ok, reason = _gpu_kernels_available()
    if not ok:
        pytest.skip(f"GPU comparison needs a GPU and a CUDA build of TensorFlow: {reason}")
    for dtype in (tf.float32, tf.float16, tf.float64):
        for shape in [(2, 9, 7, 5), (1, 64, 96, 128)]:
            x = tf.cast(with_ties(shape, seed=21), dtype)
            g = tf.cast(with_ties(shape, seed=22), dtype)
            for d in DIRECTIONS:
                results = {}
                for device in ("/CPU:0", "/GPU:0"):
                    with tf.device(device):
                        with tf.GradientTape() as tape:
                            tape.watch(x)
                            y = corner_pool(x, d, impl="native")
                        dx = tape.gradient(y, x, output_gradients=g)
                    results[device] = (y, dx)
                assert "GPU" in results["/GPU:0"][0].device, "the GPU kernel was not used"
                np.testing.assert_array_equal(
                    results["/GPU:0"][0].numpy(), results["/CPU:0"][0].numpy()
                )
                np.testing.assert_array_equal(
                    results["/GPU:0"][1].numpy(), results["/CPU:0"][1].numpy()
                )
