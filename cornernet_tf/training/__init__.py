"""Training: ``model.fit`` with the CornerNet loss under tf.distribute, and the ``cornernet train`` run.

The training task (compile, ``train_step`` / ``test_step``, loss terms as metrics, the non-finite
check), ``global_loss`` (the global-batch loss computed per replica), ``schedule`` (Adam's step
decay), ``strategy`` (strategy, batch split, precision policy), ``callbacks``, ``workdir`` and
``plots`` (what a run writes) and ``fit`` (:func:`train`, the whole run).
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "train": "cornernet_tf.training.fit",
        "TrainResult": "cornernet_tf.training.fit",
    },
)
