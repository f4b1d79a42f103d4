"""The detection contract and the steps every detector shares, in one place.

``contract`` (output/target keys, the detection row, box conventions), ``geometry`` (where an image
sits in the network input and how boxes map back; NumPy, with ``geometry_tf`` its TF twin),
``decode`` (TF) and ``decode_np`` (NumPy), ``soft_nms`` (the official port), ``finalise`` (soft-NMS
and the cap) and ``settings`` (all read from ``TestConfig``). Only ``decode`` and ``geometry_tf``
import TensorFlow.
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CORNERS": ".contract",
        "OUTPUT_KEYS": ".contract",
        "TARGET_KEYS": ".contract",
        "REJECTED_SCORE": ".contract",
        "ROW_COLUMNS": ".contract",
        "ScaleGeometry": ".geometry",
        "scale_geometry": ".geometry",
        "canvas_geometry": ".geometry",
        "rows_to_image": ".geometry",
        "finalise_live": ".finalise",
        "as_test_config": ".settings",
    },
)
