"""CornerNet-Squeeze: fire modules, the transposed-conv hourglass and the 8x stem, checked against an
independent NumPy implementation of the official PyTorch modules (symmetric padding, depthwise 3x3,
ConvTranspose2d(k=4, s=2, p=1)), plus shapes, parameter counts and serialisation."""

import keras
import numpy as np
import pytest

from cornernet_tf.config import load_config
from cornernet_tf.modeling.backbones import build_backbone, output_stride, stride_multiple
from cornernet_tf.modeling.cornernet import OUTPUT_KEYS, CornerNet, build_model
from cornernet_tf.modeling.heads import PredictionHead
from cornernet_tf.modeling.hourglass import HourglassModule, Stem
from cornernet_tf.modeling.layers import FireModule

EPS = 1e-5
TINY = "configs/cornernet_squeeze_tiny.yaml"


# CornerNet-Squeeze's layers are configurations of the shared ones (modeling/backbones.py).
def squeeze_hourglass(dims, modules, **kwargs):
    return HourglassModule(dims, modules, block="fire", upsample="transposed", **kwargs)


def squeeze_stem(dims, **kwargs):
    return Stem(dims, residuals=2, **kwargs)


def pointwise_head(out_dim, head_dim, **kwargs):
    return PredictionHead(out_dim, head_dim, kernel_size=1, **kwargs)


# ----------------------------------------------------------------------------- NumPy reference
def np_conv(x, w, stride=1, pad=0, groups=1, bias=None):
    """PyTorch-semantics 2-D convolution on NHWC ``x`` with an HWIO kernel (I = in/groups)."""
    x = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)]).astype(np.float64)
    n, h, wd, cin = x.shape
    kh, kw, gin, cout = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    gout = cout // groups
    out = np.zeros((n, oh, ow, cout))
    for g in range(groups):
        xs = x[..., g * gin : (g + 1) * gin]
        ws = w[..., g * gout : (g + 1) * gout]
        for a in range(kh):
            for b in range(kw):
                patch = xs[:, a : a + stride * oh : stride, b : b + stride * ow : stride, :]
                out[..., g * gout : (g + 1) * gout] += patch @ ws[a, b]
    return out if bias is None else out + bias


def np_conv_transpose(x, w, stride, pad, bias):
    """PyTorch ConvTranspose2d: every input pixel scatters ``x[i] * w`` to ``i * stride - pad + k``.
    ``w`` is Keras' (kh, kw, out, in) kernel."""
    n, h, wd, cin = x.shape
    kh, kw, cout, _ = w.shape
    full = np.zeros((n, (h - 1) * stride + kh, (wd - 1) * stride + kw, cout))
    for i in range(h):
        for j in range(wd):
            full[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :] += np.einsum(
                "nc,abdc->nabd", x[:, i, j, :].astype(np.float64), w
            )
    return full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad, :] + bias


def np_bn(x, layer):
    gamma, beta, mean, var = (np.asarray(v) for v in layer.get_weights())
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def np_fire(x, fire: FireModule):
    s = np_bn(np_conv(x, fire.squeeze.kernel.numpy()), fire.squeeze_bn)
    e1 = np_conv(s, fire.expand_1x1.kernel.numpy(), stride=fire.stride)
    dw = fire.expand_3x3.kernel.numpy()  # (3, 3, C, 1) depthwise -> grouped HWIO (3, 3, 1, C)
    e3 = np_conv(s, np.transpose(dw, (0, 1, 3, 2)), stride=fire.stride, pad=1, groups=dw.shape[2])
    y = np_bn(np.concatenate([e1, e3], -1), fire.expand_bn)
    if fire.stride == 1 and x.shape[-1] == fire.filters:
        y = y + x
    return np.maximum(y, 0)


def randomise(layer, seed=0):
    """Random weights everywhere, BN statistics included (variance positive)."""
    rng = np.random.default_rng(seed)
    for var in layer.weights:
        shape = tuple(var.shape)
        if "variance" in var.path:
            var.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        else:
            var.assign(rng.normal(0, 0.3, shape).astype(np.float32))


# ----------------------------------------------------------------------------- layers
@pytest.mark.parametrize(
    "in_ch, filters, stride, hw",
    [(8, 8, 1, (6, 7)), (8, 12, 1, (5, 5)), (8, 12, 2, (6, 8)), (6, 8, 2, (7, 5))],
)
def test_fire_module_matches_numpy_reference(in_ch, filters, stride, hw):
    fire = FireModule(filters, stride=stride)
    x = np.random.default_rng(1).normal(size=(2,) + hw + (in_ch,)).astype(np.float32)
    fire.build(x.shape)
    randomise(fire)
    got = fire(x, training=False).numpy()
    expected = np_fire(x, fire)
    assert got.shape == expected.shape == fire.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert fire.has_skip == (stride == 1 and in_ch == filters)


def test_hourglass_matches_numpy_reference():
    """A depth-1 hourglass: up1 fires + stride-2 fire, bottom fires, back to width, transposed conv."""
    hg = squeeze_hourglass([8, 12], [1, 2])
    x = np.random.default_rng(2).normal(size=(1, 8, 6, 8)).astype(np.float32)
    hg.build(x.shape)
    randomise(hg, seed=3)
    up1 = np_fire(x, hg.up1[0])
    low = np_fire(x, hg.low1[0])
    assert low.shape[1:3] == (4, 3)
    for fire in hg.low2 + hg.low3:
        low = np_fire(low, fire)
    kernel, bias = (np.asarray(v) for v in hg.up2.get_weights())
    up2 = np_conv_transpose(low, kernel, stride=2, pad=1, bias=bias)
    np.testing.assert_allclose(hg(x, training=False).numpy(), up1 + up2, atol=1e-4)


def test_stem_down_samples_8x_with_symmetric_padding():
    stem = squeeze_stem([4, 8])
    for hw in [(127, 127), (64, 48), (33, 17)]:
        shape = (1,) + hw + (3,)
        out = stem(np.zeros(shape, np.float32))
        assert (
            out.shape[1:3]
            == tuple((s + 7) // 8 for s in hw)
            == stem.compute_output_shape(shape)[1:3]
        )


def test_pointwise_head_is_two_1x1_convolutions():
    head = pointwise_head(3, 5, bias_init=-2.19)
    x = np.random.default_rng(4).normal(size=(1, 4, 4, 6)).astype(np.float32)
    head.build(x.shape)
    assert head.hidden.conv.kernel.shape == (1, 1, 6, 5)
    np.testing.assert_allclose(head.out.bias.numpy(), -2.19)
    w1, b1 = head.hidden.conv.get_weights()
    w2, b2 = head.out.get_weights()
    expected = np_conv(np.maximum(np_conv(x, w1, bias=b1), 0), w2, bias=b2)
    np.testing.assert_allclose(head(x).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize(
    "layer",
    [
        FireModule(8, stride=2, name="f"),
        squeeze_stem([4, 8], name="s"),
        squeeze_hourglass([8, 12, 16], [1, 1, 2], name="h"),
        pointwise_head(3, 5, bias_init=-1.0, name="p"),
    ],
)
def test_layers_round_trip_through_get_config(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="filters"):
        FireModule(7)
    with pytest.raises(ValueError, match="stride"):
        FireModule(8, stride=3)
    with pytest.raises(ValueError, match="dims"):
        squeeze_hourglass([8], [1])
    cfg = load_config(TINY, ["model.dims=[32,48,64,95]"]).model
    with pytest.raises(ValueError, match="even"):
        build_backbone(cfg)


# ----------------------------------------------------------------------------- whole model
def _expected_parameter_count(cfg) -> int:
    """Parameters of CornerNet-Squeeze counted from the architecture description alone."""

    def conv(cin, cout, k, bias=False):
        return k * k * cin * cout + (cout if bias else 0)

    def bn(c):
        return 4 * c

    def conv_bn(cin, cout, k):
        return conv(cin, cout, k) + bn(cout)

    def residual(cin, cout, stride):
        n = conv_bn(cin, cout, 3) + conv_bn(cout, cout, 3)
        return n + (conv_bn(cin, cout, 1) if stride != 1 or cin != cout else 0)

    def fire(cin, cout):
        sq = cout // 2
        return conv_bn(cin, sq, 1) + conv(sq, cout // 2, 1) + 9 * sq + bn(cout)

    def hourglass(dims, mods):
        cur, nxt = dims[0], dims[1]
        n = sum(fire(cur, cur) for _ in range(mods[0]))
        n += fire(cur, nxt) + sum(fire(nxt, nxt) for _ in range(mods[0] - 1))
        n += (
            hourglass(dims[1:], mods[1:])
            if len(dims) > 2
            else sum(fire(nxt, nxt) for _ in range(mods[1]))
        )
        n += sum(fire(nxt, nxt) for _ in range(mods[0] - 1)) + fire(nxt, cur)
        return n + conv(cur, cur, 4, bias=True)

    d0, cnv, pool, head = cfg.dims[0], cfg.cnv_dim, cfg.pool_dim, cfg.head_dim or cfg.dims[0]
    stem = conv_bn(3, cfg.stem_dims[0], 7) + residual(cfg.stem_dims[0], d0, 2) + residual(d0, d0, 2)
    corner = (
        2 * conv_bn(cnv, pool, 3)
        + conv_bn(pool, cnv, 3)
        + conv_bn(cnv, cnv, 1)
        + conv_bn(cnv, cnv, 3)
    )
    heads = sum(
        conv(cnv, head, 1, True) + conv(head, out, 1, True) for out in (cfg.num_classes, 1, 2)
    )
    stack = hourglass(cfg.dims, cfg.modules) + conv_bn(d0, cnv, 3) + 2 * (corner + heads)
    merge = conv_bn(d0, d0, 1) + conv_bn(cnv, d0, 1) + residual(d0, d0, 1)
    return stem + cfg.num_stacks * stack + (cfg.num_stacks - 1) * merge


@pytest.mark.parametrize(
    "path, overrides",
    [
        (TINY, []),
        (TINY, ["model.num_stacks=2"]),
        ("configs/cornernet_squeeze.yaml", []),
    ],
)
def test_parameter_count_matches_the_architecture(path, overrides):
    cfg = load_config(path, overrides).model
    model = build_model(cfg)
    assert model.count_params() == _expected_parameter_count(cfg)


@pytest.fixture(scope="module")
def tiny_model():
    model = build_model(load_config(TINY, ["model.corner_pool_impl=tf"]).model)
    randomise(model, seed=5)
    return model


def test_squeeze_cornernet_outputs_are_8x_down_sampled(tiny_model):
    cfg = tiny_model.model_config
    assert output_stride(cfg) == 8 and stride_multiple(cfg) == 64
    for hw in [(127, 127), (255, 127), (191, 191)]:
        out = tiny_model(np.zeros((1,) + hw + (3,), np.uint8), stacks="last")
        assert set(out) == set(OUTPUT_KEYS)
        expected = tuple(-(-s // 8) for s in hw)  # ceil(size / stride)
        assert out["tl_heat"][0].shape == (1,) + expected + (3,)
        assert out["br_regr"][0].shape == (1,) + expected + (2,)


def test_squeeze_cornernet_reloads_from_keras_file(tiny_model, tmp_path):
    path = tmp_path / "squeeze.keras"
    tiny_model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded, CornerNet) and reloaded.model_config.backbone == "squeeze"
    x = np.random.default_rng(6).integers(0, 255, (1, 127, 127, 3)).astype(np.uint8)
    a, b = tiny_model(x, stacks="last"), reloaded(x, stacks="last")
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(a[key][0].numpy(), b[key][0].numpy(), atol=1e-5)


def test_output_stride_is_consistent_with_the_network():
    """ModelConfig.output_stride (used by the test procedure's geometry) equals the real map size."""
    import numpy as np

    from cornernet_tf.config import load_config
    from cornernet_tf.inference.preprocess import scale_geometry
    from cornernet_tf.modeling.cornernet import build_model

    for path in ("configs/cornernet_squeeze_tiny.yaml", "configs/cornernet_tiny.yaml"):
        cfg = load_config(path).model
        model = build_model(cfg)
        geometry = scale_geometry(100, 140, 1.0, cfg.output_stride)
        out = model(np.zeros((1, *geometry.inp_hw, 3), np.float32), stacks="last")
        assert tuple(out["tl_heat"][0].shape[1:3]) == geometry.out_hw, path
