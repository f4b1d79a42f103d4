"""What setup.cfg cannot say: the top-level ``configs/`` folder ships inside the package.

It becomes ``cornernet_tf/configs/*.yaml`` in a wheel, where ``cornernet_tf.config_files`` finds
it (in a checkout it reads ``configs/`` directly). Everything else, package data included, is in
setup.cfg.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["cornernet_tf", "cornernet_tf.*"]), "cornernet_tf.configs"],
    package_dir={"cornernet_tf.configs": "configs"},
)
