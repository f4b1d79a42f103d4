"""Peak memory for a 20000 x 20000 PNG (1.2 GB of pixels in ~1 MB) at every entry point.

``python benchmarks/oversized_inputs.py [--json benchmarks/oversized_inputs.json]``

Each case runs in its own Python process and reports its peak resident memory (``ru_maxrss``)
(``VmHWM``) and the one line it answered; some cases also run with a 640 x 480 PNG as a
baseline (``--baselines``). Cases:
``Detector.detect`` (the decoded array), ``cornernet detect`` and ``cornernet eval`` (command
line, a folder/dataset with the big PNG and a normal image), the training data pipeline (no
load-time scan: the in-graph check), the exported SavedModel (``serving_bytes`` with the PNG,
``serving_default`` with a tensor just over the limit, 8193 x 8193) and the serving stand-in over
gRPC (the PNG through ``serving_bytes``, and a 28-byte TensorProto declaring
``[1, 20000, 20000, 3]`` through ``serving_default``). ``unguarded decode`` shows what plain
``tf.io.decode_png`` allocates for the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import zlib

import harness

CONFIG = harness.config_path("cornernet_tiny")
BIG = 20000


def write_png(path: str, width: int, height: int) -> int:
    """A valid RGB PNG of black pixels, compressed row by row; returns its size in bytes."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    row = b"\0" * (1 + 3 * width)  # filter byte + pixels
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    data = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data))
        fh.write(chunk(b"IEND", b""))
    return os.path.getsize(path)


def peak_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` where Linux has it (``ru_maxrss``
    survives ``execve``, so a child would report its parent's peak if that were higher; the parent
    therefore never imports TensorFlow), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ------------------------------------------------------------------------------ cases (child side)


def _tiny_model():
    from cornernet_tf.config import load_config
    from cornernet_tf.modeling.cornernet import build_model

    config = load_config(CONFIG)
    return build_model(config.model), config


def case_detector(image: str, work: str) -> str:
    import numpy as np

    from cornernet_tf.eval.detect_images import read_image
    from cornernet_tf.inference.detector import Detector

    model, config = _tiny_model()
    detector = Detector(model, config.test)

    width, height = _size(image)  # the caller's array: its shape is all the check reads
    if width * height > 1 << 24:
        array = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (height, width, 3))
    else:
        array = read_image(image)[0]
    return f"{len(detector.detect(array)['boxes'])} detections"


def _size(image: str) -> tuple[int, int]:
    from cornernet_tf.data.pixel_limit import header_size

    with open(image, "rb") as fh:
        return header_size(fh)


def _cli(args: list[str]) -> str:
    import contextlib
    import io

    from cornernet_tf.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    lines = [x for x in (out.getvalue() + err.getvalue()).splitlines() if "megapixels" in x]
    return f"exit {code}; " + (lines[0].strip() if lines else out.getvalue().strip()[-120:])


def _folder(image: str, work: str) -> tuple[str, str]:
    """A folder with the image and a normal one, and a COCO JSON listing both."""
    from PIL import Image

    folder = os.path.join(work, "images")
    os.makedirs(folder, exist_ok=True)
    os.symlink(image, os.path.join(folder, "input.png"))
    Image.new("RGB", (64, 48), (90, 90, 90)).save(os.path.join(folder, "normal.png"))
    annotations = os.path.join(work, "annotations.json")
    with open(annotations, "w") as fh:
        json.dump(
            {
                "images": [
                    {"id": 1, "file_name": "input.png"},
                    {"id": 2, "file_name": "normal.png"},
                ],
                "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [4, 4, 20, 20]}],
                "categories": [{"id": k, "name": f"c{k}"} for k in (1, 2, 3)],
            },
            fh,
        )
    return folder, annotations


def case_detect(image: str, work: str) -> str:
    folder, _ = _folder(image, work)
    weights = os.path.join(work, "..", "tiny.weights.h5")
    return _cli(
        ["detect", "--config", CONFIG, "--weights", weights, folder, "--out", work + "/out"]
    )


def case_eval(image: str, work: str) -> str:
    folder, annotations = _folder(image, work)
    weights = os.path.join(work, "..", "tiny.weights.h5")
    args = ["eval", "--config", CONFIG, "--weights", weights, "--annotations", annotations]
    return _cli([*args, "--images", folder, "--out", work + "/out", "--no-progress"])


def case_pipeline(image: str, work: str) -> str:
    from cornernet_tf.config import DataConfig
    from cornernet_tf.data import build_dataset, load_source

    folder, annotations = _folder(image, work)
    config = DataConfig(
        train_annotations=annotations, train_images=folder, input_size=[127, 127], seed=0
    )
    source = load_source(config, training=True, scan="none")  # the in-graph check
    batches = list(build_dataset(config, training=True, batch_size=1, source=source).take(2))
    skipped = source.report.problems_of("undecodable")
    return f"{len(batches)} batches; " + (skipped[0].message if skipped else "nothing skipped")


def _saved_model(work: str):
    import tensorflow as tf

    return tf.saved_model.load(os.path.join(work, "..", "export", "1"))


def _first_line(exc: Exception) -> str:
    text = getattr(exc, "message", str(exc))
    return next((x for x in text.splitlines() if "MAX_INPUT_PIXELS" in x), text.splitlines()[0])


def case_saved_model_bytes(image: str, work: str) -> str:
    import tensorflow as tf

    sig = _saved_model(work).signatures["serving_bytes"]
    try:
        out = sig(image_bytes=tf.constant([open(image, "rb").read()]))
        return f"{int(out['num_detections'][0])} detections"
    except tf.errors.InvalidArgumentError as exc:
        return "INVALID_ARGUMENT: " + _first_line(exc)[:150]


def case_saved_model_pixels(image: str, work: str) -> str:
    import tensorflow as tf

    from cornernet_tf.data.pixel_limit import MAX_INPUT_PIXELS
    from cornernet_tf.eval.detect_images import read_image

    sig = _saved_model(work).signatures["serving_default"]
    width, height = _size(image)
    if width * height > MAX_INPUT_PIXELS:  # the tensor itself must fit: just over the limit
        side = int((MAX_INPUT_PIXELS + 1) ** 0.5) + 1
        images = tf.zeros([1, side, side, 3], tf.uint8)
    else:
        images = tf.constant(read_image(image)[0][None])
    try:
        out = sig(images=images)
        return f"{int(out['num_detections'][0])} detections"
    except tf.errors.InvalidArgumentError as exc:
        return "INVALID_ARGUMENT: " + _first_line(exc)[:150]


def _grpc_predict(work: str, signature: str, tensor) -> str:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from cornernet_tf.serving.server import ServedModel, serve_in_process

    server, port = serve_in_process(ServedModel(os.path.join(work, "..", "export"), "cornernet"))
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cornernet"
        request.model_spec.signature_name = signature
        request.inputs["image_bytes" if signature == "serving_bytes" else "images"].CopyFrom(tensor)
        try:
            reply = stub.Predict(request, timeout=300)
            return f"OK, {int(reply.outputs['num_detections'].float_val[0])} detections"
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()[:150]}"
        finally:
            channel.close()
    finally:
        server.stop(None)


def case_server_bytes(image: str, work: str) -> str:
    import tensorflow as tf

    return _grpc_predict(
        work, "serving_bytes", tf.make_tensor_proto([open(image, "rb").read()], tf.string)
    )


def case_server_proto(image: str, work: str) -> str:
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    width, height = _size(image)
    if width * height > 1 << 24:  # 28 bytes declaring the image's size
        shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (1, height, width, 3)]
        )
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, tensor_shape=shape, int_val=[0])
    else:
        proto = tf.make_tensor_proto(np.asarray(Image.open(image).convert("RGB"))[None])
    return f"{len(proto.SerializeToString())}-byte proto: " + _grpc_predict(
        work, "serving_default", proto
    )


def case_unguarded(image: str, work: str) -> str:
    import tensorflow as tf

    decoded = tf.io.decode_png(tf.io.read_file(image), channels=3)
    return f"decoded {decoded.shape} ({decoded.shape.num_elements() / 2**20:.0f} MiB)"


CASES = {
    "Detector.detect": case_detector,
    "cornernet detect": case_detect,
    "cornernet eval": case_eval,
    "data pipeline (train, in-graph check)": case_pipeline,
    "SavedModel serving_bytes": case_saved_model_bytes,
    "SavedModel serving_default": case_saved_model_pixels,
    "serving stand-in, gRPC serving_bytes": case_server_bytes,
    "serving stand-in, gRPC TensorProto": case_server_proto,
    "unguarded tf.io.decode_png": case_unguarded,
}


def child(case: str, image: str, work: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    logging.disable(logging.WARNING)
    if case == "prepare":
        prepare(work)
        return
    os.makedirs(work, exist_ok=True)
    try:
        answer = CASES[case](image, work)
    except Exception as exc:  # noqa: BLE001 - the one line a user would see
        answer = f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
    rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {"peak_mb": round(peak_mb(), 1), "ru_maxrss_mb": round(rusage, 1), "answer": answer}
        )
    )


# ------------------------------------------------------------------------------ parent side


def prepare(root: str) -> None:
    """Tiny-model weights and a SavedModel export, shared by the cases."""
    from cornernet_tf.export.saved_model import export_saved_model

    model, config = _tiny_model()
    model.save_weights(os.path.join(root, "tiny.weights.h5"))
    export_saved_model(
        model, config=config, out_dir=os.path.join(root, "export"), version=1, warmup=False
    )


def run_case(case: str, image: str, work: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case, image, work]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if not lines:  # killed (e.g. out of memory) or crashed
        return {"peak_mb": None, "answer": f"process died, exit {proc.returncode}"}
    return json.loads(lines[-1])


def table(result: dict) -> None:
    print(f"load average {result['machine']['load_average']}")
    print(
        "| entry point | peak RSS, 20000² PNG | peak RSS, 640×480 PNG | answer to the 20000² PNG |"
    )
    print("|---|---|---|---|")
    for case, row in result["cases"].items():
        normal = f"{row['normal']['peak_mb']} MB" if "normal" in row else "—"
        print(f"| {case} | {row['big']['peak_mb']} MB | {normal} | {row['big']['answer']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="cases to run")
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=[
            "Detector.detect",
            "data pipeline (train, in-graph check)",
            "SavedModel serving_bytes",
            "serving stand-in, gRPC serving_bytes",
        ],
        help="cases also run with a 640x480 PNG",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as root:
        big, normal = os.path.join(root, "big.png"), os.path.join(root, "normal.png")
        big_bytes = write_png(big, BIG, BIG)
        write_png(normal, 640, 480)
        run_case("prepare", "", root)  # in a child: this process stays without TensorFlow
        cases = {}
        for k, case in enumerate(args.cases):
            cases[case] = {"big": run_case(case, big, os.path.join(root, f"big{k}"))}
            if case in args.baselines:
                cases[case]["normal"] = run_case(case, normal, os.path.join(root, f"normal{k}"))
            print(case, cases[case], flush=True)
    result = {
        "png_bytes": big_bytes,
        "png_size": [BIG, BIG],
        "cases": cases,
        "machine": harness.machine_info(),
    }
    harness.report(result, args.json, table)


if __name__ == "__main__":
    main()
