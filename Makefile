# kuberds task runner. `make help` lists the targets.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=
KUBECONFIG_LOCAL := $(shell python3 -c 'import os,pathlib; print(pathlib.Path(os.environ.get("KUBERDS_CLUSTER_DIR", pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home()/".cache"))/"kuberds"/"cluster"))/"kubeconfig")')

.PHONY: help venv binaries cluster-up cluster-down cluster-status up test unit lint fmt clean

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

up: venv cluster-up ## the local cluster plus kuberds (operator in the foreground; Ctrl-C stops it)
	KUBECONFIG=$(KUBECONFIG_LOCAL) "$$(bash hack/build-binaries.sh --print-bin-dir)/kubectl" apply --server-side -f crds/ 2>/dev/null || true
	KUBECONFIG=$(KUBECONFIG_LOCAL) $(VENV)/bin/kuberds operator

test: venv lint ## lint, then every test (unit and control-plane; starts the cluster if needed)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: venv ## unit tests only (seconds; no cluster)
	$(VENV)/bin/pytest -m "not cluster" $(PYTEST_ARGS)

lint: venv ## ruff lint and format check
	$(VENV)/bin/ruff check operator tests e2e hack
	$(VENV)/bin/ruff format --check operator tests e2e hack

fmt: venv ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix operator tests e2e hack
	$(VENV)/bin/ruff format operator tests e2e hack

clean: ## remove the virtualenv (the binary cache in ~/.cache/kuberds stays)
	rm -rf $(VENV)
