"""``cornernet data browse``: augmented training samples drawn with their targets.

Runs on generated shapes data: the PNGs exist with the stated size, the boxes are read back from
the encoded targets exactly (encode -> decode round trip), each box is drawn in its class colour
where the targets put it, and the heatmap panel is red at top-left and blue at bottom-right
corners.
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from cornernet_tf.cli import main as cli_main
from cornernet_tf.inference.draw import class_colour
from cornernet_tf.inference.draw_samples import PANEL_GAP, default_zoom, sample_picture

CONFIG = "configs/cornernet_tiny.yaml"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from cornernet_tf.data.shapes import generate_shapes

    root = tmp_path_factory.mktemp("browse_shapes")
    generate_shapes(str(root), seed=5, size=(192, 192), splits={"train": 6})
    return [
        f"data.train_annotations={root / 'train' / 'annotations.json'}",
        f"data.train_images={root / 'train' / 'images'}",
    ]


def test_boxes_are_read_back_from_the_targets():
    from cornernet_tf.data.browse import boxes_from_targets
    from cornernet_tf.targets import encode_targets

    boxes = np.array([[3.0, 5.5, 60.25, 90.0], [40.0, 20.0, 126.0, 70.5], [10, 10, 30, 30]])
    classes = np.array([2, 0, 2])
    targets = {
        k: np.asarray(v) for k, v in encode_targets(boxes, classes, (127, 127), (32, 32), 3).items()
    }
    got_boxes, got_classes = boxes_from_targets(targets, (127, 127), (32, 32))
    np.testing.assert_allclose(got_boxes, boxes, atol=1e-4)
    np.testing.assert_array_equal(got_classes, classes)


def perimeter(box, zoom):
    x1, y1, x2, y2 = (int(round(float(v) * zoom)) for v in box)
    xs, ys = np.arange(x1, x2 + 1), np.arange(y1, y2 + 1)
    points = (
        [(x, y1) for x in xs]
        + [(x, y2) for x in xs]
        + [(x1, y) for y in ys]
        + [(x2, y) for y in ys]
    )
    return points


SEED = 0


def test_samples_drawn_where_the_targets_say(shapes):
    from cornernet_tf.config import load_config
    from cornernet_tf.data.browse import browse_samples

    # The same three samples whatever ran before: random ops combine data.seed with TensorFlow's
    # global seed, which other tests set.
    keras.utils.set_random_seed(SEED)
    config = load_config(CONFIG, [*shapes, "data.seed=3", "data.deterministic=true"])
    names, samples = browse_samples(config, 3)
    assert names == ["rectangle", "ellipse", "triangle"]
    checked = corners = red = blue = 0
    box_hits = []  # per box: the share of its outline drawn in its class colour
    for sample in samples:
        assert sample.image.shape == (127, 127, 3) and sample.image.dtype == np.uint8
        assert sample.tl_heat.shape == (32, 32, 3)
        zoom = 2
        picture = np.asarray(
            sample_picture(
                sample.image,
                sample.boxes,
                sample.classes,
                sample.tl_heat,
                sample.br_heat,
                names,
                zoom,
            )
        )
        h, w = 127 * zoom, 127 * zoom
        assert picture.shape == (h, 2 * w + PANEL_GAP, 3)
        for box, cls in zip(sample.boxes, sample.classes):
            colour = np.array(class_colour(int(cls)))
            points = [(x, y) for x, y in perimeter(box, zoom) if 0 <= x < w and 0 <= y < h]
            box_hits.append(np.mean([np.array_equal(picture[y, x], colour) for x, y in points]))
            checked += 1
            # The corner's map cell, at its centre, in the heatmap panel.
            for corner, (bx, by) in (("tl", box[:2]), ("br", box[2:])):
                cx = (int(bx * 32 / 127) + 0.5) * w / 32
                cy = (int(by * 32 / 127) + 0.5) * h / 32
                pixel = picture[min(int(cy), h - 1), w + PANEL_GAP + min(int(cx), w - 1)].astype(
                    int
                )
                corners += 1
                red += corner == "tl" and pixel[0] > 150 and pixel[0] > pixel[2] + 50
                blue += corner == "br" and pixel[2] > 150 and pixel[2] > pixel[0] + 50
    assert checked >= 3
    # Labels, and the edges of later boxes that coincide with an earlier box's, cover parts of some
    # outlines, and neighbouring objects' maps overlap: judged over all boxes and corners together.
    assert np.mean(box_hits) >= 0.5 and np.median(box_hits) >= 0.6, box_hits
    assert red + blue >= 0.6 * corners, (red, blue, corners)


def test_cli_writes_one_png_per_sample(shapes, tmp_path, capsys):
    out = tmp_path / "browse"
    args = ["data", "browse", "--config", "cornernet_tiny", "--out", str(out), "--num-samples", "3"]
    for override in shapes:
        args += ["--set", override]
    assert cli_main([*args, "--seed", "7"]) == 0
    files = sorted(os.listdir(out))
    assert files == ["sample_000.png", "sample_001.png", "sample_002.png"]
    zoom = default_zoom((127, 127))
    assert zoom == 3
    for name in files:
        with Image.open(out / name) as image:
            assert image.size == (2 * 127 * zoom + PANEL_GAP, 127 * zoom) and image.mode == "RGB"
    printed = capsys.readouterr().out
    assert "3 augmented samples (127x127 network input)" in printed and "objects (" in printed
    assert cli_main([*args, "--seed", "7", "--zoom", "1"]) == 0
    with Image.open(out / "sample_000.png") as image:
        assert image.size == (2 * 127 + PANEL_GAP, 127)
    assert capsys.readouterr().out == printed  # the same seed: the same samples and objects


def test_cli_rejects_bad_counts(shapes, tmp_path, capsys):
    args = ["data", "browse", "--config", "cornernet_tiny", "--out", str(tmp_path)]
    assert cli_main([*args, "--num-samples", "0"]) == 1
    assert "--num-samples must be in [1, 100000], got 0" in capsys.readouterr().err
    assert cli_main([*args, "--zoom", "0"]) == 1
    assert "--zoom must be in [1, 64], got 0" in capsys.readouterr().err
