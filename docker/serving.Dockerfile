# TF Serving image for an exported CornerNet (GPU by default; BASE=tensorflow/serving:<v> for CPU).
# The export uses core TensorFlow ops only (corner pooling with impl="tf"), so the stock server
# runs it on the GPU without the custom op.
#
#   cornernet export --config C --weights W --out export/cornernet --version 1
#   docker build -f docker/serving.Dockerfile -t cornernet-serving:gpu .
#   docker run --gpus all --rm -p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501 cornernet-serving:gpu
#
# TF Serving has no authentication and its REST API no TLS: publish the ports on 127.0.0.1 (as above)
# and put a TLS proxy in front for other machines (serving/README.md, "Serving securely").
#
# Batching: serving/batching.config is tuned for CPUs; on a GPU raise max_batch_size to 16-32 and
# batch_timeout_micros to 5000-10000 (mount another file over /config/batching.config).
ARG BASE=tensorflow/serving:latest-gpu
FROM ${BASE}

# The model folder holds numbered versions (1/, 2/, ...); the server loads the highest.
ARG MODEL_DIR=export/cornernet
COPY ${MODEL_DIR} /models/cornernet
COPY serving/models.config serving/batching.config /config/

EXPOSE 8500 8501
ENTRYPOINT ["tensorflow_model_server", "--port=8500", "--rest_api_port=8501", \
            "--model_config_file=/config/models.config", \
            "--enable_batching", "--batching_parameters_file=/config/batching.config"]
