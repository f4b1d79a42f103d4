"""Optional dependencies: a missing extra is one line naming the pip command, in the library and
on the command line (simulated by blocking the import: ``sys.modules[name] = None``)."""

import configparser
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cornernet_tf import extras
from cornernet_tf.errors import MissingDependencyError, UserError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def block(monkeypatch, root: str) -> None:
    """Make ``import root`` (and of its sub-modules) fail as if the package were not installed."""
    for name in [n for n in sys.modules if n == root or n.startswith(root + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, root, None)


@pytest.mark.parametrize("root", sorted(extras.PROVIDERS))
def test_require_names_the_distribution_and_the_extra(monkeypatch, root):
    distribution, extra = extras.PROVIDERS[root]
    block(monkeypatch, root)
    with pytest.raises(MissingDependencyError) as info:
        extras.require(f"{root}.something", "doing X")
    message = str(info.value)
    assert message == (
        f"doing X needs {distribution}, which is not installed: pip install 'cornernet-tf[{extra}]'"
    )
    assert isinstance(info.value, (UserError, ImportError)) and "\n" not in message
    assert not extras.available(root)


def test_a_missing_dependency_of_the_package_is_named_too(monkeypatch, tmp_path):
    (tmp_path / "needs_a_dependency.py").write_text("import absent_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(extras.PROVIDERS, "needs_a_dependency", ("needs-dep", "demo"))
    with pytest.raises(MissingDependencyError) as info:
        extras.require("needs_a_dependency", "reading X")
    assert str(info.value) == (
        "reading X needs needs-dep (its dependency 'absent_dependency_xyz'), which is not "
        "installed: pip install 'cornernet-tf[demo]'"
    )


def test_present_modules_pass_and_other_import_errors_keep_their_type(monkeypatch, tmp_path):
    assert extras.require("numpy", "arrays") is np and extras.available("numpy")
    (tmp_path / "broken_install.py").write_text("raise ImportError('undefined symbol: f')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="undefined symbol") as info:
        extras.require("broken_install", "x")
    assert not isinstance(info.value, MissingDependencyError)


def test_every_provider_extra_exists_in_setup_cfg():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    declared = set(cfg["options.extras_require"])
    assert {extra for _, extra in extras.PROVIDERS.values()} <= declared
    for distribution, extra in extras.PROVIDERS.values():
        if distribution != "tensorflow-serving-api":  # added by setup.py (it names TensorFlow)
            assert distribution in cfg["options.extras_require"][extra], (distribution, extra)


def test_library_entry_points_raise_the_one_line_error(monkeypatch, tmp_path):
    from cornernet_tf.data.tfds import import_tfds
    from cornernet_tf.export import litert_runner, onnx_runner
    from cornernet_tf.serving import client

    block(monkeypatch, "tensorflow_datasets")
    with pytest.raises(MissingDependencyError, match=r"cornernet-tf\[tfds\]"):
        import_tfds()
    block(monkeypatch, "ai_edge_litert")
    with pytest.raises(MissingDependencyError, match=r"cornernet-tf\[tflite\]"):
        litert_runner.LiteRTDetector(str(tmp_path / "x.tflite"))
    block(monkeypatch, "onnxruntime")
    with pytest.raises(MissingDependencyError, match=r"cornernet-tf\[onnx\]"):
        onnx_runner.OnnxDetector(str(tmp_path / "x.onnx"))
    block(monkeypatch, "tensorflow_serving")
    with pytest.raises(MissingDependencyError, match=r"cornernet-tf\[serving\]"):
        client.make_predict_request(np.zeros((1, 8, 8, 3), np.uint8))


def test_tensorboard_absent_means_no_callback_and_no_warning(monkeypatch, caplog, tmp_path):
    from cornernet_tf.training import fit

    block(monkeypatch, "tensorboard")
    with caplog.at_level("WARNING"):
        assert fit._tensorboard(type("Paths", (), {"tensorboard": str(tmp_path)})()) == []
    assert not caplog.records


def test_demo_step_without_its_extra_is_skipped_with_the_pip_command(capsys):
    from cornernet_tf.commands.demo import _skipped_without_extra

    with _skipped_without_extra():
        extras.missing_dependency("ai_edge_litert", "the LiteRT step")  # built, not raised: runs on
        raise extras.missing_dependency("grpc", "a gRPC request")
    out = capsys.readouterr().out.strip()
    assert out == "skipped: a gRPC request needs grpcio, which is not installed: " + (
        "pip install 'cornernet-tf[serving]'"
    )
    with pytest.raises(ValueError), _skipped_without_extra():  # other errors are not swallowed
        raise ValueError("bug")


def _cli_with_blocked(root: str, args: list[str]) -> subprocess.CompletedProcess:
    script = (
        "import sys\n"
        f"sys.modules[{root!r}] = None\n"
        "from cornernet_tf.cli import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_serve_client_without_the_serving_extra_is_one_line(tmp_path):
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    run = _cli_with_blocked("tensorflow_serving", ["serve-client", str(image), "--port", "1"])
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip() == (
        "cornernet serve-client: error: a gRPC request needs tensorflow-serving-api, which is not "
        "installed: pip install 'cornernet-tf[serving]'"
    )
    assert "Traceback" not in run.stderr and not run.stdout
