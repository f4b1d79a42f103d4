"""Talking to a served CornerNet SavedModel: gRPC and REST clients, and an in-process test server.

``client`` speaks TF Serving's gRPC ``PredictionService`` and REST API; ``server`` implements both
over a SavedModel on 127.0.0.1 for tests and the demo (production uses ``tensorflow_model_server``).
Neither imports the rest of ``cornernet_tf``: a served model needs only TensorFlow.
"""

from cornernet_tf._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "PredictionError": "cornernet_tf.serving.client",
        "ClientUsageError": "cornernet_tf.serving.client",
        "grpc_credentials": "cornernet_tf.serving.client",
        "rest_ssl_context": "cornernet_tf.serving.client",
        "predict_grpc": "cornernet_tf.serving.client",
        "predict_rest": "cornernet_tf.serving.client",
        "detections": "cornernet_tf.serving.client",
        "ServedModel": "cornernet_tf.serving.server",
        "ServingError": "cornernet_tf.serving.server",
        "serve_in_process": "cornernet_tf.serving.server",
        "serve_rest_in_process": "cornernet_tf.serving.server",
    },
)
