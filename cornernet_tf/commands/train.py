"""``cornernet train``: train CornerNet with ``model.fit`` under the configured tf.distribute strategy."""

from __future__ import annotations

from cornernet_tf.commands._common import add_config_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model (resumes when WORKDIR holds a run of the same model)",
        description=(
            "Train CornerNet as configured: Adam with the official step decay, global batch "
            "train.batch_size, strategy train.strategy (auto|default|mirrored|multi_worker|tpu), "
            "optional mixed precision and XLA. WORKDIR receives config.yaml, dataset_info.json, last/best weights, "
            "a fault-tolerance backup, history.csv, TensorBoard logs and loss_curves.png. "
            "Re-running the same command after an interruption resumes from the last backup "
            "(raise train.max_steps to extend a finished run); one train per WORKDIR at a time."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--workdir", required=True, help="output folder (checkpoints, logs, curves)"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="one log line per epoch instead of a progress bar",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    import sys

    from cornernet_tf.eval.runner import evaluate
    from cornernet_tf.training.fit import train
    from cornernet_tf.training.steps import NonFiniteLossError

    try:
        result = train(
            args.config,
            args.workdir,
            progress=not args.no_progress,
            overrides=args.overrides,
            evaluate=evaluate,
        )
    except NonFiniteLossError as error:
        print(f"cornernet train: {error}", file=sys.stderr)
        return 3
    resumed = f" (resumed from step {result.resumed_from_step})" if result.resumed_from_step else ""
    print(f"trained to step {result.final_step}{resumed} in {result.seconds:.0f} s")
    print(f"weights: {result.paths.last}")
    print(f"loss curves: {result.paths.curves}")
    return 0
