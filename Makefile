# modeldeploy — two commands on a fresh machine: `make demo` and `make test`.
# Every target creates/updates .venv itself (python3 -m venv + pip install -e).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= runtime,s3,operator,dev
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup demo test test-main node-images node-preload test-unit test-gpu test-node lint bench tools cluster-build cluster-up cluster-down clean

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[$(EXTRAS)]'
	@# nuscenes-devkit pins numpy<2: install its pure-python eval code without its pins
	@# (see runtime/modeldeploy/projects/centerpoint/metrics.py for the decision)
	$(PIP) install -q --no-deps 'nuscenes-devkit==1.2.0' 'pyquaternion==0.9.9'
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)

## The main job on the embedded default: calibration project, bundled synthetic sample,
## CPU, local artifact store. Prints the summary table; results in work_dirs/demo/.
demo: setup
	$(VENV)/bin/modeldeploy run builtin:calibration/deploy_demo.py builtin:calibration/resnet18_5ch_tiny.py \
		--work-dir work_dirs/demo

## Everything CI runs: lint first (ruff, mypy, import floors, hadolint, chart), then unit,
## integration (moto S3), cluster (real control plane), e2e, gpu (skips visibly without a GPU),
## then the node tier (images built from images/*/Dockerfile, run by a real kubelet +
## containerd; root and ~25-40 GB of free disk; times in tests/cluster/README.md) in its own
## pytest session, as `make test-node` runs it alone. The node tier's images build (and are
## imported) beside everything before it (node-images: apt, debootstrap, pip, layer commits and
## the import wait on network and disk as much as on a core), not in series after it.
test:
	$(MAKE) --no-print-directory -j2 node-preload test-main
	$(PY) -m pytest tests/node -m node -v $(PYTEST_ARGS)

test-main: setup cluster-build tools lint
	$(PY) -m pytest tests -m "not node" $(PYTEST_ARGS)

## The node tier's images, built ahead (cached by content; seconds when nothing changed), then
## imported into the node's containerd. node-images needs no prerequisite so that `make -j2`
## starts it first; it runs on the system python (the build is standard library only) while
## setup makes .venv; the import needs .venv (PyYAML). Neither fails the make: the node
## tier's fixtures build/import again and report a failure as their ERROR.
NODE_LOG_DIR ?= work_dirs
node-images:
	@mkdir -p $(NODE_LOG_DIR)
	@echo "node-images: building the node tier's images in the background (log: $(NODE_LOG_DIR)/node-images.log)"
	@$(PYTHON) -m tests.node.images >$(NODE_LOG_DIR)/node-images.log 2>&1; \
		grep '^node images:' $(NODE_LOG_DIR)/node-images.log || tail -n 5 $(NODE_LOG_DIR)/node-images.log

node-preload: node-images setup
	@$(PY) -m tests.node.images --preload >$(NODE_LOG_DIR)/node-preload.log 2>&1; \
		grep '^node images: in containerd\|^node images: .* failed' $(NODE_LOG_DIR)/node-preload.log \
		|| tail -n 5 $(NODE_LOG_DIR)/node-preload.log

test-node: setup cluster-build
	$(PY) -m pytest tests/node -m node -v $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-gpu: setup
	$(PY) -m pytest -m gpu tests/gpu -v

## helm (built from its Go module, cached), the Debian Prometheus server for the e2e tests, and
## Debian's chromium + tmux (report.html screenshots, TTY progress capture).
tools:
	tests/e2e/build_helm.sh >/dev/null
	tests/e2e/install_prometheus.sh >/dev/null
	tests/e2e/install_report_tools.sh

## Style (ruff), types (mypy) and the import floors (import-linter; docs/architecture.md).
lint: setup tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=runtime:operator $(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/hadolint images/operator/Dockerfile images/runtime/Dockerfile
	scripts/sync_chart.sh --check
	"$$(tests/e2e/build_helm.sh)" lint --strict charts/modeldeploy-operator

## Benchmarks print markdown tables (tests never assert timings). Latency runs on CUDA when
## present (BENCH_DEVICE=cpu otherwise); sizes are knobs so a laptop run stays short.
BENCH_DEVICE ?= $(shell $(PY) -c "import torch;print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null)
BENCH_S3_MB  ?= 1024
BENCH_CRS    ?= 500
bench: setup cluster-build
	$(PY) benchmarks/gpu_latency.py --device $(BENCH_DEVICE) --out work_dirs/bench
	$(PY) benchmarks/s3_transfer.py --size-mb $(BENCH_S3_MB)
	$(PY) benchmarks/operator_scale.py --count $(BENCH_CRS) --no-succeeded

## kube-apiserver, kube-controller-manager, kube-scheduler and etcd from their Go modules,
## cached by version under ~/.cache/modeldeploy/k8s (cold: ~15-25 min on 2 cores; warm: instant).
cluster-build:
	tests/cluster/build.sh

cluster-up: setup cluster-build
	$(PY) -m tests.cluster up

cluster-down:
	$(PY) -m tests.cluster down

clean:
	rm -rf work_dirs .pytest_cache
