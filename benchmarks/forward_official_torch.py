"""Forward latency of the official CornerNet architecture in PyTorch, for same-run comparisons.

A compact mirror of the official ``kp`` network (princeton-vl/CornerNet, models/CornerNet.py and
models/py_utils): convolution, residual, the recursive kp_module, the corner-pool module and the
heads, with the official module names (so ``state_dict`` keys match an official checkpoint). The
compiled corner-pool extensions are replaced by ``torch.cummax`` on flipped tensors (the forward
is the same). ``stacks="last"`` computes the heads of the last stack only, as the official
``kp._test`` does; ``"all"`` computes every stack's heads, as ``kp._train`` does.

Needs torch, which is not a dependency of cornernet-tf: run it with a Python that has it, usually
through ``benchmarks/forward.py --torch-python PY``, which starts it with ``--serve`` and interleaves
its calls with the TensorFlow ones. Alone, it times Hourglass-104 and prints one JSON line:

    PY benchmarks/forward_official_torch.py [--size 511] [--stacks all|last] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn


class convolution(nn.Module):  # noqa: N801 - official name
    def __init__(self, k, inp_dim, out_dim, stride=1, with_bn=True):
        super().__init__()
        pad = (k - 1) // 2
        self.conv = nn.Conv2d(
            inp_dim, out_dim, (k, k), padding=(pad, pad), stride=(stride, stride), bias=not with_bn
        )
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class residual(nn.Module):  # noqa: N801
    def __init__(self, k, inp_dim, out_dim, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            inp_dim, out_dim, (3, 3), padding=(1, 1), stride=(stride, stride), bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, (3, 3), padding=(1, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        self.skip = (
            nn.Sequential(
                nn.Conv2d(inp_dim, out_dim, (1, 1), stride=(stride, stride), bias=False),
                nn.BatchNorm2d(out_dim),
            )
            if stride != 1 or inp_dim != out_dim
            else nn.Sequential()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.skip(x))


# Hourglass-104 as the official CornerNet config builds it (also used by official_test_torch.py).
HG104 = dict(
    n=5,
    nstack=2,
    dims=[256, 256, 384, 384, 384, 512],
    modules=[2, 2, 2, 2, 2, 4],
    out_dim=80,
    pre_dims=[128, 256],
    cnv_dim=256,
    pool_dim=128,
    head_dim=256,
)


def make_layer(k, inp_dim, out_dim, modules):
    return nn.Sequential(
        residual(k, inp_dim, out_dim), *[residual(k, out_dim, out_dim) for _ in range(1, modules)]
    )


def make_layer_revr(k, inp_dim, out_dim, modules):
    return nn.Sequential(
        *[residual(k, inp_dim, inp_dim) for _ in range(modules - 1)], residual(k, inp_dim, out_dim)
    )


def make_hg_layer(
    k, inp_dim, out_dim, modules
):  # models/CornerNet.py: the first residual down-samples
    return nn.Sequential(
        residual(k, inp_dim, out_dim, stride=2),
        *[residual(k, out_dim, out_dim) for _ in range(modules - 1)],
    )


class kp_module(nn.Module):  # noqa: N801
    def __init__(self, n, dims, modules):
        super().__init__()
        curr_mod, next_mod = modules[0], modules[1]
        curr_dim, next_dim = dims[0], dims[1]
        self.up1 = make_layer(3, curr_dim, curr_dim, curr_mod)
        self.max1 = nn.Sequential()
        self.low1 = make_hg_layer(3, curr_dim, next_dim, curr_mod)
        self.low2 = (
            kp_module(n - 1, dims[1:], modules[1:])
            if n > 1
            else make_layer(3, next_dim, next_dim, next_mod)
        )
        self.low3 = make_layer_revr(3, next_dim, curr_dim, curr_mod)
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x):
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(self.max1(x)))))


def top_pool(x):
    return x.flip(2).cummax(2)[0].flip(2)


def left_pool(x):
    return x.flip(3).cummax(3)[0].flip(3)


def bottom_pool(x):
    return x.cummax(2)[0]


def right_pool(x):
    return x.cummax(3)[0]


class pool(nn.Module):  # noqa: N801
    def __init__(self, dim, pool1, pool2, pool_dim=128):
        super().__init__()
        self.p1_conv1 = convolution(3, dim, pool_dim)
        self.p2_conv1 = convolution(3, dim, pool_dim)
        self.p_conv1 = nn.Conv2d(pool_dim, dim, (3, 3), padding=(1, 1), bias=False)
        self.p_bn1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, (1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = convolution(3, dim, dim)
        self.pool1, self.pool2 = pool1, pool2

    def forward(self, x):
        pooled = self.pool1(self.p1_conv1(x)) + self.pool2(self.p2_conv1(x))
        return self.conv2(self.relu1(self.p_bn1(self.p_conv1(pooled)) + self.bn1(self.conv1(x))))


def make_kp_layer(cnv_dim, curr_dim, out_dim):
    return nn.Sequential(
        convolution(3, cnv_dim, curr_dim, with_bn=False), nn.Conv2d(curr_dim, out_dim, (1, 1))
    )


class kp(nn.Module):  # noqa: N801
    def __init__(
        self,
        n,
        nstack,
        dims,
        modules,
        out_dim,
        pre_dims=(128, 256),
        cnv_dim=256,
        pool_dim=128,
        head_dim=None,
    ):
        super().__init__()
        self.nstack = nstack
        curr_dim = dims[0]
        head_dim = head_dim or curr_dim
        stacks = range(nstack)
        self.pre = nn.Sequential(
            convolution(7, 3, pre_dims[0], stride=2),
            residual(3, pre_dims[0], pre_dims[1], stride=2),
        )
        self.kps = nn.ModuleList([kp_module(n, dims, modules) for _ in stacks])
        self.cnvs = nn.ModuleList([convolution(3, curr_dim, cnv_dim) for _ in stacks])
        self.tl_cnvs = nn.ModuleList([pool(cnv_dim, top_pool, left_pool, pool_dim) for _ in stacks])
        self.br_cnvs = nn.ModuleList(
            [pool(cnv_dim, bottom_pool, right_pool, pool_dim) for _ in stacks]
        )
        self.tl_heats = nn.ModuleList([make_kp_layer(cnv_dim, head_dim, out_dim) for _ in stacks])
        self.br_heats = nn.ModuleList([make_kp_layer(cnv_dim, head_dim, out_dim) for _ in stacks])
        self.tl_tags = nn.ModuleList([make_kp_layer(cnv_dim, head_dim, 1) for _ in stacks])
        self.br_tags = nn.ModuleList([make_kp_layer(cnv_dim, head_dim, 1) for _ in stacks])
        for heat in list(self.tl_heats) + list(self.br_heats):
            heat[-1].bias.data.fill_(-2.19)
        self.inters = nn.ModuleList([residual(3, curr_dim, curr_dim) for _ in range(nstack - 1)])
        self.inters_ = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(curr_dim, curr_dim, (1, 1), bias=False), nn.BatchNorm2d(curr_dim)
                )
                for _ in range(nstack - 1)
            ]
        )
        self.cnvs_ = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(cnv_dim, curr_dim, (1, 1), bias=False), nn.BatchNorm2d(curr_dim)
                )
                for _ in range(nstack - 1)
            ]
        )
        self.tl_regrs = nn.ModuleList([make_kp_layer(cnv_dim, head_dim, 2) for _ in stacks])
        self.br_regrs = nn.ModuleList([make_kp_layer(cnv_dim, head_dim, 2) for _ in stacks])
        self.relu = nn.ReLU(inplace=True)

    def forward(self, image, last_only=False):
        inter = self.pre(image)
        outs = []
        for ind in range(self.nstack):
            cnv = self.cnvs[ind](self.kps[ind](inter))
            if not last_only or ind == self.nstack - 1:
                tl_cnv, br_cnv = self.tl_cnvs[ind](cnv), self.br_cnvs[ind](cnv)
                outs += [
                    self.tl_heats[ind](tl_cnv),
                    self.br_heats[ind](br_cnv),
                    self.tl_tags[ind](tl_cnv),
                    self.br_tags[ind](br_cnv),
                    self.tl_regrs[ind](tl_cnv),
                    self.br_regrs[ind](br_cnv),
                ]
            if ind < self.nstack - 1:
                inter = self.relu(self.inters_[ind](inter) + self.cnvs_[ind](cnv))
                inter = self.inters[ind](inter)
        return outs


def build(arch: dict, size: int):
    model = kp(
        arch["n"],
        arch["nstack"],
        arch["dims"],
        arch["modules"],
        arch["out_dim"],
        arch["pre_dims"],
        arch["cnv_dim"],
        arch["pool_dim"],
        arch["head_dim"],
    ).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return model, x


def forward_seconds(model, x, stacks: str) -> tuple:
    with torch.inference_mode():
        start = time.perf_counter()
        outs = model(x, stacks == "last")
        seconds = time.perf_counter() - start
    return seconds, all(bool(torch.isfinite(o).all()) for o in outs)


def serve() -> None:
    """Line protocol on stdin/stdout, so that a caller can interleave these calls with its own:
    {"cmd": "build", "arch": {...}, "size": 511} -> {"id": k, "parameters": n}
    {"cmd": "run", "id": k, "stacks": "all" | "last"} -> {"seconds": t, "finite": bool}
    {"cmd": "quit"}"""
    models = []
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["cmd"] == "build":
                models.append(build(msg["arch"], msg["size"]))
                reply = {
                    "id": len(models) - 1,
                    "parameters": sum(p.numel() for p in models[-1][0].parameters()),
                }
            elif msg["cmd"] == "run":
                seconds, finite = forward_seconds(*models[msg["id"]], msg["stacks"])
                reply = {"seconds": seconds, "finite": finite}
            elif msg["cmd"] == "quit":
                return
            else:
                reply = {"error": f"unknown command {msg['cmd']!r}"}
        except Exception as exc:  # report to the caller instead of dying silently
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--serve", action="store_true", help="answer build/run requests on stdin (JSON lines)"
    )
    parser.add_argument(
        "--model", default="hg104", choices=("hg104",), help="alone: the model to time"
    )
    parser.add_argument("--size", type=int, default=511)
    parser.add_argument("--stacks", default="all", choices=("all", "last"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, help="torch.set_num_threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.serve:
        serve()
        return
    arch = HG104
    model, x = build(arch, args.size)
    first, finite = forward_seconds(model, x, args.stacks)
    times = [forward_seconds(model, x, args.stacks)[0] for _ in range(args.repeats)]
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "model": args.model,
                "input": f"{args.size}x{args.size}",
                "stacks": args.stacks,
                "first_call_s": first,
                "median_ms": statistics.median(times) * 1e3,
                "min_ms": min(times) * 1e3,
                "finite": finite,
            }
        )
    )


if __name__ == "__main__":
    main()
