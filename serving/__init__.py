"""Serving a CornerNet SavedModel with TF Serving: clients (gRPC, REST) and an in-process test server.

See serving/README.md for the ``tensorflow_model_server`` / Docker commands. This package does not
import ``cornernet_tf``: a served model needs only TensorFlow (and the serving protos).
"""
