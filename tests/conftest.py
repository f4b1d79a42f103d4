"""Shared fixtures: golden reference data and small configs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import pathlib

import numpy as np
import pytest

DATA_DIR = pathlib.Path(__file__).parent / "data"


def load_golden(name: str) -> dict:
    with np.load(DATA_DIR / name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


# The golden reduced model (tests/data/model_config.json): the official structure, narrow widths.
GOLDEN_MODEL_CONFIG = dict(
    num_classes=3,
    num_stacks=2,
    dims=[16, 16, 24, 24, 24, 32],
    modules=[2, 2, 2, 2, 2, 4],
    stem_dims=[8, 16],
    cnv_dim=24,
    pool_dim=128,
    head_dim=None,
)


@pytest.fixture(scope="session")
def golden_model_config():
    config = json.loads((DATA_DIR / "model_config.json").read_text())["config"]
    assert config["dims"] == GOLDEN_MODEL_CONFIG["dims"]
    return dict(GOLDEN_MODEL_CONFIG)


@pytest.fixture(scope="session")
def golden_model(golden_model_config):
    """The golden reduced model with the official weights loaded (shared: do not modify)."""
    from cornernet_tf.convert import load_official_weights
    from cornernet_tf.modeling.cornernet import build_model

    model = build_model(golden_model_config)
    load_official_weights(model, load_golden("model_weights.npz"))
    return model
