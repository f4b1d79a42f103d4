"""Packaging and conventions: named configs, the lazy package surface, one module per sub-command,
the ``serving/`` shims of a checkout, and (slow) what a built wheel holds."""

import argparse
import importlib
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


@pytest.mark.slow
def test_wheel_ships_configs_and_no_top_level_serving(tmp_path):
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
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("cornernet_tf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("cornernet_tf/configs/")}
    assert shipped == {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert "cornernet_tf/serving/client.py" in names
    assert not [n for n in names if n.startswith("serving/")]
    assert any(n.startswith("cornernet_tf/ops/kernels/") for n in names)
