# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv, install the package with its extras, and build the native libraries
# (corner-pool op, soft-NMS).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-all lint bench venv native clean

# TensorFlow: the CPU-only wheel by default (half the download of `tensorflow`; README "Install");
# TENSORFLOW=tensorflow for the full one. tensorflow-serving-api declares `tensorflow`, so beside
# tensorflow-cpu it goes in with --no-deps (with TENSORFLOW=tensorflow [serving] has it already).
TENSORFLOW ?= tensorflow-cpu
EXTRAS ?= serving,tflite,onnx,tfds,test,lint

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	CORNERNET_TENSORFLOW=$(TENSORFLOW) $(PIP) install -q -e '.[$(EXTRAS)]'
	$(PIP) install -q --no-deps 'tensorflow-serving-api>=2.16,<2.22'
	touch $@

venv: $(VENV)/.installed

native: $(VENV)/.installed
	$(PY) -m cornernet_tf.ops.build || echo "warning: a native library was not built; its portable path (TF corner pools, NumPy soft-NMS) will be used"

demo: native
	$(VENV)/bin/cornernet demo --out demo_out

# Two pytest workers (pytest-xdist), each running whole files so that a file's fixtures are built
# once: on 2 cores most of a test's time is single-threaded tracing, so this is ~1.6x faster than
# one process. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: native
	$(PY) -m pytest -q -m "not slow" $(XDIST) tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# Style and layering, enforced: ruff (lint + format) and import-linter (layer contracts), both
# configured in pyproject.toml.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test-all: native
	$(PY) -m pytest -q $(XDIST) tests

clean:
	rm -rf $(VENV) build *.egg-info demo_out cornernet_tf/ops/kernels/*.so
