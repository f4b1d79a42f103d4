"""Shared fixtures: the golden reduced model (helpers for the golden data are in ``golden.py``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json

import pytest
from golden import DATA_DIR, GOLDEN_MODEL_CONFIG, load_golden


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
