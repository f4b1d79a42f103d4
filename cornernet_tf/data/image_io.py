"""Reading images robustly: a Pillow pre-scan at load time and a fail-safe decoder in ``tf.data``.

Two layers, because neither alone is enough:

* **Load time (Python, Pillow)**: :func:`probe_image` opens each file's header (``scan="header"``,
  cheap) or decodes it fully (``scan="decode"``, what ``cornernet data check`` does). Missing,
  unreadable or unsupported files are dropped there and reported by name; a real size that
  differs from the annotation is repaired by rescaling the boxes.
* **In the graph (TF)**: :func:`decode_image` turns every format the TF decoder knows (JPEG,
  PNG, GIF, BMP, WebP) and every mode (grayscale, palette, RGBA, CMYK, 16-bit PNG) into RGB
  uint8. A file that still fails (it changed after the scan, or the scan was off) must not stop
  training, and must not vanish silently either -- which is what
  ``tf.data.Dataset.ignore_errors`` alone would do. :func:`map_or_skip` therefore runs the
  decoder on a one-element dataset per image with ``ignore_errors`` and appends a failure
  marker after it; ``take(1)`` yields the decoded image or the marker, and a filter drops the
  markers while logging the file name and counting it in the :class:`DatasetReport`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

import numpy as np

from cornernet_tf.data.pixel_limit import MAX_INPUT_PIXELS, header_size, too_large_message
from cornernet_tf.data.report import DatasetReport

logger = logging.getLogger("cornernet_tf.data")

# Formats tf.io.decode_image reads (TF 2.21). Anything else (TIFF, ...) is dropped at load time.
TF_DECODABLE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"})
SCAN_MODES = ("none", "header", "decode")


@dataclasses.dataclass(frozen=True)
class ImageProbe:
    """What Pillow says about one image file."""

    path: str
    ok: bool
    width: int = 0
    height: int = 0
    format: str | None = None
    mode: str | None = None
    failure: str | None = None  # missing | unreadable | unsupported | too_large
    message: str | None = None

    @property
    def needs_conversion(self) -> bool:
        """True when the decoder will convert the pixels (anything but 8-bit RGB)."""
        return self.ok and self.mode != "RGB"


def probe_image(path: str, decode: bool = False) -> ImageProbe:
    """Open ``path`` with Pillow: header only, or a full decode when ``decode`` (finds truncation)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        return ImageProbe(path, False, failure="missing", message="file not found")
    oversized = _oversized(path)
    if oversized:
        return ImageProbe(path, False, *oversized[:2], failure="too_large", message=oversized[2])
    try:
        with Image.open(path) as img:
            fmt, mode = img.format, img.mode
            width, height = img.size
            if decode:
                img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return ImageProbe(
            path, False, failure="unreadable", message=f"cannot be read as an image ({exc})"
        )
    except Exception as exc:  # Pillow plugins raise assorted errors on hostile input
        return ImageProbe(
            path, False, failure="unreadable", message=f"cannot be read as an image ({exc!r})"
        )
    if fmt not in TF_DECODABLE_FORMATS:
        return ImageProbe(
            path,
            False,
            width,
            height,
            fmt,
            mode,
            failure="unsupported",
            message=f"{fmt} images cannot be decoded by TensorFlow (use JPEG, PNG, GIF, BMP or WebP)",
        )
    return ImageProbe(path, True, width, height, fmt, mode)


def _oversized(path: str) -> tuple[int, int, str] | None:
    """``(width, height, message)`` when the header declares more than MAX_INPUT_PIXELS pixels."""
    try:
        with open(path, "rb") as fh:
            size = header_size(fh)
    except OSError:
        return None
    if size is None or size[0] * size[1] <= MAX_INPUT_PIXELS:
        return None
    return size[0], size[1], too_large_message(*size)


def probe_images(paths: list[str], decode: bool = False, threads: int = 8) -> list[ImageProbe]:
    """:func:`probe_image` over many files with a thread pool (file reads and decoding release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) < 64 or threads <= 1:
        return [probe_image(p, decode) for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(probe_image, paths, [decode] * len(paths)))


def failure_reason(name: str) -> str:
    """Why the TF decoder failed on file ``name``, as far as Pillow can tell (used after the fact)."""
    if os.path.isfile(name) and _oversized(name):
        return _oversized(name)[2]
    probe = probe_image(name, decode=True)
    if probe.ok:
        return "TensorFlow could not decode it (Pillow can: the file may be truncated or unusual)"
    return probe.message or "could not be decoded"


# --------------------------------------------------------------------------- TF side


def stored_bytes_reason(data: bytes) -> str:
    """Why encoded bytes (not a file) could not be decoded, as far as their header tells."""
    size = header_size(bytes(data))
    if size is not None and size[0] * size[1] > MAX_INPUT_PIXELS:
        return too_large_message(*size)
    return "the stored image bytes cannot be decoded"


def decode_image(data, max_pixels: int = MAX_INPUT_PIXELS):
    """Encoded bytes -> RGB uint8 ``[H, W, 3]`` for any mode (gray, palette, RGBA, CMYK, 16-bit).

    An image whose header declares more than ``max_pixels`` fails (INVALID_ARGUMENT) before decoding.
    """
    import tensorflow as tf

    from cornernet_tf.data.pixel_limit import assert_encoded_within

    with tf.control_dependencies([assert_encoded_within(data, "image", max_pixels)]):
        data = tf.identity(data)
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def _placeholder(spec):
    """An element matching ``spec`` with every unknown dimension 0 (the failure marker's payload)."""
    import tensorflow as tf

    if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f"map_or_skip: only dense tensors are supported in the output, got {spec}")
    shape = [0 if d is None else d for d in spec.shape.as_list()]
    return tf.zeros(shape, spec.dtype)


def map_or_skip(
    dataset,
    fn: Callable,
    describe: Callable,
    report: DatasetReport | None = None,
    reason: Callable[[str], str] | None = None,
    num_parallel_calls: int | None = None,
    deterministic: bool | None = None,
    explain: Callable | None = None,
    kind: str = "undecodable",
    counter: str = "runtime_images_skipped",
    action: str = "skipped during training",
):
    """``dataset.map(fn)``, where an element on which ``fn`` fails is skipped, logged and counted.

    ``describe(element)`` gives a string tensor naming the element (its file); ``reason(name)``
    (Python, only called on failures) explains the failure for the log, or ``explain(element)``
    gives that explanation as a string tensor (built only on the failure path). Each element is
    reported once however many epochs reach it: one ``Problem`` of ``kind``, one log line and one
    count of ``counter`` in ``report``; ``report.counts[counter + "_repeats"]`` counts every skip.
    """
    import tensorflow as tf

    out_spec = dataset.map(fn).element_spec  # traces fn once to learn the output structure

    def good(x):
        return fn(x), tf.constant(True), describe(x)

    def bad(x):
        why = explain(x) if explain is not None else tf.constant("")
        name = tf.strings.join([describe(x), why], separator="\0")
        return tf.nest.map_structure(_placeholder, out_spec), tf.constant(False), name

    def attempt(x):
        one = tf.data.Dataset.from_tensors(x)
        return one.map(good).ignore_errors().concatenate(one.map(bad)).take(1)

    reported: set = set()  # each element is logged and counted once; repeats are counted apart

    def on_failure(tagged) -> np.bool_:
        tagged = tagged.decode("utf-8", "replace") if isinstance(tagged, bytes) else str(tagged)
        name, _, why = tagged.partition("\0")
        if report is not None:
            report.count(counter + "_repeats")
        if name not in reported:
            reported.add(name)
            why = why or (reason(name) if reason else "could not be decoded")
            logger.warning("skipping %s: %s", name, why)
            if report is not None:
                report.problem(kind, f"{action}: {why}", file=name, counter=counter)
        return np.bool_(False)

    def keep(_, ok, name):
        def report_failure():
            return tf.ensure_shape(
                tf.numpy_function(on_failure, [name], tf.bool, stateful=True), []
            )

        def passed():
            return tf.constant(True)

        return tf.cond(ok, passed, report_failure)

    def value_only(value, ok, name):
        return value

    dataset = dataset.interleave(
        attempt,
        cycle_length=num_parallel_calls if num_parallel_calls and num_parallel_calls > 0 else None,
        block_length=1,
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )
    return dataset.filter(keep).map(value_only)
