"""``model.num_classes`` against the dataset: a stated number that differs from the training
data's categories fails before the model is built or the work directory written; ``null`` takes
the dataset's count, which config.yaml keeps for eval, detect and export."""

import argparse
import json

import pytest
import yaml

import cornernet_tf.training.fit as fit
from cornernet_tf.commands._common import load_config_from_args
from cornernet_tf.config import ConfigError, load_config
from cornernet_tf.data.classes import num_classes_for_weights
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.modeling.cornernet import build_model

TINY = "configs/cornernet_tiny.yaml"


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def two_class_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_classes")
    files = generate_shapes(str(out), size=(64, 64), splits={"train": 3}, num_classes=2)
    return [
        f"data.train_annotations={files['train']}",
        f"data.train_images={out / 'train' / 'images'}",
        "data.val_annotations=null",
        "data.val_images=null",
    ], files["train"]


@pytest.fixture
def nothing_built(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was built before num_classes was checked")

    monkeypatch.setattr(fit, "build_and_compile", refuse)
    monkeypatch.setattr(fit, "build_network", refuse)


def test_mismatch_fails_before_the_first_step_and_the_workdir(
    tmp_path, two_class_set, nothing_built
):
    overrides, annotations = two_class_set
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError) as info:
        fit.train(TINY, str(workdir), progress=False, overrides=overrides)
    message = str(info.value)
    assert "model.num_classes is 3" in message and f"{annotations} has 2 categories" in message
    assert "rectangle, ellipse" in message
    assert not workdir.exists()


def test_null_takes_the_dataset_count_into_config_yaml(tmp_path, two_class_set, monkeypatch):
    overrides, _ = two_class_set

    def stop(config, *_args, **_kwargs):
        assert config.model.num_classes == 2
        raise _Stop

    # Stopped when the input pipeline is made: after the model is built and config.yaml saved.
    monkeypatch.setattr(fit, "make_datasets", stop)
    workdir = tmp_path / "run"
    with pytest.raises(_Stop):
        fit.train(
            TINY, str(workdir), progress=False, overrides=overrides + ["model.num_classes=null"]
        )
    saved = yaml.safe_load((workdir / "config.yaml").read_text())
    assert saved["model"]["num_classes"] == 2
    assert load_config(str(workdir / "config.yaml")).model.num_classes == 2


def test_null_for_a_trained_model_reads_the_dataset_info_beside_the_weights(
    tmp_path, two_class_set
):
    overrides, annotations = two_class_set
    weights = tmp_path / "last.weights.h5"
    (tmp_path / "dataset_info.json").write_text(
        json.dumps({"class_names": ["a", "b", "c", "d"], "category_ids": [1, 2, 3, 4]})
    )
    args = argparse.Namespace(
        config=TINY, overrides=["model.num_classes=null"], weights=str(weights)
    )
    assert load_config_from_args(args).model.num_classes == 4
    # No info beside the weights: the configured training data.
    args = argparse.Namespace(
        config=TINY,
        overrides=overrides + ["model.num_classes=null"],
        weights=str(tmp_path / "sub" / "w.weights.h5"),
    )
    assert load_config_from_args(args).model.num_classes == 2
    # A stated number is left alone (export checks it against the category ids).
    stated = load_config(TINY)
    assert num_classes_for_weights(stated, str(weights)) is stated


def test_null_without_any_dataset_is_a_clear_error(tmp_path):
    config = load_config(
        TINY,
        [
            "model.num_classes=null",
            "data.train_annotations=null",
            "data.train_images=null",
            "data.val_annotations=null",
            "data.val_images=null",
        ],
    )
    with pytest.raises(ConfigError, match="model.num_classes is null .* no dataset_info.json"):
        num_classes_for_weights(config, str(tmp_path / "w.weights.h5"))
    with pytest.raises(ConfigError, match="model.num_classes is null .* not resolved"):
        build_model(config.model)
