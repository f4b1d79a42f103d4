"""Writes cv2_resize.npz: cv2.resize (INTER_LINEAR) of small uint8 images, up and down.

Run with a Python that has OpenCV and NumPy: ``python tests/data/make_cv2_resize.py``.
Keys: ``src{i}`` (uint8 [h, w, c]), ``size{i}`` ([out_h, out_w]), ``out{i}`` (cv2's result).
"""

import os

import cv2
import numpy as np

CASES = [  # (src h, w, channels, out h, w): up, down, mixed, tiny, one channel, identity
    (23, 31, 3, 51, 47),
    (61, 45, 3, 29, 40),
    (20, 70, 3, 55, 33),
    (2, 3, 3, 9, 7),
    (37, 29, 1, 64, 19),
    (40, 40, 3, 40, 40),
    (31, 31, 3, 51, 51),
    (66, 66, 3, 51, 51),
]


def main() -> None:
    rng = np.random.default_rng(2024)
    arrays = {}
    for i, (h, w, c, oh, ow) in enumerate(CASES):
        src = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        out = cv2.resize(src, (ow, oh))
        arrays[f"src{i}"] = src
        arrays[f"size{i}"] = np.array([oh, ow], np.int32)
        arrays[f"out{i}"] = out.reshape(oh, ow, c)
    arrays["opencv_version"] = np.array(cv2.__version__)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cv2_resize.npz")
    np.savez_compressed(path, **arrays)


if __name__ == "__main__":
    main()
