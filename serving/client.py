"""``python -m serving.client`` from a repository checkout: the client of ``cornernet_tf.serving``.

The client itself is :mod:`cornernet_tf.serving.client` (also ``cornernet serve-client``); this
folder is the deployment kit and is not installed. ``from serving.client import ...`` keeps working
in a checkout.
"""

from cornernet_tf.serving.client import *  # noqa: F403
from cornernet_tf.serving.client import main

if __name__ == "__main__":
    raise SystemExit(main())
