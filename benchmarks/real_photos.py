"""Real-photo learning benchmark: the custom-data config trained with its defaults on a photo folder.

    python benchmarks/real_photos.py FOLDER [--steps N] [--config configs/cornernet_custom.yaml]
        [--set KEY=VALUE ...] [--name NAME] [--out DIR] [--no-record]

FOLDER holds Pascal VOC XML (a sub-folder ``annots/`` or ``Annotations/`` or any folder of .xml
files) or one COCO JSON file, and the photos (``images/`` or ``JPEGImages/``). Every 5th photo
in file-name order is held out; the rest train the model with the config's DEFAULT settings (only
the data paths are set, plus ``--set`` for comparisons such as ``data.image_scale=1``). The
held-out COCO AP / AP50 come from the project's evaluation (``cornernet_tf.eval.runner``) with
the work directory's saved config, as ``cornernet eval`` of that directory would use it.

Prints a JSON report, writes it to ``OUT/report.json`` and adds a row to the table of
benchmarks/RESULTS.md (``--no-record``: not). The photos are never copied anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))

import harness  # noqa: E402  (puts the checkout on sys.path)
from harness import load_average  # noqa: E402

HOLD_OUT_EVERY = 5
TABLE_MARKER = "<!-- real_photos rows -->"
ANNOTATION_DIRS = ("annots", "Annotations", "annotations", "xml")
IMAGE_DIRS = ("images", "JPEGImages", "Images", "imgs")


def find_sources(folder: str) -> tuple[str, str]:
    """(annotations: a VOC folder or a COCO JSON file, image folder) inside ``folder``."""
    images = next(
        (os.path.join(folder, d) for d in IMAGE_DIRS if os.path.isdir(os.path.join(folder, d))),
        None,
    )
    if images is None:
        raise SystemExit(f"{folder}: no image folder ({' or '.join(IMAGE_DIRS)})")
    for d in ANNOTATION_DIRS:
        path = os.path.join(folder, d)
        if os.path.isdir(path) and any(n.lower().endswith(".xml") for n in os.listdir(path)):
            return path, images
    jsons = sorted(n for n in os.listdir(folder) if n.lower().endswith(".json"))
    if len(jsons) == 1:
        return os.path.join(folder, jsons[0]), images
    raise SystemExit(
        f"{folder}: no VOC XML folder ({' or '.join(ANNOTATION_DIRS)}) and not one .json file"
    )


def split_dataset(annotations: str, out: str) -> tuple[str, str, dict]:
    """Write ``train.json`` / ``heldout.json`` (every HOLD_OUT_EVERY-th image by file name)."""
    from cornernet_tf.data.coco import read_json

    data = read_json(annotations)
    ordered = sorted(data["images"], key=lambda img: img["file_name"])
    held = {img["id"] for i, img in enumerate(ordered) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1}
    paths, counts = {}, {}
    for split, keep in (("train", lambda i: i not in held), ("heldout", lambda i: i in held)):
        subset = {
            "images": [img for img in data["images"] if keep(img["id"])],
            "annotations": [a for a in data.get("annotations", []) if keep(a["image_id"])],
            "categories": data["categories"],
        }
        paths[split] = os.path.join(out, f"{split}.json")
        with open(paths[split], "w", encoding="utf-8") as fh:
            json.dump(subset, fh)
        counts[split] = {"images": len(subset["images"]), "boxes": len(subset["annotations"])}
    return paths["train"], paths["heldout"], counts


def record_row(report: dict, results: str) -> None:
    """Insert one table row after the marker line of the real-photos section of RESULTS.md."""
    with open(results, encoding="utf-8") as fh:
        text = fh.read()
    if TABLE_MARKER not in text:
        print(f"{results}: no '{TABLE_MARKER}' line; row not recorded", file=sys.stderr)
        return
    overrides = ", ".join(f"`{o}`" for o in report["overrides"]) or "defaults"
    row = (
        f"| {report['set']} | {overrides} | {report['image_scale']:g} | {report['steps']} | "
        f"{report['train_minutes']:.1f} ({report['seconds_per_step']:.2f} s/step) | "
        f"{report['load_average_before'][0]:.1f} / {report['load_average_after'][0]:.1f} | "
        f"**{report['AP']:.3f}** | **{report['AP50']:.3f}** | {report['AP75']:.3f} |"
    )
    text = text.replace(TABLE_MARKER, TABLE_MARKER + "\n" + row, 1)
    with open(results, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="photo set: VOC XML or COCO JSON plus an image folder")
    parser.add_argument("--config", default=harness.config_path("cornernet_custom"))
    parser.add_argument(
        "--steps", type=int, default=None, help="default: train.max_steps of the config"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--minutes", type=float, default=None, help="stop training after this much wall time"
    )
    parser.add_argument(
        "--name", default=None, help="the set's name in the results (default: folder name)"
    )
    parser.add_argument("--out", default=None, help="work folder (default: a temporary folder)")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument("--no-record", action="store_true", help="do not add a row to RESULTS.md")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from cornernet_tf.config import load_config
    from cornernet_tf.eval.runner import evaluate
    from cornernet_tf.modeling.cornernet import build_model
    from cornernet_tf.training.fit import train

    folder = os.path.abspath(args.folder)
    name = args.name or os.path.basename(folder.rstrip(os.sep))
    out = args.out or os.path.join(tempfile.gettempdir(), f"cornernet_real_photos_{name}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    annotations, images = find_sources(folder)
    train_json, heldout_json, counts = split_dataset(annotations, out)
    overrides = [f"data.train_annotations={train_json}", f"data.train_images={images}"]
    overrides += list(args.overrides)
    config = load_config(args.config, overrides)
    if args.steps is not None:  # a shorter (or longer) run keeps the decay at the same share
        overrides.append(f"train.max_steps={args.steps}")
        if not isinstance(config.train.decay_step, float):  # a fraction follows max_steps itself
            share = config.train.decay_step / config.train.max_steps
            overrides.append(f"train.decay_step={max(1, round(args.steps * share))}")
        config = load_config(args.config, overrides)

    load_before = load_average()
    start = time.perf_counter()
    result = train(
        config,
        os.path.join(out, "workdir"),
        progress=not args.no_progress,
        return_model=True,
        max_seconds=None if args.minutes is None else args.minutes * 60,
    )
    train_seconds = time.perf_counter() - start
    load_after = load_average()

    # The work directory's config holds the resolved data.image_scale: evaluate as
    # `cornernet eval --config WORKDIR/config.yaml` does.
    saved = load_config(result.paths.config)
    model = build_model(saved.model)
    model.set_weights(result.model.get_weights())
    eval_start = time.perf_counter()
    metrics = evaluate(model, saved, annotations=heldout_json, images=images, progress=False)
    eval_seconds = time.perf_counter() - eval_start

    report = {
        "set": name,
        "config": os.path.relpath(args.config, os.path.join(HERE, "..")),
        "overrides": list(args.overrides) + ([f"--steps {args.steps}"] if args.steps else []),
        "split": counts,
        "image_scale": float(saved.data.image_scale),
        "test_scales": metrics["test"]["scales"],
        "input_size": list(saved.data.input_size),
        "batch_size": saved.train.batch_size,
        "steps": result.final_step,
        "decay_step": saved.train.decay_step,
        "train_minutes": round(train_seconds / 60, 2),
        "seconds_per_step": round(train_seconds / max(result.final_step, 1), 3),
        "eval_seconds": round(eval_seconds, 1),
        **harness.coco_summary(metrics, harness.FULL_SUMMARY),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": harness.machine_info(),
        "final_logs": {k: round(float(v[-1]), 4) for k, v in result.history.items() if v},
    }
    harness.report(report, indent=2)
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
    if not args.no_record:
        record_row(report, args.results)
    print(
        f"{name}: image_scale {report['image_scale']:g}, {report['steps']} steps in "
        f"{report['train_minutes']:.1f} min, held-out AP {report['AP']:.3f} / AP50 {report['AP50']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
