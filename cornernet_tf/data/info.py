"""Class names and the mapping between our contiguous class indices and dataset category ids.

The network predicts class ``k`` in ``0..C-1``; COCO-format files name categories by arbitrary ids
(COCO 2017 uses 80 ids between 1 and 90). Training needs the first, evaluation writes the second,
so the mapping travels with every dataset (and into TFRecord shards' ``.info.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from cornernet_tf.atomic_files import write_json
from cornernet_tf.errors import InvalidValueError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Contiguous classes ``0..C-1``: ``class_names[k]`` has dataset category id ``category_ids[k]``."""

    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "category_ids", tuple(int(i) for i in self.category_ids))
        if len(self.class_names) != len(self.category_ids):
            raise ValueError(
                f"DatasetInfo: {len(self.class_names)} class names but {len(self.category_ids)} category ids"
            )
        if len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError(f"DatasetInfo: duplicate category ids in {self.category_ids}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def category_to_class(self) -> dict[int, int]:
        """Dataset category id -> contiguous class index."""
        return {cid: k for k, cid in enumerate(self.category_ids)}

    @property
    def class_to_category(self) -> dict[int, int]:
        """Contiguous class index -> dataset category id (what COCO evaluation wants)."""
        return dict(enumerate(self.category_ids))

    def category_id(self, class_index: int) -> int:
        return self.category_ids[int(class_index)]

    def class_index(self, category_id: int) -> int:
        try:
            return self.category_to_class[int(category_id)]
        except KeyError:
            raise KeyError(f"category id {category_id} is not one of {self.category_ids}") from None

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"class_names": list(self.class_names), "category_ids": list(self.category_ids)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> DatasetInfo:
        try:
            return cls(tuple(data["class_names"]), tuple(data["category_ids"]))
        except (KeyError, TypeError) as exc:
            raise InvalidValueError(
                f"{source}: dataset info needs class_names and category_ids ({exc})"
            ) from None
        except ValueError as exc:  # lengths differ, duplicate or non-integer ids
            raise InvalidValueError(f"{source}: {exc}") from None

    def save(self, path: str) -> None:
        write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str) -> DatasetInfo:
        if not os.path.exists(path):
            raise FileNotFoundError(f"dataset info not found: {path}")
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except ValueError as exc:  # not JSON, or not UTF-8
                raise InvalidValueError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InvalidValueError(f"{path}: dataset info must be a JSON object")
        return cls.from_dict(data, path)

    @classmethod
    def from_names(cls, names: Sequence[str], first_id: int = 1) -> DatasetInfo:
        """Names with consecutive category ids (``first_id``, ``first_id + 1``, ...)."""
        return cls(tuple(names), tuple(range(first_id, first_id + len(names))))


# File names a dataset-info JSON may have beside the weights (``<weights>.info.json`` first);
# ``cornernet train`` writes ``dataset_info.json`` into its work directory.
DATASET_INFO_NAMES = ("dataset_info.json", "info.json")


def dataset_info_beside(weights: str | None) -> str | None:
    """The dataset-info JSON saved beside a weights file, or None."""
    if not weights:
        return None
    candidates = [f"{weights}.info.json"]
    for suffix in (".weights.h5", ".keras"):
        if weights.endswith(suffix):
            candidates.append(weights[: -len(suffix)] + ".info.json")
    folder = os.path.dirname(os.path.abspath(weights))
    candidates += [os.path.join(folder, name) for name in DATASET_INFO_NAMES]
    return next((path for path in candidates if os.path.isfile(path)), None)
