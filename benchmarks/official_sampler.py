"""The official CornerNet training sampler's CPU work, in NumPy and OpenCV, for timing per core.

A faithful re-implementation of what the official ``sample/coco.py::kp_detection`` runs for one
batch (with ``sample/utils.py`` and ``utils/image.py``), on a COCO JSON and its image folder:

* per batch: ``np.zeros`` for the images (``B x 3 x 511 x 511``), both heatmaps
  (``B x 80 x 128 x 128`` float32), offsets, tags, tag masks and lengths, as the official does;
* per image: ``cv2.imread`` (BGR); ``random_crop`` (scale drawn from ``np.arange(0.6, 1.4, 0.1)``,
  centre at least ``_get_border(128, size)`` from the edges, zero canvas); ``_resize_image``
  (``cv2.resize`` to 511x511, INTER_LINEAR); ``_clip_detections``; the flip with p = 0.5;
  ``/ 255``; ``color_jittering_`` (``cv2.cvtColor`` BGR2GRAY, brightness / contrast /
  saturation in a ``random.shuffle``-d order, var 0.4); ``lighting_`` (alphastd 0.1, the COCO
  eigenvalues and eigenvectors); ``normalize_``; the CHW transpose into the batch array;
* per object: ``gaussian_radius(..., 0.3)`` (with the fix of the official commit 3e71377),
  ``draw_gaussian`` into the top-left and bottom-right heatmaps, offsets, tags, tag lengths;
  then the tag masks and ``torch.from_numpy`` (when torch is installed).

Not counted: the official training loop's hand-over of each batch to the trainer through
``multiprocessing`` queues (pickling ~90 MB per batch of 8), which only adds to its cost.

Needs NumPy and OpenCV only (torch optional); it imports nothing of this repository, so it runs
in another Python. One process, one thread (``cv2.setNumThreads(1)``, OMP/MKL/OpenBLAS threads
1, optionally pinned to one CPU with ``--cpu``). Prints a JSON object: images/s (wall) and
images per CPU-second (process CPU time), medians over ``--repeats``, and the CPU ms per image
of each stage (read, crop, resize, colour = flip + /255 + jitter + lighting + normalise + CHW,
targets = batch allocation + Gaussians + tags).

    PY benchmarks/official_sampler.py --images DIR --annotations JSON [--num-images 240]
        [--batch-size 8] [--repeats 3] [--cpu N]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# The official constants (db/coco.py, db/detection.py, config/CornerNet.json). This script runs
# without cornernet_tf, so they are copied here; tests/test_official_sampler.py checks them against
# cornernet_tf.config (COCO_MEAN_RGB, COCO_STD_RGB: RGB order there; COCO_EIGVAL, COCO_EIGVEC_BGR;
# DataConfig: input_size, max_objects, gaussian_iou, rand_scales, border, jitter_strength,
# lighting_std) and the output size cornernet_tf derives for the hourglass (input / 4, rounded up).
MEAN_BGR = np.array([0.40789654, 0.44719302, 0.47026115], dtype=np.float32)
STD_BGR = np.array([0.28863828, 0.27408164, 0.27809835], dtype=np.float32)
EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], dtype=np.float32)
EIG_VEC = np.array(
    [
        [-0.58752847, -0.69563484, 0.41340352],
        [-0.5832747, 0.00994535, -0.81221408],
        [-0.56089297, 0.71832671, 0.41158938],
    ],
    dtype=np.float32,
)
INPUT_SIZE = (511, 511)
OUTPUT_SIZE = (128, 128)
CATEGORIES = 80
MAX_TAG_LEN = 128
GAUSSIAN_IOU = 0.3
RAND_SCALES = np.arange(0.6, 1.4, 0.1)
BORDER = 128
JITTER_VAR = 0.4
LIGHTING_STD = 0.1

STAGES = ("read", "crop", "resize", "colour", "targets")


# --------------------------------------------------------------------------- utils/image.py


def grayscale(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def normalize_(image, mean, std):
    image -= mean
    image /= std


def lighting_(data_rng, image, alphastd, eigval, eigvec):
    alpha = data_rng.normal(scale=alphastd, size=(3,))
    image += np.dot(eigvec, eigval * alpha)


def blend_(alpha, image1, image2):
    image1 *= alpha
    image2 *= 1 - alpha
    image1 += image2


def saturation_(data_rng, image, gs, gs_mean, var):
    alpha = 1.0 + data_rng.uniform(low=-var, high=var)
    blend_(alpha, image, gs[:, :, None])


def brightness_(data_rng, image, gs, gs_mean, var):
    alpha = 1.0 + data_rng.uniform(low=-var, high=var)
    image *= alpha


def contrast_(data_rng, image, gs, gs_mean, var):
    alpha = 1.0 + data_rng.uniform(low=-var, high=var)
    blend_(alpha, image, gs_mean)


def color_jittering_(data_rng, image):
    functions = [brightness_, contrast_, saturation_]
    random.shuffle(functions)
    gs = grayscale(image)
    gs_mean = gs.mean()
    for f in functions:
        f(data_rng, image, gs, gs_mean, JITTER_VAR)


# --------------------------------------------------------------------------- sample/utils.py


def gaussian2d(shape, sigma=1.0):
    m, n = [(s - 1.0) / 2.0 for s in shape]
    y, x = np.ogrid[-m : m + 1, -n : n + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def draw_gaussian(heatmap, center, radius, k=1):
    diameter = 2 * radius + 1
    gaussian = gaussian2d((diameter, diameter), sigma=diameter / 6)
    x, y = center
    height, width = heatmap.shape[0:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    masked_heatmap = heatmap[y - top : y + bottom, x - left : x + right]
    masked_gaussian = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(masked_heatmap, masked_gaussian * k, out=masked_heatmap)


def gaussian_radius(det_size, min_overlap):
    height, width = det_size
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - np.sqrt(b2**2 - 16 * c2)) / 8
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def _get_border(border, size):
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def random_crop(image, detections, random_scales, view_size, border=64):
    view_height, view_width = view_size
    image_height, image_width = image.shape[0:2]
    scale = np.random.choice(random_scales)
    height, width = int(view_height * scale), int(view_width * scale)
    cropped = np.zeros((height, width, 3), dtype=image.dtype)
    w_border, h_border = _get_border(border, image_width), _get_border(border, image_height)
    ctx = np.random.randint(low=w_border, high=image_width - w_border)
    cty = np.random.randint(low=h_border, high=image_height - h_border)
    x0, x1 = max(ctx - width // 2, 0), min(ctx + width // 2, image_width)
    y0, y1 = max(cty - height // 2, 0), min(cty + height // 2, image_height)
    left_w, right_w = ctx - x0, x1 - ctx
    top_h, bottom_h = cty - y0, y1 - cty
    cropped_ctx, cropped_cty = width // 2, height // 2
    x_slice = slice(cropped_ctx - left_w, cropped_ctx + right_w)
    y_slice = slice(cropped_cty - top_h, cropped_cty + bottom_h)
    cropped[y_slice, x_slice, :] = image[y0:y1, x0:x1, :]
    detections = detections.copy()
    detections[:, 0:4:2] -= x0
    detections[:, 1:4:2] -= y0
    detections[:, 0:4:2] += cropped_ctx - left_w
    detections[:, 1:4:2] += cropped_cty - top_h
    return cropped, detections


# --------------------------------------------------------------------------- sample/coco.py


def _resize_image(image, detections, size):
    detections = detections.copy()
    height, width = image.shape[0:2]
    new_height, new_width = size
    image = cv2.resize(image, (new_width, new_height))
    height_ratio, width_ratio = new_height / height, new_width / width
    detections[:, 0:4:2] *= width_ratio
    detections[:, 1:4:2] *= height_ratio
    return image, detections


def _clip_detections(image, detections):
    detections = detections.copy()
    height, width = image.shape[0:2]
    detections[:, 0:4:2] = np.clip(detections[:, 0:4:2], 0, width - 1)
    detections[:, 1:4:2] = np.clip(detections[:, 1:4:2], 0, height - 1)
    keep = ((detections[:, 2] - detections[:, 0]) > 0) & ((detections[:, 3] - detections[:, 1]) > 0)
    return detections[keep]


class Clock:
    """CPU seconds spent in each stage (process time: one thread, robust to a shared machine)."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._last = time.process_time()

    def lap(self, stage):
        now = time.process_time()
        self.seconds[stage] += now - self._last
        self._last = now


def kp_detection_batch(db, k_ind, data_rng, batch_size, clock):
    """One training batch as the official ``kp_detection`` (training path: ``debug`` false)."""
    clock.lap("targets")  # anything since the last batch
    images = np.zeros((batch_size, 3, *INPUT_SIZE), dtype=np.float32)
    tl_heatmaps = np.zeros((batch_size, CATEGORIES, *OUTPUT_SIZE), dtype=np.float32)
    br_heatmaps = np.zeros((batch_size, CATEGORIES, *OUTPUT_SIZE), dtype=np.float32)
    tl_regrs = np.zeros((batch_size, MAX_TAG_LEN, 2), dtype=np.float32)
    br_regrs = np.zeros((batch_size, MAX_TAG_LEN, 2), dtype=np.float32)
    tl_tags = np.zeros((batch_size, MAX_TAG_LEN), dtype=np.int64)
    br_tags = np.zeros((batch_size, MAX_TAG_LEN), dtype=np.int64)
    tag_masks = np.zeros((batch_size, MAX_TAG_LEN), dtype=np.uint8)
    tag_lens = np.zeros((batch_size,), dtype=np.int32)
    width_ratio = OUTPUT_SIZE[1] / INPUT_SIZE[1]
    height_ratio = OUTPUT_SIZE[0] / INPUT_SIZE[0]
    clock.lap("targets")

    for b_ind in range(batch_size):
        if k_ind == 0:
            db.shuffle_inds()
        db_ind = db.db_inds[k_ind]
        k_ind = (k_ind + 1) % db.size

        image = cv2.imread(db.image_file(db_ind))
        detections = db.detections(db_ind)
        clock.lap("read")

        image, detections = random_crop(image, detections, RAND_SCALES, INPUT_SIZE, border=BORDER)
        clock.lap("crop")
        image, detections = _resize_image(image, detections, INPUT_SIZE)
        detections = _clip_detections(image, detections)
        clock.lap("resize")

        if np.random.uniform() > 0.5:
            image[:] = image[:, ::-1, :]
            width = image.shape[1]
            detections[:, [0, 2]] = width - detections[:, [2, 0]] - 1
        image = image.astype(np.float32) / 255.0
        color_jittering_(data_rng, image)
        lighting_(data_rng, image, LIGHTING_STD, EIG_VAL, EIG_VEC)
        normalize_(image, MEAN_BGR, STD_BGR)
        images[b_ind] = image.transpose((2, 0, 1))
        clock.lap("colour")

        for detection in detections:
            category = int(detection[-1]) - 1
            xtl, ytl, xbr, ybr = detection[0], detection[1], detection[2], detection[3]
            fxtl, fytl = xtl * width_ratio, ytl * height_ratio
            fxbr, fybr = xbr * width_ratio, ybr * height_ratio
            xtl, ytl, xbr, ybr = int(fxtl), int(fytl), int(fxbr), int(fybr)
            width = math.ceil((detection[2] - detection[0]) * width_ratio)
            height = math.ceil((detection[3] - detection[1]) * height_ratio)
            radius = max(0, int(gaussian_radius((height, width), GAUSSIAN_IOU)))
            draw_gaussian(tl_heatmaps[b_ind, category], [xtl, ytl], radius)
            draw_gaussian(br_heatmaps[b_ind, category], [xbr, ybr], radius)
            tag_ind = tag_lens[b_ind]
            tl_regrs[b_ind, tag_ind, :] = [fxtl - xtl, fytl - ytl]
            br_regrs[b_ind, tag_ind, :] = [fxbr - xbr, fybr - ybr]
            tl_tags[b_ind, tag_ind] = ytl * OUTPUT_SIZE[1] + xtl
            br_tags[b_ind, tag_ind] = ybr * OUTPUT_SIZE[1] + xbr
            tag_lens[b_ind] += 1
        clock.lap("targets")

    for b_ind in range(batch_size):
        tag_masks[b_ind, : tag_lens[b_ind]] = 1
    arrays = [images, tl_tags, br_tags, tl_heatmaps, br_heatmaps, tag_masks, tl_regrs, br_regrs]
    if "torch" in sys.modules:
        arrays = [sys.modules["torch"].from_numpy(a) for a in arrays]
    clock.lap("targets")
    return {"xs": arrays[:3], "ys": arrays[3:]}, k_ind


class CocoDetections:
    """The official COCO db's per-image detections ``[N, 5]`` float64 (x1, y1, x2, y2, class
    1..C), read once from the annotation file as the official ``db/coco.py`` does at start-up."""

    def __init__(self, annotations: str, images: str, limit: int | None):
        with open(annotations, encoding="utf-8") as fh:
            coco = json.load(fh)
        cat_ids = sorted(c["id"] for c in coco["categories"])
        class_of = {cid: i + 1 for i, cid in enumerate(cat_ids)}
        boxes: dict[int, list] = {}
        for ann in coco["annotations"]:
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = ann["bbox"]
            boxes.setdefault(ann["image_id"], []).append(
                [x, y, x + w, y + h, class_of[ann["category_id"]]]
            )
        entries = sorted(coco["images"], key=lambda im: im["id"])[:limit]
        self.files = [os.path.join(images, im["file_name"]) for im in entries]
        self.dets = [
            np.asarray(boxes.get(im["id"], np.zeros((0, 5))), np.float64).reshape(-1, 5)
            for im in entries
        ]
        self.size = len(entries)
        self.db_inds = np.arange(self.size)

    def shuffle_inds(self):
        np.random.shuffle(self.db_inds)

    def image_file(self, i):
        return self.files[i]

    def detections(self, i):
        return self.dets[i].copy()


def measure(db, batch_size: int, num_images: int, seed: int):
    """(wall s, CPU s, {stage: CPU s}) per image over ``num_images`` (after one warm-up batch)."""
    np.random.seed(seed)
    random.seed(seed)
    data_rng = np.random.RandomState(123)  # system_configs.data_rng
    clock = Clock()
    _, k_ind = kp_detection_batch(db, 0, data_rng, batch_size, clock)
    clock = Clock()
    batches = max(1, num_images // batch_size)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        _, k_ind = kp_detection_batch(db, k_ind, data_rng, batch_size, clock)
    n = batches * batch_size
    wall, cpu = (time.perf_counter() - start) / n, (time.process_time() - cpu) / n
    return wall, cpu, {k: v / n for k, v in clock.seconds.items()}


def run(args) -> dict:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    db = CocoDetections(args.annotations, args.images, args.num_images)
    runs = [measure(db, args.batch_size, args.num_images, seed=r) for r in range(args.repeats)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    stages = {k: statistics.median(r[2][k] for r in runs) * 1e3 for k in STAGES}
    return {
        "images": db.size,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "torch": sys.modules["torch"].__version__ if "torch" in sys.modules else None,
        "images_per_s": round(1.0 / wall, 2),
        "images_per_cpu_s": round(1.0 / cpu, 2),
        "cpu_ms_per_image": round(cpu * 1e3, 2),
        "stage_cpu_ms_per_image": {k: round(v, 3) for k, v in stages.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="the image folder")
    parser.add_argument("--annotations", required=True, help="its COCO JSON")
    parser.add_argument("--num-images", type=int, default=240, help="images used and timed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU (Linux)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
