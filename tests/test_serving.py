"""cornernet_tf.serving: the gRPC and REST clients against the in-process PredictionService / REST server.

The servers implement TF Serving's real protocols (the tensorflow-serving-api protos, the REST JSON
API) over the exported SavedModel; bad requests must come back as INVALID_ARGUMENT (HTTP 400) with a
message, and the server must keep answering good requests afterwards.
"""

import json

import keras
import numpy as np
import pytest
from small_models import SMALL

from cornernet_tf.serving import client
from cornernet_tf.serving.server import (
    ServedModel,
    resolve_version_dir,
    serve_in_process,
    serve_rest_in_process,
)

CONFIG = "configs/cornernet_tiny.yaml"
CATEGORY_IDS = [2, 4, 6]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from cornernet_tf.config import load_config
    from cornernet_tf.export.saved_model import export_saved_model
    from cornernet_tf.modeling.cornernet import build_model

    keras.utils.set_random_seed(1)
    config = load_config(CONFIG, SMALL)
    model = build_model(config.model)
    for stack in model.stacks:  # equal embeddings: corners pair, so there are detections to compare
        for corner in ("tl", "br"):
            for var in stack[f"{corner}_tag"].out.weights:
                var.assign(np.zeros(var.shape, np.float32))
    root = tmp_path_factory.mktemp("serving")
    export_saved_model(
        model, out_dir=str(root / "cornernet"), version=2, category_ids=CATEGORY_IDS, config=config
    )
    return str(root / "cornernet")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    from cornernet_tf.data.shapes import generate_shapes

    root = tmp_path_factory.mktemp("images")
    generate_shapes(str(root / "a"), seed=5, size=(128, 160), splits={"val": 2})
    generate_shapes(str(root / "b"), seed=6, size=(90, 70), splits={"val": 1})
    return sorted(str(p) for p in root.glob("*/val/images/*.png"))


@pytest.fixture(scope="module")
def served(export_dir):
    model = ServedModel(export_dir, "cornernet")
    grpc_server, grpc_port = serve_in_process(model)
    rest_server, rest_port = serve_rest_in_process(model)
    yield {"model": model, "grpc": grpc_port, "rest": rest_port}
    grpc_server.stop(None)
    rest_server.shutdown()
    rest_server.server_close()


@pytest.fixture(scope="module")
def direct(export_dir, image_files):
    """The SavedModel called in this process: what every protocol must return."""
    import tensorflow as tf

    loaded = tf.saved_model.load(resolve_version_dir(export_dir)[0])
    data = [open(p, "rb").read() for p in image_files]
    out = loaded.signatures["serving_bytes"](image_bytes=tf.constant(data))
    return {k: v.numpy() for k, v in out.items()}


def _assert_same(got, expected, index=None):
    assert set(got) == set(expected)
    for key in expected:
        want = expected[key] if index is None else expected[key][index : index + 1]
        np.testing.assert_allclose(got[key], want, atol=1e-6, err_msg=key)


def test_version_folder_resolution(export_dir, tmp_path):
    path, version = resolve_version_dir(export_dir)
    assert version == 2 and path.endswith("/2")
    with pytest.raises(FileNotFoundError, match="version 7 not found"):
        resolve_version_dir(export_dir, 7)
    with pytest.raises(FileNotFoundError, match="no version folder"):
        resolve_version_dir(str(tmp_path))


def test_grpc_bytes_and_pixels(served, image_files, direct):
    port = served["grpc"]
    out = client.predict_grpc("127.0.0.1", port, image_files)  # files -> serving_bytes, mixed sizes
    _assert_same(out, direct)
    assert set(np.unique(out["detection_classes"])) <= {0.0, 2.0, 4.0, 6.0}
    assert out["num_detections"].max() > 0
    pixels = client.decode_to_array(open(image_files[0], "rb").read())
    _assert_same(
        client.predict_grpc("127.0.0.1", port, pixels), direct, index=0
    )  # array -> serving_default
    encoded = open(image_files[1], "rb").read()
    _assert_same(
        client.predict_grpc(f"127.0.0.1:{port}", encoded, model_name="cornernet"), direct, index=1
    )


def test_grpc_metadata(served):
    meta = client.get_metadata_grpc("127.0.0.1", served["grpc"])
    assert meta["serving_default"]["inputs"] == {"images": ("DT_UINT8", [-1, -1, -1, 3])}
    assert meta["serving_bytes"]["inputs"] == {"image_bytes": ("DT_STRING", [-1])}
    assert meta["serving_bytes"]["outputs"]["detection_boxes"] == ("DT_FLOAT", [-1, 100, 4])


GOOD = (np.full((1, 40, 48, 3), 90, np.uint8), "serving_default", "images")
BAD_REQUESTS = [
    # (batch, signature, input name, expected code, message pattern)
    (
        np.zeros((1, 40, 48, 3), np.float32),
        "serving_default",
        "images",
        "INVALID_ARGUMENT",
        "expects uint8",
    ),
    (np.zeros((40, 48, 3), np.uint8), "serving_default", "images", "INVALID_ARGUMENT", "rank 4"),
    (
        np.zeros((0, 40, 48, 3), np.uint8),
        "serving_default",
        "images",
        "INVALID_ARGUMENT",
        "batch is empty",
    ),
    (
        np.array([b"\x89PNG but not really"], object),
        "serving_bytes",
        "image_bytes",
        "INVALID_ARGUMENT",
        "image file format",
    ),
    (np.array([], object), "serving_bytes", "image_bytes", "INVALID_ARGUMENT", "batch is empty"),
    (
        np.zeros((1, 40, 48, 3), np.uint8),
        "serving_nothing",
        "images",
        "INVALID_ARGUMENT",
        "signature",
    ),
    (
        np.zeros((1, 40, 48, 3), np.uint8),
        "serving_default",
        "pixels",
        "INVALID_ARGUMENT",
        "missing \\['images'\\]",
    ),
]


@pytest.mark.parametrize("batch, signature, name, code, pattern", BAD_REQUESTS)
def test_grpc_bad_request_then_good_request(served, batch, signature, name, code, pattern):
    port = served["grpc"]
    with pytest.raises(client.PredictionError, match=pattern) as info:
        client.predict_request_grpc(
            "127.0.0.1", port, client.make_predict_request(batch, "cornernet", signature, name)
        )
    assert info.value.code == code
    good = client.predict_request_grpc(
        "127.0.0.1", port, client.make_predict_request(GOOD[0], "cornernet", *GOOD[1:])
    )
    assert good["detection_boxes"].shape == (1, 100, 4)


def test_grpc_unknown_model_is_not_found(served, image_files):
    with pytest.raises(client.PredictionError, match="other") as info:
        client.predict_grpc("127.0.0.1", served["grpc"], image_files[0], model_name="other")
    assert info.value.code == "NOT_FOUND"
    with pytest.raises(client.PredictionError) as info:
        client.predict_grpc("127.0.0.1", served["grpc"], image_files[0], version=9)
    assert info.value.code == "NOT_FOUND"


def test_rest_matches_grpc(served, image_files, direct):
    port = served["rest"]
    _assert_same(client.predict_rest("127.0.0.1", port, image_files), direct)
    pixels = client.decode_to_array(open(image_files[2], "rb").read())
    _assert_same(client.predict_rest("127.0.0.1", port, pixels, version=2), direct, index=2)


@pytest.mark.parametrize(
    "body, pattern",
    [
        (
            {"signature_name": "serving_bytes", "instances": [{"b64": "bm90IGFuIGltYWdl"}]},
            "image file format",
        ),
        ({"instances": [[[[1.5, 2.0, 3.0]]]]}, "uint8 integers"),
        ({"instances": [[[1, 2, 3]]]}, "rank 4"),
        ({"instances": [[[[1, 2, 3], [4, 5]]]]}, "rectangular"),
        ({"instances": [[[[300, 2, 3]]]]}, "uint8 range"),
        ({"signature_name": "serving_bytes", "instances": []}, "batch is empty"),
        ({"signature_name": "nope", "instances": [[[[1, 2, 3]]]]}, "signature"),
        ({"instances": [{"pixels": [[[1, 2, 3]]]}]}, "missing"),
        ({"inputs": [[[[1, 2, 3]]]], "instances": []}, "exactly one"),
    ],
)
def test_rest_bad_request_then_good_request(served, image_files, body, pattern):
    port = served["rest"]
    with pytest.raises(client.PredictionError, match=pattern) as info:
        client.post_json(client.predict_url("127.0.0.1", port), body)
    assert info.value.code == "HTTP 400"
    good = client.predict_rest("127.0.0.1", port, image_files[0])
    assert good["detection_scores"].shape == (1, 100)


def test_rest_columnar_format_and_status(served, direct, image_files):
    import base64
    import urllib.request

    port = served["rest"]
    data = base64.b64encode(open(image_files[1], "rb").read()).decode()
    reply = client.post_json(
        client.predict_url("127.0.0.1", port),
        {"signature_name": "serving_bytes", "inputs": {"image_bytes": [{"b64": data}]}},
    )
    np.testing.assert_allclose(
        reply["outputs"]["detection_scores"], direct["detection_scores"][1:2], atol=1e-6
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/cornernet") as response:
        status = json.loads(response.read())
    assert status["model_version_status"][0] == {
        "version": "2",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    with pytest.raises(client.PredictionError) as info:
        client.post_json(client.predict_url("127.0.0.1", port, "other"), {"instances": []})
    assert info.value.code == "HTTP 404"


def test_client_command_and_cornernet_serve_client(served, image_files, direct, capsys):
    from cornernet_tf.cli import main as cli_main

    args = [
        "--host",
        "127.0.0.1",
        "--port",
        str(served["grpc"]),
        "--min-score",
        "0",
        "--json",
        *image_files,
    ]
    assert client.main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [len(printed[p]) for p in image_files] == [int(n) for n in direct["num_detections"]]
    i = int(np.argmax(direct["num_detections"]))
    h, w = client.image_size(image_files[i])
    ymin, xmin, ymax, xmax = direct["detection_boxes"][i, 0]
    best = printed[image_files[i]][0]
    np.testing.assert_allclose(best["box"], [xmin * w, ymin * h, xmax * w, ymax * h], rtol=1e-5)
    assert best["category_id"] == int(direct["detection_classes"][i, 0])

    rest_args = [
        "serve-client",
        "--protocol",
        "rest",
        "--port",
        str(served["rest"]),
        "--signature",
        "serving_default",
        "--min-score",
        "0.0",
        image_files[2],
    ]
    assert cli_main(rest_args) == 0
    table = capsys.readouterr().out
    assert f"{int(direct['num_detections'][2])} detection(s)" in table
    assert (
        cli_main(
            [
                "serve-client",
                "--port",
                str(served["grpc"]),
                "--model-name",
                "missing",
                image_files[0],
            ]
        )
        == 1
    )
    assert "NOT_FOUND" in capsys.readouterr().err


def test_a_tiny_proto_declaring_a_huge_tensor_is_refused_and_serving_goes_on(served):
    """28 bytes declaring [1, 20000, 20000, 3]: tf.make_ndarray would build 1.2 GB; the declared
    size is checked first (INVALID_ARGUMENT), and the next request is served."""
    import grpc
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (1, 20000, 20000, 3)]
    )
    bomb = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, tensor_shape=shape, int_val=[7])
    assert len(bomb.SerializeToString()) <= 28
    channel = grpc.insecure_channel(f"127.0.0.1:{served['grpc']}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cornernet"
    request.inputs["images"].CopyFrom(bomb)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "declared shape [1, 20000, 20000, 3]" in info.value.details()
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 24, 32, 3), np.uint8)))
    reply = stub.Predict(request, timeout=60)
    assert reply.outputs["detection_boxes"].tensor_shape.dim[0].size == 1
    channel.close()
