"""The tiny config learns: 30 steps on generated shapes, through the real input pipeline, lower the loss.

A smoke test of the whole chain (COCO JSON -> augmentation -> targets -> model.fit -> logs); the
real learning benchmark (AP on held-out shapes) is benchmarks/learn_shapes.py.
"""

import os
import warnings

import numpy as np

from cornernet_tf.config import load_config
from cornernet_tf.data.info import DatasetInfo
from cornernet_tf.data.shapes import generate_shapes
from cornernet_tf.eval.runner import evaluate
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training.fit import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "cornernet_tiny.yaml")


def test_tiny_config_loss_decreases_on_shapes(tmp_path, capsys):
    data = generate_shapes(
        str(tmp_path / "shapes"), seed=5, size=(64, 64), splits={"train": 48, "val": 3}
    )
    config = load_config(
        TINY,
        [
            f"data.train_annotations={data['train']}",
            f"data.train_images={tmp_path / 'shapes' / 'train' / 'images'}",
            # 3 validation images: less than the 2 batches of validation loss asked for (cycled), and
            # fewer than val_ap_images (AP on the 3 there are).
            f"data.val_annotations={data['val']}",
            f"data.val_images={tmp_path / 'shapes' / 'val' / 'images'}",
            "train.validation_steps=2",
            "train.val_ap_images=50",
            "train.val_every_epochs=3",
            "data.input_size=[63, 63]",  # n = 3: the 16 x 16 map divides by 2**3
            "data.seed=0",
            "data.deterministic=true",
            "train.batch_size=4",
            "train.max_steps=30",
            "train.steps_per_epoch=10",
            "train.learning_rate=0.002",
            "train.decay_step=1.0",  # a fraction: no decay within this short run
        ],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, str(tmp_path / "run"), progress=False, evaluate=evaluate)
    assert result.final_step == 30
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    out = capsys.readouterr().out
    assert "on 3 images" in out
    assert out.count("batches: dense") == 1  # the training log says which batches it builds
    # Export and detect find the class names and category ids beside the weights.
    info = DatasetInfo.load(str(tmp_path / "run" / "dataset_info.json"))
    assert info.class_names == ("rectangle", "ellipse", "triangle") and info.category_ids == (
        1,
        2,
        3,
    )
    rows = cb.read_history(str(tmp_path / "run" / "history.csv"))
    losses = [r["loss"] for r in rows]
    focal = [r["focal"] for r in rows]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert np.isfinite(rows[-1]["val_loss"]) and 0 <= rows[-1]["val_AP"] <= 1
    # Epoch means (10 steps each): the last is well below the first, for the total and the heatmaps
    # (the focal term falls more slowly: most of its early gain is the background level).
    print("epoch losses", losses, "focal", focal)
    assert losses[-1] < 0.8 * losses[0], losses
    assert focal[-1] < 0.9 * focal[0], focal
