"""Training targets for CornerNet (docs/method.md §3), written in TF ops.

Everything here runs inside ``tf.data`` graphs and ``tf.function`` with an unknown number of
boxes, so the encoder can sit in the input pipeline next to augmentation. The arithmetic follows
the official sampler (``sample/coco.py`` and ``sample/utils.py``) operation by operation in
float64, because the down-scaled corners are truncated with ``int()``: a value such as
41.9999999 must give corner 41 with offset ~1.0, exactly as the published models were trained
(docs/method.md §8, "Targets").

Layout: heatmaps are ``[H, W, C]`` (NHWC without the batch), tags are flat pixel indices
``y * W + x`` (int64, as the official code), offsets are ``(dx, dy)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from cornernet_tf.config import DataConfig

_DATA_DEFAULTS = DataConfig()

RADIUS_MODES = ("object", "fixed", "none")

# gaussian2D in the official code zeroes values below float64 eps * max (max is 1 at the centre).
GAUSSIAN_EPS = float(np.finfo(np.float64).eps)

TensorLike = tf.Tensor | np.ndarray | Sequence | float | int


def gaussian_radius(height: TensorLike, width: TensorLike, min_overlap: float) -> tf.Tensor:
    """Radius by which both corners may move while the box keeps IoU >= ``min_overlap``.

    This is the official ``gaussian_radius`` after its fix in commit 3e71377: the smaller roots
    ``(b - sqrt)/2a`` for the first two cases and ``(b + sqrt)/2a`` for the third. It is applied
    elementwise (broadcasting ``height`` against ``width``) and returns float64 before any
    rounding; the sampler uses ``max(0, int(r))``. The operations are written in the official
    order so that the float64 results are bit-for-bit those of NumPy.
    """
    h = tf.cast(tf.convert_to_tensor(height), tf.float64)
    w = tf.cast(tf.convert_to_tensor(width), tf.float64)
    o = tf.constant(min_overlap, tf.float64)

    b1 = h + w
    c1 = w * h * (1.0 - o) / (1.0 + o)
    r1 = (b1 - tf.sqrt(b1 * b1 - 4.0 * c1)) / 2.0

    b2 = 2.0 * (h + w)
    c2 = (1.0 - o) * w * h
    r2 = (b2 - tf.sqrt(b2 * b2 - 16.0 * c2)) / 8.0

    a3 = 4.0 * o
    b3 = -2.0 * o * (h + w)
    c3 = (o - 1.0) * w * h
    r3 = (b3 + tf.sqrt(b3 * b3 - 4.0 * a3 * c3)) / (2.0 * a3)
    return tf.minimum(tf.minimum(r1, r2), r3)


def _flat(values: TensorLike, dtype: tf.DType) -> tf.Tensor:
    return tf.reshape(tf.cast(values, dtype), [-1])


def _bump_pixels(
    centers_x: tf.Tensor, centers_y: tf.Tensor, radii: tf.Tensor, height: int, width: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Every pixel of every object's bump, as flat lists: (object, y, x, value float64).

    Object n covers the window ``|dx|, |dy| <= floor(r)`` cut by the map border, so the work is
    the sum of the objects' window areas rather than ``N * H * W``. The value is the official
    ``exp(-(dx^2 + dy^2) / (2 sigma^2))``, ``sigma = (2 r + 1) / 6``, in float64, zeroed below
    float64 eps (``gaussian2D``; its max is 1 at the centre).
    """
    longest = tf.cast(tf.maximum(height, width), tf.float64)
    reach = tf.cast(tf.floor(tf.minimum(radii, longest)), tf.int32)  # no int32 overflow
    x0, x1 = tf.maximum(centers_x - reach, 0), tf.minimum(centers_x + reach, width - 1)
    y0, y1 = tf.maximum(centers_y - reach, 0), tf.minimum(centers_y + reach, height - 1)
    span_x = tf.maximum(x1 - x0 + 1, 0)
    counts = span_x * tf.maximum(y1 - y0 + 1, 0)
    obj = tf.repeat(tf.range(tf.size(counts)), counts)
    local = tf.range(tf.reduce_sum(counts)) - tf.repeat(tf.cumsum(counts, exclusive=True), counts)
    obj_span_x = tf.gather(span_x, obj)
    ys = tf.gather(y0, obj) + local // obj_span_x
    xs = tf.gather(x0, obj) + local % obj_span_x
    dx = tf.cast(xs - tf.gather(centers_x, obj), tf.float64)
    dy = tf.cast(ys - tf.gather(centers_y, obj), tf.float64)
    sigma = (2.0 * radii + 1.0) / 6.0
    values = tf.exp(-(dx * dx + dy * dy) / tf.gather(2.0 * sigma * sigma, obj))
    values = tf.where(values < GAUSSIAN_EPS, tf.zeros_like(values), values)
    return obj, ys, xs, values


def gaussian_bumps(
    centers_x: TensorLike,
    centers_y: TensorLike,
    radii: TensorLike,
    height: int,
    width: int,
    dtype: tf.DType = tf.float32,
) -> tf.Tensor:
    """One unnormalised Gaussian per object on an ``height x width`` map: ``[N, height, width]``.

    Object ``n`` gets ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` with ``sigma = (2 r + 1) / 6`` on the
    window ``|dx|, |dy| <= floor(r)`` around its integer centre, cut by the map border, and values
    below float64 eps set to 0: the official ``draw_gaussian(gaussian2D(2r+1, sigma))`` for
    integer ``r``, computed in float64 and cast to ``dtype``. A fractional ``r`` (the
    fixed-radius ablation, r = 2.5) keeps its exact sigma on the ``floor(r)`` window, so the peak
    stays 1 at the corner pixel.
    """
    cx, cy, r = _flat(centers_x, tf.int32), _flat(centers_y, tf.int32), _flat(radii, tf.float64)
    obj, ys, xs, values = _bump_pixels(cx, cy, r, height, width)
    return tf.scatter_nd(
        tf.stack([obj, ys, xs], axis=1), tf.cast(values, dtype), [tf.size(cx), height, width]
    )


def draw_gaussian(heatmap: TensorLike, center: Sequence[int], radius: TensorLike) -> tf.Tensor:
    """Max-merge one bump centred at ``center = (x, y)`` into a ``[H, W]`` heatmap (returns a new one).

    The functional counterpart of the official in-place ``draw_gaussian``; the encoder draws
    all objects at once with :func:`draw_heatmaps`.
    """
    heatmap = tf.convert_to_tensor(heatmap)
    if heatmap.shape.rank != 2 or None in heatmap.shape.as_list():
        raise ValueError(
            f"draw_gaussian: heatmap must be a [H, W] map of known size, got {heatmap.shape}"
        )
    height, width = heatmap.shape.as_list()
    bump = gaussian_bumps([center[0]], [center[1]], [radius], height, width, heatmap.dtype)[0]
    return tf.maximum(heatmap, bump)


def draw_heatmaps(
    centers_x: TensorLike,
    centers_y: TensorLike,
    radii: TensorLike,
    classes: TensorLike,
    height: int,
    width: int,
    num_classes: int,
) -> tf.Tensor:
    """All objects' bumps merged by max within their class: float32 ``[height, width, num_classes]``.

    Only the pixels inside each object's own window are evaluated, and they are scattered with
    ``tensor_scatter_nd_max`` straight into the ``[H, W, C]`` layout: the cost follows the
    objects' bump areas, with no ``N x H x W`` intermediate and no ``[C, H, W]`` transpose.
    """
    cx, cy, r = _flat(centers_x, tf.int32), _flat(centers_y, tf.int32), _flat(radii, tf.float64)
    return _scatter_bumps(cx, cy, r, _flat(classes, tf.int32), None, [height, width, num_classes])


def _scatter_bumps(cx, cy, radii, classes, leading, shape) -> tf.Tensor:
    """The one drawing routine of both formats: bumps max-merged into a zero float32 ``shape``.

    ``shape`` is ``[*lead, H, W, C]``; ``leading`` is ``[N, len(lead)]`` int32 (each object's
    index into the leading axes) or None for ``[H, W, C]``. Max is exact and order-free, so
    drawing a batch at once gives bit for bit the maps drawn image by image.
    """
    height, width = shape[-3], shape[-2]
    obj, ys, xs, values = _bump_pixels(cx, cy, radii, height, width)
    columns = [ys[:, None], xs[:, None], tf.gather(classes, obj)[:, None]]
    if leading is not None:
        columns.insert(0, tf.gather(leading, obj))
    return tf.tensor_scatter_nd_max(
        tf.zeros(shape, tf.float32), tf.concat(columns, axis=1), tf.cast(values, tf.float32)
    )


def draw_batch_heatmaps(
    corners: TensorLike,
    radii: TensorLike,
    classes: TensorLike,
    height,
    width,
    num_classes: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The ``tl`` and ``br`` heatmaps of a batch, float32 ``[B, height, width, num_classes]`` each.

    ``corners``: int32 ``[B, K, 4]`` corner pixels ``(tl_x, tl_y, br_x, br_y)``; ``radii``:
    float64 ``[B, K]``; ``classes``: int32 ``[B, K]``, -1 for padding (drawn nowhere), as
    :func:`encode_sparse_targets` gives them. Both corner types of the whole batch go through
    one ``tensor_scatter_nd_max``; each image's maps equal :func:`draw_heatmaps` of its objects.
    ``height``/``width`` may be tensors.
    """
    corners = tf.convert_to_tensor(corners, tf.int32)
    radii, classes = tf.cast(radii, tf.float64), tf.cast(classes, tf.int32)
    batch, slots = tf.shape(classes)[0], tf.shape(classes)[1]
    # Objects of both corner types in one list: tl of every image, then br of every image.
    image = tf.repeat(tf.range(batch), slots)
    kind = tf.repeat(tf.constant([0, 1]), tf.size(image))
    leading = tf.stack([kind, tf.concat([image, image], 0)], axis=1)
    xs = tf.concat([tf.reshape(corners[..., 0], [-1]), tf.reshape(corners[..., 2], [-1])], 0)
    ys = tf.concat([tf.reshape(corners[..., 1], [-1]), tf.reshape(corners[..., 3], [-1])], 0)
    r = tf.tile(tf.reshape(radii, [-1]), [2])
    c = tf.tile(tf.reshape(classes, [-1]), [2])
    real = c >= 0  # padding slots contribute no pixel at all
    heatmaps = _scatter_bumps(
        *(tf.boolean_mask(v, real) for v in (xs, ys, r, c, leading)),
        [2, batch, height, width, int(num_classes)],
    )
    return heatmaps[0], heatmaps[1]


def object_radius(
    boxes: TensorLike,
    input_size: Sequence[int],
    output_size: Sequence[int],
    min_overlap: float = _DATA_DEFAULTS.gaussian_iou,
) -> tf.Tensor:
    """The official per-object radius ``max(0, int(gaussian_radius((h, w), iou)))`` as float64 [N].

    ``h, w = ceil((y2 - y1) * ratio_y), ceil((x2 - x1) * ratio_x)`` with ``ratio = out / in``
    computed first, as in the sampler. A degenerate box (which the data pipeline drops before
    encoding, as the official ``_clip_detections`` does) gets radius 0 instead of NaN.
    """
    (in_h, in_w), (out_h, out_w) = (
        _check_size(input_size, "input_size"),
        _check_size(output_size, "output_size"),
    )
    boxes = _prepare_boxes(boxes)
    width_ratio, height_ratio = out_w / in_w, out_h / in_h
    box_w = tf.math.ceil((boxes[:, 2] - boxes[:, 0]) * width_ratio)
    box_h = tf.math.ceil((boxes[:, 3] - boxes[:, 1]) * height_ratio)
    r = gaussian_radius(box_h, box_w, min_overlap)
    r = tf.where(tf.math.is_finite(r), r, tf.zeros_like(r))
    return tf.maximum(tf.floor(r), 0.0)


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"targets: {name} must be (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"targets: {name} must be positive, got {size!r}")
    return h, w


def _prepare_boxes(boxes: TensorLike) -> tf.Tensor:
    if not tf.is_tensor(boxes):  # keep Python / NumPy floats in float64 (tf would pick float32)
        try:
            boxes = np.asarray(boxes, np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"encode_targets: boxes must be numeric [N, 4], got {boxes!r}"
            ) from None
    boxes = tf.convert_to_tensor(boxes)
    if boxes.shape.rank == 1 and boxes.shape[0] == 0:  # an empty list of boxes
        boxes = tf.reshape(boxes, [0, 4])
    if boxes.shape.rank != 2 or boxes.shape[1] not in (None, 4):
        raise ValueError(
            f"encode_targets: boxes must be [N, 4] as (x1, y1, x2, y2), got shape {boxes.shape}"
        )
    if not (boxes.dtype.is_floating or boxes.dtype.is_integer):
        raise ValueError(f"encode_targets: boxes must be numeric, got {boxes.dtype.name}")
    return tf.cast(boxes, tf.float64)


def _prepare_classes(classes: TensorLike, boxes: tf.Tensor, num_classes: int) -> tf.Tensor:
    classes = tf.convert_to_tensor(classes)
    if classes.shape.num_elements() == 0:  # an empty list converts to float32
        classes = tf.cast(tf.reshape(classes, [0]), tf.int32)
    if classes.shape.rank == 2 and classes.shape[1] == 1:
        classes = classes[:, 0]
    if classes.shape.rank != 1:
        raise ValueError(
            f"encode_targets: classes must be [N] (0-based class ids), got shape {classes.shape}"
        )
    if not classes.dtype.is_integer:
        raise ValueError(
            f"encode_targets: classes must be integer class ids, got {classes.dtype.name}"
        )
    classes = tf.cast(classes, tf.int32)
    checks = [
        tf.debugging.assert_equal(
            tf.shape(classes)[0],
            tf.shape(boxes)[0],
            message="encode_targets: classes and boxes differ in length",
        ),
        tf.debugging.assert_non_negative(
            classes, message="encode_targets: classes must be >= 0 (0-based ids)"
        ),
        tf.debugging.assert_less(
            classes,
            num_classes,
            message=f"encode_targets: classes must be < num_classes ({num_classes})",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(classes)


def _corner(f: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Python ``int()`` of a float64 (truncation towards zero), its offset, and the pixel kept on the map."""
    whole = tf.where(f < 0, tf.math.ceil(f), tf.floor(f))
    offset = tf.cast(f - whole, tf.float32)
    pixel = tf.cast(tf.clip_by_value(whole, 0.0, float(size - 1)), tf.int32)
    return pixel, offset


def encode_targets(
    boxes: TensorLike,
    classes: TensorLike,
    input_size: Sequence[int],
    output_size: Sequence[int],
    num_classes: int,
    max_objects: int = _DATA_DEFAULTS.max_objects,
    gaussian_iou: float = _DATA_DEFAULTS.gaussian_iou,
    radius_mode: str = _DATA_DEFAULTS.radius_mode,
    fixed_radius: float = _DATA_DEFAULTS.fixed_radius,
) -> dict[str, tf.Tensor]:
    """Heatmaps, offsets, tags and mask of one image, as the official sampler builds them.

    Args:
      boxes: ``[N, 4]`` ``(x1, y1, x2, y2)`` in input-image pixels, already clipped to the image
        and with degenerate boxes removed (the data pipeline's job, as in the official code).
        Computed in float64 (Python and NumPy values are taken as float64; a float32 tensor
        can move a corner whose scaled coordinate is within float32 rounding of an integer).
        A corner falling outside the heatmap is clamped onto its border.
      classes: ``[N]`` 0-based class ids.
      input_size, output_size: ``(height, width)`` of the network input and of the heatmaps.
      num_classes: heatmap channels.
      max_objects: tag/offset slots. Objects past it are still drawn on the heatmaps (they are
        real corners, and leaving them out would teach the network to call them background) but
        get no tag or offset; ``num_dropped`` counts them.
      gaussian_iou: IoU for :func:`gaussian_radius` (``radius_mode="object"``).
      radius_mode: ``object`` (official, object-dependent radius), ``fixed`` (``fixed_radius``
        for every object) or ``none`` (no penalty reduction: 1 at the corner pixel, 0 elsewhere)
        -- the three rows of the paper's Table 2.
      fixed_radius: radius for ``fixed``; fractional values keep sigma = (2r+1)/6 on a
        ``floor(r)`` window (see :func:`gaussian_bumps`).

    Returns a dict of tensors with static shapes (``M = max_objects``):
      ``tl_heatmap``, ``br_heatmap``: float32 ``[H_out, W_out, num_classes]``;
      ``tl_regr``, ``br_regr``: float32 ``[M, 2]`` offsets ``(dx, dy)``;
      ``tl_tag``, ``br_tag``: int64 ``[M]`` flat pixel indices ``y * W_out + x``;
      ``tag_mask``: float32 ``[M]``, 1.0 for the first ``num_objects`` slots;
      ``num_objects``: int32, objects with a slot; ``num_dropped``: int32, objects beyond ``M``.
    """
    objects = _encode_objects(
        boxes,
        classes,
        input_size,
        output_size,
        num_classes,
        max_objects,
        gaussian_iou,
        radius_mode,
        fixed_radius,
    )
    out_h, out_w = _check_size(output_size, "output_size")
    corners, radii, classes = objects.pop("corners"), objects.pop("radii"), objects.pop("classes")
    shape = [out_h, out_w, int(num_classes)]
    tl_heatmap = _scatter_bumps(corners[:, 0], corners[:, 1], radii, classes, None, shape)
    br_heatmap = _scatter_bumps(corners[:, 2], corners[:, 3], radii, classes, None, shape)
    return {"tl_heatmap": tl_heatmap, "br_heatmap": br_heatmap, **objects}


def encode_sparse_targets(
    boxes: TensorLike,
    classes: TensorLike,
    input_size: Sequence[int],
    output_size: Sequence[int],
    num_classes: int,
    max_objects: int = _DATA_DEFAULTS.max_objects,
    gaussian_iou: float = _DATA_DEFAULTS.gaussian_iou,
    radius_mode: str = _DATA_DEFAULTS.radius_mode,
    fixed_radius: float = _DATA_DEFAULTS.fixed_radius,
    max_heatmap_objects: int | None = _DATA_DEFAULTS.max_heatmap_objects,
) -> dict[str, tf.Tensor]:
    """:func:`encode_targets` without the dense heatmaps: what to draw them from, per object.

    The heatmaps are mostly zeros (two ``H x W x C`` float32 maps per image, 10 MB at COCO
    size); a compact batch carries the few numbers they are drawn from and the train step draws
    them for the whole batch (:func:`draw_batch_heatmaps`). Arguments as :func:`encode_targets`,
    plus ``max_heatmap_objects`` (``K``, >= ``max_objects``): the object slots for drawing;
    ``None`` gives every object, unpadded (``K`` = the image's object count, for
    ``padded_batch``; ``num_undrawn`` is then 0).

    Returns the small fields of :func:`encode_targets` (``tl_regr`` ... ``num_dropped``) and:
      ``heatmap_corners``: int32 ``[K, 4]`` corner pixels ``(tl_x, tl_y, br_x, br_y)``;
      ``heatmap_radii``: float64 ``[K]`` (fractional for a fractional ``fixed_radius``);
      ``heatmap_classes``: int32 ``[K]``, -1 in the slots past the objects;
      ``num_undrawn``: int32, objects past ``K`` (left off the heatmaps).
    """
    if max_heatmap_objects is not None and int(max_heatmap_objects) < int(max_objects):
        raise ValueError(
            f"encode_sparse_targets: max_heatmap_objects ({max_heatmap_objects}) must be >= "
            f"max_objects ({max_objects})"
        )
    objects = _encode_objects(
        boxes,
        classes,
        input_size,
        output_size,
        num_classes,
        max_objects,
        gaussian_iou,
        radius_mode,
        fixed_radius,
    )
    corners, radii, classes = objects.pop("corners"), objects.pop("radii"), objects.pop("classes")
    num_boxes = tf.shape(classes)[0]
    if max_heatmap_objects is None:  # every object, unpadded: nothing is left undrawn
        drawn = num_boxes

        def padded(values: tf.Tensor, fill) -> tf.Tensor:
            return values

    else:
        capacity = int(max_heatmap_objects)
        drawn = tf.minimum(num_boxes, capacity)

        def padded(values: tf.Tensor, fill) -> tf.Tensor:
            paddings = [[0, capacity - drawn]] + [[0, 0]] * (values.shape.rank - 1)
            out = tf.pad(values[:capacity], paddings, constant_values=fill)
            return tf.ensure_shape(out, [capacity] + values.shape.as_list()[1:])

    return {
        **objects,
        "heatmap_corners": padded(corners, 0),
        "heatmap_radii": padded(radii, 0.0),
        "heatmap_classes": padded(classes, -1),
        "num_undrawn": num_boxes - drawn,
    }


def _encode_objects(
    boxes,
    classes,
    input_size,
    output_size,
    num_classes,
    max_objects,
    gaussian_iou,
    radius_mode,
    fixed_radius,
) -> dict[str, tf.Tensor]:
    """Everything :func:`encode_targets` computes per object, before any drawing.

    The small target fields, plus every object's ``corners`` int32 ``[N, 4]``
    ``(tl_x, tl_y, br_x, br_y)``, ``radii`` float64 ``[N]`` and ``classes`` int32 ``[N]``.
    """
    (in_h, in_w) = _check_size(input_size, "input_size")
    (out_h, out_w) = _check_size(output_size, "output_size")
    if radius_mode not in RADIUS_MODES:
        raise ValueError(
            f"encode_targets: radius_mode must be one of {'|'.join(RADIUS_MODES)}, got {radius_mode!r}"
        )
    if int(num_classes) < 1:
        raise ValueError(f"encode_targets: num_classes must be >= 1, got {num_classes}")
    if int(max_objects) < 1:
        raise ValueError(f"encode_targets: max_objects must be >= 1, got {max_objects}")
    if radius_mode == "object" and not 0.0 < gaussian_iou < 1.0:
        raise ValueError(f"encode_targets: gaussian_iou must be in (0, 1), got {gaussian_iou}")
    if radius_mode == "fixed" and not fixed_radius >= 0:
        raise ValueError(f"encode_targets: fixed_radius must be >= 0, got {fixed_radius}")
    num_classes, max_objects = int(num_classes), int(max_objects)

    boxes = _prepare_boxes(boxes)
    classes = _prepare_classes(classes, boxes, num_classes)
    num_boxes = tf.shape(boxes)[0]

    # The official order: ratio first (a Python float64), then x * ratio, then int().
    width_ratio, height_ratio = out_w / in_w, out_h / in_h
    x1, y1, x2, y2 = tf.unstack(boxes, 4, axis=1)
    tl_x, tl_dx = _corner(x1 * width_ratio, out_w)
    tl_y, tl_dy = _corner(y1 * height_ratio, out_h)
    br_x, br_dx = _corner(x2 * width_ratio, out_w)
    br_y, br_dy = _corner(y2 * height_ratio, out_h)

    if radius_mode == "object":
        radii = object_radius(boxes, (in_h, in_w), (out_h, out_w), gaussian_iou)
    elif radius_mode == "fixed":
        radii = tf.fill([num_boxes], tf.constant(float(fixed_radius), tf.float64))
    else:
        radii = tf.zeros([num_boxes], tf.float64)

    num_objects = tf.minimum(num_boxes, max_objects)
    pad = max_objects - num_objects

    def slots(values: tf.Tensor) -> tf.Tensor:
        kept = values[:max_objects]
        paddings = [[0, pad]] + [[0, 0]] * (values.shape.rank - 1)
        out = tf.pad(kept, paddings)
        return tf.ensure_shape(out, [max_objects] + values.shape.as_list()[1:])

    def tags(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return slots(tf.cast(y, tf.int64) * out_w + tf.cast(x, tf.int64))

    return {
        "corners": tf.stack([tl_x, tl_y, br_x, br_y], axis=1),
        "radii": radii,
        "classes": classes,
        "tl_regr": slots(tf.stack([tl_dx, tl_dy], axis=1)),
        "br_regr": slots(tf.stack([br_dx, br_dy], axis=1)),
        "tl_tag": tags(tl_x, tl_y),
        "br_tag": tags(br_x, br_y),
        "tag_mask": slots(tf.ones([num_boxes], tf.float32)),
        "num_objects": num_objects,
        "num_dropped": num_boxes - num_objects,
    }
