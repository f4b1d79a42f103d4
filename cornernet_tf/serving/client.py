"""Clients for a CornerNet model served by TF Serving: gRPC (PredictionService) and REST, library and command.

Library::

    from cornernet_tf.serving.client import predict_grpc, predict_rest, detections
    outputs = predict_grpc("localhost", 8500, "dog.jpg")                  # encoded bytes -> serving_bytes
    outputs = predict_grpc("localhost:8500", open("dog.jpg", "rb").read())  # "host:port" works too
    outputs = predict_grpc("localhost", 8500, rgb_uint8_array)            # [H,W,3] or [B,H,W,3] -> serving_default
    outputs = predict_rest("localhost", 8501, "dog.jpg")
    for det in detections(outputs, image_sizes=[(h, w)])[0]: ...           # boxes in pixels

Command::

    cornernet serve-client --host localhost --port 8500 dog.jpg cat.png
    cornernet serve-client --protocol rest --port 8501 --signature serving_default dog.jpg
    cornernet serve-client --host models.example.com --port 443 --tls --ca-cert ca.pem dog.jpg

TLS (a server behind a TLS proxy, see serving/README.md): gRPC calls take ``credentials`` from
:func:`grpc_credentials`, REST calls an ``ssl_context`` from :func:`rest_ssl_context` (https); both
verify the server against ``ca_cert`` (else the system's roots) and can present a client
certificate.

(``python -m serving.client`` in a repository checkout is the same command.)

``outputs`` is the signature's dict of NumPy arrays: ``detection_boxes`` [B, N, 4] (normalised
ymin, xmin, ymax, xmax), ``detection_scores``, ``detection_classes`` (category ids) and
``num_detections``. Errors from the server raise :class:`PredictionError` with the status code
(``INVALID_ARGUMENT``...) and the server's message.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np

DEFAULT_MODEL_NAME = "cornernet"
SIGNATURE_IMAGES = "serving_default"
SIGNATURE_BYTES = "serving_bytes"
INPUT_NAMES = {SIGNATURE_IMAGES: "images", SIGNATURE_BYTES: "image_bytes"}
DEFAULT_TIMEOUT = 60.0
MAX_MESSAGE_BYTES = 64 << 20
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


class PredictionError(RuntimeError):
    """The server refused or failed a request. ``code``: gRPC status name or ``HTTP <status>``."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ClientUsageError(ValueError):
    """A client argument cannot be used: no image, mixed sizes, an unreadable certificate..."""


# ----------------------------------------------------------------------------------------- inputs

ImageLike = str | os.PathLike | bytes | np.ndarray


def _read(image: ImageLike) -> bytes | np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as fh:
            return fh.read()
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    return np.asarray(image)


def encode_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_to_array(data: bytes) -> np.ndarray:
    """Encoded image → uint8 RGB [H, W, 3]."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def choose_signature(images: Sequence[ImageLike], signature: str | None) -> str:
    """``serving_bytes`` for files and encoded bytes, ``serving_default`` for arrays, unless given."""
    if signature:
        return signature
    return SIGNATURE_IMAGES if all(isinstance(i, np.ndarray) for i in images) else SIGNATURE_BYTES


def prepare_batch(images: ImageLike | Sequence[ImageLike], signature: str | None = None):
    """``(signature, input name, batch)``: a string array [B] for ``serving_bytes``, a uint8 array
    [B, H, W, 3] for ``serving_default`` (all images must have the same size there)."""
    if isinstance(images, np.ndarray) and images.ndim == 4 or isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    if not items:
        raise ClientUsageError("no image to send")
    signature = choose_signature(items, signature)
    loaded = [_read(i) for i in items]
    if signature == SIGNATURE_BYTES:
        batch = np.array(
            [i if isinstance(i, bytes) else encode_png(i) for i in loaded], dtype=object
        )
    else:
        arrays = [decode_to_array(i) if isinstance(i, bytes) else i for i in loaded]
        if len({a.shape for a in arrays}) > 1:
            raise ClientUsageError(
                f"serving_default needs images of one size per request, got {[a.shape for a in arrays]}"
            )
        batch = np.stack(arrays)
    return signature, INPUT_NAMES.get(signature, "images"), batch


# ------------------------------------------------------------------------------------------ TLS


def _read_pem(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ClientUsageError(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None


def _check_pair(client_cert: str | None, client_key: str | None) -> None:
    if (client_cert is None) != (client_key is None):
        raise ClientUsageError(
            "a client certificate needs its key: give both --client-cert and --client-key"
        )


def _require_grpc() -> None:
    """grpc and the TF Serving protos (the ``[serving]`` extra), or one line naming the extra."""
    from cornernet_tf.extras import require

    require("grpc", "a gRPC request")
    require("tensorflow_serving.apis.prediction_service_pb2_grpc", "a gRPC request")


def grpc_credentials(
    ca_cert: str | None = None, client_cert: str | None = None, client_key: str | None = None
):
    """``grpc.ssl_channel_credentials`` from PEM files: the CA that signed the server's certificate
    (None: the system's roots) and optionally a client certificate and key (mutual TLS)."""
    _require_grpc()
    import grpc

    _check_pair(client_cert, client_key)
    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem(ca_cert, "CA certificate"),
        private_key=_read_pem(client_key, "client key"),
        certificate_chain=_read_pem(client_cert, "client certificate"),
    )


def rest_ssl_context(
    ca_cert: str | None = None, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for https: verifies the server against ``ca_cert`` (None: the system's
    roots) and host name, and presents the client certificate when given."""
    _check_pair(client_cert, client_key)
    for path, what in ((ca_cert, "CA certificate"), (client_cert, "client certificate")):
        _read_pem(path, what)  # a clear error for a missing file
    context = ssl.create_default_context(cafile=ca_cert)
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


def _channel(host: str, port: int, credentials=None, server_name: str | None = None):
    """An insecure channel, or a TLS one with ``credentials`` (``server_name``: the name the
    server's certificate carries, when it differs from ``host``)."""
    _require_grpc()
    import grpc

    target = f"{host}:{int(port)}"
    if credentials is None:
        return grpc.insecure_channel(target, options=_GRPC_OPTIONS)
    options = list(_GRPC_OPTIONS)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=options)


# ------------------------------------------------------------------------------------------ gRPC


def make_predict_request(
    batch: np.ndarray,
    model_name: str = DEFAULT_MODEL_NAME,
    signature: str = SIGNATURE_IMAGES,
    input_name: str | None = None,
    version: int | None = None,
):
    """A ``PredictRequest`` carrying ``batch`` (any dtype: the server checks it)."""
    _require_grpc()
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs[input_name or INPUT_NAMES.get(signature, "images")].CopyFrom(
        tf.make_tensor_proto(batch)
    )
    return request


def predict_request_grpc(
    host: str,
    port: int,
    request,
    timeout: float = DEFAULT_TIMEOUT,
    credentials=None,
    server_name: str | None = None,
) -> dict:
    """Send a ``PredictRequest``; returns ``{output: ndarray}`` (decoded with ``tf.make_ndarray``).

    ``credentials`` (:func:`grpc_credentials`) makes it a TLS call."""
    _require_grpc()
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with _channel(host, port, credentials, server_name) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise PredictionError(exc.code().name, exc.details() or "") from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _target(host: str, port, image):
    """``(host, port, image)`` from ``(host, port, image)`` or the gRPC-style ``("host:port", image)``."""
    if image is None:
        if not isinstance(host, str) or ":" not in host:
            raise ClientUsageError(
                f"give (host, port, image) or ('host:port', image); got host={host!r} and no image"
            )
        name, _, number = host.rpartition(":")
        return name, int(number), port
    return host, int(port), image


def predict_grpc(
    host: str,
    port,
    image: ImageLike | Sequence[ImageLike] | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    signature: str | None = None,
    version: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    credentials=None,
    server_name: str | None = None,
) -> dict:
    """Detect objects in one image or a batch over gRPC (see the module docstring).

    Called as ``predict_grpc(host, port, image)`` or ``predict_grpc("host:port", image)``;
    ``credentials`` (:func:`grpc_credentials`) for TLS."""
    host, port, image = _target(host, port, image)
    signature, input_name, batch = prepare_batch(image, signature)
    request = make_predict_request(batch, model_name, signature, input_name, version)
    return predict_request_grpc(host, port, request, timeout, credentials, server_name)


def get_metadata_grpc(
    host: str,
    port: int,
    model_name: str = DEFAULT_MODEL_NAME,
    timeout: float = DEFAULT_TIMEOUT,
    credentials=None,
    server_name: str | None = None,
) -> dict:
    """``{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}}`` from GetModelMetadata."""
    _require_grpc()
    import grpc
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model_name
    request.metadata_field.append("signature_def")
    with _channel(host, port, credentials, server_name) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
                request, timeout=timeout
            )
        except grpc.RpcError as exc:
            raise PredictionError(exc.code().name, exc.details() or "") from None
    sigs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sigs)

    def describe(tensors):
        return {
            name: (types_pb2.DataType.Name(info.dtype), [d.size for d in info.tensor_shape.dim])
            for name, info in tensors.items()
        }

    return {
        key: {"inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
        for key, sig in sigs.signature_def.items()
    }


# ------------------------------------------------------------------------------------------ REST


def rest_body(batch: np.ndarray, signature: str, input_name: str) -> dict:
    """TF Serving's row format: one instance per image; binary strings as ``{"b64": ...}``."""
    if batch.dtype == object or batch.dtype.kind == "S":
        instances = [{input_name: {"b64": base64.b64encode(bytes(b)).decode()}} for b in batch]
    else:
        instances = [{input_name: item.tolist()} for item in batch]
    return {"signature_name": signature, "instances": instances}


def post_json(
    url: str,
    body: dict,
    timeout: float = DEFAULT_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=ssl_context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except (ValueError, AttributeError):
            message = exc.reason
        raise PredictionError(f"HTTP {exc.code}", str(message)) from None


def predict_url(
    host: str,
    port: int,
    model_name: str = DEFAULT_MODEL_NAME,
    version: int | None = None,
    scheme: str = "http",
) -> str:
    versions = f"/versions/{int(version)}" if version is not None else ""
    return f"{scheme}://{host}:{int(port)}/v1/models/{model_name}{versions}:predict"


def predict_rest(
    host: str,
    port,
    image: ImageLike | Sequence[ImageLike] | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    signature: str | None = None,
    version: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> dict:
    """Detect objects in one image or a batch over REST; same result as :func:`predict_grpc`.

    Called as ``predict_rest(host, port, image)`` or ``predict_rest("host:port", image)``;
    ``ssl_context`` (:func:`rest_ssl_context`) makes it an https call."""
    host, port, image = _target(host, port, image)
    signature, input_name, batch = prepare_batch(image, signature)
    reply = post_json(
        predict_url(host, port, model_name, version, "https" if ssl_context else "http"),
        rest_body(batch, signature, input_name),
        timeout,
        ssl_context,
    )
    rows = reply.get("predictions")
    if rows is None:
        raise PredictionError(
            "INVALID_RESPONSE", f"no 'predictions' in the reply: {str(reply)[:200]}"
        )
    return {name: np.asarray([row[name] for row in rows], np.float32) for name in rows[0]}


# ------------------------------------------------------------------------------------------ results


def detections(outputs: dict, image_sizes: Sequence[Sequence[int]], min_score: float = 0.0) -> list:
    """Per image, a list of ``{"box": [x1, y1, x2, y2] pixels, "score", "category_id"}`` (best first)."""
    results = []
    for i, (height, width) in enumerate(image_sizes):
        count = int(outputs["num_detections"][i])
        items = []
        for box, score, cls in zip(
            outputs["detection_boxes"][i][:count],
            outputs["detection_scores"][i][:count],
            outputs["detection_classes"][i][:count],
        ):
            if score < min_score:
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in box)
            items.append(
                {
                    "box": [xmin * width, ymin * height, xmax * width, ymax * height],
                    "score": float(score),
                    "category_id": int(cls),
                }
            )
        results.append(items)
    return results


def image_size(image: ImageLike) -> tuple:
    data = _read(image)
    if isinstance(data, bytes):
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.height, img.width
    return tuple(data.shape[:2])


# ------------------------------------------------------------------------------------------ command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files (JPEG/PNG)")
    parser.add_argument(
        "--host", default="localhost", help="server host name or address (default localhost)"
    )
    parser.add_argument("--port", type=int, default=None, help="default 8500 (gRPC) or 8501 (REST)")
    parser.add_argument(
        "--protocol",
        choices=("grpc", "rest"),
        default="grpc",
        help="gRPC PredictionService or the REST API (default grpc)",
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help=f"model name in the server's models.config (default {DEFAULT_MODEL_NAME})",
    )
    parser.add_argument(
        "--signature",
        choices=(SIGNATURE_BYTES, SIGNATURE_IMAGES),
        default=SIGNATURE_BYTES,
        help="serving_bytes sends the encoded files; serving_default sends decoded pixels",
    )
    parser.add_argument(
        "--model-version", type=int, default=None, help="version to query (default: the latest)"
    )
    parser.add_argument(
        "--min-score", type=float, default=0.3, help="print detections scoring at least this"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    tls = parser.add_argument_group("TLS (a server behind a TLS-terminating proxy)")
    tls.add_argument(
        "--tls", action="store_true", help="connect with TLS (gRPC over TLS, or https for REST)"
    )
    tls.add_argument(
        "--ca-cert", metavar="PEM", help="CA certificate to verify the server (implies --tls)"
    )
    tls.add_argument("--client-cert", metavar="PEM", help="client certificate for mutual TLS")
    tls.add_argument("--client-key", metavar="PEM", help="private key of --client-cert")
    tls.add_argument(
        "--server-name",
        metavar="NAME",
        help="host name in the server's certificate, when it differs from --host (gRPC)",
    )


def connection_options(args) -> dict:
    """The keyword arguments of :func:`predict_grpc` / :func:`predict_rest` for the TLS flags."""
    use_tls = args.tls or any((args.ca_cert, args.client_cert, args.client_key))
    if not use_tls:
        return {}
    if args.protocol == "grpc":
        return {
            "credentials": grpc_credentials(args.ca_cert, args.client_cert, args.client_key),
            "server_name": args.server_name,
        }
    return {"ssl_context": rest_ssl_context(args.ca_cert, args.client_cert, args.client_key)}


def run(args) -> int:
    port = args.port or (8500 if args.protocol == "grpc" else 8501)
    predict = functools.partial(
        predict_grpc if args.protocol == "grpc" else predict_rest, **connection_options(args)
    )
    sizes = [image_size(p) for p in args.images]
    if args.signature == SIGNATURE_IMAGES:  # one request per image: sizes may differ
        per_image = [
            predict(
                args.host,
                port,
                decode_to_array(_read(p)),
                args.model_name,
                args.signature,
                args.model_version,
                args.timeout,
            )
            for p in args.images
        ]
        found = [detections(o, [s], args.min_score)[0] for o, s in zip(per_image, sizes)]
    else:
        outputs = predict(
            args.host,
            port,
            list(args.images),
            args.model_name,
            args.signature,
            args.model_version,
            args.timeout,
        )
        found = detections(outputs, sizes, args.min_score)
    if args.json:
        print(json.dumps({os.fspath(p): dets for p, dets in zip(args.images, found)}, indent=1))
        return 0
    for path, dets in zip(args.images, found):
        print(f"{path}: {len(dets)} detection(s) with score >= {args.min_score}")
        for d in dets:
            x1, y1, x2, y2 = d["box"]
            print(
                f"  category {d['category_id']:>4}  score {d['score']:.3f}  "
                f"box [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cornernet serve-client",
        description="Send images to a CornerNet model served by TF Serving.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    from cornernet_tf.errors import MissingDependencyError

    try:
        return run(args)
    except PredictionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
