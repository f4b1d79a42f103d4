import sys

from cornernet_tf.cli import main

sys.exit(main())
