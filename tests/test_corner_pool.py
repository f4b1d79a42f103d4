"""Corner pooling: the portable implementations ("tf", "scan"), the public API and the fallback.

Every implementation is checked against the official CornerNet tensors (golden/corner_pool.npz,
NCHW, with ties and negative values) and against an independent NumPy transliteration of the
official C++ backward. The native op has its own file (test_corner_pool_native.py), which reuses
the NumPy reference defined here.
"""

import importlib
import warnings

import numpy as np
import pytest
import tensorflow as tf
from corner_pool_reference import (  # the NumPy reference; also imported from here by other tests
    reference_backward,
    reference_forward,
)
from golden import load_golden

from cornernet_tf.ops import (
    DIRECTIONS,
    IMPLS,
    NativeOpFallbackWarning,
    NativeOpUnavailableError,
    corner_pool,
    resolve_impl,
)

# The module itself (the package attribute of the same name is the function).
corner_pool_module = importlib.import_module("cornernet_tf.ops.corner_pool")

PORTABLE_IMPLS = ("tf", "scan")
CASES = range(5)


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def pool_with_gradient(x, g, direction, impl):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = corner_pool(x, direction, impl=impl)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.convert_to_tensor(g)).numpy()


@pytest.fixture(scope="module")
def golden():
    return load_golden("corner_pool.npz")


def tie_free(shape, seed, dtype=np.float64):
    """Distinct values at least 0.05 apart, so a finite-difference step never reorders them."""
    rng = np.random.default_rng(seed)
    values = rng.permutation(int(np.prod(shape))).astype(dtype) * 0.05 - 1.0
    return values.reshape(shape)


def with_ties(shape, seed, dtype=np.float32):
    """Small integers: many ties, negatives, exact in every float type."""
    return np.random.default_rng(seed).integers(-3, 3, size=shape).astype(dtype)


RANDOM_SHAPES = [(1, 1, 1, 1), (2, 5, 3, 4), (3, 1, 7, 2), (1, 6, 1, 3), (2, 9, 4, 1), (1, 4, 6, 5)]


# ---------------------------------------------------------------------------------------------
# Golden data


def test_numpy_reference_reproduces_golden(golden):
    """The reference used throughout is itself the official behaviour."""
    for case in CASES:
        x, g = nhwc(golden[f"case{case}_x"]), nhwc(golden[f"case{case}_g"])
        for d in DIRECTIONS:
            np.testing.assert_array_equal(reference_forward(x, d), nhwc(golden[f"case{case}_{d}"]))
            np.testing.assert_allclose(
                reference_backward(x, g, d), nhwc(golden[f"case{case}_grad_{d}"]), atol=1e-5
            )


def test_golden_tie_cases_discriminate_tie_rules(golden):
    """Cases 1 and 2 route ties differently from torch.cummax, so passing them proves the rule."""
    for case in (1, 2):
        differs = [
            not np.allclose(
                golden[f"case{case}_grad_{d}"], golden[f"case{case}_grad_{d}_cummax_autograd"]
            )
            for d in DIRECTIONS
        ]
        assert all(differs)


@pytest.mark.parametrize("impl", PORTABLE_IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_golden_forward_and_gradient(golden, impl, case):
    x, g = nhwc(golden[f"case{case}_x"]), nhwc(golden[f"case{case}_g"])
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(x, g, d, impl)
        np.testing.assert_array_equal(
            y, nhwc(golden[f"case{case}_{d}"]), err_msg=f"{impl} {d} forward"
        )
        np.testing.assert_allclose(
            dx, nhwc(golden[f"case{case}_grad_{d}"]), atol=1e-5, err_msg=f"{impl} {d} grad"
        )


@pytest.mark.parametrize("impl", PORTABLE_IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_golden_corner_combinations(golden, impl, case):
    """tl = TopPool(x) + LeftPool(x2) and br = BottomPool(x) + RightPool(x2), as the model sums them."""
    x, x2, g = (tf.constant(nhwc(golden[f"case{case}_{k}"])) for k in ("x", "x2", "g"))
    for corner, (first, second) in {"tl": ("top", "left"), "br": ("bottom", "right")}.items():
        with tf.GradientTape() as tape:
            tape.watch([x, x2])
            out = corner_pool(x, first, impl=impl) + corner_pool(x2, second, impl=impl)
        dx, dx2 = tape.gradient(out, [x, x2], output_gradients=g)
        np.testing.assert_array_equal(out.numpy(), nhwc(golden[f"case{case}_{corner}"]))
        np.testing.assert_allclose(
            dx.numpy(), nhwc(golden[f"case{case}_{corner}_grad_x"]), atol=1e-5
        )
        np.testing.assert_allclose(
            dx2.numpy(), nhwc(golden[f"case{case}_{corner}_grad_x2"]), atol=1e-5
        )


def test_golden_with_doubling_for_static_sizes(golden, monkeypatch):
    """Static sizes above the unrolling limit use the doubling formulation (as dynamic ones do)."""
    monkeypatch.setattr(corner_pool_module, "_MAX_UNROLL", 0)
    for case in CASES:
        x, g = nhwc(golden[f"case{case}_x"]), nhwc(golden[f"case{case}_g"])
        for d in DIRECTIONS:
            y, dx = pool_with_gradient(x, g, d, "tf")
            np.testing.assert_array_equal(y, nhwc(golden[f"case{case}_{d}"]))
            np.testing.assert_allclose(dx, nhwc(golden[f"case{case}_grad_{d}"]), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Random shapes and dtypes


@pytest.mark.parametrize("impl", PORTABLE_IMPLS)
@pytest.mark.parametrize("shape", RANDOM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_random_shapes_match_reference(impl, shape):
    x = with_ties(shape, seed=sum(shape))
    g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(x, g, d, impl)
        np.testing.assert_array_equal(y, reference_forward(x, d), err_msg=d)
        np.testing.assert_allclose(dx, reference_backward(x, g, d), atol=1e-5, err_msg=d)


@pytest.mark.parametrize("impl", PORTABLE_IMPLS)
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64], ids=lambda t: t.name)
def test_other_float_dtypes(impl, dtype):
    """Integer inputs and upstream gradients keep every sum exact, so the comparison is exact."""
    shape = (2, 6, 5, 3)
    x = with_ties(shape, seed=3, dtype=np.float64)
    g = with_ties(shape, seed=4, dtype=np.float64)
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(tf.cast(x, dtype), tf.cast(g, dtype), d, impl)
        assert y.dtype == dtype.as_numpy_dtype and dx.dtype == dtype.as_numpy_dtype
        np.testing.assert_array_equal(y.astype(np.float64), reference_forward(x, d))
        np.testing.assert_array_equal(dx.astype(np.float64), reference_backward(x, g, d))


def test_tf_impl_numerical_gradient():
    x = tie_free((1, 3, 4, 2), seed=0)
    for d in DIRECTIONS:
        theoretical, numerical = tf.test.compute_gradient(
            lambda v: corner_pool(v, d, impl="tf"), [x], delta=1e-3
        )
        np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6, err_msg=d)


def test_implementations_agree_on_larger_input():
    x = with_ties((2, 17, 12, 8), seed=5)
    g = np.random.default_rng(6).standard_normal(x.shape).astype(np.float32)
    for d in DIRECTIONS:
        y_tf, dx_tf = pool_with_gradient(x, g, d, "tf")
        y_scan, dx_scan = pool_with_gradient(x, g, d, "scan")
        np.testing.assert_array_equal(y_tf, y_scan)
        np.testing.assert_allclose(dx_tf, dx_scan, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Graph modes: dynamic sizes, XLA, SavedModel, TFLite


def test_tf_impl_with_dynamic_height_and_width():
    """The SavedModel accepts any image size, so H and W are unknown when the graph is traced."""
    for d in DIRECTIONS:

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3]),
                tf.TensorSpec([None, None, None, 3]),
            ]
        )
        def pool_and_grad(x, g):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = corner_pool(x, d, impl="tf")
            return y, tape.gradient(y, x, output_gradients=g)

        for shape in [(1, 5, 7, 3), (2, 8, 3, 3), (1, 1, 1, 3)]:
            x = with_ties(shape, seed=7)
            g = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
            y, dx = pool_and_grad(x, g)
            np.testing.assert_array_equal(y.numpy(), reference_forward(x, d))
            np.testing.assert_allclose(dx.numpy(), reference_backward(x, g, d), atol=1e-5)
        op_types = {op.type for op in pool_and_grad.get_concrete_function().graph.get_operations()}
        assert "While" in op_types or "StatelessWhile" in op_types


@pytest.mark.parametrize("impl", ["tf", "auto"])
def test_xla_compiled(impl):
    """impl='tf' compiles with XLA; 'auto' chooses it there, since custom ops cannot be compiled."""
    x = with_ties((2, 6, 7, 4), seed=9)
    g = np.random.default_rng(10).standard_normal(x.shape).astype(np.float32)
    for d in DIRECTIONS:

        @tf.function(jit_compile=True)
        def pool_and_grad(v, gg):
            with tf.GradientTape() as tape:
                tape.watch(v)
                y = corner_pool(v, d, impl=impl)
            return y, tape.gradient(y, v, output_gradients=gg)

        y, dx = pool_and_grad(tf.constant(x), tf.constant(g))
        np.testing.assert_array_equal(y.numpy(), reference_forward(x, d))
        np.testing.assert_allclose(dx.numpy(), reference_backward(x, g, d), atol=1e-5)


def test_tf_impl_graph_uses_core_ops_only():
    fn = tf.function(lambda x: [corner_pool(x, d, impl="tf") for d in DIRECTIONS])
    graph = fn.get_concrete_function(tf.TensorSpec([1, None, None, 4])).graph
    assert not [op.type for op in graph.get_operations() if op.type.startswith("CornerPool")]


def test_saved_model_round_trip_with_any_size(tmp_path):
    module = tf.Module()
    module.pool = tf.function(
        lambda x: tf.stack([corner_pool(x, d, impl="tf") for d in DIRECTIONS]),
        input_signature=[tf.TensorSpec([None, None, None, 2])],
    )
    tf.saved_model.save(module, str(tmp_path / "pool"))
    loaded = tf.saved_model.load(str(tmp_path / "pool"))
    for shape in [(1, 6, 9, 2), (2, 3, 4, 2)]:
        x = with_ties(shape, seed=11)
        out = loaded.pool(tf.constant(x)).numpy()
        for i, d in enumerate(DIRECTIONS):
            np.testing.assert_array_equal(out[i], reference_forward(x, d))


def _tflite_run(concrete, x):
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex/custom ops
    interpreter = Interpreter(model_content=converter.convert())
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("spatial", ["static", "dynamic"])
def test_tflite_builtins(spatial):
    """Converts with TFLite builtins only and runs under LiteRT. Extreme values guard against
    -inf padding, which turns into NaN under the TFLite interpreter."""
    x = with_ties((1, 5, 6, 3), seed=12)
    x[0, 0, 0, 0], x[0, 4, 5, 1], x[0, 2, 3, 2] = -3e38, 3e38, -1e30
    size = [1, 5, 6, 3] if spatial == "static" else [1, None, None, 3]
    fn = tf.function(lambda v: tf.stack([corner_pool(v, d, impl="tf") for d in DIRECTIONS]))
    out = _tflite_run(fn.get_concrete_function(tf.TensorSpec(size)), x)
    assert np.isfinite(out).all()
    for i, d in enumerate(DIRECTIONS):
        np.testing.assert_array_equal(out[i], reference_forward(x, d))


# ---------------------------------------------------------------------------------------------
# API: bad input, empty tensors


def test_bad_input_errors_name_the_value():
    x = np.zeros((1, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match="diagonal"):
        corner_pool(x, "diagonal")
    with pytest.raises(ValueError, match="Top"):
        corner_pool(x, "Top")
    with pytest.raises(ValueError, match="direction"):
        corner_pool(x, 1)
    with pytest.raises(ValueError, match="cuda"):
        corner_pool(x, "top", impl="cuda")
    with pytest.raises(ValueError, match=r"4-D.*\(3, 3, 2\)"):
        corner_pool(np.zeros((3, 3, 2), np.float32), "top")
    with pytest.raises(ValueError, match="4-D"):
        corner_pool(np.zeros((1, 1, 3, 3, 2), np.float32), "left")
    with pytest.raises(TypeError, match="int32"):
        corner_pool(np.zeros((1, 3, 3, 2), np.int32), "top")
    with pytest.raises(TypeError, match="complex64"):
        corner_pool(tf.zeros((1, 3, 3, 2), tf.complex64), "top")
    with pytest.raises(ValueError, match="fast"):
        resolve_impl("fast")


@pytest.mark.parametrize("impl", PORTABLE_IMPLS + ("auto",))
@pytest.mark.parametrize("shape", [(1, 0, 5, 3), (1, 4, 0, 3), (0, 3, 3, 2), (1, 3, 3, 0)], ids=str)
def test_empty_dimensions(impl, shape):
    x = np.zeros(shape, np.float32)
    for d in DIRECTIONS:
        y, dx = pool_with_gradient(x, x, d, impl)
        assert y.shape == shape and dx.shape == shape


def test_empty_dimensions_dynamic():
    for impl in PORTABLE_IMPLS:
        fn = tf.function(
            lambda v, impl=impl: [corner_pool(v, d, impl=impl) for d in DIRECTIONS],
            input_signature=[tf.TensorSpec([None, None, None, 2])],
        )
        for shape in [(1, 0, 4, 2), (1, 4, 0, 2)]:
            assert all(out.shape == shape for out in fn(tf.zeros(shape)))


# ---------------------------------------------------------------------------------------------
# Native library missing or broken: "auto" falls back with one warning, "native" explains


@pytest.fixture
def fresh_native_state(monkeypatch):
    corner_pool_module.reset_native_state()
    yield monkeypatch
    monkeypatch.undo()
    corner_pool_module.reset_native_state()


@pytest.mark.parametrize("problem", ["missing", "not_a_library"])
def test_fallback_when_library_unusable(fresh_native_state, tmp_path, problem):
    bogus = tmp_path / "corner_pool_ops.so"
    if problem == "not_a_library":
        bogus.write_bytes(b"this is not a shared library")
    fresh_native_state.setenv(corner_pool_module.LIBRARY_ENV, str(bogus))
    x = with_ties((1, 4, 5, 2), seed=13)

    with pytest.warns(NativeOpFallbackWarning, match=str(bogus)) as record:
        y = corner_pool(x, "top", impl="auto")
    assert len([w for w in record if issubclass(w.category, NativeOpFallbackWarning)]) == 1
    np.testing.assert_array_equal(y.numpy(), reference_forward(x, "top"))
    assert resolve_impl("auto") == "tf"

    with warnings.catch_warnings():  # only the first fallback warns
        warnings.simplefilter("error", NativeOpFallbackWarning)
        np.testing.assert_array_equal(
            corner_pool(x, "left", impl="auto").numpy(), reference_forward(x, "left")
        )

    with pytest.raises(NativeOpUnavailableError, match=str(bogus)):
        corner_pool(x, "top", impl="native")
    available, reason = corner_pool_module.native_available()
    assert not available and str(bogus) in reason


def test_missing_default_library_names_build_command(fresh_native_state, tmp_path):
    fresh_native_state.delenv(corner_pool_module.LIBRARY_ENV, raising=False)
    from cornernet_tf.ops import build

    fresh_native_state.setattr(
        build, "KERNEL_DIR", tmp_path
    )  # an empty folder: nothing built there
    with pytest.raises(NativeOpUnavailableError, match=r"python -m cornernet_tf\.ops\.build"):
        corner_pool(np.zeros((1, 2, 2, 1), np.float32), "top", impl="native")


# ---------------------------------------------------------------------------------------------
# The model's corner-pool layer takes impl from the configuration


def test_model_layer_accepts_every_configured_impl():
    from cornernet_tf.config import ModelConfig
    from cornernet_tf.modeling.corner_pool import CornerPool

    assert ModelConfig().corner_pool_impl in IMPLS
    x = with_ties((1, 5, 4, 3), seed=14)
    for impl in IMPLS:
        if impl == "native" and not corner_pool_module.native_available()[0]:
            continue  # covered by test_corner_pool_native.py, which builds the library
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NativeOpFallbackWarning)
            layer = CornerPool("left", impl=impl)
            np.testing.assert_array_equal(np.asarray(layer(x)), reference_forward(x, "left"))
        assert CornerPool.from_config(layer.get_config()).impl == impl
