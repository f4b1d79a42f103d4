"""The golden reference data in ``tests/data``: reading it, and the reduced model it was made with.

The ``.npz`` files hold inputs and outputs of the official implementation (model, corner pooling,
targets, losses, augmentation, the test procedure); tests compare against them unchanged.
"""

import pathlib

import numpy as np

DATA_DIR = pathlib.Path(__file__).parent / "data"


def load_golden(name: str) -> dict:
    """Every array of ``tests/data/<name>`` (an ``.npz``), by key."""
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


# The CornerNet-Lite golden files (tests/data/lite/README.md): a reduced CornerNet-Squeeze.
LITE_DIR = DATA_DIR / "lite"


def load_lite_golden(name: str) -> dict:
    """Every array of ``tests/data/lite/<name>`` (an ``.npz``), by key."""
    with np.load(LITE_DIR / name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


# The reduced CornerNet-Squeeze of tests/data/lite/squeeze_model_config.json, in our model fields:
# hg_module(n=4, dims, modules), 2 stacks, stem 3->8->16->16, cnv 16, heads 16 wide, 5 classes.
GOLDEN_SQUEEZE_CONFIG = dict(
    backbone="squeeze",
    num_classes=5,
    num_stacks=2,
    dims=[16, 16, 24, 24, 32],
    modules=[2, 2, 2, 2, 4],
    stem_dims=[8, 16],
    cnv_dim=16,
    pool_dim=128,
    head_dim=16,
)
