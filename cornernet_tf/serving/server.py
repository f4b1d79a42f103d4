"""An in-process stand-in for TF Serving: the real gRPC ``PredictionService`` and the REST API over a SavedModel.

Production serving uses the ``tensorflow_model_server`` binary (see ``serving/README.md`` in the
repository). This module exists to test the exported model and the clients end to end on machines
where that binary cannot be installed: it implements the same protocols on 127.0.0.1,

* gRPC: ``tensorflow.serving.PredictionService`` (``Predict``, ``GetModelMetadata``) from the
  ``tensorflow-serving-api`` protos, served by ``grpc.server``;
* REST: ``POST /v1/models/NAME[/versions/N]:predict`` (``instances`` row format or ``inputs``
  columnar format, ``{"b64": ...}`` for binary strings), ``GET /v1/models/NAME`` and
  ``GET /v1/models/NAME/metadata``, served by ``http.server``,

and answers bad requests the way TF Serving does: wrong dtype, wrong rank, missing or unknown input
names, an undecodable image, an image over the exported model's pixel limit, an empty batch or an
unknown signature give INVALID_ARGUMENT (HTTP 400) with a message, and so does a gRPC TensorProto
whose declared shape holds more than the 64 MiB message limit (checked before it is materialised:
``tf.make_ndarray`` would repeat the last value up to that shape); an unknown model gives NOT_FOUND
(HTTP 404). (TF Serving itself reports an unknown signature as FAILED_PRECONDITION.) The server
keeps serving after an error.

It also holds against malformed HTTP: a non-numeric or negative ``Content-Length`` is 400, a POST
without one 411, a body over ``max_body_bytes`` (default 64 MiB, the gRPC message limit) 413, JSON
nested deeper than :data:`MAX_JSON_DEPTH` 400; a client that stalls is dropped after
``request_timeout`` seconds. Both servers bind their port exclusively (no ``SO_REUSEPORT``): a port
in use is an ``OSError`` naming it, never a silently shared port. Both listen on 127.0.0.1 unless
told otherwise, and take TLS credentials (``server_credentials`` for gRPC, ``ssl_context`` for REST).

It loads the SavedModel with ``tf.saved_model.load`` and never imports ``cornernet_tf``.

    server, port = serve_in_process("export/cornernet")          # gRPC
    rest, rest_port = serve_rest_in_process("export/cornernet")  # REST
    ...
    server.stop(None); rest.shutdown()
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import sys
import threading
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

DEFAULT_MODEL_NAME = "cornernet"
DEFAULT_SIGNATURE = "serving_default"
HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 64 << 20  # gRPC message limit both ways, and the REST body limit
MAX_JSON_DEPTH = 32  # a request is at most ~8 deep ({"instances": [{"images": [[[[...]]]]}]})
REQUEST_TIMEOUT = 60.0  # seconds a REST client may take to send its request


class ServingError(Exception):
    """A request the model cannot serve; ``code`` is a gRPC status name (INVALID_ARGUMENT, NOT_FOUND...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


_HTTP_STATUS = {
    "INVALID_ARGUMENT": HTTPStatus.BAD_REQUEST,
    "FAILED_PRECONDITION": HTTPStatus.BAD_REQUEST,
    "NOT_FOUND": HTTPStatus.NOT_FOUND,
    "UNIMPLEMENTED": HTTPStatus.NOT_IMPLEMENTED,
    "RESOURCE_EXHAUSTED": HTTPStatus.SERVICE_UNAVAILABLE,
}


def resolve_version_dir(model_dir: str, version: int | None = None) -> tuple[str, int]:
    """``(folder holding saved_model.pb, version)``: ``model_dir`` is a base folder with numeric
    version sub-folders (the highest is served unless ``version`` is given) or a version folder."""
    model_dir = os.fspath(model_dir)
    if os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        name = os.path.basename(os.path.normpath(model_dir))
        return model_dir, int(name) if name.isdigit() else 1
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    versions = sorted(
        int(n)
        for n in os.listdir(model_dir)
        if n.isdigit() and os.path.isfile(os.path.join(model_dir, n, "saved_model.pb"))
    )
    if not versions:
        raise FileNotFoundError(
            f"{model_dir}: no version folder with a saved_model.pb (expected {model_dir}/1/...)"
        )
    if version is None:
        version = versions[-1]
    if version not in versions:
        raise FileNotFoundError(f"{model_dir}: version {version} not found; available: {versions}")
    return os.path.join(model_dir, str(version)), version


def _first_line(error: Exception) -> str:
    """TF runtime errors carry a graph dump; keep the message a client can act on."""
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("Detected at node", "<stack traces", "[[", "Graph execution error"))
    ]
    line = (useful or lines or [type(error).__name__])[0]
    assertion = re.match(r"assertion failed: \[(.*?)\s*\]", line)  # tf.debugging.assert_* messages
    return (assertion.group(1) if assertion else line)[:500]


class ServedModel:
    """One SavedModel version: its signatures, request validation and execution (thread-safe)."""

    def __init__(self, model_dir: str, name: str = DEFAULT_MODEL_NAME, version: int | None = None):
        import tensorflow as tf

        self.name = name
        self.path, self.version = resolve_version_dir(model_dir, version)
        self._loaded = tf.saved_model.load(self.path)
        self.signatures = dict(self._loaded.signatures)
        # Signature name -> {input name: TensorSpec}.
        self.inputs = {
            key: dict(fn.structured_input_signature[1]) for key, fn in self.signatures.items()
        }
        self.outputs = {key: dict(fn.structured_outputs) for key, fn in self.signatures.items()}

    # ------------------------------------------------------------------ validation
    def check_model(self, name: str, version: int | None = None) -> None:
        if name != self.name or (version not in (None, 0) and int(version) != self.version):
            wanted = f"{name}" + (f" version {version}" if version else "")
            raise ServingError(
                "NOT_FOUND",
                f"Servable not found for request: {wanted} "
                f"(serving {self.name} version {self.version})",
            )

    def signature(self, signature_name: str):
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise ServingError(
                "INVALID_ARGUMENT",
                f'Serving signature key "{key}" not found; available: {sorted(self.signatures)}',
            )
        return key

    def check_inputs(self, key: str, arrays: dict) -> dict:
        """Names, dtypes and ranks against the signature; returns the arrays ready to feed."""
        import tensorflow as tf

        specs = self.inputs[key]
        extra, missing = sorted(set(arrays) - set(specs)), sorted(set(specs) - set(arrays))
        if extra or missing:
            raise ServingError(
                "INVALID_ARGUMENT",
                f'input names do not match signature "{key}": sent extra {extra}, missing {missing}; '
                f"expected {sorted(specs)}",
            )
        feed = {}
        for name, value in arrays.items():
            spec = specs[name]
            value = np.asarray(value)
            if spec.dtype == tf.string:
                if value.dtype.kind not in ("S", "O", "U"):
                    raise ServingError(
                        "INVALID_ARGUMENT", f'input "{name}" expects string, got {value.dtype}'
                    )
            elif value.dtype != spec.dtype.as_numpy_dtype:
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f'input "{name}" expects {spec.dtype.name} but {value.dtype.name} was provided',
                )
            if not spec.shape.is_compatible_with(value.shape):
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f'input "{name}" expects shape {spec.shape.as_list()} '
                    f"(rank {spec.shape.rank}), got {list(value.shape)}",
                )
            feed[name] = tf.constant(value, dtype=spec.dtype)
        return feed

    # ------------------------------------------------------------------ execution
    def predict(self, signature_name: str, arrays: dict, output_filter=()) -> dict:
        """Run a signature; returns ``{output name: ndarray}`` or raises :class:`ServingError`."""
        import tensorflow as tf

        key = self.signature(signature_name)
        feed = self.check_inputs(key, arrays)
        unknown = sorted(set(output_filter) - set(self.outputs[key]))
        if unknown:
            raise ServingError(
                "INVALID_ARGUMENT",
                f'output tensor alias(es) {unknown} not found in signature "{key}"',
            )
        try:
            outputs = self.signatures[key](**feed)
        except tf.errors.OpError as exc:
            raise ServingError(
                _TF_ERROR_TO_CODE.get(type(exc).__name__, "INTERNAL"), _first_line(exc)
            ) from None
        names = list(output_filter) or sorted(outputs)
        return {name: outputs[name].numpy() for name in names}

    def signature_def_map(self):
        """The SignatureDefs of the SavedModel, as stored in saved_model.pb."""
        from tensorflow.core.protobuf import saved_model_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2

        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(self.path, "saved_model.pb"), "rb") as fh:
            saved.ParseFromString(fh.read())
        out = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in saved.meta_graphs[0].signature_def.items():
            if not key.startswith("__"):
                out.signature_def[key].CopyFrom(sig)
        return out


_TF_ERROR_TO_CODE = {
    "InvalidArgumentError": "INVALID_ARGUMENT",
    "NotFoundError": "NOT_FOUND",
    "FailedPreconditionError": "FAILED_PRECONDITION",
    "ResourceExhaustedError": "RESOURCE_EXHAUSTED",
    "OutOfRangeError": "INVALID_ARGUMENT",
    "UnimplementedError": "UNIMPLEMENTED",
    "DeadlineExceededError": "DEADLINE_EXCEEDED",
    "CancelledError": "CANCELLED",
}


# ---------------------------------------------------------------------------------------------- gRPC


def check_declared_size(name: str, proto, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
    """Refuse a TensorProto whose declared shape is bigger than any request can carry.

    ``tf.make_ndarray`` repeats the last value up to the declared shape, so 28 bytes declaring
    ``[1, 20000, 20000, 3]`` would become a 1.2 GB array; the declared size is checked first.
    """
    import tensorflow as tf

    dims = [int(d.size) for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise ServingError("INVALID_ARGUMENT", f"tensor parsing error: {name}: shape {dims}")
    count = 1
    for d in dims:
        count *= d
    try:
        dtype = tf.as_dtype(proto.dtype)
    except TypeError:
        raise ServingError(
            "INVALID_ARGUMENT", f"tensor parsing error: {name}: unknown dtype {proto.dtype}"
        ) from None
    size = count if dtype == tf.string else count * dtype.size
    if size > max_bytes:
        raise ServingError(
            "INVALID_ARGUMENT",
            f"tensor parsing error: {name}: declared shape {dims} holds {size} bytes, more than "
            f"the {max_bytes} bytes a request can carry",
        )


def _servicer_class():
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        """``Predict`` and ``GetModelMetadata`` of TF Serving's PredictionService over one model."""

        def __init__(self, model: ServedModel):
            self.model = model

        def _abort(self, context, error: ServingError):
            import grpc

            context.abort(
                getattr(grpc.StatusCode, error.code, grpc.StatusCode.INTERNAL), error.message
            )

        def Predict(self, request, context):
            import tensorflow as tf
            from tensorflow_serving.apis import predict_pb2

            try:
                spec = request.model_spec
                self.model.check_model(
                    spec.name, spec.version.value if spec.HasField("version") else None
                )
                arrays = {}
                for name, proto in request.inputs.items():
                    check_declared_size(name, proto)
                    try:
                        arrays[name] = tf.make_ndarray(proto)
                    except Exception as exc:  # malformed TensorProto
                        raise ServingError(
                            "INVALID_ARGUMENT", f"tensor parsing error: {name}: {exc}"
                        ) from None
                outputs = self.model.predict(
                    spec.signature_name, arrays, list(request.output_filter)
                )
            except ServingError as error:
                return self._abort(context, error)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = self.model.name
            response.model_spec.version.value = self.model.version
            response.model_spec.signature_name = self.model.signature(spec.signature_name)
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

        def GetModelMetadata(self, request, context):
            from tensorflow_serving.apis import get_model_metadata_pb2

            try:
                spec = request.model_spec
                self.model.check_model(
                    spec.name, spec.version.value if spec.HasField("version") else None
                )
                fields = list(request.metadata_field)
                if fields != ["signature_def"]:
                    raise ServingError(
                        "INVALID_ARGUMENT",
                        f"metadata_field must be ['signature_def'], got {fields}",
                    )
            except ServingError as error:
                return self._abort(context, error)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = self.model.name
            response.model_spec.version.value = self.model.version
            response.metadata["signature_def"].Pack(self.model.signature_def_map())
            return response

    return PredictionServicer


def serve_in_process(
    model_dir: str,
    port: int = 0,
    model_name: str = DEFAULT_MODEL_NAME,
    host: str = HOST,
    max_workers: int = 4,
    version: int | None = None,
    server_credentials=None,
):
    """Start a gRPC PredictionService for ``model_dir`` on ``host:port`` (0 = a free port).

    The port is bound exclusively (``grpc.so_reuseport`` off): a port in use raises ``OSError``
    instead of two servers answering at random. ``server_credentials``
    (``grpc.ssl_server_credentials(...)``) serves TLS. Returns ``(server, port)``; stop it with
    ``server.stop(None)``.
    """
    from cornernet_tf.extras import require

    require("grpc", "the gRPC server")
    require("tensorflow_serving.apis.prediction_service_pb2_grpc", "the gRPC server")
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    model = (
        model_dir
        if isinstance(model_dir, ServedModel)
        else ServedModel(model_dir, model_name, version)
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _servicer_class()(model), server
    )
    address = f"{host}:{int(port)}"
    try:
        if server_credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, server_credentials)
    except RuntimeError:  # grpcio >= 1.50 raises where older versions returned 0
        bound = 0
    if bound == 0:
        server.stop(None)
        raise OSError(
            errno.EADDRINUSE, f"gRPC server: cannot bind {address} (port in use or not available)"
        )
    server.start()
    return server, bound


# ---------------------------------------------------------------------------------------------- REST

_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_MODEL_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")


def _decode_b64(value):
    """Replace ``{"b64": "..."}`` objects by their bytes, recursively."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError) as exc:
                raise ServingError("INVALID_ARGUMENT", f"invalid base64 data: {exc}") from None
        return {k: _decode_b64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _json_array(value, spec, name: str) -> np.ndarray:
    """A JSON value as an array of the signature's dtype; integers stay integers (no silent casts)."""
    import tensorflow as tf

    try:
        array = np.asarray(value, dtype=object if spec.dtype == tf.string else None)
    except ValueError as exc:  # ragged nesting
        raise ServingError(
            "INVALID_ARGUMENT", f'input "{name}": not a rectangular array ({exc})'
        ) from None
    if spec.dtype == tf.string:
        if array.size and not all(isinstance(v, (bytes, str)) for v in array.ravel()):
            raise ServingError(
                "INVALID_ARGUMENT",
                f'input "{name}" expects strings (use {{"b64": ...}} for binary data)',
            )
        return array
    want = spec.dtype.as_numpy_dtype
    if array.size == 0:
        return array.astype(want)
    if np.issubdtype(want, np.integer):
        if array.dtype.kind not in "iu":
            raise ServingError(
                "INVALID_ARGUMENT",
                f'input "{name}" expects {spec.dtype.name} integers, got {array.dtype} values',
            )
        info = np.iinfo(want)
        if array.min() < info.min or array.max() > info.max:
            raise ServingError(
                "INVALID_ARGUMENT", f'input "{name}": values outside the {spec.dtype.name} range'
            )
    elif array.dtype.kind not in "iuf":
        raise ServingError(
            "INVALID_ARGUMENT", f'input "{name}" expects numbers, got {array.dtype} values'
        )
    return array.astype(want)


def rest_inputs(model: ServedModel, body: dict) -> tuple[str, dict, bool]:
    """Parse a TF Serving REST predict body → ``(signature key, {name: array}, row_format)``."""
    if not isinstance(body, dict):
        raise ServingError("INVALID_ARGUMENT", "the request body must be a JSON object")
    key = model.signature(body.get("signature_name", DEFAULT_SIGNATURE))
    specs = model.inputs[key]
    if ("instances" in body) == ("inputs" in body):
        raise ServingError(
            "INVALID_ARGUMENT", "the request must have exactly one of 'instances' or 'inputs'"
        )
    if "inputs" in body:
        inputs = _decode_b64(body["inputs"])
        if not isinstance(inputs, dict):
            if len(specs) != 1:
                raise ServingError(
                    "INVALID_ARGUMENT", f"'inputs' must name the inputs {sorted(specs)}"
                )
            inputs = {next(iter(specs)): inputs}
        arrays = {
            n: _json_array(v, specs[n], n) if n in specs else np.asarray(v)
            for n, v in inputs.items()
        }
        return key, arrays, False
    instances = _decode_b64(body["instances"])
    if not isinstance(instances, list):
        raise ServingError("INVALID_ARGUMENT", "'instances' must be a list")
    if instances and all(isinstance(i, dict) for i in instances):
        names = set(instances[0])
        if any(set(i) != names for i in instances):
            raise ServingError("INVALID_ARGUMENT", "every instance must have the same input names")
        arrays = {n: [i[n] for i in instances] for n in names}
    elif len(specs) == 1:
        arrays = {next(iter(specs)): instances}
    else:
        raise ServingError(
            "INVALID_ARGUMENT", f"instances must be objects naming the inputs {sorted(specs)}"
        )
    return (
        key,
        {
            n: _json_array(v, specs[n], n) if n in specs else np.asarray(v)
            for n, v in arrays.items()
        },
        True,
    )


def _to_json(value: np.ndarray):
    if value.dtype.kind in ("S", "O"):
        return (
            [_to_json(v) for v in value]
            if value.ndim
            else {"b64": base64.b64encode(bytes(value)).decode()}
        )
    return value.tolist()


def rest_response(outputs: dict, row_format: bool) -> dict:
    if row_format:
        batch = len(next(iter(outputs.values())))
        rows = [{k: _to_json(v[i]) for k, v in outputs.items()} for i in range(batch)]
        return {"predictions": rows}
    return {"outputs": {k: _to_json(v) for k, v in outputs.items()}}


class HttpRequestError(Exception):
    """A request that breaks HTTP itself (framing, size, JSON nesting): answered, then closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def request_body_length(headers, max_body_bytes: int) -> int:
    """The ``Content-Length`` of a POST, checked: 411 missing, 400 malformed, 413 over the limit."""
    if headers.get("Transfer-Encoding"):
        raise HttpRequestError(
            HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length (no chunked encoding)"
        )
    values = headers.get_all("Content-Length") or []
    if not values:
        raise HttpRequestError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length header")
    text = values[0].strip()
    if len(set(v.strip() for v in values)) > 1 or not text.isascii() or not text.isdigit():
        raise HttpRequestError(
            HTTPStatus.BAD_REQUEST,
            f"Content-Length must be one non-negative integer, got {', '.join(values)[:80]!r}",
        )
    length = int(text)
    if length > max_body_bytes:
        raise HttpRequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body of {length} bytes is over the limit of {max_body_bytes} bytes",
        )
    return length


def json_depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value (iterative); stops counting past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (list, dict)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_json_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH):
    """The request body as JSON; a malformed or over-deep body is INVALID_ARGUMENT (HTTP 400).

    The parser's own recursion guard stops a deeply nested body while parsing (``RecursionError``,
    caught), and the parsed value is then held to ``max_depth`` so nothing later recurses far."""
    try:
        body = json.loads(raw or b"null")
    except RecursionError:
        raise ServingError(
            "INVALID_ARGUMENT", f"the JSON body is nested deeper than {max_depth} levels"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServingError(
            "INVALID_ARGUMENT", f"the request body is not valid JSON: {exc}"
        ) from None
    if json_depth(body, max_depth) > max_depth:
        raise ServingError(
            "INVALID_ARGUMENT", f"the JSON body is nested deeper than {max_depth} levels"
        )
    return body


def _handler_class(
    model: ServedModel,
    max_body_bytes: int = MAX_MESSAGE_BYTES,
    request_timeout: float = REQUEST_TIMEOUT,
):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = request_timeout  # socket timeout: a stalled client frees its thread

        def log_message(self, fmt, *args):  # keep test and benchmark output clean
            pass

        def _send(self, status: int, payload: dict, close: bool = False) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:  # the body was not read: the connection cannot carry another request
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _read_body(self) -> bytes:
            length = request_body_length(self.headers, max_body_bytes)
            raw = self.rfile.read(length) if length else b""
            if len(raw) != length:
                raise HttpRequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"the body ended after {len(raw)} of {length} bytes (Content-Length)",
                )
            return raw

        def _guarded(self, handle) -> None:
            """Every failure becomes an HTTP answer; the server thread never dies with it."""
            try:
                handle()
                return
            except ServingError as error:
                status = _HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR)
                answer = (status, {"error": error.message}, False)
            except HttpRequestError as error:
                answer = (error.status, {"error": error.message}, True)
            except (TimeoutError, ConnectionError):  # the client stalled or went away
                self.close_connection = True
                return
            except Exception as exc:  # a bug: answer 500 and keep serving
                message = f"internal error: {type(exc).__name__}: {exc}"[:500]
                answer = (HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message}, True)
            try:
                self._send(*answer)
            except OSError:  # the client is gone; nobody to answer
                self.close_connection = True

        def do_POST(self):
            self._guarded(self._post)

        def do_GET(self):
            self._guarded(self._get)

        def _post(self):
            raw = self._read_body()
            match = _PREDICT_PATH.match(self.path)
            if not match:
                raise ServingError(
                    "NOT_FOUND", f"unknown path {self.path[:200]}; use /v1/models/NAME:predict"
                )
            model.check_model(match.group(1), int(match.group(2)) if match.group(2) else None)
            body = parse_json_body(raw)
            key, arrays, row_format = rest_inputs(model, body)
            outputs = model.predict(key, arrays)
            self._send(HTTPStatus.OK, rest_response(outputs, row_format))

        def _get(self):
            match = _MODEL_PATH.match(self.path)
            if not match:
                raise ServingError("NOT_FOUND", f"unknown path {self.path[:200]}")
            model.check_model(match.group(1), int(match.group(2)) if match.group(2) else None)
            if match.group(3):
                from google.protobuf import json_format

                sigs = json_format.MessageToDict(model.signature_def_map())
                self._send(
                    HTTPStatus.OK,
                    {
                        "model_spec": {"name": model.name, "version": str(model.version)},
                        "metadata": {"signature_def": sigs},
                    },
                )
            else:
                self._send(
                    HTTPStatus.OK,
                    {
                        "model_version_status": [
                            {
                                "version": str(model.version),
                                "state": "AVAILABLE",
                                "status": {"error_code": "OK", "error_message": ""},
                            }
                        ]
                    },
                )

    return Handler


class _ExclusiveHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` that never shares its port: a port in use is an error.

    No ``SO_REUSEPORT``. ``SO_REUSEADDR`` stays on where it only lets a restarted server bind over
    connections in TIME_WAIT (POSIX); on Windows it would let two servers share the port."""

    allow_reuse_address = os.name != "nt"
    allow_reuse_port = False
    daemon_threads = True


def serve_rest_in_process(
    model_dir: str,
    port: int = 0,
    model_name: str = DEFAULT_MODEL_NAME,
    host: str = HOST,
    version: int | None = None,
    max_body_bytes: int = MAX_MESSAGE_BYTES,
    request_timeout: float = REQUEST_TIMEOUT,
    ssl_context=None,
):
    """Start the REST API for ``model_dir`` on ``host:port`` (0 = a free port) in a daemon thread.

    A port in use raises ``OSError`` naming it. Bodies over ``max_body_bytes`` are refused (413);
    ``ssl_context`` (an ``ssl.SSLContext`` with the server's certificate) serves HTTPS.
    Returns ``(server, port)``; stop it with ``server.shutdown(); server.server_close()``.
    """
    model = (
        model_dir
        if isinstance(model_dir, ServedModel)
        else ServedModel(model_dir, model_name, version)
    )
    handler = _handler_class(model, max_body_bytes, request_timeout)
    try:
        server = _ExclusiveHTTPServer((host, int(port)), handler)
    except OSError as exc:
        raise OSError(
            exc.errno, f"REST server: cannot bind {host}:{port} ({exc.strerror or exc})"
        ) from None
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="cornernet-rest", daemon=True)
    thread.start()
    return server, server.server_address[1]


def main(argv=None) -> int:
    """``python -m cornernet_tf.serving.server MODEL_DIR [--grpc-port 8500] [--rest-port 8501]``: serve until Ctrl-C."""
    import argparse
    import time

    parser = argparse.ArgumentParser(
        prog="python -m cornernet_tf.serving.server", description=main.__doc__
    )
    parser.add_argument(
        "model_dir", help="export base folder (with version sub-folders) or one version folder"
    )
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=MAX_MESSAGE_BYTES / (1 << 20),
        help=f"largest REST request body in MiB (default {MAX_MESSAGE_BYTES >> 20})",
    )
    args = parser.parse_args(argv)
    try:
        model = ServedModel(args.model_dir, args.model_name)
        grpc_server, grpc_port = serve_in_process(model, args.grpc_port, host=args.host)
        try:
            rest_server, rest_port = serve_rest_in_process(
                model, args.rest_port, host=args.host, max_body_bytes=int(args.max_body_mb * 2**20)
            )
        except OSError:
            grpc_server.stop(None)
            raise
    except OSError as exc:  # a missing model folder, a port in use: one line, no traceback
        print(f"{parser.prog}: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"serving {model.name} version {model.version} from {model.path}: "
        f"gRPC {args.host}:{grpc_port}, REST http://{args.host}:{rest_port}/v1/models/{model.name}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    grpc_server.stop(None)
    rest_server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
