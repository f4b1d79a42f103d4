"""benchmarks/official_sampler.py runs without this package (in a Python with OpenCV), so it
carries its own copy of the official constants; they must be the ones cornernet_tf uses."""

import ast
import os

import numpy as np

from cornernet_tf.config import (
    COCO_EIGVAL,
    COCO_EIGVEC_BGR,
    COCO_MEAN_RGB,
    COCO_STD_RGB,
    DataConfig,
    ModelConfig,
)

SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "benchmarks", "official_sampler.py"
)


def _constants() -> dict:
    """Module-level ``NAME = literal`` and ``NAME = np.f(literal, ...)`` assignments of the script."""
    with open(SCRIPT, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    found = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        name = getattr(node.targets[0], "id", None)
        if not name or not name.isupper():
            continue
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "value", None) is not None:
            args = [ast.literal_eval(a) for a in value.args]
            found[name] = (value.func.attr, args)
        else:
            found[name] = ast.literal_eval(value)
    return found


def test_official_sampler_constants_agree_with_the_package():
    c = _constants()
    config = DataConfig()
    assert c["MEAN_BGR"] == ("array", [list(COCO_MEAN_RGB[::-1])])
    assert c["STD_BGR"] == ("array", [list(COCO_STD_RGB[::-1])])
    assert c["EIG_VAL"] == ("array", [list(COCO_EIGVAL)])
    assert c["EIG_VEC"] == ("array", [[list(row) for row in COCO_EIGVEC_BGR]])
    assert list(c["INPUT_SIZE"]) == config.input_size
    assert tuple(c["OUTPUT_SIZE"]) == config.output_hw
    assert c["MAX_TAG_LEN"] == config.max_objects
    assert c["GAUSSIAN_IOU"] == config.gaussian_iou
    assert c["BORDER"] == config.border
    assert c["JITTER_VAR"] == config.jitter_strength
    assert c["LIGHTING_STD"] == config.lighting_std
    func, args = c["RAND_SCALES"]
    assert func == "arange"
    np.testing.assert_array_equal(np.arange(*args), np.asarray(config.rand_scales))
    assert c["CATEGORIES"] == ModelConfig().num_classes
    assert c["STAGES"] == ("read", "crop", "resize", "colour", "targets")
