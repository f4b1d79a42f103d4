"""Config values that must be refused: duplicate YAML keys, non-finite floats, out-of-range
numbers (every numeric field has a rule), and the learning-rate decay as a fraction of
max_steps. A fuzz test throws random values at random keys: a config loads or raises
ConfigError, never anything else."""

import dataclasses
import math
import pathlib

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cornernet_tf.config import (
    Config,
    ConfigError,
    DataConfig,
    ExportConfig,
    ModelConfig,
    TestConfig,
    TrainConfig,
    load_config,
)
from cornernet_tf.config_ranges import MAX_CLASSES, RANGES, numeric_fields

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
TINY = CONFIG_DIR / "cornernet_tiny.yaml"
SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "test": TestConfig,
    "export": ExportConfig,
}


def _error(source, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return str(info.value)


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_key_in_a_file_names_the_key_the_file_and_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("model:\n  num_classes: 3\n  cnv_dim: 48\n  num_classes: 5\n")
    message = _error(path)
    assert str(path) in message and "duplicate key 'num_classes'" in message
    assert "first given at line 2" in message and "line 4" in message


def test_duplicate_section_at_the_top_level(tmp_path):
    path = tmp_path / "sections.yaml"
    path.write_text("train:\n  batch_size: 2\nmodel: {}\ntrain:\n  max_steps: 9\n")
    assert "duplicate key 'train'" in _error(path)


def test_duplicate_key_in_a_base_config_names_that_file(tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text("data:\n  border: 8\n  border: 16\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: parent.yaml\ntrain:\n  batch_size: 2\n")
    message = _error(child)
    assert str(parent) in message and "duplicate key 'border'" in message


def test_duplicate_key_in_a_set_value():
    message = _error(TINY, ["model={num_stacks: 1, num_stacks: 2}"])
    assert "--set model={num_stacks: 1, num_stacks: 2}" in message
    assert "duplicate key 'num_stacks'" in message


def test_a_child_may_still_override_its_base_and_set_may_repeat(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {TINY}\nmodel:\n  num_classes: 5\n")
    config = load_config(child, ["train.batch_size=2", "train.batch_size=3"])
    assert config.model.num_classes == 5 and config.train.batch_size == 3


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("data.shuffle_buffer=-5", "data.shuffle_buffer must be in [1, 1000000], got -5"),
        ("test.num_dets=0", "test.num_dets must be in [1, 1000000], got 0"),
        ("model.num_classes=100000000", "model.num_classes must be in [1, 10000], got 100000000"),
        ("export.max_detections=100000", "export.max_detections must be in [1, 10000]"),
        ("data.input_size=[127, 100000]", "data.input_size[1] must be in [1, 4096]"),
        ("model.dims=[32, 48, 64, 9000]", "model.dims[3] must be in [1, 4096]"),
        ("data.num_parallel_calls=-3", "data.num_parallel_calls must be -1 or in [1, 1024]"),
        ("train.learning_rate=100", "train.learning_rate must be in (0, 10]"),
        ("test.score_threshold=1.5", "test.score_threshold must be in [0, 1]"),
        ("train.seed=-1", "train.seed must be in [0, 2147483647]"),
        ("data.std=[0.2, 0, 0.2]", "data.std"),
        ("model.bn_momentum=1", "model.bn_momentum must be in [0, 1)"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_file(assignment, fragment):
    message = _error(TINY, [assignment])
    assert fragment in message and str(TINY) in message


@pytest.mark.parametrize(
    "assignment, key",
    [
        ("data.mean=[.nan, 0.4, 0.4]", "data.mean[0]"),
        ("model.heat_bias_init=.inf", "model.heat_bias_init"),
        ("model.heat_bias_init=-.inf", "model.heat_bias_init"),
        ("train.learning_rate=1e999", "train.learning_rate"),
        ("test.scales=[1.0, .nan]", "test.scales[1]"),
    ],
)
def test_non_finite_floats_are_refused(assignment, key):
    message = _error(TINY, [assignment])
    assert f"{key} must be a finite number" in message


def test_non_finite_values_in_a_file(tmp_path):
    path = tmp_path / "nan.yaml"
    path.write_text("model:\n  heat_bias_init: .nan\n")
    message = _error(path)
    assert str(path) in message and "model.heat_bias_init must be a finite number" in message


def test_values_set_in_python_are_checked_too():
    config = Config(model=ModelConfig(heat_bias_init=math.nan))
    with pytest.raises(ConfigError, match="model.heat_bias_init must be a finite number"):
        config.validate()
    with pytest.raises(ConfigError, match=r"data.mean\[2\] must be a finite number"):
        DataConfig(mean=[0.4, 0.4, math.inf]).validate()


def test_every_numeric_field_has_a_range_rule():
    for name, section in SECTIONS.items():
        fields = numeric_fields(section)
        assert fields, name
        assert set(fields) <= set(RANGES[section.__name__]), (name, fields)
        assert set(RANGES[section.__name__]) <= set(fields), name  # no stale rules


def _just_outside(rule):
    """Values a rule must refuse: beyond each bound (or the bound itself when open)."""
    out = []
    if rule.low is not None:
        out.append(rule.low if rule.low_open else rule.low - 1)
    if rule.high is not None:
        out.append(rule.high if rule.high_open else rule.high + 1)
    return [v for v in out if v not in rule.also]


def test_every_rule_refuses_the_values_just_outside_it():
    checked = 0
    for name, section in SECTIONS.items():
        for field, rule in RANGES[section.__name__].items():
            inside = rule.low if not rule.low_open else rule.low + min(1e-3, rule.high / 2)
            assert rule.accepts(inside), (name, field)
            for value in _just_outside(rule):
                assert not rule.accepts(value), (name, field, value)
                checked += 1
    assert checked > 2 * 50


def test_every_shipped_config_is_within_the_ranges():
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        load_config(path)


def test_class_limit_is_generous_for_real_vocabularies():
    assert load_config(TINY, ["model.num_classes=1203"]).model.num_classes == 1203  # LVIS
    assert load_config(TINY, [f"model.num_classes={MAX_CLASSES}"]).model.num_classes == MAX_CLASSES


# --------------------------------------------------------------------------- decay_step


def test_decay_step_as_a_fraction_follows_max_steps():
    config = load_config(TINY)
    assert config.train.decay_step == pytest.approx(0.8667)
    assert config.train.decay_at == 2600
    assert load_config(TINY, ["train.max_steps=1500"]).train.decay_at == 1300
    learn = load_config(CONFIG_DIR / "cornernet_tiny_learn.yaml")
    assert (learn.train.max_steps, learn.train.decay_at) == (4500, 3900)


def test_paper_configs_keep_their_absolute_decay_step():
    hg104 = load_config(CONFIG_DIR / "cornernet_hg104_coco.yaml").train
    assert (hg104.max_steps, hg104.decay_step, hg104.decay_at) == (500000, 450000, 450000)
    defaults = load_config(None).train
    assert (defaults.max_steps, defaults.decay_at) == (500000, 450000)  # 0.9 of 500,000


def test_decay_step_one_point_zero_is_a_fraction_and_one_is_a_step():
    whole = load_config(TINY, ["train.decay_step=1.0"]).train
    assert isinstance(whole.decay_step, float) and whole.decay_at == 3000
    assert load_config(TINY, ["train.decay_step=1"]).train.decay_at == 1
    saved = yaml.safe_load(yaml.safe_dump(load_config(TINY).to_dict()))
    assert load_config(saved).train.decay_at == 2600  # the fraction survives config.yaml


def test_absolute_decay_step_after_max_steps_is_an_error():
    message = _error(CONFIG_DIR / "cornernet_hg104_coco.yaml", ["train.max_steps=1500"])
    assert "train.decay_step (450000) is beyond train.max_steps (1500)" in message
    assert "never decay" in message
    assert "(0, 1]" in _error(TINY, ["train.decay_step=1.5"])


# --------------------------------------------------------------------------- fuzz

_ALL_KEYS = sorted(
    [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    + ["name", "model", "data", "unknown", "model.unknown"]
)
_BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(-5, 10**7), st.floats(), st.text(max_size=3)), max_size=7),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    changes=st.lists(st.tuples(st.sampled_from(_ALL_KEYS), _BAD_VALUES), min_size=1, max_size=3),
    as_text=st.booleans(),
)
def test_random_values_for_random_keys_load_or_raise_config_error(changes, as_text):
    if as_text:  # through --set, as YAML text
        overrides = [
            f"{key}={yaml.safe_dump(value, default_flow_style=True)}" for key, value in changes
        ]
        overrides = [o.replace("\n...\n", "").rstrip("\n") for o in overrides]
    else:  # in a mapping, as a file would give it
        overrides = []
    tree = {}
    if not as_text:
        for key, value in changes:
            node = tree
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node
            if isinstance(node, dict):
                node[leaf] = value
    try:
        config = load_config(str(TINY), overrides) if as_text else load_config(tree)
    except ConfigError:
        return
    # What loads is sane: every number finite and in range.
    for section in SECTIONS:
        getattr(config, section).validate(section)
