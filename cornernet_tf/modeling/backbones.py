"""The backbone registry: what each backbone is made of, and the one builder of the stacks.

Every backbone is a configuration of the same parts (docs/method.md §2): a stem, ``num_stacks``
hourglass stacks, each followed by the ``cnv`` convolution, two corner-pool modules and six
prediction heads, and a merge between consecutive stacks. A :class:`Backbone` names the choices
that differ (the hourglass block, its up-sampling, the hidden kernel of the heads); the stem's
down-sampling follows the backbone's output stride (``config.BACKBONE_OUTPUT_STRIDES``). The
forward pass, the losses, decoding and export therefore never depend on the backbone.

* ``hourglass``: CornerNet (Hourglass-104 and its smaller variants): residual blocks,
  nearest-neighbour up-sampling, 3x3 heads, 4x stem.
* ``squeeze``: CornerNet-Squeeze (Law et al., "CornerNet-Lite", 2020): fire modules,
  4x4 stride-2 transposed-conv up-sampling, 1x1 heads, 8x stem.
"""

from __future__ import annotations

import dataclasses
import math

from cornernet_tf.config import ModelConfig
from cornernet_tf.detection.contract import CORNERS
from cornernet_tf.modeling.corner_pool import CornerPoolModule
from cornernet_tf.modeling.heads import PredictionHead
from cornernet_tf.modeling.hourglass import HourglassModule, StackMerge, Stem
from cornernet_tf.modeling.layers import ConvBN

HEAD_KINDS = ("heat", "tag", "regr")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """The parts of one backbone that differ from the others."""

    block: str  # hourglass block: residual | fire
    upsample: str  # hourglass up-sampling (up2): nearest | transposed
    head_kernel: int  # hidden convolution of the prediction heads
    even_dims: bool = False  # fire modules squeeze to half their width
    # Key namings of the official checkpoints this backbone loads (modeling/official_names.py),
    # the first being the default: CornerNet's hourglass was published by both repositories,
    # CornerNet-Squeeze only by CornerNet-Lite.
    official_namings: tuple = ("cornernet", "cornernet_lite")


BACKBONES = {
    "hourglass": Backbone(block="residual", upsample="nearest", head_kernel=3),
    "squeeze": Backbone(
        block="fire",
        upsample="transposed",
        head_kernel=1,
        even_dims=True,
        official_namings=("cornernet_lite",),
    ),
}


def get_backbone(cfg: ModelConfig) -> Backbone:
    """The registry entry of ``cfg.backbone`` (an error naming the known ones otherwise)."""
    try:
        return BACKBONES[cfg.backbone]
    except KeyError:
        raise ValueError(
            f"model.backbone must be one of {sorted(BACKBONES)}, got {cfg.backbone!r}"
        ) from None


def output_stride(cfg: ModelConfig) -> int:
    """Input pixels per output-map pixel: 4 for the hourglass, 8 for CornerNet-Squeeze."""
    get_backbone(cfg)
    return cfg.output_stride


def stride_multiple(cfg: ModelConfig) -> int:
    """Input sizes must be multiples of this (up to the ``| 127`` rounding of the test procedure):
    the output map must divide by ``2 ** depth`` for the hourglass skip connections to line up."""
    return cfg.stride_multiple


def _stack(cfg: ModelConfig, backbone: Backbone, index: int) -> dict:
    """Layers of one stack, named after the official modules they mirror."""
    bn = dict(bn_epsilon=cfg.bn_epsilon, bn_momentum=cfg.bn_momentum)
    head_dim = cfg.head_dim or cfg.dims[0]
    stack = {
        "hourglass": HourglassModule(
            cfg.dims,
            cfg.modules,
            block=backbone.block,
            upsample=backbone.upsample,
            name=f"hourglass_{index}",
            **bn,
        ),
        "cnv": ConvBN(cfg.cnv_dim, 3, name=f"cnv_{index}", **bn),
    }
    out_dims = {"heat": cfg.num_classes, "tag": 1, "regr": 2}
    for corner in CORNERS:
        stack[f"{corner}_pool"] = CornerPoolModule(
            corner,
            cfg.cnv_dim,
            cfg.pool_dim,
            impl=cfg.corner_pool_impl,
            name=f"{corner}_pool_{index}",
            **bn,
        )
        for kind in HEAD_KINDS:
            stack[f"{corner}_{kind}"] = PredictionHead(
                out_dims[kind],
                head_dim,
                bias_init=cfg.heat_bias_init if kind == "heat" else 0.0,
                kernel_size=backbone.head_kernel,
                name=f"{corner}_{kind}_{index}",
            )
    return stack


def build_backbone(cfg: ModelConfig) -> tuple:
    """``(stem, stacks, merges)`` for ``cfg``: each stack a dict with the layers ``hourglass``,
    ``cnv``, ``{tl,br}_pool`` and ``{tl,br}_{heat,tag,regr}``, whatever the backbone."""
    backbone = get_backbone(cfg)
    if backbone.even_dims and any(value % 2 for value in cfg.dims):
        raise ValueError(
            f"model.dims must be even for the {cfg.backbone} backbone (fire modules), got {cfg.dims}"
        )
    bn = dict(bn_epsilon=cfg.bn_epsilon, bn_momentum=cfg.bn_momentum)
    # The 7x7 convolution halves the image, each stride-2 residual halves it again.
    residuals = int(math.log2(cfg.output_stride)) - 1
    stem = Stem(cfg.stem_dims, residuals=residuals, name="stem", **bn)
    stacks = [_stack(cfg, backbone, i) for i in range(cfg.num_stacks)]
    merges = [StackMerge(cfg.dims[0], name=f"merge_{i}", **bn) for i in range(cfg.num_stacks - 1)]
    return stem, stacks, merges
