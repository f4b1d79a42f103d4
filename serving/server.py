"""``python -m serving.server MODEL_DIR`` from a repository checkout: the in-process test server.

The server itself is :mod:`cornernet_tf.serving.server`; this folder is the deployment kit and is
not installed. ``from serving.server import ...`` keeps working in a checkout.
"""

from cornernet_tf.serving.server import *  # noqa: F403
from cornernet_tf.serving.server import main

if __name__ == "__main__":
    raise SystemExit(main())
