"""The BFC CPU allocator: requested for `cornernet` commands, never over the user's choice."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    if env_value is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


CHECK = (
    "import os\n"
    "from cornernet_tf.tf_allocator import prefer_bfc_cpu_allocator as p\n"
    "print(p(), os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'))"
)


@pytest.mark.parametrize(
    "user, expected",
    [(None, "True true"), ("false", "False false"), ("0", "False 0"), ("1", "True 1")],
)
def test_requested_unless_the_user_chose(user, expected):
    assert _run(CHECK, user) == expected


def test_left_alone_once_tensorflow_is_imported():
    code = "import sys\nsys.modules['tensorflow'] = object()\n" + CHECK
    assert _run(code, None) == "False None"


def test_cornernet_commands_request_it_before_tensorflow_is_imported():
    code = (
        "import os, sys\n"
        "from cornernet_tf.cli import main\n"
        "try:\n"
        "    main(['--bogus-option'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('tensorflow' in sys.modules, os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'))"
    )
    assert _run(code, None) == "False true"
