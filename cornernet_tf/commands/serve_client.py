"""``cornernet serve-client``: send images to a served CornerNet model and print the detections."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    from cornernet_tf.serving.client import add_arguments

    parser = subparsers.add_parser(
        "serve-client",
        help="send images to a served CornerNet model (gRPC or REST) and print the detections",
        description=(
            "The client of cornernet_tf.serving.client (in a repository checkout also "
            "`python -m serving.client`). Boxes are printed in pixels of each image."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from cornernet_tf.errors import InvalidValueError
    from cornernet_tf.serving.client import ClientUsageError, PredictionError
    from cornernet_tf.serving.client import run as run_client

    try:
        return run_client(args)
    except PredictionError as exc:
        print(f"cornernet serve-client: {exc}", file=sys.stderr)
        return 1
    except ClientUsageError as exc:
        raise InvalidValueError(str(exc)) from None
