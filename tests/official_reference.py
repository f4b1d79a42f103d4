"""An independent NumPy reference of the official CornerNet network.

This re-implements the forward pass of the official ``kp`` network (princeton-vl/CornerNet,
``models/CornerNet.py`` and ``models/py_utils/{kp,utils}.py``) from its module structure, in float64
NCHW with BGR input, reading an official-style ``state_dict`` (torch layouts, torch key names).
It shares no code with ``cornernet_tf``: it is the yardstick the Keras model and the converter are
measured against for architectures the golden files do not cover.

It also generates official key names and shapes for any ``(n, nstack, dims, modules, pre, cnv_dim,
out_dim)`` and random weights for them, with BatchNorm running statistics calibrated on sample
images so that every activation stays O(1) (as the golden weights were made).

Official structure, for reference:
* ``convolution(k, in, out, stride, with_bn)``: conv(pad (k-1)//2, bias = not with_bn) -> BN -> ReLU.
* ``residual(k, in, out, stride)``: relu(bn2(conv2(relu(bn1(conv1(x))))) + skip(x)), both convs 3x3,
  stride on conv1; skip = Sequential(conv1x1 stride s, BN) when stride != 1 or in != out.
* ``kp_module(n, dims, modules)``: up1 = make_layer (modules[0] residuals dims[0]->dims[0]);
  max1 = identity; low1 = make_hg_layer (first residual stride 2, dims[0]->dims[1]);
  low2 = kp_module(n-1, dims[1:], modules[1:]) if n > 1 else make_layer(modules[1] residuals);
  low3 = make_layer_revr (dims[1]->dims[1] ..., last dims[1]->dims[0]); up2 = nearest x2;
  merge = up1 + up2.
* ``pool(dim, pool1, pool2)``: p1_conv1 / p2_conv1 = convolution(3, dim, 128); p_conv1 = conv3x3
  (128->dim); p_bn1; conv1 = conv1x1(dim->dim); bn1; relu(p_bn1 + bn1); conv2 = convolution(3, dim, dim).
* heads ``make_kp_layer(cnv_dim, curr_dim, out)``: convolution(3, cnv_dim, curr_dim, with_bn=False),
  then conv1x1(curr_dim->out) with bias.
* ``kp``: pre = [convolution(7, 3, 128, stride 2), residual(3, 128, 256, stride 2)]; per stack
  kps -> cnvs -> tl_cnvs / br_cnvs -> heats, tags, regrs; between stacks
  inter = inters[i](relu(inters_[i](inter) + cnvs_[i](cnv))).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BN_EPS = 1e-5  # torch.nn.BatchNorm2d default
HEAT_BIAS = -2.19  # kp.__init__: heat[-1].bias.data.fill_(-2.19)
OUTPUT_KEYS = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_regr", "br_regr")


@dataclass(frozen=True)
class OfficialArch:
    """Arguments of the official ``kp`` constructor (plus the widths it hard-codes)."""

    n: int
    nstack: int
    dims: tuple
    modules: tuple
    out_dim: int
    pre_dims: tuple = (128, 256)  # kp's default ``pre`` widths
    cnv_dim: int = 256
    pool_dim: int = 128  # hard-coded in the official ``pool`` class
    head_dim: int | None = None  # official heads use dims[0]

    def __post_init__(self):
        if len(self.dims) != self.n + 1 or len(self.modules) != self.n + 1:
            raise ValueError(
                f"kp_module(n={self.n}) needs n + 1 dims and modules, got {self.dims}, {self.modules}"
            )
        if self.pre_dims[-1] != self.dims[0]:
            raise ValueError(f"pre output {self.pre_dims[-1]} must equal dims[0] {self.dims[0]}")

    @property
    def head_width(self) -> int:
        return self.head_dim if self.head_dim is not None else self.dims[0]


HOURGLASS_104 = OfficialArch(
    n=5, nstack=2, dims=(256, 256, 384, 384, 384, 512), modules=(2, 2, 2, 2, 2, 4), out_dim=80
)


# --------------------------------------------------------------------------- key names and shapes


def _bn_keys(prefix: str, channels: int) -> list:
    return [
        (f"{prefix}.weight", (channels,)),
        (f"{prefix}.bias", (channels,)),
        (f"{prefix}.running_mean", (channels,)),
        (f"{prefix}.running_var", (channels,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def _convolution_keys(prefix: str, k: int, inp: int, out: int, with_bn: bool = True) -> list:
    keys = [(f"{prefix}.conv.weight", (out, inp, k, k))]
    if with_bn:
        return keys + _bn_keys(f"{prefix}.bn", out)
    return keys + [(f"{prefix}.conv.bias", (out,))]


def _has_skip(inp: int, out: int, stride: int) -> bool:
    return stride != 1 or inp != out


def _residual_keys(prefix: str, inp: int, out: int, stride: int = 1) -> list:
    keys = [(f"{prefix}.conv1.weight", (out, inp, 3, 3))] + _bn_keys(f"{prefix}.bn1", out)
    keys += [(f"{prefix}.conv2.weight", (out, out, 3, 3))] + _bn_keys(f"{prefix}.bn2", out)
    if _has_skip(inp, out, stride):
        keys += [(f"{prefix}.skip.0.weight", (out, inp, 1, 1))] + _bn_keys(f"{prefix}.skip.1", out)
    return keys


def _layer_plan(inp: int, out: int, mod: int) -> list:
    """make_layer: (in, out, stride) of each residual."""
    return [(inp, out, 1)] + [(out, out, 1)] * (mod - 1)


def _hg_layer_plan(inp: int, out: int, mod: int) -> list:
    """make_hg_layer of models/CornerNet.py: the first residual down-samples."""
    return [(inp, out, 2)] + [(out, out, 1)] * (mod - 1)


def _layer_revr_plan(inp: int, out: int, mod: int) -> list:
    """make_layer_revr: the last residual changes the width."""
    return [(inp, inp, 1)] * (mod - 1) + [(inp, out, 1)]


def _kp_module_keys(prefix: str, n: int, dims, modules) -> list:
    curr_dim, next_dim = dims[0], dims[1]
    curr_mod, next_mod = modules[0], modules[1]
    keys = []
    for i, (a, b, s) in enumerate(_layer_plan(curr_dim, curr_dim, curr_mod)):
        keys += _residual_keys(f"{prefix}.up1.{i}", a, b, s)
    for i, (a, b, s) in enumerate(_hg_layer_plan(curr_dim, next_dim, curr_mod)):
        keys += _residual_keys(f"{prefix}.low1.{i}", a, b, s)
    if n > 1:
        keys += _kp_module_keys(f"{prefix}.low2", n - 1, dims[1:], modules[1:])
    else:
        for i, (a, b, s) in enumerate(_layer_plan(next_dim, next_dim, next_mod)):
            keys += _residual_keys(f"{prefix}.low2.{i}", a, b, s)
    for i, (a, b, s) in enumerate(_layer_revr_plan(next_dim, curr_dim, curr_mod)):
        keys += _residual_keys(f"{prefix}.low3.{i}", a, b, s)
    return keys


def _pool_keys(prefix: str, dim: int, pool_dim: int) -> list:
    keys = _convolution_keys(f"{prefix}.p1_conv1", 3, dim, pool_dim)
    keys += _convolution_keys(f"{prefix}.p2_conv1", 3, dim, pool_dim)
    keys += [(f"{prefix}.p_conv1.weight", (dim, pool_dim, 3, 3))] + _bn_keys(f"{prefix}.p_bn1", dim)
    keys += [(f"{prefix}.conv1.weight", (dim, dim, 1, 1))] + _bn_keys(f"{prefix}.bn1", dim)
    keys += _convolution_keys(f"{prefix}.conv2", 3, dim, dim)
    return keys


def _head_keys(prefix: str, cnv_dim: int, width: int, out: int) -> list:
    return _convolution_keys(f"{prefix}.0", 3, cnv_dim, width, with_bn=False) + [
        (f"{prefix}.1.weight", (out, width, 1, 1)),
        (f"{prefix}.1.bias", (out,)),
    ]


def official_shapes(arch: OfficialArch) -> dict:
    """Official ``state_dict`` key -> shape, in the official registration order."""
    a = arch
    curr = a.dims[0]
    keys = _convolution_keys("pre.0", 7, 3, a.pre_dims[0])
    keys += _residual_keys("pre.1", a.pre_dims[0], a.pre_dims[1], stride=2)
    stacks = range(a.nstack)
    for i in stacks:
        keys += _kp_module_keys(f"kps.{i}", a.n, a.dims, a.modules)
    for i in stacks:
        keys += _convolution_keys(f"cnvs.{i}", 3, curr, a.cnv_dim)
    for corner in ("tl", "br"):
        for i in stacks:
            keys += _pool_keys(f"{corner}_cnvs.{i}", a.cnv_dim, a.pool_dim)
    for kind, out in (("heats", a.out_dim), ("tags", 1)):
        for corner in ("tl", "br"):
            for i in stacks:
                keys += _head_keys(f"{corner}_{kind}.{i}", a.cnv_dim, a.head_width, out)
    for i in range(a.nstack - 1):
        keys += _residual_keys(f"inters.{i}", curr, curr)
    for i in range(a.nstack - 1):
        keys += [(f"inters_.{i}.0.weight", (curr, curr, 1, 1))] + _bn_keys(f"inters_.{i}.1", curr)
    for i in range(a.nstack - 1):
        keys += [(f"cnvs_.{i}.0.weight", (curr, a.cnv_dim, 1, 1))] + _bn_keys(f"cnvs_.{i}.1", curr)
    for corner in ("tl", "br"):
        for i in stacks:
            keys += _head_keys(f"{corner}_regrs.{i}", a.cnv_dim, a.head_width, 2)
    return dict(keys)


def is_buffer(key: str) -> bool:
    """BatchNorm buffers: in the state dict but not torch parameters."""
    return key.endswith((".running_mean", ".running_var", ".num_batches_tracked"))


def parameter_count(arch: OfficialArch) -> int:
    """What ``sum(p.numel() for p in model.parameters())`` gives for the official model."""
    return int(
        sum(
            int(np.prod(shape))
            for key, shape in official_shapes(arch).items()
            if not is_buffer(key)
        )
    )


# --------------------------------------------------------------------------- random weights


def official_state_dict(
    arch: OfficialArch, seed: int = 0, calibration_images: np.ndarray | None = None
) -> dict:
    """Random official-style weights (float32, torch layouts; num_batches_tracked int64).

    Convolutions are He-initialised; heat biases sit near -2.19 and the tag heads are scaled down,
    as in trained models. With ``calibration_images`` (NCHW BGR), each BatchNorm's running mean and
    variance are set, in forward order, to the statistics of its input on those images (variances
    floored at half the layer's mean), so every BN output is about N(beta, gamma^2) whatever the
    depth. Use a few images whose maps are larger than the test's: the innermost hourglass level
    has few pixels, and statistics from too few samples amplify other inputs.
    """
    rng = np.random.default_rng(seed)
    shapes = official_shapes(arch)
    bn_modules = {key[: -len(".running_mean")] for key in shapes if key.endswith(".running_mean")}
    state = {}
    for key, shape in shapes.items():
        module, name = key.rsplit(".", 1)
        head = (
            key.split(".")[0] if key.split(".")[0].endswith(("_heats", "_tags", "_regrs")) else None
        )
        if name == "num_batches_tracked":
            state[key] = np.array(0, dtype=np.int64)
            continue
        if name == "running_mean":
            value = rng.normal(0.0, 0.5, shape)
        elif name == "running_var":
            value = rng.uniform(0.5, 2.0, shape)
        elif module in bn_modules:
            value = (
                rng.uniform(0.4, 1.0, shape) if name == "weight" else rng.normal(0.0, 0.2, shape)
            )
        elif len(shape) == 4:  # convolution kernel (out, in, kh, kw)
            fan_in = shape[1] * shape[2] * shape[3]
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            if head and module.endswith(".1"):  # a head's last 1x1: no ReLU after it
                value *= np.sqrt(0.5) * (0.5 if head.endswith("_tags") else 1.0)
        elif head and module.endswith(".1") and head.endswith("_heats"):
            value = HEAT_BIAS + rng.uniform(-0.1, 0.1, shape)
        else:  # other convolution biases
            value = rng.normal(0.0, 0.2, shape)
        state[key] = np.asarray(value, dtype=np.float32)
    if calibration_images is not None:
        official_forward(state, calibration_images, arch, calibrate=True)
    return state


# --------------------------------------------------------------------------- forward pass


def conv2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1
) -> np.ndarray:
    """torch.nn.functional.conv2d with padding (k - 1) // 2 on NCHW, by im2col + matmul in float64.

    The patches are gathered channels-last, which makes one large contiguous matmul.
    """
    n, c, h, w = x.shape
    out_c, in_c, kh, kw = weight.shape
    if in_c != c:
        raise ValueError(f"conv2d: input has {c} channels, weight expects {in_c}")
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    ho = (h + 2 * ph - kh) // stride + 1
    wo = (w + 2 * pw - kw) // stride + 1
    xp = np.pad(np.transpose(x, (0, 2, 3, 1)), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    cols = np.empty((n, ho, wo, kh, kw, c), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[
                :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
    kernel = np.transpose(weight, (2, 3, 1, 0)).reshape(kh * kw * c, out_c).astype(np.float64)
    out = (cols.reshape(n * ho * wo, kh * kw * c) @ kernel).reshape(n, ho, wo, out_c)
    if bias is not None:
        out += bias.astype(np.float64)
    return np.transpose(out, (0, 3, 1, 2))


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def top_pool(x):  # out[i] = max(x[i:H]) along H
    return np.flip(np.maximum.accumulate(np.flip(x, 2), axis=2), 2)


def left_pool(x):  # out[j] = max(x[j:W]) along W
    return np.flip(np.maximum.accumulate(np.flip(x, 3), axis=3), 3)


def bottom_pool(x):  # out[i] = max(x[0:i+1]) along H
    return np.maximum.accumulate(x, axis=2)


def right_pool(x):  # out[j] = max(x[0:j+1]) along W
    return np.maximum.accumulate(x, axis=3)


def upsample_nearest2(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


class _Network:
    """The official modules as functions of (state dict, prefix, input)."""

    def __init__(self, state: dict, arch: OfficialArch, calibrate: bool):
        self.state = state
        self.arch = arch
        self.calibrate = calibrate

    def w(self, key):
        return np.asarray(self.state[key], dtype=np.float64)

    def bn(self, prefix, x):
        if self.calibrate:
            self.state[f"{prefix}.running_mean"] = x.mean(axis=(0, 2, 3)).astype(np.float32)
            # Deep levels see a few pixels only: floor the estimate so that no channel is blown up.
            var = x.var(axis=(0, 2, 3))
            self.state[f"{prefix}.running_var"] = np.maximum(var, 0.5 * var.mean() + 1e-3).astype(
                np.float32
            )
        mean, var = self.w(f"{prefix}.running_mean"), self.w(f"{prefix}.running_var")
        scale = self.w(f"{prefix}.weight") / np.sqrt(var + BN_EPS)
        shift = self.w(f"{prefix}.bias") - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def convolution(self, prefix, x, stride=1, with_bn=True):
        if with_bn:
            y = self.bn(f"{prefix}.bn", conv2d(x, self.w(f"{prefix}.conv.weight"), stride=stride))
        else:
            y = conv2d(
                x, self.w(f"{prefix}.conv.weight"), self.w(f"{prefix}.conv.bias"), stride=stride
            )
        return relu(y)

    def residual(self, prefix, x, out_dim, stride=1):
        y = relu(
            self.bn(f"{prefix}.bn1", conv2d(x, self.w(f"{prefix}.conv1.weight"), stride=stride))
        )
        y = self.bn(f"{prefix}.bn2", conv2d(y, self.w(f"{prefix}.conv2.weight")))
        if _has_skip(x.shape[1], out_dim, stride):
            skip = self.bn(
                f"{prefix}.skip.1", conv2d(x, self.w(f"{prefix}.skip.0.weight"), stride=stride)
            )
        else:
            skip = x
        return relu(y + skip)

    def sequential(self, prefix, x, plan):
        for i, (_, out, stride) in enumerate(plan):
            x = self.residual(f"{prefix}.{i}", x, out, stride)
        return x

    def kp_module(self, prefix, x, n, dims, modules):
        curr_dim, next_dim = dims[0], dims[1]
        curr_mod, next_mod = modules[0], modules[1]
        up1 = self.sequential(f"{prefix}.up1", x, _layer_plan(curr_dim, curr_dim, curr_mod))
        low1 = self.sequential(
            f"{prefix}.low1", x, _hg_layer_plan(curr_dim, next_dim, curr_mod)
        )  # max1 = identity
        if n > 1:
            low2 = self.kp_module(f"{prefix}.low2", low1, n - 1, dims[1:], modules[1:])
        else:
            low2 = self.sequential(
                f"{prefix}.low2", low1, _layer_plan(next_dim, next_dim, next_mod)
            )
        low3 = self.sequential(
            f"{prefix}.low3", low2, _layer_revr_plan(next_dim, curr_dim, curr_mod)
        )
        up2 = upsample_nearest2(low3)
        if up1.shape != up2.shape:
            raise ValueError(
                f"{prefix}: up1 {up1.shape} and up2 {up2.shape} differ; the map must divide by 2**n"
            )
        return up1 + up2

    def pool(self, prefix, x, pool1, pool2):
        p1 = pool1(self.convolution(f"{prefix}.p1_conv1", x))
        p2 = pool2(self.convolution(f"{prefix}.p2_conv1", x))
        p_bn1 = self.bn(f"{prefix}.p_bn1", conv2d(p1 + p2, self.w(f"{prefix}.p_conv1.weight")))
        bn1 = self.bn(f"{prefix}.bn1", conv2d(x, self.w(f"{prefix}.conv1.weight")))
        return self.convolution(f"{prefix}.conv2", relu(p_bn1 + bn1))

    def head(self, prefix, x):
        hidden = self.convolution(f"{prefix}.0", x, with_bn=False)
        return conv2d(hidden, self.w(f"{prefix}.1.weight"), self.w(f"{prefix}.1.bias"))

    def forward(self, image):
        a = self.arch
        inter = self.convolution("pre.0", image, stride=2)
        inter = self.residual("pre.1", inter, a.pre_dims[1], stride=2)
        outputs = {key: [] for key in OUTPUT_KEYS}
        for i in range(a.nstack):
            kp = self.kp_module(f"kps.{i}", inter, a.n, a.dims, a.modules)
            cnv = self.convolution(f"cnvs.{i}", kp)
            tl_cnv = self.pool(f"tl_cnvs.{i}", cnv, top_pool, left_pool)
            br_cnv = self.pool(f"br_cnvs.{i}", cnv, bottom_pool, right_pool)
            for corner, feat in (("tl", tl_cnv), ("br", br_cnv)):
                outputs[f"{corner}_heat"].append(self.head(f"{corner}_heats.{i}", feat))
                outputs[f"{corner}_tag"].append(self.head(f"{corner}_tags.{i}", feat))
                outputs[f"{corner}_regr"].append(self.head(f"{corner}_regrs.{i}", feat))
            if i < a.nstack - 1:
                merged = self.bn(f"inters_.{i}.1", conv2d(inter, self.w(f"inters_.{i}.0.weight")))
                merged = merged + self.bn(
                    f"cnvs_.{i}.1", conv2d(cnv, self.w(f"cnvs_.{i}.0.weight"))
                )
                inter = self.residual(f"inters.{i}", relu(merged), a.dims[0])
        return outputs


def strip_module_prefix(state: dict) -> dict:
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def official_forward(
    state: dict, images_bgr_nchw: np.ndarray, arch: OfficialArch, calibrate: bool = False
) -> dict:
    """Every stack's raw head maps (NCHW float64) for normalised BGR images, as the official
    ``kp._train`` computes them in eval mode: {key: [stack0, stack1, ...]}.

    With ``calibrate=True`` the BatchNorm running statistics in ``state`` are overwritten in
    place with the batch statistics of their inputs (used by :func:`official_state_dict`).
    """
    images = np.asarray(images_bgr_nchw, dtype=np.float64)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected NCHW BGR images (N, 3, H, W), got shape {images.shape}")
    if not calibrate:
        state = strip_module_prefix(state)
    return _Network(state, arch, calibrate).forward(images)
