"""What the benchmark scripts share: running from a checkout, timing, medians, machine facts, output.

Every script here is run as ``python benchmarks/NAME.py`` from a checkout; importing this module
puts the repository root on ``sys.path`` so that ``cornernet_tf`` imports without an install.
Figures are medians over repeats, timed round-robin where several variants are compared, so that
a burst of load on this shared machine hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def script_parser(doc: str, script: str) -> argparse.ArgumentParser:
    """The parser of a script whose docstring is: a summary line, a usage paragraph, then the
    stages; --help shows the summary and the stages as written."""
    return argparse.ArgumentParser(
        prog=f"python benchmarks/{script}",
        description=doc.split("\n\n", 1)[0],
        epilog=doc.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def config_path(name: str) -> str:
    """``configs/NAME.yaml`` of the checkout."""
    return os.path.join(ROOT, "configs", f"{name}.yaml")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine_info(**extra: Any) -> dict:
    """CPUs, platform, Python, TensorFlow (when imported) and the load average now, plus ``extra``."""
    info = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
    }
    if "tensorflow" in sys.modules:
        info["tensorflow"] = sys.modules["tensorflow"].__version__
    info.update(extra)
    return info


def timed(fn: Callable, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def median_ms(seconds: Iterable[float]) -> float:
    """The median of ``seconds``, in milliseconds."""
    return 1000.0 * statistics.median(seconds)


def interleaved_medians(
    calls: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds of each callable, timed in rounds (one call of each per round) so that all
    of them see the same machine load; ratios between them stay meaningful on a busy machine."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(timed(fn)[0])
    return {name: statistics.median(values) for name, values in times.items()}


def coco_summary(metrics: Mapping[str, Any], keys: Iterable[str] = ("AP", "AP50", "AP75")) -> dict:
    """The COCO numbers ``keys`` of ``evaluate``'s metrics, rounded to 4 places for a report;
    ``"APs_APm_APl"`` gives the three size APs as one list."""
    out: dict[str, Any] = {}
    for key in keys:
        if key == "APs_APm_APl":
            out[key] = [round(float(metrics[k]), 4) for k in ("APs", "APm", "APl")]
        else:
            out[key] = round(float(metrics[key]), 4)
    return out


FULL_SUMMARY = ("AP", "AP50", "AP75", "APs_APm_APl", "AR100")


def heldout_shapes(data_dir: str, limit: int | None = None) -> tuple[dict, list]:
    """The held-out split of a ``learn_shapes.py`` data folder: (its COCO annotations, the RGB
    uint8 arrays of its first ``limit`` images, in the annotations' order)."""
    import numpy as np
    from PIL import Image

    folder = os.path.join(data_dir, "heldout")
    with open(os.path.join(folder, "annotations.json"), encoding="utf-8") as fh:
        ground_truth = json.load(fh)
    arrays = [
        np.asarray(Image.open(os.path.join(folder, "images", e["file_name"])).convert("RGB"))
        for e in ground_truth["images"][:limit]
    ]
    return ground_truth, arrays


def report(
    result: dict,
    json_path: str | None = None,
    table: Callable[[dict], None] | None = None,
    indent: int | None = 1,
) -> None:
    """Print ``table(result)`` (when given) and the JSON object; also write it to ``json_path``."""
    if table is not None:
        table(result)
    text = json.dumps(result, indent=indent)
    print(text)
    if json_path:
        tmp = f"{json_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, json_path)
