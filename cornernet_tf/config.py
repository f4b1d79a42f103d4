"""Typed configuration: dataclasses loaded from YAML with ``--set a.b=c`` overrides.

Every number that comes from the paper or the official code has its single home here as a
default (see docs/method.md); YAML files under ``configs/`` only state what differs. Unknown keys
and values of the wrong type are errors that name the key and the file, because a typo in a
config should never silently train the wrong model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from cornernet_tf.config_files import resolve_config_path
from cornernet_tf.config_ranges import range_problem
from cornernet_tf.errors import UserError

# COCO statistics of the official code, given there in BGR order; we keep them in RGB order
# because our network reads RGB (the converter flips the stem convolution to match).
COCO_MEAN_RGB = (0.47026115, 0.44719302, 0.40789654)
COCO_STD_RGB = (0.27809835, 0.27408164, 0.28863828)
# PCA lighting of the official sampler, stored as the official code has it (BGR channel order);
# cornernet_tf/data/augment.py derives the RGB version (rows reversed).
COCO_EIGVAL = (0.2141788, 0.01817699, 0.00341571)
COCO_EIGVEC_BGR = (
    (-0.58752847, -0.69563484, 0.41340352),
    (-0.5832747, 0.00994535, -0.81221408),
    (-0.56089297, 0.71832671, 0.41158938),
)


# Input pixels per output-map pixel of each backbone (docs/method.md §2): the hourglass stem
# down-samples 4x, CornerNet-Squeeze's 8x. The one home of the backbone names and of the stride
# that the target maps (data.output_size) and the test procedure follow.
BACKBONE_OUTPUT_STRIDES = {"hourglass": 4, "squeeze": 8}
# data.batch_format values (cornernet_tf.data.finish.resolve_batch_format picks for "auto").
BATCH_FORMATS = ("auto", "dense", "compact")


def _official_rand_scales() -> list[float]:
    import numpy as np

    return [float(v) for v in np.arange(0.6, 1.4, 0.1)]


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, of the wrong type, or out of range."""


@dataclass
class ModelConfig:
    """The network. Defaults are CornerNet511 (Hourglass-104, docs/method.md §2)."""

    num_classes: int | None = 80  # null = the dataset's category count (data/classes.py)
    backbone: str = "hourglass"  # hourglass | squeeze (CornerNet-Lite style, for TFLite)
    num_stacks: int = 2
    dims: list[int] = field(default_factory=lambda: [256, 256, 384, 384, 384, 512])
    modules: list[int] = field(default_factory=lambda: [2, 2, 2, 2, 2, 4])
    stem_dims: list[int] = field(default_factory=lambda: [128, 256])
    cnv_dim: int = 256
    pool_dim: int = 128
    head_dim: int | None = None  # None = dims[0], as the official heads use
    corner_pool_impl: str = "auto"  # auto | native | tf | scan
    heat_bias_init: float = -2.19  # focal-loss prior, -log((1 - 0.1) / 0.1)
    bn_epsilon: float = 1e-5  # torch default; Keras' 1e-3 would break weight parity
    bn_momentum: float = 0.9  # torch momentum 0.1

    def validate(self, where: str = "model") -> None:
        _check(
            self.num_classes is None or self.num_classes >= 1,
            f"{where}.num_classes must be >= 1 or null (from the dataset), got {self.num_classes}",
        )
        _check(self.num_stacks >= 1, f"{where}.num_stacks must be >= 1, got {self.num_stacks}")
        _check(len(self.dims) >= 2, f"{where}.dims needs at least 2 entries, got {self.dims}")
        _check(
            len(self.modules) == len(self.dims),
            f"{where}.modules must have the length of dims ({len(self.dims)}), got {self.modules}",
        )
        for name in ("dims", "modules", "stem_dims"):
            for v in getattr(self, name):
                _check(
                    v >= 1, f"{where}.{name} must hold positive values, got {getattr(self, name)}"
                )
        _check(len(self.stem_dims) == 2, f"{where}.stem_dims must be [conv7x7_out, residual_out]")
        _check(
            self.stem_dims[-1] == self.dims[0],
            f"{where}.stem_dims[-1] ({self.stem_dims[-1]}) must equal dims[0] ({self.dims[0]})",
        )
        for name in ("cnv_dim", "pool_dim"):
            _check(
                getattr(self, name) >= 1, f"{where}.{name} must be >= 1, got {getattr(self, name)}"
            )
        _check(
            self.head_dim is None or self.head_dim >= 1,
            f"{where}.head_dim must be >= 1 or null, got {self.head_dim}",
        )
        _check(
            self.corner_pool_impl in ("auto", "native", "tf", "scan"),
            f"{where}.corner_pool_impl must be auto|native|tf|scan, got {self.corner_pool_impl!r}",
        )
        _check(
            self.backbone in BACKBONE_OUTPUT_STRIDES,
            f"{where}.backbone must be {'|'.join(BACKBONE_OUTPUT_STRIDES)}, got {self.backbone!r}",
        )
        check_ranges(self, where)

    @property
    def depth(self) -> int:
        """Hourglass recursion depth n."""
        return len(self.dims) - 1

    @property
    def output_stride(self) -> int:
        """Input pixels per output-map pixel: 4 for the hourglass, 8 for CornerNet-Squeeze."""
        return BACKBONE_OUTPUT_STRIDES[self.backbone]

    @property
    def stride_multiple(self) -> int:
        """Input sizes must make the reduced map divisible by 2**n (docs/method.md §2)."""
        return self.output_stride * 2**self.depth


@dataclass
class DataConfig:
    """Datasets, augmentation and target encoding (docs/method.md §3-4)."""

    train_annotations: str | None = None  # COCO JSON
    train_images: str | None = None  # image folder
    val_annotations: str | None = None
    val_images: str | None = None
    tfds_name: str | None = None  # e.g. coco/2017
    tfds_train_split: str = "train"
    tfds_val_split: str = "validation"
    tfds_data_dir: str | None = None
    train_tfrecords: str | None = None  # glob of shards
    val_tfrecords: str | None = None
    class_names: list[str] | None = None  # filled from the dataset when null
    input_size: list[int] = field(default_factory=lambda: [511, 511])  # (height, width)
    # Photos are used as if resized by this factor, in training crops and at test (test.scales
    # are multiplied by it); "auto": derived from the training boxes (data/image_scale.py).
    image_scale: float | str = 1.0
    output_size: list[int] | None = None  # None = ceil(input / model output stride) per axis
    max_objects: int = 128
    # Objects drawn on the heatmaps of a compact batch (>= max_objects); more are counted, not drawn.
    max_heatmap_objects: int = 1024
    # Training batches: compact (uint8 images, heatmaps drawn in the train step), dense (float
    # images and heatmaps from the input pipeline) or auto (compact when a GPU/TPU trains and
    # train.jit_compile is off, else dense).
    batch_format: str = "auto"
    gaussian_iou: float = 0.3
    radius_mode: str = "object"  # object | fixed | none (Table 2 ablations)
    fixed_radius: float = 2.5
    augment: bool = True
    # np.arange(0.6, 1.4, 0.1) as the official sampler builds it: its values are an ulp below the
    # decimal literals (0.9999999999999999), which decides the crop size at 511 (510, not 511).
    rand_scales: list[float] = field(default_factory=_official_rand_scales)
    border: int = 128
    flip: bool = True
    color_jitter: bool = True
    jitter_strength: float = 0.4
    lighting: bool = True
    lighting_std: float = 0.1
    mean: list[float] = field(default_factory=lambda: list(COCO_MEAN_RGB))
    std: list[float] = field(default_factory=lambda: list(COCO_STD_RGB))
    shuffle_buffer: int = 512
    num_parallel_calls: int = -1  # -1 = tf.data.AUTOTUNE
    deterministic: bool = False
    seed: int | None = None

    def validate(self, where: str = "data") -> None:
        _check(len(self.input_size) == 2, f"{where}.input_size must be [height, width]")
        _check(
            min(self.input_size) >= 1, f"{where}.input_size must be positive, got {self.input_size}"
        )
        _check(
            self.output_size is None or (len(self.output_size) == 2 and min(self.output_size) >= 1),
            f"{where}.output_size must be null or [height, width] > 0, got {self.output_size}",
        )
        _check(self.max_objects >= 1, f"{where}.max_objects must be >= 1, got {self.max_objects}")
        _check(
            self.max_heatmap_objects >= self.max_objects,
            f"{where}.max_heatmap_objects must be >= max_objects ({self.max_objects}), "
            f"got {self.max_heatmap_objects}",
        )
        _check(
            self.batch_format in BATCH_FORMATS,
            f"{where}.batch_format must be {'|'.join(BATCH_FORMATS)}, got {self.batch_format!r}",
        )
        _check(
            0.0 < self.gaussian_iou < 1.0,
            f"{where}.gaussian_iou must be in (0, 1), got {self.gaussian_iou}",
        )
        _check(
            self.radius_mode in ("object", "fixed", "none"),
            f"{where}.radius_mode must be object|fixed|none, got {self.radius_mode!r}",
        )
        _check(len(self.mean) == 3 and len(self.std) == 3, f"{where}.mean/std need 3 values (RGB)")
        _check(min(self.std) > 0, f"{where}.std must be positive, got {self.std}")
        _check(len(self.rand_scales) >= 1, f"{where}.rand_scales must not be empty")
        _check(
            self.image_scale == "auto"
            or (not isinstance(self.image_scale, str) and self.image_scale > 0),
            f"{where}.image_scale must be a number > 0 or auto, got {self.image_scale!r}",
        )
        check_ranges(self, where)

    def derived_output_hw(self, output_stride: int) -> tuple[int, int]:
        """The network's map size for ``input_size``: each stride-2 layer pads symmetrically, so
        every axis is ``ceil(input / output_stride)``."""
        return tuple(-(-int(size) // output_stride) for size in self.input_size)

    def resolve_output_size(self, output_stride: int, where: str = "data") -> None:
        """Fill ``output_size`` from the model's stride, or check a given one against it.

        A filled-in size is remembered as derived, so ``Config.to_dict`` writes it back as null
        and a later change of ``input_size`` or ``backbone`` derives it again.
        """
        derived = list(self.derived_output_hw(output_stride))
        if self.output_size is None:
            self.output_size = derived
            self._derived_output_size = True
        _check(
            list(self.output_size) == derived,
            f"{where}.output_size {self.output_size} disagrees with the model: input_size "
            f"{self.input_size} at output stride {output_stride} gives {derived} (leave it out "
            "to derive it)",
        )

    @property
    def output_hw(self) -> tuple[int, int]:
        """Target map size; without a model (a bare DataConfig) the hourglass stride is assumed."""
        if self.output_size is not None:
            return int(self.output_size[0]), int(self.output_size[1])
        return self.derived_output_hw(BACKBONE_OUTPUT_STRIDES["hourglass"])


@dataclass
class TrainConfig:
    """Optimisation and distribution (docs/method.md §4; official recipe as defaults)."""

    batch_size: int = 49  # global batch
    max_steps: int = 500_000
    learning_rate: float = 2.5e-4
    # lr / decay_factor from this step on: an int is a step, a float in (0, 1] a fraction of
    # max_steps (the official 450,000 of 500,000 is 0.9), which follows a changed max_steps.
    decay_step: int | float = 0.9
    decay_factor: float = 10.0
    scale_lr_with_replicas: bool = False  # linear rule relative to base_batch_size when true
    base_batch_size: int = 49
    strategy: str = "auto"  # auto | default | mirrored | multi_worker | tpu
    mixed_precision: str | None = None  # mixed_float16 | mixed_bfloat16
    jit_compile: bool = False
    focal_weight: float = 1.0
    pull_weight: float = 0.1
    push_weight: float = 0.1
    regr_weight: float = 1.0
    steps_per_epoch: int = 1000  # granularity of callbacks (checkpoints, logs, validation)
    validation_steps: int | None = None
    val_every_epochs: int = 1
    val_ap_images: int = 200  # COCO AP on this many validation images at each validation; 0 = off
    checkpoint_every_epochs: int = 1
    backup_every_steps: int = (
        0  # fault-tolerance backup (weights + optimizer) period; 0 = each epoch
    )
    seed: int = 0

    def validate(self, where: str = "train") -> None:
        _check(self.batch_size >= 1, f"{where}.batch_size must be >= 1, got {self.batch_size}")
        _check(self.max_steps >= 1, f"{where}.max_steps must be >= 1, got {self.max_steps}")
        _check(
            self.learning_rate > 0, f"{where}.learning_rate must be > 0, got {self.learning_rate}"
        )
        _check(
            self.strategy in ("auto", "default", "mirrored", "multi_worker", "tpu"),
            f"{where}.strategy must be auto|default|mirrored|multi_worker|tpu, got {self.strategy!r}",
        )
        _check(
            self.mixed_precision in (None, "mixed_float16", "mixed_bfloat16"),
            f"{where}.mixed_precision must be null|mixed_float16|mixed_bfloat16, got {self.mixed_precision!r}",
        )
        _check(self.steps_per_epoch >= 1, f"{where}.steps_per_epoch must be >= 1")
        if isinstance(self.decay_step, float):
            _check(
                0.0 < self.decay_step <= 1.0,
                f"{where}.decay_step {self.decay_step} is a float, so a fraction of max_steps: it "
                "must be in (0, 1]; write a whole number (e.g. 2600) for a step",
            )
        else:
            _check(
                0 <= self.decay_step <= self.max_steps,
                f"{where}.decay_step ({self.decay_step}) is beyond {where}.max_steps "
                f"({self.max_steps}), so the learning rate would never decay; give a step <= "
                f"max_steps or a fraction of it (e.g. {where}.decay_step=0.9)",
            )
        _check(
            self.val_ap_images >= 0, f"{where}.val_ap_images must be >= 0, got {self.val_ap_images}"
        )
        _check(
            self.backup_every_steps >= 0,
            f"{where}.backup_every_steps must be >= 0, got {self.backup_every_steps}",
        )
        check_ranges(self, where)

    @property
    def decay_at(self) -> int:
        """The step from which the rate is divided: ``decay_step``, or its fraction of max_steps."""
        if isinstance(self.decay_step, float):
            return int(round(self.decay_step * self.max_steps))
        return int(self.decay_step)


@dataclass
class TestConfig:
    """The official test procedure (docs/method.md §5, §8 "Test")."""

    __test__ = False  # not a pytest class

    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = True
    top_k: int = 100
    ae_threshold: float = 0.5
    nms_kernel: int = 3
    num_dets: int = 1000
    max_per_image: int = 100
    nms_algorithm: str = "exp"  # exp (Gaussian) | linear | hard
    nms_sigma: float = 0.5  # official Gaussian sigma: exp(-iou^2 / sigma)
    nms_threshold: float = 0.5  # Nt (linear / hard)
    score_threshold: float = 0.001  # soft-NMS drop threshold
    merge_bbox: bool = False
    weight_exp: float = 8.0
    # The network's compute dtype (modeling/precision.py); auto: bfloat16 where the hardware has it.
    precision: str = "float32"  # float32 | bfloat16 | float16 | auto

    def validate(self, where: str = "test") -> None:
        _check(
            len(self.scales) >= 1 and min(self.scales) > 0,
            f"{where}.scales must be positive, got {self.scales}",
        )
        _check(self.top_k >= 1, f"{where}.top_k must be >= 1")
        _check(
            self.nms_kernel >= 1 and self.nms_kernel % 2 == 1,
            f"{where}.nms_kernel must be odd, got {self.nms_kernel}",
        )
        _check(
            self.nms_algorithm in ("exp", "linear", "hard"),
            f"{where}.nms_algorithm must be exp|linear|hard, got {self.nms_algorithm!r}",
        )
        _check(self.max_per_image >= 1, f"{where}.max_per_image must be >= 1")
        _check(
            self.precision in ("float32", "bfloat16", "float16", "auto"),
            f"{where}.precision must be float32|bfloat16|float16|auto, got {self.precision!r}",
        )
        check_ranges(self, where)


@dataclass
class ExportConfig:
    """SavedModel / TFLite export."""

    corner_pool_impl: str = "tf"  # stock TF Serving and LiteRT cannot run custom ops
    max_detections: int = 100
    version: int = 1
    tflite_quantize: str = "none"  # none | fp16 | int8
    representative_images: int = 32

    def validate(self, where: str = "export") -> None:
        _check(
            self.tflite_quantize in ("none", "fp16", "int8"),
            f"{where}.tflite_quantize must be none|fp16|int8, got {self.tflite_quantize!r}",
        )
        _check(self.max_detections >= 1, f"{where}.max_detections must be >= 1")
        check_ranges(self, where)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    name: str = "cornernet"

    def validate(self) -> Config:
        for section in ("model", "data", "train", "test", "export"):
            getattr(self, section).validate(section)
        self.data.resolve_output_size(self.model.output_stride)
        return self

    def to_dict(self) -> dict[str, Any]:
        tree = dataclasses.asdict(self)
        if getattr(self.data, "_derived_output_size", False):
            tree["data"]["output_size"] = None
        return tree


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_ranges(section: Any, where: str) -> None:
    """Every numeric field of ``section`` finite and within its range (config_ranges.RANGES)."""
    problem = range_problem(section, where)
    if problem:
        raise ConfigError(problem)


# --------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        # The value's own type first: 1.0 for ``int | float`` stays a float (a fraction).
        for arg in sorted(args, key=lambda a: a is not type(value)):
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if errors else f"{source}: {key} has an invalid value {value!r}"
        )
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
            value = float(value)  # PyYAML reads exponents without a dot (1e-3) as strings
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{source}: {key}: unsupported type {_type_name(tp)}")


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'the top level'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(where + k for k in unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key, source)
        else:
            kwargs[name] = _coerce(value, tp, key, source)
    return cls(**kwargs)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: PyYAML
    keeps the last value silently, so a doubled ``num_classes:`` would train the wrong model."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *anchor" merges; later keys override by design
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if seen is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given at line {seen})",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _load_yaml(stream: Any) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys."""
    return yaml.load(stream, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects


def _apply_override(tree: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    try:
        node[parts[-1]] = _load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment}: not valid YAML ({_yaml_problem(exc)})") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one phrase: the problem and where (1-based line, column)."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _read_yaml(path: str, _children: tuple = ()) -> dict:
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    if os.path.realpath(path) in _children:
        raise ConfigError(
            f"{path}: circular 'base:' chain ({' -> '.join(_children + (os.path.realpath(path),))})"
        )
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a folder, not a YAML config file")
    with open(path, encoding="utf-8") as fh:
        try:
            data = _load_yaml(fh) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
            ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    base = data.pop("base", None)
    if base:  # a config may extend another one, relative to its own folder
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base must be the file name of another config, got {base!r}")
        parent_path = os.path.join(os.path.dirname(path), base)
        if not os.path.exists(parent_path):
            raise ConfigError(f"{path}: base config not found: {parent_path}")
        parent = _read_yaml(parent_path, _children + (os.path.realpath(path),))
        data = _deep_merge(parent, data)
    return data


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def load_config(
    source: str | os.PathLike | dict | Config | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Load a :class:`Config` from a YAML path, a dict or a Config, then apply ``a.b=c`` overrides."""
    if isinstance(source, Config) and not overrides:
        return source.validate()
    if isinstance(source, Config):
        tree, name = source.to_dict(), "<config>"
    elif isinstance(source, dict):
        tree, name = dict(source), "<dict>"
    elif source is None:
        tree, name = {}, "<defaults>"
    else:
        name = resolve_config_path(source)
        tree = _read_yaml(name)
    for assignment in overrides or []:
        _apply_override(tree, assignment)
    config = _build(Config, tree, "", name)
    try:
        return config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def load_model_config(source: str | os.PathLike | dict | ModelConfig | Config) -> ModelConfig:
    """Accept a ModelConfig, a dict of its fields, a full Config, or a YAML path."""
    if isinstance(source, ModelConfig):
        source.validate()
        return source
    if isinstance(source, Config):
        return source.validate().model
    if isinstance(source, dict):
        config = _build(ModelConfig, source, "model", "<dict>")
        config.validate()
        return config
    return load_config(source).model
