"""Typed configuration: shipped configs, ``--set`` overrides, validation errors, ``base:`` inheritance."""

import pathlib

import pytest
import yaml

from cornernet_tf.config import (
    COCO_MEAN_RGB,
    Config,
    ConfigError,
    ModelConfig,
    load_config,
    load_model_config,
)

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))
TINY = CONFIG_DIR / "cornernet_tiny.yaml"
HG104 = CONFIG_DIR / "cornernet_hg104_coco.yaml"


def _write(tmp_path, name: str, data: dict) -> pathlib.Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _error(source, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return str(info.value)


# --------------------------------------------------------------------------- shipped configs


def test_configs_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"cornernet_hg104_coco.yaml", "cornernet_tiny.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_loads_and_validates(path):
    config = load_config(path)
    assert isinstance(config, Config)
    config.validate()
    model = config.model
    # Input sizes must give maps that the hourglass can halve n times (docs/method.md §2).
    map_h, map_w = config.data.output_hw
    assert map_h % 2**model.depth == 0 and map_w % 2**model.depth == 0, (
        path.name,
        config.data.input_size,
    )
    assert model.stem_dims[-1] == model.dims[0]


def test_hg104_config_is_the_paper_network():
    model = load_config(HG104).model
    assert model == ModelConfig()  # the defaults are CornerNet511
    assert (model.num_stacks, model.dims, model.modules) == (
        2,
        [256, 256, 384, 384, 384, 512],
        [2, 2, 2, 2, 2, 4],
    )
    assert model.bn_epsilon == 1e-5 and model.heat_bias_init == -2.19


# --------------------------------------------------------------------------- overrides


def test_set_overrides_parse_ints_floats_lists_and_null():
    config = load_config(
        TINY,
        [
            "model.num_classes=7",
            "train.learning_rate=0.002",
            "train.pull_weight=1e-2",  # YAML reads this as a string; a float field accepts it
            "data.input_size=[127, 255]",
            "data.rand_scales=[0.5, 1]",
            "model.head_dim=null",
            "train.mixed_precision=mixed_float16",
            "data.flip=false",
            "name=renamed",
        ],
    )
    assert config.model.num_classes == 7 and isinstance(config.model.num_classes, int)
    assert config.train.learning_rate == pytest.approx(0.002)
    assert config.train.pull_weight == pytest.approx(0.01) and isinstance(
        config.train.pull_weight, float
    )
    assert config.data.input_size == [127, 255]
    assert config.data.rand_scales == [0.5, 1.0] and all(
        isinstance(v, float) for v in config.data.rand_scales
    )
    assert config.model.head_dim is None
    assert config.train.mixed_precision == "mixed_float16"
    assert config.data.flip is False
    assert config.name == "renamed"
    # Untouched values keep the file's values, and the file's defaults.
    assert config.model.dims == [32, 48, 64, 96]
    assert config.data.mean == list(COCO_MEAN_RGB)


def test_set_override_of_a_missing_section_creates_it():
    config = load_config(None, ["export.max_detections=5"])
    assert config.export.max_detections == 5
    assert config.model == ModelConfig()


def test_set_override_applies_to_a_config_object():
    base = load_config(TINY)
    changed = load_config(base, ["model.num_stacks=2"])
    assert changed.model.num_stacks == 2 and base.model.num_stacks == 1


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("model.num_classes", "key=value"),
        ("model.dims.x=3", "model.dims.x"),
        ("model.unknown_width=3", "model.unknown_width"),
        ("model.num_classes=abc", "model.num_classes must be an integer"),
        ("train.learning_rate=fast", "train.learning_rate must be a number"),
    ],
)
def test_bad_set_overrides(assignment, fragment):
    assert fragment in _error(TINY, [assignment])


# --------------------------------------------------------------------------- validation errors


def _model_file(tmp_path, **model):
    base = yaml.safe_load(TINY.read_text())
    base["model"].update(model)
    return _write(tmp_path, "bad.yaml", base)


@pytest.mark.parametrize(
    "model, key, fragment",
    [
        (dict(num_clases=3), "model.num_clases", "unknown key"),
        (dict(num_classes="three"), "model.num_classes", "must be an integer"),
        (dict(dims="wide"), "model.dims", "must be a list"),
        (dict(dims=[32, 48, "x", 96]), "model.dims[2]", "must be an integer"),
        (dict(cnv_dim=1.5), "model.cnv_dim", "must be an integer"),
        (dict(dims=[32, -48, 64, 96]), "model.dims", "positive"),
        (dict(stem_dims=[0, 32]), "model.stem_dims", "positive"),
        (dict(cnv_dim=-1), "model.cnv_dim", ">= 1"),
        (dict(pool_dim=0), "model.pool_dim", ">= 1"),
        (dict(head_dim=0), "model.head_dim", ">= 1"),
        (dict(num_classes=0), "model.num_classes", ">= 1"),
        (dict(num_stacks=0), "model.num_stacks", ">= 1"),
        (dict(modules=[1, 1, 2]), "model.modules", "length of dims"),
        (dict(dims=[32], modules=[1]), "model.dims", "at least 2"),
        (dict(stem_dims=[16, 48]), "model.stem_dims[-1]", "dims[0]"),
        (dict(corner_pool_impl="fast"), "model.corner_pool_impl", "auto|native|tf|scan"),
    ],
)
def test_invalid_model_values_name_the_key_and_the_file(tmp_path, model, key, fragment):
    path = _model_file(tmp_path, **model)
    message = _error(path)
    assert str(path) in message
    assert key in message
    assert fragment in message
    assert message.count(str(path)) == 1, message  # one error, reported once


def test_invalid_values_in_other_sections_name_the_key_and_the_file(tmp_path):
    path = _write(tmp_path, "bad.yaml", {"train": {"batch_size": 0}})
    message = _error(path)
    assert str(path) in message and "train.batch_size" in message
    path = _write(tmp_path, "bad2.yaml", {"data": {"input_size": [511]}})
    message = _error(path)
    assert str(path) in message and "data.input_size" in message
    path = _write(tmp_path, "bad3.yaml", {"test": {"nms_kernel": 2}})
    assert "test.nms_kernel" in _error(path)


def test_section_that_is_not_a_mapping(tmp_path):
    path = _write(tmp_path, "bad.yaml", {"model": [1, 2]})
    message = _error(path)
    assert str(path) in message and "model must be a mapping" in message


def test_file_errors(tmp_path):
    assert "not found" in _error(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    message = _error(broken)
    assert str(broken) in message and "YAML" in message
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    assert "mapping" in _error(scalar)


def test_validation_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --------------------------------------------------------------------------- base: inheritance


def test_shipped_configs_inherit_from_hg104():
    hg104 = load_config(HG104)
    hg52 = load_config(CONFIG_DIR / "cornernet_hg52.yaml")
    assert hg52.model.num_stacks == 1
    assert (
        hg52.model.dims == hg104.model.dims
        and hg52.data == hg104.data
        and hg52.train == hg104.train
    )
    multi = load_config(CONFIG_DIR / "cornernet_hg104_coco_multiscale.yaml")
    assert multi.test.scales == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert multi.test.merge_bbox is True and multi.test.weight_exp == 10
    assert multi.test.top_k == hg104.test.top_k and multi.model == hg104.model
    assert multi.name == "cornernet_hg104_coco_multiscale"


def test_base_merges_deeply_and_chains(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    _write(
        tmp_path,
        "grand.yaml",
        {
            "model": {"num_classes": 5, "dims": [8, 16], "modules": [1, 1], "stem_dims": [4, 8]},
            "train": {"batch_size": 3},
        },
    )
    _write(
        sub,
        "parent.yaml",
        {"base": "../grand.yaml", "model": {"num_classes": 6}, "train": {"max_steps": 10}},
    )
    child = _write(sub, "child.yaml", {"base": "parent.yaml", "model": {"cnv_dim": 12}})
    config = load_config(child, ["train.batch_size=4"])
    assert config.model.num_classes == 6  # parent overrides grandparent
    assert config.model.dims == [8, 16] and config.model.stem_dims == [
        4,
        8,
    ]  # kept from grandparent
    assert config.model.cnv_dim == 12
    assert config.train.max_steps == 10 and config.train.batch_size == 4


def test_base_errors(tmp_path):
    missing = _write(tmp_path, "a.yaml", {"base": "nowhere.yaml"})
    message = _error(missing)
    assert str(missing) in message and "nowhere.yaml" in message
    _write(tmp_path, "loop1.yaml", {"base": "loop2.yaml"})
    loop2 = _write(tmp_path, "loop2.yaml", {"base": "loop1.yaml"})
    assert "circular" in _error(loop2)
    bad = _write(tmp_path, "bad_base.yaml", {"base": 3})
    assert "base" in _error(bad)


# --------------------------------------------------------------------------- model config sources


def test_load_model_config_accepts_every_form(tmp_path):
    from_path = load_model_config(TINY)
    from_str = load_model_config(str(TINY))
    from_config = load_model_config(load_config(TINY))
    from_model = load_model_config(from_path)
    from_dict = load_model_config(
        dict(
            num_classes=3,
            num_stacks=1,
            dims=[32, 48, 64, 96],
            modules=[1, 1, 1, 2],
            stem_dims=[16, 32],
            cnv_dim=48,
            pool_dim=32,
            head_dim=32,
        )
    )
    assert from_path == from_str == from_config == from_model == from_dict
    assert from_model is from_path  # a ModelConfig is used as given


def test_load_model_config_validates_every_form():
    with pytest.raises(ConfigError, match="model.num_classes"):
        load_model_config(ModelConfig(num_classes=0))
    with pytest.raises(ConfigError, match="model.num_clases"):
        load_model_config({"num_clases": 3})
    with pytest.raises(ConfigError, match="model.dims"):
        load_model_config({"dims": "wide"})
    bad = Config()
    bad.model.stem_dims = [128, 128]
    with pytest.raises(ConfigError, match=r"stem_dims\[-1\]"):
        load_model_config(bad)


def test_build_model_accepts_every_form():
    from cornernet_tf import build_model

    sources = [
        TINY,
        str(TINY),
        load_config(TINY),
        load_model_config(TINY),
        load_config(TINY).to_dict()["model"],
    ]
    counts = set()
    for source in sources:
        model = build_model(source)
        assert model.model_config == load_model_config(TINY)
        counts.add(model.count_params())
    assert len(counts) == 1
    with pytest.raises(ConfigError, match="model.num_classes"):
        build_model({"num_classes": 0})


# --------------------------------------------------------------------------- derived output size


@pytest.mark.parametrize(
    "path, input_size, output_size",
    [
        (HG104, [511, 511], [128, 128]),  # the official CornerNet511 maps
        (CONFIG_DIR / "cornernet_squeeze.yaml", [511, 511], [64, 64]),  # official Squeeze: 64
        (CONFIG_DIR / "cornernet_squeeze_tiny.yaml", [191, 191], [24, 24]),
        (TINY, [127, 127], [32, 32]),
    ],
)
def test_output_size_follows_the_model_stride(path, input_size, output_size):
    config = load_config(path)
    assert config.data.input_size == input_size
    assert list(config.data.output_hw) == output_size
    assert config.to_dict()["data"]["output_size"] is None  # derived, not written back


def test_derived_output_size_follows_later_overrides():
    base = load_config(TINY)
    assert base.data.output_hw == (32, 32)
    changed = load_config(base, ["model.backbone=squeeze", "data.input_size=[191,191]"])
    assert changed.data.output_hw == (24, 24)


def test_a_stated_output_size_must_agree_with_the_model():
    assert load_config(TINY, ["data.output_size=[32,32]"]).data.output_hw == (32, 32)
    message = _error(CONFIG_DIR / "cornernet_squeeze_tiny.yaml", ["data.output_size=[48,48]"])
    assert "data.output_size [48, 48]" in message and "output stride 8 gives [24, 24]" in message
    assert "cornernet_squeeze_tiny.yaml" in message
