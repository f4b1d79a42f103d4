"""The small shapes-data pipeline config that the pipeline tests share."""

from __future__ import annotations

from cornernet_tf.config import DataConfig


def shapes_data_config(shapes_dir, **overrides) -> DataConfig:
    """A deterministic 63x63 pipeline over a ``generate_shapes`` folder with train and val splits."""
    base = dict(
        train_annotations=str(shapes_dir / "train" / "annotations.json"),
        train_images=str(shapes_dir / "train" / "images"),
        val_annotations=str(shapes_dir / "val" / "annotations.json"),
        val_images=str(shapes_dir / "val" / "images"),
        input_size=[63, 63],
        border=16,
        seed=7,
        deterministic=True,
        num_parallel_calls=2,
    )
    base.update(overrides)
    return DataConfig(**base)
