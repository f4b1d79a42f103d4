"""What loading a dataset repaired, dropped or could not read, with counts and the culprits.

Real datasets have broken files and odd annotations. The loaders repair what can be repaired
(clip a box, convert a grayscale image, rescale boxes to the real image size) and drop what
cannot (a box with a negative width, an undecodable image), but never silently: every such
event increments a counter here, and the ones worth looking at are kept as :class:`Problem`
rows naming the file and the annotation id. The in-graph decoder reports into the same object
from ``tf.data`` threads, hence the lock.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Iterable

logger = logging.getLogger("cornernet_tf.data")
_LOGGED: set[str] = set()  # summaries logged so far (DatasetReport.log)

# Counter names and their meaning, in the order the summary prints them.
COUNTER_DOC = {
    "images": "images listed",
    "images_kept": "images used",
    "images_without_objects": "images used with no object (kept: they teach background)",
    "images_missing_file": "images dropped: file missing",
    "images_unreadable": "images dropped: file not a decodable image",
    "images_unsupported_format": "images dropped: format the TF decoder cannot read",
    "images_too_large": "images dropped: more pixels than MAX_INPUT_PIXELS (header read only)",
    "images_size_repaired": "images whose real size differs from the annotation (boxes rescaled)",
    "images_converted": "images converted to RGB uint8 (grayscale, palette, RGBA, CMYK, 16-bit)",
    "images_over_max_objects": "images with more objects than max_objects (extra ones get no tag)",
    "images_over_max_heatmap_objects": (
        "images with more objects than max_heatmap_objects (compact batches leave the extra "
        "ones off the heatmaps)"
    ),
    "images_duplicate_id": "images dropped: duplicate image id",
    "images_invalid_entry": "images dropped: entry without an integer id or a file_name",
    "boxes": "annotations listed",
    "boxes_kept": "boxes used",
    "boxes_crowd_ignored": "crowd annotations ignored (iscrowd=1)",
    "boxes_clipped": "boxes clipped to the image",
    "boxes_dropped_zero_area": "boxes dropped: zero area after clipping",
    "boxes_dropped_outside": "boxes dropped: entirely outside the image",
    "boxes_dropped_invalid": "boxes dropped: malformed bbox (negative size, NaN, not 4 numbers)",
    "boxes_dropped_unknown_category": "boxes dropped: category id not in the categories list",
    "boxes_dropped_unknown_image": "annotations dropped: image id not in the images list",
    "boxes_dropped_image_dropped": "boxes dropped with their image",
    "boxes_other_class": "boxes of categories left out by data.class_names",
    "runtime_images_skipped": "images skipped while training: could not be decoded or too large",
    "runtime_images_skipped_repeats": "skips of those images counting every epoch",
    "runtime_records_skipped": "TFRecord records skipped: not a readable tf.train.Example",
    "runtime_records_skipped_repeats": "skips of those records counting every epoch",
    "runtime_shards_cut": "TFRecord shards cut short by a truncated or corrupt record",
    "runtime_shards_cut_repeats": "cuts of those shards counting every epoch",
    "runtime_tfds_examples_lost": "TFDS examples lost to unreadable records (one pass)",
    "runtime_images_size_repaired": "images whose decoded size differed from the record (boxes rescaled)",
}

# Problems of these kinds stop `cornernet data check` with a non-zero exit status.
FATAL_KINDS = frozenset({"no_images", "no_categories", "bad_json", "duplicate_category"})


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset, located as precisely as we can."""

    kind: str
    message: str
    file: str | None = None
    annotation_id: int | None = None
    image_id: int | None = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.image_id is not None:
            where.append(f"image id {self.image_id}")
        if self.annotation_id is not None:
            where.append(f"annotation id {self.annotation_id}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"[{self.kind}] {prefix}{self.message}"


class DatasetReport:
    """Counters plus a list of located problems; thread-safe, printable."""

    def __init__(self, name: str = "dataset", max_problems: int = 10_000) -> None:
        self.name = name
        self.counts: collections.Counter = collections.Counter()
        self.problems: list[Problem] = []
        self.max_problems = max_problems
        self.problems_not_kept = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ recording
    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def problem(
        self,
        kind: str,
        message: str,
        file: str | None = None,
        annotation_id: int | None = None,
        image_id: int | None = None,
        counter: str | None = None,
    ) -> Problem:
        """Record a problem (and bump ``counter`` when given)."""
        item = Problem(kind, message, file, annotation_id, image_id)
        with self._lock:
            if counter:
                self.counts[counter] += 1
            if len(self.problems) < self.max_problems:
                self.problems.append(item)
            else:
                self.problems_not_kept += 1
        return item

    # ------------------------------------------------------------------ reading
    @property
    def fatal(self) -> bool:
        return any(p.kind in FATAL_KINDS for p in self.problems)

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def summary(self, max_listed: int = 20) -> str:
        lines = [f"{self.name}:"]
        for key, doc in COUNTER_DOC.items():
            if self.counts.get(key):
                lines.append(f"  {self.counts[key]:>9}  {doc}")
        for key in sorted(set(self.counts) - set(COUNTER_DOC)):
            lines.append(f"  {self.counts[key]:>9}  {key}")
        total = len(self.problems) + self.problems_not_kept
        if total:
            lines.append(f"  problems ({total}):")
            lines.extend(f"    {p}" for p in _first(self.problems, max_listed))
            if total > max_listed:
                lines.append(f"    ... and {total - max_listed} more")
        else:
            lines.append("  no problems found")
        return "\n".join(lines)

    def log(self, level: int = logging.INFO) -> None:
        """Log the summary; problems make it a warning. A summary already logged in this process
        is not repeated (training loads the validation set again at every COCO AP evaluation)."""
        text = self.summary()
        if text in _LOGGED:
            return
        _LOGGED.add(text)
        logger.log(logging.WARNING if self.problems else level, "%s", text)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "counts": dict(self.counts),
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "problems_not_kept": self.problems_not_kept,
        }

    def __repr__(self) -> str:
        return f"DatasetReport({self.name!r}, counts={dict(self.counts)}, problems={len(self.problems)})"


def _first(items: Iterable, n: int) -> list:
    out = []
    for item in items:
        if len(out) >= n:
            break
        out.append(item)
    return out
