"""Packaging and conventions: named configs, the lazy package surface, one module per sub-command,
the ``serving/`` shims of a checkout, and (slow) what a built wheel holds."""

import argparse
import importlib
import os
import pathlib
import pkgutil
import shutil
import subprocess
import sys
import zipfile

import pytest

import cornernet_tf
import cornernet_tf.commands as commands_pkg
from cornernet_tf.cli import build_parser, main
from cornernet_tf.config import load_config
from cornernet_tf.config_files import config_dir, config_names, resolve_config_path

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
PACKAGES = [
    "cornernet_tf",
    *(
        f"cornernet_tf.{m.name}"
        for m in pkgutil.iter_modules(cornernet_tf.__path__)
        if m.ispkg and m.name != "detection"
    ),
]


# ------------------------------------------------------------------------------------ configs


def test_config_names_are_the_shipped_files():
    assert config_dir() == CONFIG_DIR
    assert config_names() == sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert "cornernet_tiny" in config_names()


@pytest.mark.parametrize("name", ["cornernet_tiny", "cornernet_tiny.yaml"])
def test_a_config_can_be_named(name):
    assert resolve_config_path(name) == str(CONFIG_DIR / "cornernet_tiny.yaml")
    assert load_config(resolve_config_path(name)).name == "cornernet_tiny"


def test_an_existing_path_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cornernet_tiny").write_text("name: local\nmodel:\n  num_classes: 2\n")
    assert resolve_config_path("cornernet_tiny") == "cornernet_tiny"
    assert load_config(resolve_config_path("cornernet_tiny")).name == "local"


def test_unknown_names_and_paths_are_left_for_the_loader():
    assert resolve_config_path("no_such_config") == "no_such_config"
    assert resolve_config_path("elsewhere/cornernet_tiny.yaml") == "elsewhere/cornernet_tiny.yaml"


def test_cli_config_name_and_unknown_name(capsys):
    args = build_parser().parse_args(
        ["export", "--config", "cornernet_squeeze_tiny", "--weights", "w", "--out", "o"]
    )
    assert args.config == str(CONFIG_DIR / "cornernet_squeeze_tiny.yaml")
    with pytest.raises(SystemExit) as info:
        main(["eval", "--config", "cornernet_tinyy", "--weights", "w.weights.h5"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'cornernet_tinyy' is neither a config file nor a shipped config" in err
    assert "cornernet_tiny," in err  # the shipped names are listed


# ---------------------------------------------------------------------------- package surface


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_lists_and_resolves_its_exports(package):
    module = importlib.import_module(package)
    assert module.__doc__, f"{package} has no docstring"
    listed = dir(module)
    for name in module.__all__:
        assert name in listed
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match="no attribute"):
        module.no_such_name  # noqa: B018


def test_a_function_named_like_its_module_is_exported_as_the_function():
    from cornernet_tf.ops import corner_pool

    assert callable(corner_pool) and not isinstance(corner_pool, type(sys))


def test_one_module_per_sub_command():
    modules = [m.name for m in pkgutil.iter_modules(commands_pkg.__path__) if m.name[0] != "_"]
    for name in modules:
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        importlib.import_module(f"cornernet_tf.commands.{name}").register(subparsers)
        assert list(subparsers.choices) == [name.replace("_", "-")]


# --------------------------------------------------------------------------- checkout shims


@pytest.mark.parametrize("module", ["serving.client", "serving.server"])
def test_serving_shims_run_from_a_checkout(module):
    run = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout


def test_serving_shim_names_are_the_package_objects():
    import serving.client
    from cornernet_tf.serving import client

    assert serving.client.predict_grpc is client.predict_grpc
    assert serving.client.PredictionError is client.PredictionError


# ------------------------------------------------------------------------------------- wheel


def build_wheel(tmp_path, tensorflow: str | None = None) -> pathlib.Path:
    """A wheel of this checkout (``tensorflow``: the CORNERNET_TENSORFLOW choice, None: default)."""
    # Build from a copy: an in-tree build leaves build/ behind, whose stale files a later wheel ships.
    source = tmp_path / "source"
    skip = (
        ".git",
        ".venv",
        "build",
        "dist",
        "*.egg-info",
        "tests",
        "benchmarks",
        "*.so",
        "demo_out",
    )
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*skip))
    env = {k: v for k, v in os.environ.items() if k != "CORNERNET_TENSORFLOW"}
    if tensorflow:
        env["CORNERNET_TENSORFLOW"] = tensorflow
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        cwd=tmp_path,
        env=env,
    )
    shutil.rmtree(source)
    (wheel,) = out.glob("cornernet_tf-*.whl")
    return wheel


def wheel_requirements(wheel: pathlib.Path) -> tuple[set, dict]:
    """``(core requirements, {extra: requirements})`` from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(name).decode().splitlines()
    core, extras = set(), {}
    for line in lines:
        if line.startswith("Provides-Extra: "):
            extras[line.split(": ", 1)[1]] = set()
        elif line.startswith("Requires-Dist: "):
            requirement, _, marker = line.split(": ", 1)[1].partition("; ")
            if marker:
                extras[marker.split('extra == "')[1].rstrip('"')].add(requirement)
            else:
                core.add(requirement)
    return core, extras


@pytest.mark.slow
def test_wheel_ships_configs_and_no_top_level_serving(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("cornernet_tf/configs/")}
    assert shipped == {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert "cornernet_tf/serving/client.py" in names
    assert not [n for n in names if n.startswith("serving/")]
    assert any(n.startswith("cornernet_tf/ops/kernels/") for n in names)


@pytest.mark.slow
def test_wheel_requirements_name_tensorflow_and_each_extra(tmp_path):
    core, extras = wheel_requirements(build_wheel(tmp_path / "default"))
    assert "tensorflow<2.22,>=2.16" in core
    assert not [r for r in core if r.startswith(("tensorflow-", "tensorboard"))]  # no tfds in core
    assert extras["gpu"] == {"tensorflow[and-cuda]<2.22,>=2.16"}
    assert "tensorflow-serving-api<2.22,>=2.16" in extras["serving"]
    assert {"tfds", "tensorboard", "tflite", "onnx", "convert", "serving", "all"} <= set(extras)
    assert extras["all"] == set().union(
        *(extras[e] for e in ("serving", "tflite", "onnx", "convert", "tfds", "tensorboard"))
    )

    core, extras = wheel_requirements(build_wheel(tmp_path / "cpu", "tensorflow-cpu"))
    assert "tensorflow-cpu<2.22,>=2.16" in core and "tensorflow<2.22,>=2.16" not in core
    assert "gpu" not in extras  # it would install the second TensorFlow
    assert not [r for e in extras.values() for r in e if r.startswith("tensorflow-serving")]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_demo(tmp_path):
    """The wheel, installed (not editable) with nothing but its core requirements, runs the demo;
    the steps of missing extras are skipped with the pip command. The CPU wheel of TensorFlow
    keeps the download small (the default wheel differs only in naming ``tensorflow``)."""
    wheel = build_wheel(tmp_path, "tensorflow-cpu")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=1800)
    run = subprocess.run(
        [venv / "bin" / "cornernet", "demo", "--out", "demo", "--steps", "2", "--minutes", "3"]
        + ["--train-images", "8", "--val-images", "4"],
        cwd=tmp_path,  # not the checkout: the installed package runs
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    log = run.stdout
    assert "\b" not in log and "\r" not in log
    assert (
        str(venv)
        in subprocess.run(
            [python, "-c", "import cornernet_tf; print(cornernet_tf.__file__)"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        ).stdout
    )
    # (grpcio comes with TensorFlow; the TF Serving protos do not.)
    assert (
        "skipped: the gRPC server needs tensorflow-serving-api, which is not installed: "
        "pip install 'cornernet-tf[serving]'" in log
    )
    assert (
        "skipped: the LiteRT step needs ai-edge-litert, which is not installed: "
        "pip install 'cornernet-tf[tflite]'" in log
    )
    for name in ("train/last.weights.h5", "eval/metrics.json", "export/1/saved_model.pb"):
        assert (tmp_path / "demo" / name).exists(), name
