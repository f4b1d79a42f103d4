"""What setup.cfg cannot say: the packaged ``configs/`` folder and the TensorFlow requirement.

``configs/`` becomes ``cornernet_tf/configs/*.yaml`` in a wheel, where ``cornernet_tf.config_files``
finds it (in a checkout it reads ``configs/`` directly).

TensorFlow: the requirements in setup.cfg plus the TensorFlow distribution named by the
``CORNERNET_TENSORFLOW`` environment variable at build time (a wheel's metadata is fixed when it is
built, so the choice is explicit rather than guessed from what the build machine has installed):

* ``tensorflow`` (the default, what a published wheel says): ``pip install cornernet-tf`` works
  everywhere; ``[gpu]`` is ``tensorflow[and-cuda]``; ``[serving]`` holds tensorflow-serving-api.
* ``tensorflow-cpu``: the smaller CPU-only wheel (the Makefile and CI). tensorflow-serving-api
  declares ``tensorflow``, which would be installed on top of tensorflow-cpu (both write the same
  ``tensorflow`` package), so it is left out of ``[serving]``: install it with ``--no-deps``.
  There is no ``[gpu]``.
* ``none``: no TensorFlow requirement (tf-nightly, a source build); as ``tensorflow-cpu`` otherwise.
"""

import configparser
import os
import pathlib

from setuptools import find_packages, setup

TENSORFLOW_VERSIONS = ">=2.16,<2.22"
SERVING_API = f"tensorflow-serving-api{TENSORFLOW_VERSIONS}"
CHOICES = ("tensorflow", "tensorflow-cpu", "none")
NOT_IN_ALL = ("gpu", "test", "lint")


def _requirements(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def requirements(tensorflow: str) -> tuple[list[str], dict[str, list[str]]]:
    """``(install_requires, extras_require)`` of setup.cfg with the TensorFlow ones added."""
    if tensorflow not in CHOICES:
        raise SystemExit(
            f"CORNERNET_TENSORFLOW must be one of {', '.join(CHOICES)}, got {tensorflow!r}"
        )
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(pathlib.Path(__file__).with_name("setup.cfg"), encoding="utf-8")
    install = _requirements(cfg["options"]["install_requires"])
    extras = {name: _requirements(text) for name, text in cfg["options.extras_require"].items()}
    if tensorflow != "none":
        install.append(tensorflow + TENSORFLOW_VERSIONS)
    if tensorflow == "tensorflow":
        extras["gpu"] = [f"tensorflow[and-cuda]{TENSORFLOW_VERSIONS}"]
        extras["serving"].append(SERVING_API)
    extras["all"] = sorted(
        {r for name, reqs in extras.items() if name not in NOT_IN_ALL for r in reqs}
    )
    return install, extras


install_requires, extras_require = requirements(
    os.environ.get("CORNERNET_TENSORFLOW", "tensorflow")
)

setup(
    packages=[*find_packages(include=["cornernet_tf", "cornernet_tf.*"]), "cornernet_tf.configs"],
    package_dir={"cornernet_tf.configs": "configs"},
    install_requires=install_requires,
    extras_require=extras_require,
)
