"""Bounded memory for any input: image sizes read from the header, checked before decoding.

A PNG of 20000 x 20000 zero rows compresses to about 1 MB but decodes to 1.2 GB, and the network
would then need several times that; a 28-byte TensorProto can declare as many pixels. So every
entry point reads the declared size first and refuses an image over :data:`MAX_INPUT_PIXELS`:

* Python (:func:`header_size`, :func:`check_image_file`): the header of every format the TF decoder
  accepts (JPEG, PNG, GIF, BMP, WebP), read without decoding; used by ``Detector``, ``cornernet
  detect``, the load-time scan of a dataset and the in-graph decoder's failure reports.
* In the graph (:func:`graph_image_size`, :func:`assert_pixels_within`): the same header fields with
  string ops (``tf.io.extract_jpeg_shape`` for JPEG), so an exported SavedModel answers
  INVALID_ARGUMENT instead of allocating, in stock TF Serving too.

Images within the limit but with a longer side over :data:`MAX_NETWORK_SIDE` are downscaled for the
network and the boxes mapped back to the original pixels.
"""

from __future__ import annotations

import io
import struct

from cornernet_tf.errors import InvalidValueError

# 64 Mi pixels (67,108,864): above every camera in common use (61 MP full-frame sensors, phones'
# 50 MP modes) while the decoded RGB image stays at 192 MiB.
MAX_INPUT_PIXELS = 1 << 26
# The network sees at most this many pixels on the longer side: CornerNet is trained on ~640 px
# COCO images (511 crops; test scales up to 1.5 give ~960 px), so objects in a larger image are
# found as well or better after downscaling, and an hourglass at 2048 x 2048 already needs GBs.
MAX_NETWORK_SIDE = 2048

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); not C4/C8/CC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageTooLargeError(InvalidValueError):
    """An image declares more pixels than :data:`MAX_INPUT_PIXELS`."""


def too_large_message(width: int, height: int, max_pixels: int = MAX_INPUT_PIXELS) -> str:
    return (
        f"{width}x{height} = {width * height / 1e6:.1f} megapixels is over the limit of "
        f"{max_pixels / 1e6:.1f} megapixels (MAX_INPUT_PIXELS); downscale it first"
    )


def _jpeg_size(fh) -> tuple[int, int] | None:
    fh.seek(2)
    while True:
        byte = fh.read(1)
        if not byte:
            return None
        if byte != b"\xff":  # garbage between segments: the decoder skips it too
            continue
        marker = fh.read(1)
        while marker == b"\xff":
            marker = fh.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in (0x01, 0xD8) or 0xD0 <= code <= 0xD7:  # no length field
            continue
        if code in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            return None
        length = fh.read(2)
        if len(length) < 2:
            return None
        if code in _SOF:
            frame = fh.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        skip = struct.unpack(">H", length)[0] - 2
        if skip < 0:  # a malformed length would make the scan go backwards
            return None
        fh.seek(skip, io.SEEK_CUR)


def header_size(source) -> tuple[int, int] | None:
    """``(width, height)`` declared by an image's header (bytes or a binary file object), or None
    when the format is not one the TF decoder reads or the header is cut short."""
    fh = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    head = fh.read(32)
    if head.startswith(_PNG) and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head.startswith((b"GIF87a", b"GIF89a")) and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head.startswith(b"BM") and len(head) >= 26:
        if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return struct.unpack("<HH", head[18:22])
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)  # a negative height means rows top-down
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", head[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L":
            bits = struct.unpack("<I", head[21:25])[0]
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(
                head[27:30], "little"
            )
        return None
    if head.startswith(_JPEG):
        return _jpeg_size(fh)
    return None


def check_pixels(width: int, height: int, where: str, max_pixels: int = MAX_INPUT_PIXELS) -> None:
    """Raise :class:`ImageTooLargeError` naming ``where`` when ``width * height`` is over the limit."""
    if int(width) * int(height) > max_pixels:
        raise ImageTooLargeError(f"{where}: {too_large_message(width, height, max_pixels)}")


def check_image_bytes(data: bytes, where: str, max_pixels: int = MAX_INPUT_PIXELS) -> None:
    """Refuse encoded bytes whose header declares more than ``max_pixels`` pixels."""
    size = header_size(data)
    if size is not None:
        check_pixels(*size, where, max_pixels)


def check_image_file(path: str, max_pixels: int = MAX_INPUT_PIXELS) -> tuple[int, int] | None:
    """Refuse a file whose header declares more than ``max_pixels``; returns its (width, height)."""
    with open(path, "rb") as fh:
        size = header_size(fh)
    if size is not None:
        check_pixels(*size, path, max_pixels)
    return size


def network_scale(height: int, width: int, max_side: int = MAX_NETWORK_SIDE) -> float:
    """The factor (<= 1) that brings the longer side down to ``max_side``."""
    longer = max(int(height), int(width))
    return 1.0 if longer <= max_side else max_side / longer


# --------------------------------------------------------------------------- TF side


def graph_image_size(data):
    """Encoded bytes (scalar string tensor) -> int64 ``[height, width]`` from the header, without
    decoding; ``[0, 0]`` for a format the decoder does not read (it then fails on its own)."""
    import tensorflow as tf

    head = tf.strings.substr(
        tf.strings.join([tf.strings.substr(data, 0, 32), tf.constant(b"\0" * 32)]), 0, 32
    )
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

    def le(i, n):
        return sum(b[i + k] * (1 << (8 * k)) for k in range(n))

    def be(i, n):
        return sum(b[i + k] * (1 << (8 * (n - 1 - k))) for k in range(n))

    def starts(prefix: bytes, at: int = 0):
        return tf.equal(tf.strings.substr(head, at, len(prefix)), prefix)

    def signed32(v):
        return tf.abs(tf.where(v >= (1 << 31), v - (1 << 32), v))

    zero = tf.zeros([2], tf.int64)
    bmp_core = tf.equal(le(14, 4), 12)
    candidates = [
        (starts(_PNG), tf.stack([be(20, 4), be(16, 4)])),
        (starts(b"GIF8"), tf.stack([le(8, 2), le(6, 2)])),
        (
            starts(b"BM"),
            tf.where(
                bmp_core,
                tf.stack([le(20, 2), le(18, 2)]),
                tf.stack([signed32(le(22, 4)), signed32(le(18, 4))]),
            ),
        ),
        (
            starts(b"RIFF") & starts(b"WEBPVP8 ", 8),
            tf.stack([le(28, 2) % (1 << 14), le(26, 2) % (1 << 14)]),
        ),
        (
            starts(b"RIFF") & starts(b"WEBPVP8L", 8),
            tf.stack([(le(21, 4) // (1 << 14)) % (1 << 14) + 1, le(21, 4) % (1 << 14) + 1]),
        ),
        (
            starts(b"RIFF") & starts(b"WEBPVP8X", 8),
            tf.stack([le(27, 3) + 1, le(24, 3) + 1]),
        ),
    ]
    size = zero
    for condition, value in reversed(candidates):
        size = tf.where(condition, value, size)

    def jpeg():
        return tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64)

    def other():
        return size

    return tf.cond(starts(_JPEG), jpeg, other)


def assert_pixels_within(height, width, what: str, max_pixels: int = MAX_INPUT_PIXELS):
    """An assertion op: ``height * width <= max_pixels`` (INVALID_ARGUMENT naming ``what`` otherwise)."""
    import tensorflow as tf

    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    message = (
        f"{what}: the image has more pixels than the limit of {max_pixels} (MAX_INPUT_PIXELS); "
        "height, width:"
    )
    return tf.debugging.Assert(
        pixels <= tf.constant(max_pixels, tf.int64), [message, height, width], summarize=2
    )


def assert_encoded_within(data, what: str, max_pixels: int = MAX_INPUT_PIXELS):
    """An assertion op on encoded bytes: the header's size is within ``max_pixels``."""
    size = graph_image_size(data)
    return assert_pixels_within(size[0], size[1], what, max_pixels)
