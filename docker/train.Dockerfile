# GPU training image: the official TensorFlow GPU image, nvcc for the CUDA kernels of the native
# corner-pool op, and this project with the op built for common data-centre GPUs.
#
#   docker build -f docker/train.Dockerfile -t cornernet-tf:gpu .
#   docker run --gpus all --rm cornernet-tf:gpu python benchmarks/gpu_check.py
#   docker run --gpus all --rm -v /data/coco:/opt/cornernet-tf/data/coco -v "$PWD/runs":/runs \
#       cornernet-tf:gpu cornernet train --config configs/cornernet_hg104_coco.yaml \
#       --workdir /runs/hg104 --set train.strategy=mirrored --set train.mixed_precision=mixed_float16
#
# The build needs no GPU. CUDA_VERSION must be a toolkit the image's TensorFlow runs with (its
# `tf.sysconfig.get_build_info()["cuda_version"]`, same major version); UBUNTU names NVIDIA's apt
# repository for the base image's Ubuntu release.
ARG TF_VERSION=2.21.0
FROM tensorflow/tensorflow:${TF_VERSION}-gpu

ARG CUDA_VERSION=12.5
ARG UBUNTU=ubuntu2204
# Compute capabilities compiled (PTX of the last one is kept for newer GPUs): T4, A100, A10/A40,
# L4/L40, H100/H200.
ARG CUDA_ARCHS=75,80,86,89,90

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates g++ wget \
 && wget -q "https://developer.download.nvidia.com/compute/cuda/repos/${UBUNTU}/x86_64/cuda-keyring_1.1-1_all.deb" \
 && dpkg -i cuda-keyring_1.1-1_all.deb && rm cuda-keyring_1.1-1_all.deb \
 && apt-get update \
 && v=$(echo "${CUDA_VERSION}" | tr . -) \
 && apt-get install -y --no-install-recommends "cuda-nvcc-${v}" "cuda-cudart-dev-${v}" \
 && rm -rf /var/lib/apt/lists/*

ENV CUDA_HOME=/usr/local/cuda-${CUDA_VERSION} \
    TF_CPP_MIN_LOG_LEVEL=2
ENV PATH=${CUDA_HOME}/bin:${PATH}

WORKDIR /opt/cornernet-tf
COPY . .
# No extras: the image's own CUDA TensorFlow (the `tensorflow` distribution) meets the core
# requirement, so pip installs no other TensorFlow.
# A portable CPU target (x86-64-v3: AVX2) because the image may run on other hosts than the builder.
RUN pip install --no-cache-dir -e . \
 && CORNERNET_MARCH=x86-64-v3 CORNERNET_CUDA_ARCHS=${CUDA_ARCHS} python -m cornernet_tf.ops.build --force \
 && python -c "import importlib; nd = importlib.import_module('cornernet_tf.ops.native_devices'); \
importlib.import_module('cornernet_tf.ops.corner_pool').load_native(); \
types = {t for t, _ in nd.registered_kernels('CornerPool')}; print('corner-pool kernels:', types); \
assert 'GPU' in types, 'the op library has no GPU kernels'"

CMD ["python", "benchmarks/gpu_check.py"]
