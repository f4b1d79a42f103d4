"""Fault suite, ``cornernet detect``: nothing is ever written over an input.

An ``--out`` that is, or contains, an input (however it is spelled: trailing slash, ``./``, a
symbolic link) is refused with one line naming both paths before anything is loaded or written;
with ``--recursive`` the results mirror the input tree under an ``--out`` outside it.
"""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import cornernet_tf.modeling.cornernet as cornernet_module
from cornernet_tf.cli import main
from cornernet_tf.config import load_config
from cornernet_tf.errors import OutputPathError
from cornernet_tf.eval.detect_images import (
    check_output_apart,
    detect_files,
    list_image_sources,
)

TINY = "configs/cornernet_tiny.yaml"


@pytest.fixture
def photos(tmp_path):
    """``photos/{a.png, b.png, sub/a.png, sub/deeper/c.jpg}`` with distinct pixels."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png", "sub/a.png", "sub/deeper/c.jpg"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)).save(path)
    return root


def _snapshot(root):
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def no_model_build(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was built before --out was checked")

    monkeypatch.setattr(cornernet_module, "build_model", refuse)


def _detect(inputs, out):
    return main(["detect", "--config", TINY, "--weights", "w.weights.h5", *inputs, "--out", out])


@pytest.mark.parametrize(
    "spell",
    [
        lambda root: str(root),
        lambda root: str(root) + os.sep,
        lambda root: os.path.join(str(root), ".", ""),
        lambda root: os.path.join(str(root), "sub", ".."),
    ],
    ids=["same", "trailing_slash", "dot", "dotdot"],
)
def test_out_equal_to_the_input_folder_is_refused(photos, capsys, no_model_build, spell):
    before = _snapshot(photos)
    out = spell(photos)
    assert _detect([str(photos)], out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert f"--out {out} is or contains the input {photos}" in err[0]
    assert _snapshot(photos) == before  # not a byte changed, nothing added


def test_out_through_a_symbolic_link_is_refused(photos, tmp_path, capsys, no_model_build):
    link = tmp_path / "link"
    link.symlink_to(photos, target_is_directory=True)
    before = _snapshot(photos)
    assert _detect([str(photos / "a.png")], str(link)) == 1
    assert f"is or contains the input {photos / 'a.png'}" in capsys.readouterr().err
    assert _snapshot(photos) == before


def test_out_containing_an_input_file_or_folder_is_refused(photos, capsys, no_model_build):
    before = _snapshot(photos)
    assert _detect([str(photos / "sub" / "a.png")], str(photos)) == 1
    assert f"contains the input {photos / 'sub' / 'a.png'}" in capsys.readouterr().err
    assert _detect([str(photos / "sub")], str(photos.parent)) == 1
    assert f"contains the input {photos / 'sub'}" in capsys.readouterr().err
    assert _snapshot(photos) == before


def test_out_inside_an_input_folder_only_with_recursive(photos):
    inside = str(photos / "results")
    check_output_apart(inside, [str(photos)])  # not read again without --recursive
    with pytest.raises(OutputPathError, match=f"inside the input folder {photos}"):
        check_output_apart(inside, [str(photos)], recursive=True)
    check_output_apart(str(photos) + "-results", [str(photos)], recursive=True)  # a sibling


def test_recursive_listing_mirrors_the_tree(photos):
    flat = list_image_sources([str(photos)])
    assert [stem for _, stem in flat] == ["a", "b"]
    deep = list_image_sources([str(photos), str(photos / "sub" / "a.png")], recursive=True)
    assert [stem for _, stem in deep] == ["a", "b", "sub/a", "sub/deeper/c", "a_2"]
    assert deep[3][0] == str(photos / "sub" / "deeper" / "c.jpg")


def test_recursive_empty_tree_is_one_line(tmp_path, capsys, no_model_build):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    args = ["detect", "--config", TINY, "--weights", "w.weights.h5", "--recursive"]
    assert main(args + [str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1
    assert "no image files in folder tree" in capsys.readouterr().err


class _Detector:
    """A stand-in network output: one box per image (the guard is what is tested here)."""

    def detect(self, image):
        return {
            "boxes": np.array([[1.0, 1.0, 9.0, 9.0]], np.float32),
            "scores": np.array([0.9], np.float32),
            "classes": np.array([0], np.int32),
        }


def test_detect_files_never_replaces_its_input(photos):
    before = _snapshot(photos)
    with pytest.raises(OutputPathError, match="would overwrite the input"):
        detect_files(_Detector(), [str(photos / "a.png")], str(photos), ["x"], stems=["a"])
    assert _snapshot(photos) == before


def test_detect_recursive_writes_the_mirrored_tree(photos, tmp_path, capsys):
    keras.utils.set_random_seed(1)
    model = cornernet_module.build_model(load_config(TINY).model)
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    before = _snapshot(photos)
    out = tmp_path / "results"
    args = ["detect", "--config", TINY, "--set", "test.num_dets=20", "--weights", weights]
    assert main(args + ["--recursive", str(photos), "--out", str(out)]) == 0
    assert "4 images" in capsys.readouterr().out
    for stem, source in (
        ("a", "a.png"),
        ("sub/a", "sub/a.png"),
        ("sub/deeper/c", "sub/deeper/c.jpg"),
    ):
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["image"] == str(photos / source)
        assert Image.open(out / f"{stem}.png").size == (44, 36)
    assert _snapshot(photos) == before
