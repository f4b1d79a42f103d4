"""ONNX export parity and latency: the ``.onnx`` network (tf2onnx, onnxruntime) against Keras.

For the tiny hourglass (``configs/cornernet_tiny.yaml``; ``--config`` for another), on held-out
shapes images placed on the fixed canvas:

* parity: the largest |ONNX - Keras| of each of the six maps over all images, and how many images
  give exactly the same detections through the shared NumPy post-processor (same count and
  classes, scores within 1e-5, boxes within 1e-3 px);
* latency (batch 1, median, timed round-robin): the network alone in onnxruntime
  (``--threads`` intra-op threads) and in Keras (the model called inside a ``tf.function``), and
  the whole detection (canvas, network, NumPy decode and soft-NMS) of ``OnnxDetector.detect``
  against Keras maps through the same post-processor.

Without ``--weights`` the model keeps its random initialisation with the embedding heads zeroed
(so corners pair into boxes and the detection comparison is not empty); the JSON says which.

    python benchmarks/onnx_parity.py [--weights W] [--images 8] [--repeats 20] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
from harness import interleaved_medians, timed  # noqa: E402


def build(config_path: str, weights: str | None, seed: int = 0):
    import keras

    from cornernet_tf.config import load_config
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.weights import load_weights

    keras.utils.set_random_seed(seed)
    config = load_config(config_path, ["model.corner_pool_impl=tf"])
    model = build_model(config.model)
    if weights:
        load_weights(model, weights, config_path)
    else:
        for stack in model.stacks:
            for corner in ("tl", "br"):
                for var in stack[f"{corner}_tag"].out.weights:
                    var.assign(np.zeros(var.shape, np.float32))
    return model, config


def shapes_images(root: str, count: int) -> list:
    from PIL import Image

    from cornernet_tf.data.shapes import generate_shapes

    generate_shapes(root, seed=21, size=(192, 192), splits={"val": count})
    folder = os.path.join(root, "val", "images")
    return [
        np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
        for name in sorted(os.listdir(folder))
    ]


def same_detections(a: dict, b: dict) -> bool:
    return (
        len(a["scores"]) == len(b["scores"])
        and np.array_equal(a["classes"], b["classes"])
        and np.allclose(a["scores"], b["scores"], atol=1e-5)
        and np.allclose(a["boxes"], b["boxes"], atol=1e-3)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=harness.config_path("cornernet_tiny"))
    parser.add_argument("--weights", default=None)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from cornernet_tf.detection.contract import OUTPUT_KEYS
    from cornernet_tf.export import postprocess as pp
    from cornernet_tf.export.onnx import export_onnx
    from cornernet_tf.export.onnx_runner import OnnxDetector

    model, config = build(args.config, args.weights)
    with tempfile.TemporaryDirectory(prefix="onnx_parity_") as tmp:
        images = shapes_images(os.path.join(tmp, "shapes"), args.images)
        path = os.path.join(tmp, "model.onnx")
        export_seconds, _ = timed(export_onnx, model, path, config=config)
        size_mb = os.path.getsize(path) / 1e6
        detector = OnnxDetector(path, num_threads=args.threads)

        @tf.function(reduce_retracing=True)
        def keras_network(canvas):
            outputs = model(canvas, training=False, stacks="last")
            return {name: outputs[name][-1] for name in OUTPUT_KEYS}

        def keras_detect(image):
            canvas, geometry = pp.prepare_input(image, detector.input_hw, detector.output_stride)
            maps = {k: v.numpy() for k, v in keras_network(canvas).items()}
            return pp.postprocess(maps, geometry, detector.config)

        worst = {name: 0.0 for name in OUTPUT_KEYS}
        agree, detections = 0, 0
        canvases = []
        for image in images:
            canvas, _ = pp.prepare_input(image, detector.input_hw, detector.output_stride)
            canvases.append(canvas)
            expected = {k: v.numpy() for k, v in keras_network(canvas).items()}
            got = detector.maps(canvas)
            for name in OUTPUT_KEYS:
                worst[name] = max(worst[name], float(np.max(np.abs(got[name] - expected[name]))))
            onnx_dets = detector.detect(image)
            agree += same_detections(onnx_dets, keras_detect(image))
            detections += len(onnx_dets["scores"])

        canvas, image = canvases[0], images[0]
        latency = interleaved_medians(
            {
                "network_onnxruntime": lambda: detector.maps(canvas),
                "network_keras": lambda: keras_network(canvas),
                "detect_onnxruntime": lambda: detector.detect(image),
                "detect_keras": lambda: keras_detect(image),
            },
            repeats=args.repeats,
            warmup=2,
        )

    result = {
        "benchmark": "onnx_parity",
        "machine": harness.machine_info(
            tensorflow=tf.__version__,
            tf2onnx=tf2onnx.__version__,
            onnxruntime=onnxruntime.__version__,
            onnxruntime_threads=args.threads,
        ),
        "config": os.path.relpath(args.config, harness.ROOT),
        "weights": args.weights or "random initialisation (embedding heads zeroed)",
        "opset": detector.metadata["opset"],
        "input": detector.metadata["input"]["shape"],
        "onnx_mb": round(size_mb, 2),
        "export_s": round(export_seconds, 1),
        "images": len(images),
        "max_abs_map_error": {k: float(f"{v:.3g}") for k, v in worst.items()},
        "images_with_equal_detections": f"{agree}/{len(images)}",
        "onnx_detections": detections,
        "latency_ms": {k: round(1000 * v, 2) for k, v in latency.items()},
    }

    def table(r: dict) -> None:
        print(
            f"ONNX opset {r['opset']}, input {r['input']}, {r['onnx_mb']} MB, export {r['export_s']} s"
        )
        print(
            "max |ONNX - Keras| per map: "
            + ", ".join(f"{k} {v:.1e}" for k, v in r["max_abs_map_error"].items())
        )
        print(
            f"equal detections: {r['images_with_equal_detections']} images ({r['onnx_detections']} boxes)"
        )
        ms = r["latency_ms"]
        print(
            f"network: onnxruntime {ms['network_onnxruntime']} ms, Keras {ms['network_keras']} ms; "
            f"detect: onnxruntime {ms['detect_onnxruntime']} ms, Keras {ms['detect_keras']} ms"
        )

    harness.report(result, args.json, table=table)


if __name__ == "__main__":
    main()
