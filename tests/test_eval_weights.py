"""load_weights(): every accepted format round-trips; a file of another architecture is a clear error."""

import os

import numpy as np
import pytest

from cornernet_tf.config import load_config
from cornernet_tf.modeling.cornernet import build_model
from cornernet_tf.weights import WeightsError, load_weights, weights_format

TINY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "cornernet_tiny.yaml")
DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    model = build_model(load_config(TINY).model)
    # make the weights distinguishable from a fresh initialisation
    model.set_weights([w + np.float32(0.01) * (i + 1) for i, w in enumerate(model.get_weights())])
    model.save_weights(str(root / "tiny.weights.h5"))
    model.save(str(root / "tiny.keras"))
    return model, root


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("name", ["tiny.weights.h5", "tiny.keras"])
def test_keras_formats_round_trip(tiny_files, name):
    source, root = tiny_files
    model = build_model(load_config(TINY).model)
    assert not _same_weights(model, source)
    info = load_weights(model, str(root / name))
    assert _same_weights(model, source)
    assert info["format"] == weights_format(name)


@pytest.mark.parametrize("name", ["tiny.weights.h5", "tiny.keras"])
def test_other_architecture_names_config_and_file(tiny_files, name):
    _, root = tiny_files
    model = build_model(load_config(TINY, ["model.num_classes=5"]).model)
    with pytest.raises(WeightsError) as err:
        load_weights(model, str(root / name), config_name="configs/other.yaml")
    message = str(err.value)
    assert (
        str(root / name) in message
        and "configs/other.yaml" in message
        and "num_classes=5" in message
    )


def test_keras_model_file_lists_the_differences(tiny_files):
    _, root = tiny_files
    model = build_model(load_config(TINY, ["model.cnv_dim=40"]).model)
    with pytest.raises(WeightsError, match="cnv_dim: file 48 vs config 40"):
        load_weights(model, str(root / "tiny.keras"))


def test_official_checkpoint(golden_model_config, golden_model):
    """The golden official state_dict (.npz) loads through the same entry point as the converter
    (``golden_model`` has it loaded by ``convert.load_official_weights``)."""
    path = os.path.join(DATA, "model_weights.npz")
    model = build_model(golden_model_config)
    info = load_weights(model, path)
    assert info["format"] == "official" and info["tensors"] > 0
    assert _same_weights(model, golden_model)
    with pytest.raises(WeightsError, match="model_weights.npz does not fit config tiny.yaml"):
        load_weights(build_model(load_config(TINY).model), path, config_name="tiny.yaml")


def test_bad_paths(tmp_path):
    model_config = load_config(TINY).model
    with pytest.raises(WeightsError, match="unknown weights format"):
        weights_format("model.ckpt")
    model = build_model(model_config)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_weights(model, str(tmp_path / "absent.weights.h5"))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(WeightsError, match="cannot be read as a Keras model"):
        load_weights(model, str(broken))


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_files_of_the_training_task_load_into_the_network(tiny_files, tmp_path, suffix):
    """Training saves the task (the network plus its optimizer); eval, detect and export load
    those files into the bare network, and the other way round."""
    from cornernet_tf.training.task import build_model as build_task

    source, root = tiny_files
    task = build_task(load_config(TINY).model)
    task.set_weights(source.get_weights())
    task.compile(optimizer="adam")
    path = str(tmp_path / f"task{suffix}")
    if suffix == ".keras":
        task.save(path)
    else:
        task.save_weights(path)
    network = build_model(load_config(TINY).model)
    assert not _same_weights(network, source)
    load_weights(network, path)
    assert _same_weights(network, source)
    fresh_task = build_task(load_config(TINY).model)
    load_weights(fresh_task, str(root / f"tiny{suffix}"))
    assert _same_weights(fresh_task, source)
