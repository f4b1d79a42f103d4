"""Backbones other than the Hourglass-104 family, plugged into the same :class:`CornerNet` model.

``CornerNet`` asks :func:`build_backbone_stacks` for ``(stem, stacks, merges)`` when
``model.backbone`` is not ``"hourglass"``; each stack is a dict with the layers ``hourglass``,
``cnv``, ``{tl,br}_pool`` and ``{tl,br}_{heat,tag,regr}``, exactly as for the hourglass, so the
forward pass, the losses, decoding and export do not depend on the backbone.
"""

from __future__ import annotations

from cornernet_tf.config import ModelConfig
from cornernet_tf.modeling.corner_pool import CornerPoolModule
from cornernet_tf.modeling.hourglass import StackMerge
from cornernet_tf.modeling.layers import ConvBN
from cornernet_tf.modeling.squeeze import PointwisePredictionHead, SqueezeHourglass, SqueezeStem

BACKBONES = ("hourglass", "squeeze")


def output_stride(cfg: ModelConfig) -> int:
    """Input pixels per output-map pixel: 4 for the hourglass, 8 for CornerNet-Squeeze."""
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"model.backbone must be one of {BACKBONES}, got {cfg.backbone!r}")
    return cfg.output_stride


def stride_multiple(cfg: ModelConfig) -> int:
    """Input sizes must be multiples of this (up to the ``| 127`` rounding of the test procedure):
    the output map must divide by ``2 ** depth`` for the hourglass skip connections to line up."""
    return cfg.stride_multiple


def output_hw(cfg: ModelConfig, input_hw) -> tuple[int, int]:
    """Output-map size for an input of ``input_hw``: ``ceil(size / stride)`` per axis (each stride-2
    layer pads symmetrically, so an odd size rounds up)."""
    stride = output_stride(cfg)
    return tuple((int(s) + stride - 1) // stride for s in input_hw)


def _squeeze_stack(cfg: ModelConfig, index: int) -> dict:
    bn = dict(bn_epsilon=cfg.bn_epsilon, bn_momentum=cfg.bn_momentum)
    head_dim = cfg.head_dim or cfg.dims[0]
    stack = {
        "hourglass": SqueezeHourglass(cfg.dims, cfg.modules, name=f"hourglass_{index}", **bn),
        "cnv": ConvBN(cfg.cnv_dim, 3, name=f"cnv_{index}", **bn),
    }
    for corner in ("tl", "br"):
        stack[f"{corner}_pool"] = CornerPoolModule(
            corner,
            cfg.cnv_dim,
            cfg.pool_dim,
            impl=cfg.corner_pool_impl,
            name=f"{corner}_pool_{index}",
            **bn,
        )
        stack[f"{corner}_heat"] = PointwisePredictionHead(
            cfg.num_classes, head_dim, bias_init=cfg.heat_bias_init, name=f"{corner}_heat_{index}"
        )
        stack[f"{corner}_tag"] = PointwisePredictionHead(1, head_dim, name=f"{corner}_tag_{index}")
        stack[f"{corner}_regr"] = PointwisePredictionHead(
            2, head_dim, name=f"{corner}_regr_{index}"
        )
    return stack


def build_squeeze(cfg: ModelConfig):
    """CornerNet-Squeeze: 8x stem, fire-module hourglasses, 1x1 heads (see modeling/squeeze.py)."""
    bn = dict(bn_epsilon=cfg.bn_epsilon, bn_momentum=cfg.bn_momentum)
    stem = SqueezeStem(cfg.stem_dims, name="stem", **bn)
    stacks = [_squeeze_stack(cfg, i) for i in range(cfg.num_stacks)]
    merges = [StackMerge(cfg.dims[0], name=f"merge_{i}", **bn) for i in range(cfg.num_stacks - 1)]
    return stem, stacks, merges


_BUILDERS = {"squeeze": build_squeeze}


def build_backbone_stacks(cfg: ModelConfig):
    """``(stem, stacks, merges)`` for ``cfg.backbone`` (every backbone except the hourglass, which
    ``CornerNet`` builds itself)."""
    try:
        builder = _BUILDERS[cfg.backbone]
    except KeyError:
        raise ValueError(
            f"model.backbone {cfg.backbone!r} has no builder here; known: {sorted(_BUILDERS)} (and 'hourglass')"
        ) from None
    for value in cfg.dims:
        if value % 2:
            raise ValueError(
                f"model.dims must be even for the {cfg.backbone} backbone (fire modules), got {cfg.dims}"
            )
    return builder(cfg)
