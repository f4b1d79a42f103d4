"""Training: ``model.fit`` with the CornerNet loss under tf.distribute, and the ``cornernet train`` run.

``task.CornerNetTask`` wraps the network, keras-hub style: compile, ``train_step`` /
``test_step`` (what one step computes is in ``steps``), loss terms as metrics and the non-finite
check. ``global_loss`` (the global-batch normalisers), ``schedule`` (Adam's step decay),
``strategy`` (strategy, batch split, precision policy), ``callbacks``, ``workdir`` and ``plots``
(what a run writes) and ``fit`` (:func:`train`, the whole run).
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CornerNetTask": "cornernet_tf.training.task",
        "build_model": "cornernet_tf.training.task",
        "train": "cornernet_tf.training.fit",
        "TrainResult": "cornernet_tf.training.fit",
    },
)
