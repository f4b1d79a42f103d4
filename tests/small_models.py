"""The narrow, shallow variant of the tiny hourglass that export, serving and precision tests
build: the code paths are the same as the tiny config's, tracing is quicker."""

SMALL = [
    "model.dims=[16,16,16]",
    "model.modules=[1,1,1]",
    "model.stem_dims=[8,16]",
    "model.cnv_dim=16",
    "model.pool_dim=8",
    "model.head_dim=8",
]
# The same with the portable corner pool, which exports (stock TF Serving has no custom ops).
SMALL_TF_POOL = [*SMALL, "model.corner_pool_impl=tf"]
