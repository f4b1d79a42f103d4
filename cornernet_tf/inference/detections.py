"""One image's detections as a small object: boxes in the image's pixels, dataset category ids,
class names, a picture of them and COCO result dicts.

The raw :class:`~cornernet_tf.inference.detector.Detector` output speaks the network's language
(0-based contiguous classes); what a user compares with their annotations is the dataset's
category ids (COCO's run from 1 to 90 with gaps) and names, so :class:`Detections` carries both.
NumPy and Pillow only: no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

# Detections below this score are left out of pictures unless asked for: a detector keeps its 100
# best boxes per image, and most of them are noise.
PLOT_SCORE_THRESHOLD = 0.3


@dataclasses.dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one image, best first.

    Attributes:
      boxes: ``[N, 4]`` float32 ``x1, y1, x2, y2`` in the pixels of the image as given.
      scores: ``[N]`` float32.
      classes: ``[N]`` int64 dataset category ids (e.g. COCO's ``category_id``).
      class_names: ``[N]`` str, the name of each detection's class.
      class_indices: ``[N]`` int64 0-based contiguous class of the network (what ``Detector``
        returns as ``classes``).
      image: the RGB uint8 image the detections belong to (what :meth:`plot` draws on by default).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: np.ndarray
    class_indices: np.ndarray
    image: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_detector(
        cls,
        dets: Mapping[str, np.ndarray],
        category_ids: Sequence[int],
        names: Sequence[str],
        image: np.ndarray | None = None,
    ) -> Detections:
        """From ``Detector.detect``'s dict; ``category_ids[k]`` / ``names[k]`` belong to class ``k``."""
        indices = np.asarray(dets["classes"]).reshape(-1).astype(np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(category_ids)):
            raise ValueError(
                f"class index {int(indices.max())} outside the {len(category_ids)} known classes"
            )
        ids = np.asarray(category_ids, np.int64)
        all_names = np.asarray([str(n) for n in names], dtype=object)
        return cls(
            boxes=np.asarray(dets["boxes"], np.float32).reshape(-1, 4),
            scores=np.asarray(dets["scores"], np.float32).reshape(-1),
            classes=ids[indices],
            class_names=all_names[indices] if len(indices) else np.asarray([], dtype=object),
            class_indices=indices,
            image=image,
        )

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        best = ", ".join(f"{n} {s:.2f}" for n, s in zip(self.class_names[:3], self.scores[:3]))
        more = ", ..." if len(self) > 3 else ""
        return f"Detections({len(self)} boxes: {best}{more})"

    def above(self, score_threshold: float) -> Detections:
        """The detections whose score is at least ``score_threshold``."""
        keep = self.scores >= score_threshold
        return dataclasses.replace(
            self,
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            classes=self.classes[keep],
            class_names=self.class_names[keep],
            class_indices=self.class_indices[keep],
        )

    def plot(
        self, image=None, score_threshold: float = PLOT_SCORE_THRESHOLD, ax=None
    ) -> np.ndarray:
        """The boxes with ``name score`` labels drawn on ``image`` (default: the detected image).

        Returns the picture as RGB uint8 ``[H, W, 3]``; with a Matplotlib ``ax`` it is also shown
        there (axes off). Labels stay inside the image, also for boxes at its edges.
        """
        from cornernet_tf.inference.draw import draw_detections

        image = self.image if image is None else image
        if image is None:
            raise ValueError("Detections.plot: no image (these detections were made without one)")
        names = {int(k): str(n) for k, n in zip(self.class_indices, self.class_names)}
        size = int(self.class_indices.max()) + 1 if len(self) else 0
        drawn = draw_detections(
            image,
            self.boxes,
            self.scores,
            self.class_indices,
            [names.get(k, str(k)) for k in range(size)],
            score_threshold=score_threshold,
        )
        picture = np.asarray(drawn, np.uint8)
        if ax is not None:
            ax.imshow(picture)
            ax.set_axis_off()
        return picture

    def to_coco(self, image_id: int, score_threshold: float = 0.0) -> list[dict]:
        """COCO result dicts ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
        (what ``pycocotools``' ``loadRes`` and the COCO evaluation server read)."""
        out = []
        for (x1, y1, x2, y2), score, category in zip(
            self.boxes.astype(np.float64), self.scores.astype(np.float64), self.classes
        ):
            if score < score_threshold:
                continue
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category),
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                    "score": float(score),
                }
            )
        return out
