"""Synthetic "shapes" detection data: filled shapes on textured backgrounds, as COCO JSON + images.

Made for the demo and for a learning benchmark that must finish on a CPU, so the task is kept
learnable while still exercising what CornerNet has to get right: several classes, sizes from
about 10% to 60% of the image side, varied aspect ratios and colours, overlaps with partial
occlusion, and a textured background. Each box is the tight extent of the shape's *visible*
pixels; a shape is never hidden beyond ``1 - min_visible`` of its area. Image ``i`` depends
only on ``(seed, i)``, so datasets are reproducible and splits do not change the images.
NumPy and Pillow only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from cornernet_tf.atomic_files import write_json
from cornernet_tf.errors import InvalidValueError

# Classes in category-id order (id = index + 1); the first DEFAULT_NUM_CLASSES are used by default.
SHAPE_CLASSES = ("rectangle", "ellipse", "triangle", "cross")
DEFAULT_NUM_CLASSES = 3
DEFAULT_SIZE = (192, 192)  # (height, width)


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    size: tuple[int, int] = DEFAULT_SIZE
    num_classes: int = DEFAULT_NUM_CLASSES
    max_objects: int = 6
    min_size: float = 0.1  # shape side as a fraction of the image side
    max_size: float = 0.6
    min_visible: float = 0.6  # fraction of each shape that stays visible
    noise: float = 4.0  # std of the pixel noise added last (uint8 units)

    def validate(self) -> None:
        h, w = self.size
        if h < 16 or w < 16:
            raise InvalidValueError(f"shapes: image size must be at least 16x16, got {h}x{w}")
        if not 1 <= self.num_classes <= len(SHAPE_CLASSES):
            raise InvalidValueError(
                f"shapes: num_classes must be in 1..{len(SHAPE_CLASSES)}, got {self.num_classes}"
            )
        if not 0 < self.min_size <= self.max_size <= 1:
            raise InvalidValueError(
                f"shapes: need 0 < min_size <= max_size <= 1, got {self.min_size}, {self.max_size}"
            )
        if self.max_objects < 1:
            raise InvalidValueError(f"shapes: max_objects must be >= 1, got {self.max_objects}")


@dataclasses.dataclass
class ShapeObject:
    category: int  # 0-based class
    bbox: tuple[int, int, int, int]  # x, y, w, h of the visible pixels
    area: int  # visible pixels
    full_area: int = 0  # pixels of the whole shape before occlusion


# --------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth muted colour field plus a faint stripe or checker texture: float32 [h, w, 3]."""
    from PIL import Image

    grid = rng.uniform(60, 190, size=(4, 4, 3))
    gray = grid.mean(axis=2, keepdims=True)
    grid = (
        gray + (grid - gray) * 0.5
    )  # muted (before upsampling: both are linear): shapes carry the colour
    base = np.asarray(
        Image.fromarray(grid.astype(np.uint8)).resize((w, h), Image.BILINEAR), np.float32
    )
    x = np.arange(w, dtype=np.float32)
    y = np.arange(h, dtype=np.float32)
    k = 2 * np.pi / rng.uniform(6, 24)
    angle = rng.uniform(0, np.pi)
    kind = rng.integers(3)
    if kind == 0:  # stripes: sin(a x + b y) from outer products (separable, cheap)
        ax, by = k * np.cos(angle) * x, k * np.sin(angle) * y
        texture = np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax))
    elif kind == 1:  # checker
        texture = np.outer(np.sign(np.sin(k * y)), np.sign(np.sin(k * x)))
    else:  # blotches
        blot = rng.uniform(-1, 1, size=(max(2, h // 16), max(2, w // 16))).astype(np.float32)
        texture = np.asarray(Image.fromarray(blot, mode="F").resize((w, h), Image.BILINEAR))
    return base + texture[..., None].astype(np.float32) * np.float32(rng.uniform(6, 18))


_NOISE_TABLE = np.random.default_rng(20180808).standard_normal(1 << 20, dtype=np.float32)


def _noise(rng: np.random.Generator, shape) -> np.ndarray:
    """Gaussian pixel noise: a random window of a fixed table (5x cheaper than fresh draws)."""
    n = int(np.prod(shape))
    reps = -(-n // _NOISE_TABLE.size) + 1
    table = np.tile(_NOISE_TABLE, reps) if reps > 2 else _NOISE_TABLE
    start = int(rng.integers(0, table.size - n + 1))
    return table[start : start + n].reshape(shape)


def _shape_mask(kind: str, bw: int, bh: int, rng: np.random.Generator) -> np.ndarray:
    """A ``bh x bw`` boolean mask of the shape, touching all four sides of its box."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (bw, bh), 0)
    draw = ImageDraw.Draw(img)
    r, b = bw - 1, bh - 1
    if kind == "rectangle":
        draw.rectangle([0, 0, r, b], fill=1)
    elif kind == "ellipse":
        draw.ellipse([0, 0, r, b], fill=1)
    elif kind == "triangle":
        t = rng.uniform(0.0, 1.0)
        side = rng.integers(4)  # the edge holding the apex
        if side == 0:
            pts = [(t * r, 0), (0, b), (r, b)]
        elif side == 1:
            pts = [(t * r, b), (0, 0), (r, 0)]
        elif side == 2:
            pts = [(0, t * b), (r, 0), (r, b)]
        else:
            pts = [(r, t * b), (0, 0), (0, b)]
        draw.polygon(pts, fill=1)
    elif kind == "cross":
        tx, ty = (
            max(1, int(bw * rng.uniform(0.28, 0.42))),
            max(1, int(bh * rng.uniform(0.28, 0.42))),
        )
        x0, y0 = (bw - tx) // 2, (bh - ty) // 2
        draw.rectangle([x0, 0, x0 + tx - 1, b], fill=1)
        draw.rectangle([0, y0, r, y0 + ty - 1], fill=1)
    else:
        raise InvalidValueError(f"unknown shape {kind!r}")
    return np.asarray(img, bool)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour (HSV with high S and V) as float32 RGB."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
    i = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return np.array(rgb, np.float32) * 255


def render_image(
    rng: np.random.Generator, config: ShapesConfig = ShapesConfig(), return_masks: bool = False
):
    """One image (uint8 RGB ``[h, w, 3]``) and its objects with visible-extent boxes.

    With ``return_masks`` also the full-size visible mask of each object (for checks).
    """
    h, w = config.size
    side = min(h, w)
    image = _background(rng, h, w)
    owner = np.full((h, w), -1, np.int16)  # which shape each pixel shows (painter's order)
    windows: list[tuple[slice, slice]] = []
    full_area: list[int] = []
    visible_area: list[int] = []
    colours: list[np.ndarray] = []
    categories: list[int] = []
    target = int(rng.integers(1, config.max_objects + 1))
    for _ in range(target * 4):
        if len(categories) == target:
            break
        category = int(rng.integers(config.num_classes))
        base = rng.uniform(config.min_size, config.max_size) * side
        aspect = np.exp(rng.uniform(-0.5, 0.5))
        bw = int(
            np.clip(
                base * np.sqrt(aspect), config.min_size * side, min(w, config.max_size * w * 1.2)
            )
        )
        bh = int(
            np.clip(
                base / np.sqrt(aspect), config.min_size * side, min(h, config.max_size * h * 1.2)
            )
        )
        bw, bh = max(bw, 4), max(bh, 4)
        x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        window = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        local = _shape_mask(SHAPE_CLASSES[category], bw, bh, rng)
        under = owner[window][local]
        # Occlusion stays partial: every earlier shape keeps at least min_visible of itself.
        covered = np.bincount(under[under >= 0], minlength=len(categories))
        if any(v - c < config.min_visible * a for v, c, a in zip(visible_area, covered, full_area)):
            continue
        neighbours = [colours[j] for j in np.flatnonzero(covered)]
        colour = _pick_colour(rng, image[window][local].mean(axis=0), neighbours)
        image[window][local] = colour
        owner[window][local] = len(categories)
        visible_area = [v - c for v, c in zip(visible_area, covered)] + [int(local.sum())]
        full_area.append(int(local.sum()))
        windows.append(window)
        colours.append(colour)
        categories.append(category)
    if config.noise > 0:
        image += _noise(rng, image.shape) * np.float32(config.noise)
    objects = [
        _visible_object(c, owner[win] == k, win, a)
        for k, (c, win, a) in enumerate(zip(categories, windows, full_area))
    ]
    pixels = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if return_masks:
        return pixels, objects, [owner == k for k in range(len(categories))]
    return pixels, objects


def _pick_colour(rng, under: np.ndarray, neighbours) -> np.ndarray:
    """A colour that stands out from the background under the shape and from overlapping shapes."""
    best, best_score = None, -1.0
    for _ in range(8):
        colour = _colour(rng)
        score = min([np.abs(colour - under).sum()] + [np.abs(colour - n).sum() for n in neighbours])
        if score > best_score:
            best, best_score = colour, score
        if score > 120:
            break
    return best


def _visible_object(
    category: int, visible: np.ndarray, window: tuple[slice, slice], full_area: int
) -> ShapeObject:
    ys = np.flatnonzero(visible.any(axis=1)) + window[0].start
    xs = np.flatnonzero(visible.any(axis=0)) + window[1].start
    x1, x2, y1, y2 = (
        int(xs[0]),
        int(xs[-1]) + 1,
        int(ys[0]),
        int(ys[-1]) + 1,
    )  # pixel i covers [i, i+1)
    return ShapeObject(category, (x1, y1, x2 - x1, y2 - y1), int(visible.sum()), int(full_area))


# --------------------------------------------------------------------------- dataset writing


def parse_splits(text: str | None, num_images: int | None) -> dict[str, int]:
    """``train=0.8,val=0.2`` (fractions) or ``train=800,val=200`` (counts) -> counts per split."""
    if num_images is not None and num_images < 1:
        raise InvalidValueError(f"shapes: --num-images must be >= 1, got {num_images}")
    if not text:
        if num_images is None:
            raise InvalidValueError("shapes: give --num-images or counts in --splits")
        return {"train": int(num_images)}
    parts = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if not name or not value:
            raise InvalidValueError(f"--splits expects name=value[,name=value...], got {text!r}")
        try:
            parts[name] = float(value)
        except ValueError:
            raise InvalidValueError(f"--splits: {name} must be a number, got {value!r}") from None
    values = list(parts.values())
    if any(v < 0 for v in values):
        raise InvalidValueError(f"--splits values must be >= 0, got {text!r}")
    if all(v <= 1 for v in values) and abs(sum(values) - 1) < 1e-6:
        if num_images is None:
            raise InvalidValueError("--splits with fractions needs --num-images")
        counts, start = {}, 0
        cumulative = 0.0
        for name, frac in parts.items():
            cumulative += frac
            end = int(round(cumulative * num_images))
            counts[name] = end - start
            start = end
        return counts
    if not all(float(v).is_integer() for v in values):
        raise InvalidValueError(
            f"--splits: give fractions that sum to 1 or whole counts, got {text!r}"
        )
    counts = {k: int(v) for k, v in parts.items()}
    if num_images is not None and sum(counts.values()) != num_images:
        raise InvalidValueError(
            f"--splits counts sum to {sum(counts.values())}, not --num-images {num_images}"
        )
    return counts


def _write_image(job) -> tuple[int, list[ShapeObject]]:
    """Render image ``index`` of ``seed`` and save it (a process-pool task: only NumPy and Pillow)."""
    from PIL import Image

    index, seed, config, path, ext = job
    pixels, objects = render_image(np.random.default_rng([int(seed), index]), config)
    if ext == "png":
        Image.fromarray(pixels).save(path, compress_level=1)
    else:
        Image.fromarray(pixels).save(path, quality=90)
    return index, objects


def generate_shapes(
    out_dir: str,
    num_images: int | None = None,
    seed: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    splits: dict[str, int] | str | None = None,
    image_format: str = "png",
    num_classes: int = DEFAULT_NUM_CLASSES,
    max_objects: int = 6,
    workers: int | None = None,
) -> dict[str, str]:
    """Write ``out_dir/<split>/images/*`` and ``out_dir/<split>/annotations.json`` for each split.

    Returns ``{split: annotation file}``. Image ids and annotation ids are unique over all splits.
    ``workers`` processes render in parallel (default: one per CPU for 256 images or more); the
    output does not depend on it.
    """
    fmt = image_format.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise InvalidValueError(f"shapes: image format must be png or jpeg, got {image_format!r}")
    ext = "png" if fmt == "png" else "jpg"
    counts = splits if isinstance(splits, dict) else parse_splits(splits, num_images)
    config = ShapesConfig(
        size=(int(size[0]), int(size[1])), num_classes=num_classes, max_objects=max_objects
    )
    config.validate()
    total = sum(int(c) for c in counts.values())
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if total >= 256 else 1

    jobs, split_of = [], []
    for split, count in counts.items():
        os.makedirs(os.path.join(out_dir, split, "images"), exist_ok=True)
        for _ in range(int(count)):
            index = len(jobs)
            path = os.path.join(out_dir, split, "images", f"{index + 1:06d}.{ext}")
            jobs.append((index, int(seed), config, path, ext))
            split_of.append(split)
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = dict(pool.imap_unordered(_write_image, jobs, chunksize=16))
    else:
        results = dict(map(_write_image, jobs))

    categories = [
        {"id": k + 1, "name": SHAPE_CLASSES[k], "supercategory": "shape"}
        for k in range(num_classes)
    ]
    outputs, ann_id = {}, 1
    for split in counts:
        images, annotations = [], []
        for index, (_, _, _, path, _) in enumerate(jobs):
            if split_of[index] != split:
                continue
            images.append(
                {
                    "id": index + 1,
                    "file_name": os.path.basename(path),
                    "height": config.size[0],
                    "width": config.size[1],
                }
            )
            for obj in results[index]:
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": index + 1,
                        "category_id": obj.category + 1,
                        "bbox": list(obj.bbox),
                        "area": obj.area,
                        "iscrowd": 0,
                    }
                )
                ann_id += 1
        path = os.path.join(out_dir, split, "annotations.json")
        write_json(  # last, and atomically: a split with annotations.json is complete
            path,
            {
                "info": {"description": f"synthetic shapes, seed {seed}", "version": "1"},
                "images": images,
                "annotations": annotations,
                "categories": categories,
            },
        )
        outputs[split] = path
    return outputs
