"""The official CornerNet single-scale flip test (test/coco.py ``kp_detection``) in PyTorch, for timing.

A faithful re-implementation of what the official code runs per image, on the network of
``forward_official_torch.py``: ``cv2.resize``, ``crop_image`` onto a ``size | 127`` canvas,
``/255`` and normalisation, the image and its mirror in one batch, ``kp._test`` (last stack) and
``_decode`` (models/py_utils/kp_utils.py: sigmoid, 3x3 max-pool NMS, top-K, pairing, top
``num_dets``), the flip merge, ``_rescale_dets``, then per-class soft-NMS and the cap of 100.
The soft-NMS is this repository's NumPy port of the official Cython ``soft_nms`` (same rows, same
quirks); with random weights few pairs survive, so its speed barely counts.

Needs torch and OpenCV (not dependencies of cornernet-tf). Serves timing requests on stdin:

    {"cmd": "build", "size": 511} -> {"parameters": n}
    {"cmd": "run"} -> {"seconds": t, "detections": n}
    {"cmd": "quit"}

    PY benchmarks/official_test_torch.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from forward_official_torch import HG104, kp  # noqa: E402

from cornernet_tf.detection.soft_nms import soft_nms  # noqa: E402  (NumPy only)

MEAN = np.array([0.40789654, 0.44719302, 0.47026115], dtype=np.float32)  # BGR, official
STD = np.array([0.28863828, 0.27408164, 0.27809835], dtype=np.float32)


def _nms(heat, kernel=3):
    pad = (kernel - 1) // 2
    hmax = nn.functional.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
    return heat * (hmax == heat).float()


def _gather_feat(feat, ind):
    dim = feat.size(2)
    ind = ind.unsqueeze(2).expand(ind.size(0), ind.size(1), dim)
    return feat.gather(1, ind)


def _tranpose_and_gather_feat(feat, ind):
    feat = feat.permute(0, 2, 3, 1).contiguous()
    feat = feat.view(feat.size(0), -1, feat.size(3))
    return _gather_feat(feat, ind)


def _topk(scores, K=100):
    batch, cat, height, width = scores.size()
    topk_scores, topk_inds = torch.topk(scores.view(batch, -1), K)
    topk_clses = (topk_inds // (height * width)).int()
    topk_inds = topk_inds % (height * width)
    topk_ys = (topk_inds // width).int().float()
    topk_xs = (topk_inds % width).int().float()
    return topk_scores, topk_inds, topk_clses, topk_ys, topk_xs


def _decode(tl_heat, br_heat, tl_tag, br_tag, tl_regr, br_regr, K=100, kernel=3, ae=0.5, num=1000):
    batch = tl_heat.size(0)
    tl_heat, br_heat = _nms(torch.sigmoid(tl_heat), kernel), _nms(torch.sigmoid(br_heat), kernel)
    tl_scores, tl_inds, tl_clses, tl_ys, tl_xs = _topk(tl_heat, K=K)
    br_scores, br_inds, br_clses, br_ys, br_xs = _topk(br_heat, K=K)
    tl_ys = tl_ys.view(batch, K, 1).expand(batch, K, K)
    tl_xs = tl_xs.view(batch, K, 1).expand(batch, K, K)
    br_ys = br_ys.view(batch, 1, K).expand(batch, K, K)
    br_xs = br_xs.view(batch, 1, K).expand(batch, K, K)
    tl_regr = _tranpose_and_gather_feat(tl_regr, tl_inds).view(batch, K, 1, 2)
    br_regr = _tranpose_and_gather_feat(br_regr, br_inds).view(batch, 1, K, 2)
    tl_xs, tl_ys = tl_xs + tl_regr[..., 0], tl_ys + tl_regr[..., 1]
    br_xs, br_ys = br_xs + br_regr[..., 0], br_ys + br_regr[..., 1]
    bboxes = torch.stack((tl_xs, tl_ys, br_xs, br_ys), dim=3)
    tl_tag = _tranpose_and_gather_feat(tl_tag, tl_inds).view(batch, K, 1)
    br_tag = _tranpose_and_gather_feat(br_tag, br_inds).view(batch, 1, K)
    dists = torch.abs(tl_tag - br_tag)
    tl_scores = tl_scores.view(batch, K, 1).expand(batch, K, K)
    br_scores = br_scores.view(batch, 1, K).expand(batch, K, K)
    scores = (tl_scores + br_scores) / 2
    tl_clses = tl_clses.view(batch, K, 1).expand(batch, K, K)
    br_clses = br_clses.view(batch, 1, K).expand(batch, K, K)
    scores[tl_clses != br_clses] = -1
    scores[dists > ae] = -1
    scores[br_xs < tl_xs] = -1
    scores[br_ys < tl_ys] = -1
    scores, inds = torch.topk(scores.view(batch, -1), num)
    bboxes = _gather_feat(bboxes.view(batch, -1, 4), inds)
    clses = _gather_feat(tl_clses.contiguous().view(batch, -1, 1), inds).float()
    tl_scores = _gather_feat(tl_scores.contiguous().view(batch, -1, 1), inds).float()
    br_scores = _gather_feat(br_scores.contiguous().view(batch, -1, 1), inds).float()
    return torch.cat([bboxes, scores.unsqueeze(2), tl_scores, br_scores, clses], dim=2)


def crop_image(image, center, size):
    cty, ctx = center
    height, width = size
    im_height, im_width = image.shape[0:2]
    cropped = np.zeros((height, width, 3), dtype=image.dtype)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, im_width)
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, im_height)
    left, right, top, bottom = ctx - x0, x1 - ctx, cty - y0, y1 - cty
    cty_c, ctx_c = height // 2, width // 2
    cropped[cty_c - top : cty_c + bottom, ctx_c - left : ctx_c + right, :] = image[y0:y1, x0:x1, :]
    border = np.array([cty_c - top, cty_c + bottom, ctx_c - left, ctx_c + right], dtype=np.float32)
    return cropped, border


def kp_detection(model, image, categories=80, max_per_image=100):
    """The official single-scale flip test of one BGR uint8 image -> {class: rows [n, 5]}."""
    height, width = image.shape[0:2]
    inp_h, inp_w = height | 127, width | 127
    out_h, out_w = (inp_h + 1) // 4, (inp_w + 1) // 4
    resized = cv2.resize(image, (width, height))
    resized, border = crop_image(resized, np.array([height // 2, width // 2]), [inp_h, inp_w])
    resized = (resized / 255.0 - MEAN) / STD
    images = np.zeros((1, 3, inp_h, inp_w), dtype=np.float32)
    images[0] = resized.transpose((2, 0, 1))
    images = np.concatenate((images, images[:, :, :, ::-1]), axis=0)
    with torch.inference_mode():
        outs = model(torch.from_numpy(images.copy()), last_only=True)
        dets = _decode(*outs).numpy()
    dets = dets.reshape(2, -1, 8)
    dets[1, :, [0, 2]] = out_w - dets[1, :, [2, 0]]
    dets = dets.reshape(1, -1, 8)
    xs, ys = dets[..., 0:4:2], dets[..., 1:4:2]  # _rescale_dets
    xs /= out_w / inp_w
    ys /= out_h / inp_h
    xs -= border[2]
    ys -= border[0]
    np.clip(xs, 0, width, out=xs)
    np.clip(ys, 0, height, out=ys)
    detections = dets[0]
    detections = detections[detections[:, 4] > -1]
    classes = detections[:, -1]
    top = {}
    for j in range(categories):
        top[j + 1] = detections[classes == j][:, 0:7].astype(np.float32)
        soft_nms(top[j + 1], Nt=0.5, method=2)
        top[j + 1] = top[j + 1][:, 0:5]
    scores = np.hstack([top[j][:, -1] for j in range(1, categories + 1)])
    if len(scores) > max_per_image:
        kth = len(scores) - max_per_image
        thresh = np.partition(scores, kth)[kth]
        for j in range(1, categories + 1):
            top[j] = top[j][top[j][:, -1] >= thresh]
    return top


def serve() -> None:
    model = image = None
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "build":
            torch.manual_seed(0)
            model = kp(**HG104).eval()
            size = int(msg["size"])
            image = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
            reply = {"parameters": sum(p.numel() for p in model.parameters())}
        elif msg["cmd"] == "run":
            start = time.perf_counter()
            top = kp_detection(model, image)
            reply = {
                "seconds": time.perf_counter() - start,
                "detections": int(sum(len(v) for v in top.values())),
            }
        elif msg["cmd"] == "quit":
            return
        else:
            reply = {"error": f"unknown command {msg['cmd']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    serve()
