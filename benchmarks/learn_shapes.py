"""Learning benchmark: the tiny config trained from scratch on synthetic shapes, then COCO AP.

Generates a shapes dataset (train split + a held-out split with other images), trains
``configs/cornernet_tiny_learn.yaml`` (the tiny model with a 15-minute schedule) with
``cornernet_tf.training.fit.train`` (Adam, the config's schedule, full augmentation) for at most
``--minutes`` of wall time on this machine, then runs the official test procedure (flip, soft-NMS,
the config's scales) on the held-out split and reports COCO AP / AP50. The goal on a 2-core CPU
within 15 minutes is AP >= 0.60 and AP50 >= 0.85.

Then it says where the remaining error is (``--no-analysis`` skips it): AP with ground-truth
heatmaps, and with ground-truth heatmaps and offsets (the paper's error analysis, Table 6), and
how well the embeddings separate the held-out objects at their true corners.

Prints a JSON object and a table; the loss curves are copied next to this file
(``learn_shapes_curves.png``) for benchmarks/RESULTS.md. Not part of the test suite.

    python benchmarks/learn_shapes.py [--minutes 15] [--set train.max_steps=...] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import harness  # noqa: E402  (puts the checkout on sys.path)
from harness import load_average  # noqa: E402


def make_data(out: str, num_train: int, num_val: int, seed: int, size: int) -> dict:
    from cornernet_tf.data.shapes import generate_shapes

    marker = os.path.join(out, f"shapes_{num_train}_{num_val}_{seed}_{size}.done")
    paths = {
        split: (os.path.join(out, split, "annotations.json"), os.path.join(out, split, "images"))
        for split in ("train", "heldout")
    }
    if not os.path.exists(marker):
        shutil.rmtree(out, ignore_errors=True)
        generate_shapes(
            out, seed=seed, size=(size, size), splits={"train": num_train, "heldout": num_val}
        )
        open(marker, "w").close()
    return paths


def embedding_statistics(model, config) -> dict:
    """How well the embeddings group corners, at the ground-truth corners of the held-out images.

    ``true_pairs_rejected``: share of objects whose own tl/br tags differ by more than the test's
    ``ae_threshold`` (the decoder then cannot pair them). ``wrong_pairs_accepted``: share of the
    (tl of one object, br of another object of the same class, below-right of it) pairs whose tags
    are within the threshold (candidate false boxes).
    """
    import numpy as np

    from cornernet_tf.data.pipeline import build_dataset
    from cornernet_tf.losses import gather_feat

    threshold = config.test.ae_threshold
    width = config.data.output_hw[1]
    own, other = [], []
    for images, targets in build_dataset(
        config.data, False, batch_size=8, model_config=config.model
    ):
        outputs = model(images, training=False, stacks="last")
        tl = gather_feat(outputs["tl_tag"][-1], targets["tl_tag"])[..., 0].numpy()
        br = gather_feat(outputs["br_tag"][-1], targets["br_tag"])[..., 0].numpy()
        mask = targets["tag_mask"].numpy() > 0
        tl_ind, br_ind = targets["tl_tag"].numpy(), targets["br_tag"].numpy()
        classes = np.argmax(
            targets["tl_heatmap"].numpy().reshape(len(mask), -1, config.model.num_classes), -1
        )
        for b in range(len(mask)):
            idx = np.flatnonzero(mask[b])
            cls = classes[b][tl_ind[b, idx]]
            for a, k in enumerate(idx):
                own.append(abs(tl[b, k] - br[b, k]))
                for c, j in enumerate(idx):
                    (tl_y, tl_x), (br_y, br_x) = (
                        divmod(tl_ind[b, k], width),
                        divmod(br_ind[b, j], width),
                    )
                    below_right = br_x >= tl_x and br_y >= tl_y
                    if j != k and cls[a] == cls[c] and below_right:
                        other.append(abs(tl[b, k] - br[b, j]))
    own, other = np.array(own), np.array(other)
    return {
        "objects": int(len(own)),
        "true_pairs_rejected": round(float((own > threshold).mean()), 4),
        "median_own_distance": round(float(np.median(own)), 4),
        "wrong_same_class_pairs": int(len(other)),
        "wrong_pairs_accepted": round(float((other <= threshold).mean()), 4)
        if len(other)
        else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=harness.config_path("cornernet_tiny_learn"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--minutes", type=float, default=15.0, help="wall-clock budget for training"
    )
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200, help="held-out images for the final AP")
    parser.add_argument("--image-size", type=int, default=192, help="side of the generated images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=os.path.join(tempfile.gettempdir(), "cornernet_learn_shapes"),
        help="data and work directory (the loss-curve PNG is copied next to this file)",
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="resume from an earlier run in --out"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--no-analysis",
        action="store_true",
        help="skip the error analysis (ground-truth heatmaps/offsets, embedding statistics)",
    )
    args = parser.parse_args(argv)

    from cornernet_tf.config import load_config
    from cornernet_tf.eval.runner import evaluate
    from cornernet_tf.training.fit import train

    paths = make_data(
        os.path.join(args.out, "shapes"), args.num_train, args.num_val, args.seed, args.image_size
    )
    (train_json, train_dir), (val_json, val_dir) = paths["train"], paths["heldout"]
    overrides = [
        f"data.train_annotations={train_json}",
        f"data.train_images={train_dir}",
        # Validation during training (cheap AP on a few images) uses the first held-out images;
        # the reported AP is computed at the end on the whole held-out split.
        f"data.val_annotations={val_json}",
        f"data.val_images={val_dir}",
    ] + args.overrides
    config = load_config(args.config, overrides)
    workdir = os.path.join(args.out, "workdir")
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)

    load_before = load_average()
    start = time.perf_counter()
    result = train(
        config,
        workdir,
        progress=not args.no_progress,
        max_seconds=args.minutes * 60,
        return_model=True,
        evaluate=evaluate,
    )
    train_seconds = time.perf_counter() - start
    load_after = load_average()

    # Evaluate as `cornernet eval` and the exports do: a float32 model with the trained weights
    # (a mixed-precision run's model would otherwise also infer in low precision).
    from cornernet_tf.modeling.cornernet import build_model

    model = build_model(config.model)
    model.set_weights(result.model.get_weights())

    eval_start = time.perf_counter()
    metrics = evaluate(model, config, annotations=val_json, images=val_dir, progress=False)
    eval_seconds = time.perf_counter() - eval_start

    analysis = {}
    if not args.no_analysis:
        # Where the remaining error is (the paper's Table 6 method): AP with ground-truth heatmaps,
        # then also ground-truth offsets; the embeddings stay predicted.
        for oracle in ("heatmaps", "heatmaps+offsets"):
            m = evaluate(
                model, config, annotations=val_json, images=val_dir, progress=False, oracle=oracle
            )
            analysis[f"oracle_{oracle}"] = harness.coco_summary(m, ("AP", "AP50", "AP75", "AR100"))
        analysis["embeddings"] = embedding_statistics(
            model, config
        )  # config's val data = held-out split

    curves = os.path.join(HERE, "learn_shapes_curves.png")
    if os.path.exists(result.paths.curves):
        shutil.copyfile(result.paths.curves, curves)
    report = {
        "config": os.path.relpath(args.config, os.path.join(HERE, "..")),
        "overrides": args.overrides,
        "train_images": args.num_train,
        "heldout_images": metrics["num_images"],
        "image_size": args.image_size,
        "input_size": list(config.data.input_size),
        "batch_size": config.train.batch_size,
        "steps": result.final_step,
        "max_steps": config.train.max_steps,
        "train_minutes": round(train_seconds / 60, 2),
        "seconds_per_step": round(
            train_seconds / max(result.final_step - result.resumed_from_step, 1), 3
        ),
        "eval_seconds": round(eval_seconds, 1),
        **harness.coco_summary(metrics, harness.FULL_SUMMARY),
        "per_class_AP": {k: round(v, 4) for k, v in metrics["per_class"].items()},
        "analysis": analysis,
        "goal": {"AP": 0.60, "AP50": 0.85},
        "goal_met": bool(metrics["AP"] >= 0.60 and metrics["AP50"] >= 0.85),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": harness.machine_info(),
        "curves": os.path.relpath(curves, HERE) if os.path.exists(curves) else None,
        "final_logs": {k: round(float(v[-1]), 4) for k, v in result.history.items() if v},
    }
    harness.report(report, indent=2)
    rows = [
        (f"steps (batch {report['batch_size']})", f"{report['steps']} / {report['max_steps']}"),
        (
            "training time",
            f"{report['train_minutes']:.1f} min ({report['seconds_per_step']:.2f} s/step)",
        ),
        ("held-out AP", f"{report['AP']:.3f} (goal 0.60)"),
        ("held-out AP50", f"{report['AP50']:.3f} (goal 0.85)"),
        ("held-out AP75", f"{report['AP75']:.3f}"),
        ("load average before/after", f"{load_before} / {load_after}"),
    ]
    for name, values in analysis.items():
        rows.append((name, ", ".join(f"{k} {v}" for k, v in values.items())))
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
