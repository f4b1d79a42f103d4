"""The ``state_dict`` key names of the two official code bases (docs/method.md §8).

The original CornerNet repository (princeton-vl/CornerNet) and the CornerNet-Lite repository
(princeton-vl/CornerNet-Lite) build the same modules but register them under different names:
Lite nests the backbone under ``hg.`` (``hg.pre``, ``hg.hgs``, ``hg.cnvs``, ``hg.inters``, ...),
calls the corner-pool modules ``{tl,br}_modules`` and the offset heads ``{tl,br}_offs``. Layers
below the top level (residual, fire, corner pool, heads) keep the same inner names in both.
A checkpoint tells its naming by its keys: every Lite key of the backbone starts with ``hg.``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class OfficialNaming:
    """Where one code base registers each top-level module."""

    name: str
    stem: str  # conv7x7 + stride-2 residuals
    hourglass: str  # one hourglass per stack: f"{hourglass}.{stack}"
    cnv: str  # the 3x3 convolution after each hourglass
    merge: str  # prefix of inters / inters_ / cnvs_ (the merge between stacks)
    corner_module: str  # corner pooling: f"{corner}_{corner_module}.{stack}"
    heads: tuple  # (heat, tag, regr) heads: f"{corner}_{head}.{stack}"

    def head(self, kind: str) -> str:
        return dict(zip(("heat", "tag", "regr"), self.heads))[kind]


ORIGINAL = OfficialNaming(
    name="cornernet",
    stem="pre",
    hourglass="kps",
    cnv="cnvs",
    merge="",
    corner_module="cnvs",
    heads=("heats", "tags", "regrs"),
)
LITE = OfficialNaming(
    name="cornernet_lite",
    stem="hg.pre",
    hourglass="hg.hgs",
    cnv="hg.cnvs",
    merge="hg.",
    corner_module="modules",
    heads=("heats", "tags", "offs"),
)
NAMINGS = {naming.name: naming for naming in (ORIGINAL, LITE)}
# How a user recognises each: the repository and a key of its checkpoints.
DESCRIPTIONS = {
    "cornernet": "original CornerNet names (pre.*, kps.*, tl_cnvs.*, tl_regrs.*)",
    "cornernet_lite": "CornerNet-Lite names (hg.pre.*, hg.hgs.*, tl_modules.*, tl_offs.*)",
}


def get_naming(name: str) -> OfficialNaming:
    try:
        return NAMINGS[name]
    except KeyError:
        raise ValueError(
            f"official naming must be one of {sorted(NAMINGS)}, got {name!r}"
        ) from None


def detect_naming(keys: Iterable[str]) -> OfficialNaming:
    """The naming of a checkpoint's keys (``module.`` already stripped): Lite when any key lies
    under ``hg.``, the original CornerNet otherwise."""
    return LITE if any(key.startswith("hg.") for key in keys) else ORIGINAL
