"""TensorFlow's BFC allocator on the CPU, for the processes this package starts.

TensorFlow's default CPU allocator returns large buffers to the operating system when they are
freed, so every training batch (8 images of 511x511 plus two 80x128x128 heatmaps: ~110 MB)
lands in fresh memory whose pages fault in one by one. Batching in the input pipeline then costs
9-13 CPU-ms per image instead of ~2 (``benchmarks/input_pipeline.py``), and an Hourglass-104
forward pass ~6 % more. The BFC allocator (``TF_CPU_ALLOCATOR_USE_BFC=true``, the allocator
TensorFlow uses on GPUs) keeps freed buffers for reuse; the cost is that the process keeps its
peak memory instead of returning it.

TensorFlow reads the variable when it creates its CPU allocator, so it must be set before
TensorFlow is imported. ``cornernet`` does it for its commands; in your own Python, set
``TF_CPU_ALLOCATOR_USE_BFC=true`` in the environment (or call :func:`prefer_bfc_cpu_allocator`
before importing TensorFlow). A value the user set is never changed.
"""

from __future__ import annotations

import os
import sys

ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def bfc_requested() -> bool:
    """Whether the environment asks TensorFlow for its BFC CPU allocator."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true")


def prefer_bfc_cpu_allocator() -> bool:
    """Ask TensorFlow for its BFC CPU allocator unless the user chose; whether it will be used.

    Does nothing once TensorFlow is imported (its allocator may already exist).
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(ENV, "true")
    return bfc_requested()
