"""impl="auto" chooses the native op per device (cornernet_tf/ops/native_devices.py).

The decision logic runs on the CPU with TensorFlow's kernel registry, its device list and the
on-device self-check stubbed at their boundary functions, so the GPU cases (a library without
CUDA kernels, a GPU kernel that fails its self-check) are exercised without a GPU. The real
registry and self-check are tested on the CPU with the built library, and a training step is
built and run with soft device placement off.
"""

import importlib
import warnings

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.ops import NativeOpFallbackWarning, build, corner_pool, resolve_impl

corner_pool_module = importlib.import_module("cornernet_tf.ops.corner_pool")
native_devices = importlib.import_module("cornernet_tf.ops.native_devices")

ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")


@pytest.fixture(scope="module", autouse=True)
def native_library():
    try:
        build.build(verbose=False)
    except build.BuildError as exc:
        pytest.fail(f"the native corner-pool op does not build here: {exc}")
    corner_pool_module.reset_native_state()
    assert corner_pool_module.native_available()[0]


@pytest.fixture
def fresh(monkeypatch):
    """A clean decision state before and after the test (verdicts, warnings)."""
    corner_pool_module.reset_native_state()
    yield monkeypatch
    monkeypatch.undo()
    corner_pool_module.reset_native_state()


def stub_machine(monkeypatch, kernels: set[str], visible: set[str], failing: dict | None = None):
    """A library with kernels for device types ``kernels``, devices ``visible``, and self-checks
    that fail on the devices in ``failing`` (device -> reason). Returns the self-check calls."""
    calls = []

    def registered(op_name):
        return {(t, d) for t in kernels for d in ALL_DTYPES}

    def check(module, device, dtype):
        calls.append((device, dtype))
        return (failing or {}).get(device)

    monkeypatch.setattr(native_devices, "registered_kernels", registered)
    monkeypatch.setattr(native_devices, "visible_device_types", lambda: set(visible))
    monkeypatch.setattr(native_devices, "self_check", check)
    return calls


def fallback_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, NativeOpFallbackWarning)]


# ---------------------------------------------------------------------------------------------
# The decision, per device


def test_library_without_gpu_kernels_uses_tf_on_the_gpu_and_native_on_the_cpu(fresh):
    calls = stub_machine(fresh, kernels={"CPU"}, visible={"CPU", "GPU"})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert resolve_impl("auto", device="GPU:0") == "tf"
        assert resolve_impl("auto", device="GPU:0") == "tf"
        assert resolve_impl("auto", device="CPU:0") == "native"
    messages = fallback_warnings(record)
    assert len(messages) == 1  # one warning per device, giving the reason
    assert "GPU:0" in messages[0] and "no GPU kernel for CornerPool" in messages[0]
    assert calls == [("CPU:0", "float32")]  # no self-check where no kernel is registered


def test_gpu_kernel_that_fails_its_self_check_is_not_used(fresh):
    reason = "self-check: float32 gradient (top) on GPU:0 differs from impl='tf'"
    stub_machine(fresh, kernels={"CPU", "GPU"}, visible={"CPU", "GPU"}, failing={"GPU:0": reason})
    with pytest.warns(NativeOpFallbackWarning, match="differs from impl='tf'"):
        assert resolve_impl("auto", device="GPU:0") == "tf"
    assert resolve_impl("auto", device="GPU:1") == "native"  # each device is checked on its own
    assert resolve_impl("auto", device="CPU:0") == "native"


def test_self_check_runs_once_per_device_and_dtype(fresh):
    calls = stub_machine(fresh, kernels={"CPU", "GPU"}, visible={"CPU", "GPU"})
    x16 = tf.zeros((1, 2, 2, 1), tf.float16)
    for _ in range(3):
        assert resolve_impl("auto", device="GPU:0") == "native"
        assert resolve_impl("auto", x=x16, device="GPU:0") == "native"
        assert resolve_impl("auto", device="CPU:0") == "native"
    assert sorted(calls) == [("CPU:0", "float32"), ("GPU:0", "float16"), ("GPU:0", "float32")]


def test_kernel_for_another_dtype_only_is_not_enough(fresh):
    stub_machine(fresh, kernels=set(), visible={"CPU", "GPU"})
    fresh.setattr(native_devices, "registered_kernels", lambda op: {("GPU", "float32")})
    with pytest.warns(NativeOpFallbackWarning, match=r"no GPU kernel for CornerPool \(float16\)"):
        assert resolve_impl("auto", x=tf.zeros((1, 1, 1, 1), tf.float16), device="GPU:0") == "tf"


def test_device_type_that_is_not_visible_is_refused(fresh):
    stub_machine(fresh, kernels={"CPU", "GPU"}, visible={"CPU"})
    with pytest.warns(NativeOpFallbackWarning, match="no GPU device is visible"):
        assert resolve_impl("auto", device="GPU:0") == "tf"


def test_explicit_impls_bypass_the_decision(fresh):
    calls = stub_machine(fresh, kernels=set(), visible={"CPU", "GPU"})
    for impl in ("native", "tf", "scan"):
        assert resolve_impl(impl, device="GPU:0") == impl
    assert calls == []


# ---------------------------------------------------------------------------------------------
# Which device an op will run on


def test_target_device_follows_scopes_inputs_and_defaults(fresh):
    stub_machine(fresh, kernels={"CPU"}, visible={"CPU", "GPU"})
    assert native_devices.target_device() == "GPU:0"  # TensorFlow's default with a GPU
    fresh.setattr(native_devices, "visible_device_types", lambda: {"CPU"})
    assert native_devices.target_device() == "CPU:0"
    with tf.device("/CPU:0"):
        assert native_devices.target_device() == "CPU:0"
    assert native_devices.target_device(tf.zeros(1)) == "CPU:0"  # eager: where x lives

    seen = {}

    @tf.function(autograph=False)
    def trace(x):
        seen["none"] = native_devices.target_device(x)
        with tf.device("/GPU:1"):
            seen["gpu1"] = native_devices.target_device(x)
            with tf.device("/replica:0"):  # a partial scope merges with the outer one
                seen["merged"] = native_devices.target_device(x)
            with tf.device(None):
                seen["cleared"] = native_devices.target_device(x)
        # tf.distribute sets full names per replica
        with tf.device("/job:localhost/replica:0/task:0/device:GPU:3"):
            seen["replica"] = native_devices.target_device(x)
        return x

    trace.get_concrete_function(tf.TensorSpec([1, 2, 2, 1]))
    assert seen == {
        "none": "CPU:0",
        "gpu1": "GPU:1",
        "merged": "GPU:1",
        "cleared": "CPU:0",
        "replica": "GPU:3",
    }


def test_graph_uses_tf_for_a_gpu_step_and_native_for_a_cpu_step(fresh):
    """The same traced function: corner pools built under a GPU scope use the portable ops when
    the library has no GPU kernel (nothing of the GPU step would be placed on the CPU); those
    under a CPU scope use the native op. Only traced: this machine may have no GPU."""
    stub_machine(fresh, kernels={"CPU"}, visible={"CPU", "GPU"})

    @tf.function(autograph=False)
    def step(x):
        with tf.device("/GPU:0"):
            on_gpu = corner_pool(x, "top") + corner_pool(x, "left")
        with tf.device("/CPU:0"):
            on_cpu = corner_pool(x, "bottom")
        return on_gpu, on_cpu

    with pytest.warns(NativeOpFallbackWarning, match="GPU:0"):
        graph = step.get_concrete_function(tf.TensorSpec([1, 4, 4, 2])).graph
    pools = [op for op in graph.get_operations() if op.type == "CornerPool"]
    assert len(pools) == 1 and "CPU:0" in pools[0].device
    gpu_ops = [op for op in graph.get_operations() if "GPU:0" in op.device]
    assert gpu_ops and not [op for op in gpu_ops if op.type.startswith("CornerPool")]


# ---------------------------------------------------------------------------------------------
# The real registry and self-check (CPU)


def test_registry_lists_the_cpu_kernels_of_the_built_library():
    for op in native_devices.OP_NAMES:
        pairs = native_devices.registered_kernels(op)
        assert {("CPU", d) for d in ALL_DTYPES} <= pairs
    assert "CPU" in native_devices.visible_device_types()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_self_check_passes_on_the_cpu(dtype):
    assert native_devices.self_check(corner_pool_module.load_native(), "CPU:0", dtype) is None


class WrongKernels:
    """An op module whose forward or gradient is wrong (as a miscompiled kernel would be)."""

    def __init__(self, wrong: str):
        self.native = corner_pool_module.load_native()
        self.wrong = wrong

    def corner_pool(self, x, direction):
        y = self.native.corner_pool(x, direction=direction)
        return x if self.wrong == "forward" else y

    def corner_pool_grad(self, y, dy, direction):
        dx = self.native.corner_pool_grad(y, dy, direction=direction)
        return dy if self.wrong == "gradient" else dx


@pytest.mark.parametrize("wrong", ["forward", "gradient"])
def test_self_check_detects_wrong_results(wrong):
    reason = native_devices.self_check(WrongKernels(wrong), "CPU:0", "float32")
    assert reason is not None and wrong in reason and "CPU:0" in reason


def test_self_check_reports_a_kernel_that_cannot_run():
    class Broken:
        def corner_pool(self, x, direction):
            raise tf.errors.InternalError(None, None, "CUDA error: no kernel image is available")

    reason = native_devices.self_check(Broken(), "CPU:0", "float32")
    assert "failed to run" in reason and "no kernel image" in reason


# ---------------------------------------------------------------------------------------------
# A training step with soft device placement off


@pytest.mark.parametrize("library", ["with_kernels", "without_kernels_here"])
def test_training_step_builds_with_soft_placement_off(fresh, library):
    """On every visible device type the step builds and runs with soft placement off. With a
    library that lacks kernels for this machine's devices, auto uses the portable ops."""
    import keras
    from test_training import SMALL_MODEL, make_batch

    from cornernet_tf.training.task import build_model

    if library == "without_kernels_here":
        visible = native_devices.visible_device_types()
        fresh.setattr(native_devices, "registered_kernels", lambda op: {("TPU", "float32")})
        fresh.setattr(native_devices, "visible_device_types", lambda: visible)
    native_calls = []
    real_native = corner_pool_module._corner_pool_native
    fresh.setattr(
        corner_pool_module,
        "_corner_pool_native",
        lambda x, d: native_calls.append(d) or real_native(x, d),
    )
    soft = tf.config.get_soft_device_placement()
    tf.config.set_soft_device_placement(False)
    try:
        keras.utils.set_random_seed(3)
        model = build_model(dict(SMALL_MODEL, corner_pool_impl="auto"))
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        images, targets = make_batch(2, seed=4)
        ds = tf.data.Dataset.from_tensor_slices((images, targets)).batch(2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NativeOpFallbackWarning)
            history = model.fit(ds, epochs=1, verbose=0).history
    finally:
        tf.config.set_soft_device_placement(soft)
    assert np.isfinite(history["loss"][0])
    if library == "with_kernels":
        assert len(native_calls) >= 4  # the model's corner pools use the native op
    else:
        assert native_calls == []


MIRRORED_SOFT_PLACEMENT_OFF = """
import importlib, json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.set_soft_device_placement(False)

import keras
sys.path.insert(0, {tests!r})
from test_training import SMALL_MODEL, make_batch
from cornernet_tf.training.task import build_model

native_devices = importlib.import_module("cornernet_tf.ops.native_devices")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = build_model(dict(SMALL_MODEL, corner_pool_impl="auto"))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
images, targets = make_batch(4, seed=5)
ds = tf.data.Dataset.from_tensor_slices((images, targets)).batch(4)
loss = model.fit(ds, epochs=1, verbose=0).history["loss"][0]
verdicts = {{f"{{d}}/{{t}}": v for (d, t), v in native_devices._verdicts.by_key.items()}}
json.dump({{"loss": loss, "verdicts": verdicts}}, open("result.json", "w"))
"""


@pytest.mark.slow  # a fresh TensorFlow process with two logical devices
def test_mirrored_step_on_every_device_with_soft_placement_off(tmp_path):
    """MirroredStrategy over two logical CPU devices, soft placement off: the step builds and
    runs, and auto decided for each replica's device on its own."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SOFT_PLACEMENT_OFF.format(tests=os.path.join(root, "tests")))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert np.isfinite(result["loss"])
    assert result["verdicts"] == {"CPU:0/float32": None, "CPU:1/float32": None}
