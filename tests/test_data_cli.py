"""`cornernet data shapes | check | to-tfrecord` through the real command line entry point."""

import json

import pytest

from cornernet_tf.cli import main


@pytest.fixture(scope="module")
def shapes_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "shapes"
    assert (
        main(
            [
                "data",
                "shapes",
                "--out",
                str(out),
                "--num-images",
                "6",
                "--seed",
                "3",
                "--size",
                "64",
                "80",
                "--splits",
                "train=4,val=2",
            ]
        )
        == 0
    )
    return out


def test_shapes_command_writes_splits(shapes_out, capsys):
    train = json.loads((shapes_out / "train" / "annotations.json").read_text())
    val = json.loads((shapes_out / "val" / "annotations.json").read_text())
    assert len(train["images"]) == 4 and len(val["images"]) == 2
    assert train["images"][0]["width"] == 80 and train["images"][0]["height"] == 64
    assert len(list((shapes_out / "train" / "images").glob("*.png"))) == 4


def test_check_command_summary_and_exit_codes(shapes_out, tmp_path, capsys):
    args = [
        "data",
        "check",
        "--annotations",
        str(shapes_out / "train" / "annotations.json"),
        "--images",
        str(shapes_out / "train" / "images"),
    ]
    assert main(args + ["--json", str(tmp_path / "report.json")]) == 0
    text = capsys.readouterr().out
    assert "4 images" in text and "boxes per class" in text and "rectangle" in text
    assert "box size sqrt(w*h)" in text and "COCO ranges" in text and "no problems found" in text
    assert json.loads((tmp_path / "report.json").read_text())["counts"]["images"] == 4

    # A dataset with a broken annotation: reported with its id; --strict turns it into a failure.
    data = json.loads((shapes_out / "train" / "annotations.json").read_text())
    data["annotations"][0]["bbox"][2] = -3
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    bad_args = [
        "data",
        "check",
        "--annotations",
        str(broken),
        "--images",
        str(shapes_out / "train" / "images"),
    ]
    assert main(bad_args) == 0
    text = capsys.readouterr().out
    assert f"annotation id {data['annotations'][0]['id']}" in text and "negative width" in text
    assert main(bad_args + ["--strict"]) == 1

    # Fatal: not JSON / no usable image.
    broken.write_text("{")
    assert main(bad_args) == 1
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.out and "FAILED" in captured.err
    broken.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "gone.png"}],
                "annotations": [],
                "categories": [{"id": 1, "name": "x"}],
            }
        )
    )
    assert main(bad_args) == 1
    out = capsys.readouterr().out
    assert "FATAL" in out and "gone.png" in out


def test_to_tfrecord_command(shapes_out, tmp_path, capsys):
    prefix = tmp_path / "rec" / "train"
    assert (
        main(
            [
                "data",
                "to-tfrecord",
                "--annotations",
                str(shapes_out / "train" / "annotations.json"),
                "--images",
                str(shapes_out / "train" / "images"),
                "--out",
                str(prefix),
                "--num-shards",
                "2",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in prefix.parent.iterdir()) == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "train.info.json",
    ]
    assert json.loads((prefix.parent / "train.info.json").read_text())["num_images"] == 4


def test_data_without_action_prints_help(capsys):
    assert main(["data"]) == 2
    assert "shapes" in capsys.readouterr().out
