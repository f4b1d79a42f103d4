"""Loss curves of a training run as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cornernet_tf.atomic_files import write_with

PANELS = (
    ("loss", "total loss"),
    ("focal", "focal (heatmaps)"),
    ("pull", "pull (embeddings)"),
    ("push", "push (embeddings)"),
    ("regr", "offsets (smooth L1)"),
    ("learning_rate", "learning rate"),
    ("AP", "COCO AP (validation)"),
)


def _series(rows: Sequence[dict], key: str, x_key: str):
    xs, ys = [], []
    for i, row in enumerate(rows):
        y = row.get(key)
        if not isinstance(y, (int, float)) or not math.isfinite(y):
            continue
        x = row.get(x_key)
        xs.append(x if isinstance(x, (int, float)) and math.isfinite(x) else i + 1)
        ys.append(y)
    return xs, ys


def plot_history(rows: Sequence[dict], path: str, title: str = "") -> str:
    """Plot train (and ``val_``) curves of every known metric present in ``rows`` against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = "step" if any("step" in r for r in rows) else "epoch"
    panels = []
    for key, label in PANELS:
        if key == "AP":
            curves = [
                (f"val_{k}", k) for k in ("AP", "AP50") if _series(rows, f"val_{k}", x_key)[0]
            ]
        else:
            curves = [
                (k, name)
                for k, name in ((key, "train"), (f"val_{key}", "validation"))
                if _series(rows, k, x_key)[0]
            ]
        if curves:
            panels.append((label, curves))
    if not panels:
        raise ValueError(
            f"plot_history: no known metric in the history (columns: {sorted(rows[0]) if rows else []})"
        )

    cols = 3
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, (label, curves) in zip(axes.flat, panels):
        for key, name in curves:
            xs, ys = _series(rows, key, x_key)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        if label not in ("learning rate", "COCO AP (validation)") and all(
            y > 0 for key, _ in curves for y in _series(rows, key, x_key)[1]
        ):
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(x_key)
        ax.grid(True, alpha=0.3)
        if len(curves) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        write_with(path, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)
    return path
