"""test.precision: the network computes in float32, bfloat16 or float16; maps and decoding stay float32.

The reduced-precision maps are compared with float32 on the golden reduced model (official weights,
the golden input). Stated tolerances, as the mean |difference| over the mean |float32 value| of the
heatmap logits: bfloat16 (8-bit mantissa) 3 %, float16 (11-bit) 0.5 %; measured 1.3 % and 0.2 %.
"""

import numpy as np
import pytest
import tensorflow as tf
from golden import load_golden
from small_models import SMALL

from cornernet_tf.config import ConfigError, TestConfig, load_config
from cornernet_tf.detection.contract import OUTPUT_KEYS
from cornernet_tf.inference import Detector, GraphDetector
from cornernet_tf.modeling import precision
from cornernet_tf.modeling.precision import compute_dtype, model_in_precision, resolve_precision

# Mean relative error of the heatmap logits allowed against float32 (module docstring).
HEAT_TOLERANCE = {"bfloat16": 0.03, "float16": 0.005}


@pytest.fixture(scope="module")
def golden_input():
    return tf.constant(np.transpose(load_golden("model_io.npz")["input"], (0, 2, 3, 1)))


@pytest.fixture(scope="module")
def float32_maps(golden_model, golden_input):
    out = golden_model(golden_input, training=False, stacks="last")
    return {key: out[key][-1].numpy() for key in OUTPUT_KEYS}


def test_config_accepts_the_precisions_and_names_a_bad_one():
    assert TestConfig().precision == "float32"
    for name in ("float32", "bfloat16", "float16", "auto"):
        assert load_config({"test": {"precision": name}}).test.precision == name
    with pytest.raises(ConfigError, match="test.precision must be .*'int4'"):
        load_config({"test": {"precision": "int4"}})


def test_auto_picks_bfloat16_only_on_hardware_that_has_it(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma", "f16c"}))
    assert resolve_precision("auto") == "float32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16", "amx_tile"}))
    assert resolve_precision("auto") == "bfloat16"
    assert resolve_precision("float16") == "float16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half")


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_reduced_precision_computes_in_it_and_returns_float32_maps_close_to_float32(
    golden_model, golden_input, float32_maps, name
):
    assert model_in_precision(golden_model, "float32") is golden_model
    model = model_in_precision(golden_model, name)
    assert model is not golden_model and compute_dtype(model) == name
    assert compute_dtype(golden_model) == "float32"  # the source model is left as it was
    # Weights stay float32 variables; the convolutions compute in the reduced dtype.
    assert {v.dtype for v in model.weights} == {"float32"}
    hidden = model.stacks[-1]["tl_heat"].hidden
    assert hidden(tf.zeros([1, 8, 8, model.model_config.cnv_dim])).dtype == name
    out = model(golden_input, training=False, stacks="last")
    for key in OUTPUT_KEYS:
        assert out[key][-1].dtype == tf.float32, key
    for key in ("tl_heat", "br_heat"):
        reference = float32_maps[key]
        error = np.abs(out[key][-1].numpy() - reference).mean() / np.abs(reference).mean()
        assert error < HEAT_TOLERANCE[name], (key, error)
        assert error > 0  # it really computed in another precision


def test_the_copy_follows_the_source_weights():
    from cornernet_tf.modeling.cornernet import build_model

    source = build_model(load_config("configs/cornernet_tiny.yaml", SMALL).model)
    first = model_in_precision(source, "bfloat16")
    kernel = source.stacks[-1]["tl_heat"].out.kernel
    kernel.assign(kernel + 1.0)
    again = model_in_precision(source, "bfloat16")
    assert again is first  # built once per model and precision
    np.testing.assert_array_equal(again.stacks[-1]["tl_heat"].out.kernel.numpy(), kernel.numpy())


def test_detector_runs_the_network_in_the_configured_precision(golden_model):
    from cornernet_tf.detection.decode import decode_outputs
    from cornernet_tf.detection.settings import decode_settings

    image = np.ascontiguousarray(
        load_golden("test_pipeline.npz")["image_0_bgr_hwc_uint8"][..., ::-1]
    )
    detector = Detector(golden_model, {"precision": "bfloat16", "flip": False})
    assert compute_dtype(detector.model) == "bfloat16"
    assert Detector(golden_model).model is golden_model  # float32 by default: the model itself
    got = detector.detect_scale(image, 1.0)
    assert got["decoded"].dtype == np.float32 and got["detections"].dtype == np.float32
    # The same input through the float32 network, decoded eagerly with the same settings.
    maps = golden_model(tf.constant(got["net_input"]), training=False, stacks="last")
    want = decode_outputs(maps, **decode_settings(detector.config)).numpy()
    # The best pair's score moves by the heatmap error only (sigmoid slope <= 1/4).
    assert abs(got["decoded"][..., 4].max() - want[..., 4].max()) < 0.02
    graph = GraphDetector(golden_model, {"precision": "float16"})
    assert compute_dtype(graph.model) == "float16"


@pytest.mark.slow
def test_saved_model_in_bfloat16_computes_in_it_and_returns_float32(tmp_path):
    from cornernet_tf.export.saved_model import export_saved_model

    config = load_config("configs/cornernet_tiny.yaml", [*SMALL, "test.precision=bfloat16"])
    path = export_saved_model(config, out_dir=str(tmp_path / "m"), version=1, warmup=False)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    graph = serve.graph.as_graph_def()
    dtypes = {
        attr.type
        for function in graph.library.function
        for node in function.node_def
        if node.op == "Conv2D"
        for attr in [node.attr["T"]]
    }
    assert tf.bfloat16.as_datatype_enum in dtypes
    image = np.random.default_rng(0).integers(0, 256, (1, 70, 90, 3), dtype=np.uint8)
    out = serve(images=tf.constant(image))
    assert {k: v.dtype for k, v in out.items()} == {
        "detection_boxes": tf.float32,
        "detection_scores": tf.float32,
        "detection_classes": tf.float32,
        "num_detections": tf.float32,
    }


def test_cli_precision_overrides_the_config():
    from cornernet_tf.cli import build_parser
    from cornernet_tf.commands._common import load_config_from_args

    for command in (
        ["export", "--config", "cornernet_tiny", "--weights", "w", "--out", "o"],
        ["detect", "--config", "cornernet_tiny", "--weights", "w", "--out", "o", "x.png"],
        ["eval", "--config", "cornernet_tiny", "--weights", "w"],
    ):
        args = build_parser().parse_args([*command, "--precision", "bfloat16"])
        assert load_config_from_args(args).test.precision == "bfloat16"
        args = build_parser().parse_args(command)
        assert load_config_from_args(args).test.precision == "float32"
