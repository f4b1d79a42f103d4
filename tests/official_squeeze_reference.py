"""An independent NumPy reference of the official CornerNet-Squeeze (CornerNet-Lite) network.

It re-implements the forward pass of ``core/models/CornerNet_Squeeze.py`` of princeton-vl/
CornerNet-Lite from its module structure, in float64 NCHW with BGR input, reading a state dict
under the Lite key names. Like ``official_reference.py`` (whose convolution, BatchNorm, residual,
corner-pool module and pools it reuses) it shares no code with ``cornernet_tf``.

Official structure, for reference:
* ``fire_module(in, out, sr=2, stride)``: conv1 = 1x1 (in -> out/2, no bias) -> bn1 (no ReLU);
  concat(conv_1x1 = 1x1 (out/2 -> out/2, stride), conv_3x3 = 3x3 pad 1 groups out/2, stride)
  -> bn2 -> (+ x when stride 1 and in == out) -> ReLU.
* ``hg_module(n, dims, modules)``: up1 = fires dims[0] -> dims[0]; max1 = identity;
  low1 = first fire stride 2 (dims[0] -> dims[1]) then fires; low2 = hg_module(n-1) or
  ``modules[1]`` fires; low3 = fires, the last one back to dims[0];
  up2 = ConvTranspose2d(dims[0], dims[0], 4, stride 2, padding 1); merge = up1 + up2.
* ``pre``: convolution(7, 3, pre[0], stride 2), residual(pre[0] -> pre[1], stride 2),
  residual(pre[1] -> pre[1], stride 2).
* heads ``_pred_mod``: convolution(1, cnv, head, with_bn=False) then 1x1 (head -> out) with bias.
* stacks and merges as CornerNet (``hg.cnvs``, ``hg.inters_``, ``hg.cnvs_``, ``hg.inters``).
"""

from __future__ import annotations

import numpy as np
from official_reference import (
    HEAT_BIAS,
    OUTPUT_KEYS,
    OfficialArch,
    _bn_keys,
    _convolution_keys,
    _Network,
    _pool_keys,
    _residual_keys,
    bottom_pool,
    conv2d,
    left_pool,
    relu,
    right_pool,
    strip_module_prefix,
    top_pool,
)

CORNERNET_SQUEEZE = OfficialArch(
    n=4, nstack=2, dims=(256, 256, 384, 384, 512), modules=(2, 2, 2, 2, 4), out_dim=80,
    head_dim=256,
)  # fmt: skip
HEADS = (("heat", "heats"), ("tag", "tags"), ("regr", "offs"))


# --------------------------------------------------------------------------- key names and shapes


def _fire_keys(prefix: str, inp: int, out: int) -> list:
    squeezed = out // 2
    keys = [(f"{prefix}.conv1.weight", (squeezed, inp, 1, 1))] + _bn_keys(f"{prefix}.bn1", squeezed)
    keys += [
        (f"{prefix}.conv_1x1.weight", (out // 2, squeezed, 1, 1)),
        (f"{prefix}.conv_3x3.weight", (out // 2, 1, 3, 3)),
    ]
    return keys + _bn_keys(f"{prefix}.bn2", out)


def _fire_plans(dims, modules) -> dict:
    """(in, out, stride) of each fire module of up1, low1, low2 (bottom level) and low3."""
    curr, nxt = dims[0], dims[1]
    curr_mod, next_mod = modules[0], modules[1]
    return {
        "up1": [(curr, curr, 1)] * curr_mod,
        "low1": [(curr, nxt, 2)] + [(nxt, nxt, 1)] * (curr_mod - 1),
        "low2": [(nxt, nxt, 1)] * next_mod,
        "low3": [(nxt, nxt, 1)] * (curr_mod - 1) + [(nxt, curr, 1)],
    }


def _hg_module_keys(prefix: str, n: int, dims, modules) -> list:
    plans = _fire_plans(dims, modules)
    keys = []
    for part in ("up1", "low1"):
        for i, (a, b, _) in enumerate(plans[part]):
            keys += _fire_keys(f"{prefix}.{part}.{i}", a, b)
    if n > 1:
        keys += _hg_module_keys(f"{prefix}.low2", n - 1, dims[1:], modules[1:])
    else:
        for i, (a, b, _) in enumerate(plans["low2"]):
            keys += _fire_keys(f"{prefix}.low2.{i}", a, b)
    for i, (a, b, _) in enumerate(plans["low3"]):
        keys += _fire_keys(f"{prefix}.low3.{i}", a, b)
    return keys + [
        (f"{prefix}.up2.weight", (dims[0], dims[0], 4, 4)),
        (f"{prefix}.up2.bias", (dims[0],)),
    ]


def _head_keys(prefix: str, cnv_dim: int, width: int, out: int) -> list:
    return _convolution_keys(f"{prefix}.0", 1, cnv_dim, width, with_bn=False) + [
        (f"{prefix}.1.weight", (out, width, 1, 1)),
        (f"{prefix}.1.bias", (out,)),
    ]


def squeeze_official_shapes(arch: OfficialArch) -> dict:
    """Lite ``state_dict`` key -> shape of CornerNet-Squeeze ``arch``, in registration order."""
    a, stacks = arch, range(arch.nstack)
    curr = a.dims[0]
    keys = _convolution_keys("hg.pre.0", 7, 3, a.pre_dims[0])
    keys += _residual_keys("hg.pre.1", a.pre_dims[0], a.pre_dims[1], stride=2)
    keys += _residual_keys("hg.pre.2", a.pre_dims[1], a.pre_dims[1], stride=2)
    for i in stacks:
        keys += _hg_module_keys(f"hg.hgs.{i}", a.n, a.dims, a.modules)
    for i in stacks:
        keys += _convolution_keys(f"hg.cnvs.{i}", 3, curr, a.cnv_dim)
    for i in range(a.nstack - 1):
        keys += _residual_keys(f"hg.inters.{i}", curr, curr)
    for i in range(a.nstack - 1):
        keys += [(f"hg.inters_.{i}.0.weight", (curr, curr, 1, 1))]
        keys += _bn_keys(f"hg.inters_.{i}.1", curr)
    for i in range(a.nstack - 1):
        keys += [(f"hg.cnvs_.{i}.0.weight", (curr, a.cnv_dim, 1, 1))]
        keys += _bn_keys(f"hg.cnvs_.{i}.1", curr)
    for corner in ("tl", "br"):
        for i in stacks:
            keys += _pool_keys(f"{corner}_modules.{i}", a.cnv_dim, a.pool_dim)
    for _, name in HEADS:
        for corner in ("tl", "br"):
            out = {"heats": a.out_dim, "tags": 1, "offs": 2}[name]
            for i in stacks:
                keys += _head_keys(f"{corner}_{name}.{i}", a.cnv_dim, a.head_width, out)
    return dict(keys)


def squeeze_state_dict(arch: OfficialArch, seed: int, calibration_images: np.ndarray) -> dict:
    """Random Lite-named weights (torch layouts), BatchNorm statistics calibrated on the images
    so that every activation stays O(1) (see ``official_reference.official_state_dict``)."""
    rng = np.random.default_rng(seed)
    shapes = squeeze_official_shapes(arch)
    bn_modules = {key[: -len(".running_mean")] for key in shapes if key.endswith(".running_mean")}
    state = {}
    for key, shape in shapes.items():
        module, name = key.rsplit(".", 1)
        top = key.split(".")[0]
        if name == "num_batches_tracked":
            state[key] = np.array(0, dtype=np.int64)
            continue
        if name in ("running_mean", "running_var"):
            value = rng.uniform(0.5, 2.0, shape) if name == "running_var" else np.zeros(shape)
        elif module in bn_modules:
            value = rng.uniform(0.4, 1.0, shape) if name == "weight" else rng.normal(0, 0.2, shape)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif top.endswith("_heats") and module.endswith(".1"):
            value = HEAT_BIAS + rng.uniform(-0.1, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.2, shape)
        state[key] = np.asarray(value, dtype=np.float32)
    _Squeeze(state, arch, calibrate=True).forward(np.asarray(calibration_images, np.float64))
    return state


# --------------------------------------------------------------------------- forward pass


def depthwise_conv3x3(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    """Conv2d(C, C, 3, padding=1, stride, groups=C) on NCHW; ``weight`` is (C, 1, 3, 3)."""
    n, c, h, w = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, c, ho, wo))
    for a in range(3):
        for b in range(3):
            patch = xp[
                :, :, a : a + stride * (ho - 1) + 1 : stride, b : b + stride * (wo - 1) + 1 : stride
            ]
            out += patch * weight[None, :, 0, a, b, None, None]
    return out


def conv_transpose4x4(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """ConvTranspose2d(kernel 4, stride 2, padding 1) on NCHW; ``weight`` is (in, out, 4, 4):
    input pixel (i, j) adds ``x[i, j] * weight`` at output rows 2i - 1 .. 2i + 2."""
    n, _, h, w = x.shape
    out_c = weight.shape[1]
    full = np.zeros((n, out_c, 2 * h + 2, 2 * w + 2))
    for a in range(4):
        for b in range(4):
            full[:, :, a : a + 2 * h : 2, b : b + 2 * w : 2] += np.einsum(
                "nchw,co->nohw", x, weight[:, :, a, b]
            )
    return full[:, :, 1:-1, 1:-1] + bias[None, :, None, None]


class _Squeeze(_Network):
    """The official CornerNet-Squeeze modules as functions of (state dict, prefix, input)."""

    def fire(self, prefix, x, out_dim, stride):
        squeezed = self.bn(f"{prefix}.bn1", conv2d(x, self.w(f"{prefix}.conv1.weight")))
        expand = np.concatenate(
            [
                conv2d(squeezed, self.w(f"{prefix}.conv_1x1.weight"), stride=stride),
                depthwise_conv3x3(squeezed, self.w(f"{prefix}.conv_3x3.weight"), stride),
            ],
            axis=1,
        )
        y = self.bn(f"{prefix}.bn2", expand)
        if stride == 1 and x.shape[1] == out_dim:
            y = y + x
        return relu(y)

    def fires(self, prefix, x, plan):
        for i, (_, out, stride) in enumerate(plan):
            x = self.fire(f"{prefix}.{i}", x, out, stride)
        return x

    def hg_module(self, prefix, x, n, dims, modules):
        plans = _fire_plans(dims, modules)
        up1 = self.fires(f"{prefix}.up1", x, plans["up1"])
        low1 = self.fires(f"{prefix}.low1", x, plans["low1"])
        if n > 1:
            low2 = self.hg_module(f"{prefix}.low2", low1, n - 1, dims[1:], modules[1:])
        else:
            low2 = self.fires(f"{prefix}.low2", low1, plans["low2"])
        low3 = self.fires(f"{prefix}.low3", low2, plans["low3"])
        up2 = conv_transpose4x4(low3, self.w(f"{prefix}.up2.weight"), self.w(f"{prefix}.up2.bias"))
        return up1 + up2

    def head(self, prefix, x):
        hidden = self.convolution(f"{prefix}.0", x, with_bn=False)
        return conv2d(hidden, self.w(f"{prefix}.1.weight"), self.w(f"{prefix}.1.bias"))

    def forward(self, image):
        a = self.arch
        inter = self.convolution("hg.pre.0", image, stride=2)
        inter = self.residual("hg.pre.1", inter, a.pre_dims[1], stride=2)
        inter = self.residual("hg.pre.2", inter, a.pre_dims[1], stride=2)
        outputs = {key: [] for key in OUTPUT_KEYS}
        for i in range(a.nstack):
            cnv = self.convolution(
                f"hg.cnvs.{i}", self.hg_module(f"hg.hgs.{i}", inter, a.n, a.dims, a.modules)
            )
            tl = self.pool(f"tl_modules.{i}", cnv, top_pool, left_pool)
            br = self.pool(f"br_modules.{i}", cnv, bottom_pool, right_pool)
            for corner, feat in (("tl", tl), ("br", br)):
                for kind, name in HEADS:
                    outputs[f"{corner}_{kind}"].append(self.head(f"{corner}_{name}.{i}", feat))
            if i < a.nstack - 1:
                merged = self.bn(
                    f"hg.inters_.{i}.1", conv2d(inter, self.w(f"hg.inters_.{i}.0.weight"))
                ) + self.bn(f"hg.cnvs_.{i}.1", conv2d(cnv, self.w(f"hg.cnvs_.{i}.0.weight")))
                inter = self.residual(f"hg.inters.{i}", relu(merged), a.dims[0])
        return outputs


def squeeze_forward(state: dict, images_bgr_nchw: np.ndarray, arch: OfficialArch) -> dict:
    """Every stack's raw head maps (NCHW float64) of the official CornerNet-Squeeze in eval mode."""
    images = np.asarray(images_bgr_nchw, dtype=np.float64)
    return _Squeeze(strip_module_prefix(state), arch, calibrate=False).forward(images)
