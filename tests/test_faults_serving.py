"""Fault suite, servers: exclusive ports, malformed HTTP answered (400/411/413), TLS clients.

The in-process servers serve a tiny SavedModel with the signatures and outputs of an export (a
real CornerNet is not needed to test the transport). Every bad request must get an HTTP answer,
and a good request must work after it: the server survives. Everything stays on 127.0.0.1.
"""

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys

import numpy as np
import pytest

from cornernet_tf.serving import client
from cornernet_tf.serving.server import (
    MAX_JSON_DEPTH,
    ServedModel,
    serve_in_process,
    serve_rest_in_process,
)

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """A SavedModel with ``serving_default`` (uint8 images) -> the export's four outputs."""
    import tensorflow as tf

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, "images")])
        def serve(self, images):
            batch = tf.shape(images)[0]
            mean = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2, 3]) / 255.0
            return {
                "detection_boxes": tf.zeros([batch, 2, 4]),
                "detection_scores": tf.stack([mean, mean / 2], axis=1),
                "detection_classes": tf.ones([batch, 2]),
                "num_detections": tf.fill([batch], 2.0),
            }

    module = Tiny()
    path = tmp_path_factory.mktemp("tiny") / "model" / "1"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path.parent)


@pytest.fixture(scope="module")
def model(tiny_export):
    return ServedModel(tiny_export, "cornernet")


@pytest.fixture(scope="module")
def rest(model):
    server, port = serve_rest_in_process(model, max_body_bytes=1 << 20, request_timeout=3)
    yield port
    server.shutdown()
    server.server_close()


GOOD_PIXELS = np.full((1, 4, 5, 3), 51, np.uint8)


def _assert_good_rest(port):
    out = client.predict_rest(HOST, port, GOOD_PIXELS[0], signature="serving_default")
    np.testing.assert_allclose(out["detection_scores"], [[0.2, 0.1]], atol=1e-6)


def _raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, dict]:
    """Send ``data`` as is; return the HTTP status and the JSON error body (raises if no answer)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {"raw": body[:200]}


def _post(path: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\n{head}\r\n".encode() + body


PREDICT = "/v1/models/cornernet:predict"
VALID = json.dumps({"instances": GOOD_PIXELS.tolist()}).encode()


@pytest.mark.parametrize(
    "headers, body, status, pattern",
    [
        ([("Content-Length", "abc")], VALID, 400, "Content-Length"),
        ([("Content-Length", "-5")], VALID, 400, "Content-Length"),
        ([("Content-Length", "1e3")], VALID, 400, "Content-Length"),
        ([("Content-Length", "٣")], b"{}", 400, "Content-Length"),  # a non-ASCII digit
        ([("Content-Length", "2"), ("Content-Length", "3")], b"{}", 400, "Content-Length"),
        ([], VALID, 411, "Content-Length"),
        ([("Transfer-Encoding", "chunked")], b"2\r\n{}\r\n0\r\n\r\n", 411, "chunked"),
        ([("Content-Length", str(2 << 20))], b"", 413, "over the limit"),
        ([("Content-Length", "99999999999999999999999")], b"", 413, "over the limit"),
    ],
    ids=[
        "non_numeric",
        "negative",
        "float",
        "unicode_digit",
        "two_lengths",
        "missing",
        "chunked",
        "over_limit",
        "huge",
    ],
)
def test_bad_content_length_is_answered_then_good_request(rest, headers, body, status, pattern):
    got, payload = _raw_request(rest, _post(PREDICT, body, headers))
    assert got == status
    assert pattern in payload["error"]
    _assert_good_rest(rest)


def test_over_deep_json_is_400(rest):
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        body = b"[" * depth + b"]" * depth
        got, payload = _raw_request(rest, _post(PREDICT, body, [("Content-Length", len(body))]))
        assert got == 400, depth
        assert "nested deeper" in payload["error"]
    deep_object = ('{"a":' * 50_000 + "1" + "}" * 50_000).encode()
    got, _ = _raw_request(rest, _post(PREDICT, deep_object, [("Content-Length", len(deep_object))]))
    assert got == 400
    _assert_good_rest(rest)


def test_body_shorter_than_its_length_is_400(rest):
    with socket.create_connection((HOST, rest), timeout=10) as sock:
        sock.sendall(_post(PREDICT, b'{"instances": [', [("Content-Length", "100")]))
        sock.shutdown(socket.SHUT_WR)  # the client gives up sending
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 400
        assert "ended after 15 of 100 bytes" in json.loads(response.read())["error"]
    _assert_good_rest(rest)


def test_stalled_client_is_dropped_and_others_are_served(rest):
    stalled = socket.create_connection((HOST, rest), timeout=10)
    stalled.sendall(_post(PREDICT, b"{", [("Content-Length", "50")]))  # never finishes
    try:
        _assert_good_rest(rest)  # served meanwhile by another thread
    finally:
        stalled.close()


def test_not_json_and_not_utf8_are_400(rest):
    for body in (b"\xff\xfe\x00garbage", b"{'single': 'quotes'}", b"[1, 2"):
        got, payload = _raw_request(rest, _post(PREDICT, body, [("Content-Length", len(body))]))
        assert got == 400 and "not valid JSON" in payload["error"]
    _assert_good_rest(rest)


def test_unknown_methods_and_garbage_request_lines_get_an_answer(rest):
    got, _ = _raw_request(rest, b"PUT /v1/models/cornernet HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert got == 501
    with socket.create_connection((HOST, rest), timeout=10) as sock:  # answered HTTP/0.9-style
        sock.sendall(b"GET /v1/models/cornernet HTTP/x.y\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert b"Error code: 400" in answer
    got, _ = _raw_request(rest, b"\x00\x01 nonsense HTTP/1.1\r\n\r\n")
    assert got == 501
    got, _ = _raw_request(rest, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert got == 414
    _assert_good_rest(rest)


def test_request_fuzz_never_kills_the_server(rest):
    """Random Content-Length headers, bodies and paths: always an HTTP answer, never a 5xx."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-300, 300) | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=30,
    )
    bodies = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"instances": json_values, "signature_name": st.sampled_from(["serving_default", "x"])}
        ).map(lambda v: json.dumps(v).encode()),
        st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    )
    lengths = st.one_of(
        st.just("exact"),
        st.just(None),
        st.integers(-(10**6), -1).map(str),
        st.integers(2 << 20, 10**30).map(str),
        st.text(max_size=6),
    )
    paths = st.sampled_from(
        [PREDICT, "/v1/models/cornernet/versions/1:predict", "/v1/models/other:predict", "/x"]
    )

    @hypothesis.settings(
        max_examples=120, deadline=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(body=bodies, length=lengths, path=paths)
    def fuzz(body, length, path):
        if length == "exact":
            headers = [("Content-Length", str(len(body)))]
        elif length is None:
            headers = []
        else:
            length = "".join(c for c in length if c.isprintable() and c not in "\r\n:")
            headers = [("Content-Length", length)]
            if length.strip().isascii() and length.strip().isdigit():
                hypothesis.assume(int(length) != len(body) and int(length) > 1 << 20)
        status, _ = _raw_request(rest, _post(path, body, headers))
        assert status in (200, 400, 404, 411, 413), status

    fuzz()
    _assert_good_rest(rest)


def test_grpc_port_is_exclusive(model):
    server, port = serve_in_process(model)
    try:
        with pytest.raises(OSError, match=f"cannot bind 127.0.0.1:{port}"):
            serve_in_process(model, port=port)
        out = client.predict_grpc(HOST, port, GOOD_PIXELS[0], signature="serving_default")
        np.testing.assert_allclose(out["detection_scores"], [[0.2, 0.1]], atol=1e-6)
    finally:
        server.stop(None)


def test_rest_port_clash_is_a_clear_error(model, rest):
    with pytest.raises(OSError, match=f"REST server: cannot bind 127.0.0.1:{rest}"):
        serve_rest_in_process(model, port=rest)
    _assert_good_rest(rest)


def test_server_command_port_clash_is_one_line(tiny_export, rest):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cornernet_tf.serving.server",
            tiny_export,
            "--grpc-port",
            "0",
            "--rest-port",
            str(rest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot bind 127.0.0.1:{rest}" in result.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A self-signed server certificate for localhost / 127.0.0.1 and a client one (openssl CLI)."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make test certificates")
    root = tmp_path_factory.mktemp("tls")
    for name in ("server", "client"):
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                f"/CN={'localhost' if name == 'server' else 'test-client'}",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(root / f"{name}.key"),
                "-out",
                str(root / f"{name}.pem"),
            ],
            check=True,
            capture_output=True,
        )
    return {k: str(root / k) for k in ("server.pem", "server.key", "client.pem", "client.key")}


def test_grpc_tls_client_with_mutual_tls(model, certificates):
    import grpc

    read = lambda k: open(certificates[k], "rb").read()  # noqa: E731
    credentials = grpc.ssl_server_credentials(
        [(read("server.key"), read("server.pem"))],
        root_certificates=read("client.pem"),
        require_client_auth=True,
    )
    server, port = serve_in_process(model, server_credentials=credentials)
    try:
        tls = client.grpc_credentials(
            certificates["server.pem"], certificates["client.pem"], certificates["client.key"]
        )
        out = client.predict_grpc(
            HOST, port, GOOD_PIXELS[0], signature="serving_default", credentials=tls
        )
        np.testing.assert_allclose(out["detection_scores"], [[0.2, 0.1]], atol=1e-6)
        with pytest.raises(client.PredictionError) as info:  # plaintext to a TLS port
            client.predict_grpc(HOST, port, GOOD_PIXELS[0], signature="serving_default", timeout=5)
        assert info.value.code == "UNAVAILABLE"
        no_client_cert = client.grpc_credentials(certificates["server.pem"])
        with pytest.raises(client.PredictionError):  # the server asks for a client certificate
            client.predict_grpc(
                HOST, port, GOOD_PIXELS[0], "cornernet", "serving_default", None, 5, no_client_cert
            )
        with pytest.raises(client.ClientUsageError, match="needs its key"):
            client.grpc_credentials(certificates["server.pem"], certificates["client.pem"])
    finally:
        server.stop(None)


def test_serve_client_command_over_tls(model, certificates, tmp_path, capsys):
    import grpc
    from PIL import Image

    from cornernet_tf.cli import main

    read = lambda k: open(certificates[k], "rb").read()  # noqa: E731
    credentials = grpc.ssl_server_credentials([(read("server.key"), read("server.pem"))])
    server, port = serve_in_process(model, server_credentials=credentials)
    image = tmp_path / "grey.png"
    Image.fromarray(GOOD_PIXELS[0]).save(image)
    try:
        args = ["serve-client", "--port", str(port), "--host", HOST, "--min-score", "0"]
        args += ["--signature", "serving_default", "--json", str(image)]
        assert main(args + ["--ca-cert", certificates["server.pem"]]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert [round(d["score"], 4) for d in printed[str(image)]] == [0.2, 0.1]
        assert main(args + ["--ca-cert", str(tmp_path / "missing.pem")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "missing.pem: cannot be read" in err[0]
    finally:
        server.stop(None)


def test_https_rest_client(model, certificates):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["server.pem"], certificates["server.key"])
    server, port = serve_rest_in_process(model, ssl_context=context, request_timeout=5)
    try:
        tls = client.rest_ssl_context(certificates["server.pem"])
        out = client.predict_rest(
            HOST, port, GOOD_PIXELS[0], signature="serving_default", ssl_context=tls
        )
        np.testing.assert_allclose(out["detection_scores"], [[0.2, 0.1]], atol=1e-6)
        with pytest.raises(OSError):  # the system roots do not trust a self-signed certificate
            client.predict_rest(
                HOST,
                port,
                GOOD_PIXELS[0],
                signature="serving_default",
                ssl_context=client.rest_ssl_context(),
                timeout=5,
            )
    finally:
        server.shutdown()
        server.server_close()
