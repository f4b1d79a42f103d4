"""The serving graph at full size: HG-104, one 511x511 image, single-scale flip test, in one run.

Timed round-robin (medians, batch 1, random weights, the same image):

* ``detector``: ``Detector.detect`` in memory (Keras network with native corner pools, TF decode
  in one tf.function, NumPy soft-NMS), in float32 and in ``--precisions``' other entries;
* ``saved_model_images`` / ``saved_model_bytes``: the exported SavedModel (``cornernet export``:
  corner pools ``impl="tf"``, in-graph decode and soft-NMS) loaded with ``tf.saved_model.load``,
  fed uint8 pixels / the JPEG bytes of the image;
* ``official_torch`` (with ``--torch-python``): the official test procedure re-implemented in
  PyTorch (``official_test_torch.py``) on the official architecture.

Then the parts of the SavedModel's time that are not the convolutions, timed in the same run:

* ``corner_pools_tf`` / ``corner_pools_native``: the four corner pools of the last stack
  (two per corner module) on the flip batch's ``[2, 128, 128, 128]`` maps;
* ``graph_post``: everything in the serving graph but the network -- pre-processing, flip copy,
  decode, flip merge, map back and soft-NMS -- run by ``GraphDetector`` on canned network maps;
* ``detector_post``: the same for ``Detector`` (decode, then the NumPy flip merge and soft-NMS).

TensorFlow runs with its BFC CPU allocator, as ``cornernet`` commands do (``--default-allocator``:
the default one, which hands large buffers back to the system after each call).

    python benchmarks/serving_graph.py [--repeats 3] [--torch-python PY] [--threads 2]
        [--default-allocator] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import harness  # noqa: E402  (puts the checkout on sys.path)
import numpy as np  # noqa: E402
from harness import ROOT, interleaved_medians, load_average  # noqa: E402

from cornernet_tf import tf_allocator  # noqa: E402

OFFICIAL_SCRIPT = os.path.join(ROOT, "benchmarks", "official_test_torch.py")


class OfficialServer:
    """``official_test_torch.py`` in a Python with torch, one flip test per request."""

    def __init__(self, python: str, threads: int, size: int):
        command = [python, OFFICIAL_SCRIPT] + (["--threads", str(threads)] if threads else [])
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.info = self._read()
        self.info.update(self.ask({"cmd": "build", "size": size}))

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{OFFICIAL_SCRIPT} exited (code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self):
        self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


class CannedMaps:
    """Stands in for the network: returns fixed maps, so only the rest of a detector is timed."""

    def __init__(self, model, outputs):
        self.model_config = model.model_config
        self.dtype_policy = model.dtype_policy
        self.outputs = outputs

    def __call__(self, images, training=False, stacks="last"):
        return self.outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=harness.config_path("cornernet_hg104_coco"))
    parser.add_argument("--size", type=int, default=511)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="float32", help="Detector precisions to time")
    parser.add_argument("--torch-python", help="a Python with torch and OpenCV: time the official")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="TensorFlow's default CPU allocator instead of BFC (as `cornernet` sets it)",
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    # TensorFlow reads the allocator setting when it is imported: choose it first.
    if args.default_allocator:
        os.environ[tf_allocator.ENV] = "false"
    else:
        tf_allocator.prefer_bfc_cpu_allocator()
    import tensorflow as tf

    from cornernet_tf.config import load_config
    from cornernet_tf.export.saved_model import export_saved_model
    from cornernet_tf.inference.detector import Detector
    from cornernet_tf.inference.graph_detector import GraphDetector
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.ops.corner_pool import corner_pool

    load_before = load_average()
    config = load_config(args.config)
    model = build_model(config.model)
    image = np.random.default_rng(1).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    jpeg = tf.io.encode_jpeg(image, quality=95)

    calls = {}
    for name in args.precisions.split(","):
        detector = Detector(model, dataclasses.replace(config.test, precision=name))
        calls[f"detector_{name}"] = lambda d=detector: d.detect(image)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_saved_model(model, out_dir=tmp, config=config, version=1, warmup=False)
        loaded = tf.saved_model.load(path)
    images_fn = loaded.signatures["serving_default"]
    bytes_fn = loaded.signatures["serving_bytes"]
    calls["saved_model_images"] = lambda: images_fn(images=tf.constant(image[None]))[
        "num_detections"
    ].numpy()
    calls["saved_model_bytes"] = lambda: bytes_fn(image_bytes=tf.reshape(jpeg, [1]))[
        "num_detections"
    ].numpy()

    # The non-network parts, on the maps of the flip batch.
    reference = Detector(model, config.test)
    scale = reference.detect_scale(image, 1.0)
    outputs = model(tf.constant(scale["net_input"]), training=False, stacks="last")
    outputs = {k: [tf.constant(v[-1].numpy())] for k, v in outputs.items()}
    canned = CannedMaps(model, outputs)
    graph_post = GraphDetector(canned, config.test, config.export.max_detections)
    graph_fn = tf.function(graph_post.detect)
    detector_post = Detector(canned, config.test)
    out_h, out_w = scale["geometry"].out_hw
    pool_input = tf.random.normal([2, out_h, out_w, config.model.pool_dim])
    pools = {}
    for impl in ("tf", "native"):
        pools[impl] = tf.function(
            lambda x, impl=impl: [
                corner_pool(x, d, impl=impl) for d in ("top", "left", "bottom", "right")
            ]
        )
    calls["graph_post"] = lambda: graph_fn(tf.constant(image[None]))["num_detections"].numpy()
    calls["detector_post"] = lambda: detector_post.detect(image)
    calls["corner_pools_tf"] = lambda: [t.numpy() for t in pools["tf"](pool_input)]
    calls["corner_pools_native"] = lambda: [t.numpy() for t in pools["native"](pool_input)]

    official = None
    if args.torch_python:
        official = OfficialServer(args.torch_python, args.threads, args.size)
        calls["official_torch"] = lambda: official.ask({"cmd": "run"})
    seconds = interleaved_medians(calls, repeats=args.repeats, warmup=1)
    if official is not None:
        official.close()

    saved = seconds["saved_model_images"]
    det = seconds["detector_float32"]
    result = {
        "config": os.path.relpath(args.config, ROOT),
        "weights": "random",
        "image": f"{args.size}x{args.size}",
        "test": "single scale, flip",
        "repeats": args.repeats,
        "cpu_allocator": "bfc" if tf_allocator.bfc_requested() else "default",
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "saved_model_vs_detector": round(saved / det, 3),
        "share_of_saved_model": {
            "corner_pools_tf": round(seconds["corner_pools_tf"] / saved, 4),
            "everything_but_network": round(seconds["graph_post"] / saved, 4),
        },
        "share_of_detector": {
            "corner_pools_native": round(seconds["corner_pools_native"] / det, 4),
            "everything_but_network": round(seconds["detector_post"] / det, 4),
        },
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine": harness.machine_info(),
    }
    if official is not None:
        result["official"] = official.info
        result["vs_official"] = {
            k: round(v / seconds["official_torch"], 3)
            for k, v in seconds.items()
            if k.startswith(("detector_", "saved_model_"))
        }
    harness.report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
