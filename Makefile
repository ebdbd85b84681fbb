# kuberds task runner. `make help` lists the targets.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=
KUBECTL = KUBECONFIG=$(KUBECONFIG_LOCAL) "$$(bash hack/build-binaries.sh --print-bin-dir)/kubectl"
KUBECONFIG_LOCAL := $(shell python3 -c 'import os,pathlib; print(pathlib.Path(os.environ.get("KUBERDS_CLUSTER_DIR", pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home()/".cache"))/"kuberds"/"cluster"))/"kubeconfig")')

.PHONY: help venv binaries cluster-up cluster-down cluster-status up generate bench bench-dataplane test unit lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## the Python virtualenv with kuberds and its dev tools

binaries: ## build the pinned Kubernetes, etcd and kwok binaries (cached)
	bash hack/build-binaries.sh

cluster-up: ## start the local control plane with three zoned kwok nodes
	python3 hack/cluster.py up

cluster-down: ## stop it and remove its state
	python3 hack/cluster.py down

cluster-status: ## what runs, where the logs are
	python3 hack/cluster.py status

up: venv cluster-up ## the local cluster, kuberds' CRDs, a sample DBInstance, and the operator (foreground; Ctrl-C stops it)
	$(KUBECTL) apply --server-side -f crds/
	$(KUBECTL) wait crd -l app.kubernetes.io/part-of=kuberds --for=condition=Established --timeout=60s
	$(KUBECTL) apply -f examples/dbinstance-multiaz.yaml
	@echo "==> operator starting; in another shell: export KUBECONFIG=$(KUBECONFIG_LOCAL); kubectl get kuberds"
	KUBECONFIG=$(KUBECONFIG_LOCAL) $(VENV)/bin/kuberds operator

generate: venv ## regenerate crds/, the chart's CRDs and docs/api-reference.md from the API models
	$(VENV)/bin/python -m kuberds.api.generate

bench: venv cluster-up ## operator benchmark: 500 DBInstances on kwok nodes (prints figures)
	$(VENV)/bin/python bench/operator_scale.py --count $${COUNT:-500}

bench-dataplane: venv cluster-up ## failover, switchover, archive lag, backup/restore MB/s on real servers
	$(VENV)/bin/python bench/dataplane.py

test: venv lint ## lint, then every test (unit and control-plane; starts the cluster if needed)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: venv ## unit tests only (seconds; no cluster)
	$(VENV)/bin/pytest -m "not cluster" $(PYTEST_ARGS)

lint: venv ## ruff lint and format check
	$(VENV)/bin/ruff check operator tests e2e hack bench
	$(VENV)/bin/ruff format --check operator tests e2e hack bench

fmt: venv ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix operator tests e2e hack bench
	$(VENV)/bin/ruff format operator tests e2e hack bench

clean: ## remove the virtualenv (the binary cache in ~/.cache/kuberds stays)
	rm -rf $(VENV)
