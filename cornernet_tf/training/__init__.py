"""Training: ``model.fit`` with the CornerNet loss under tf.distribute, and the ``cornernet train`` run.

* ``steps``: ``CornerNet.train_step`` / ``test_step`` (loss terms as metrics, non-finite check);
* ``global_loss``: the global-batch loss computed per replica;
* ``schedule``: Adam's step decay; ``strategy``: strategy, batch split and precision policy;
* ``callbacks``, ``workdir``, ``plots``: what a run writes; ``fit.train``: the whole run.
"""


def __getattr__(name):
    if name in ("train", "TrainResult"):
        from cornernet_tf.training import fit

        return getattr(fit, name)
    raise AttributeError(f"module 'cornernet_tf.training' has no attribute {name!r}")
