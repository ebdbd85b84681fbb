# kuberds task runner. `make help` lists the targets.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=
KUBECTL = KUBECONFIG=$(KUBECONFIG_LOCAL) "$$(bash hack/build-binaries.sh --print-bin-dir)/kubectl"
KUBECONFIG_LOCAL := $(shell python3 -c 'import os,pathlib; print(pathlib.Path(os.environ.get("KUBERDS_CLUSTER_DIR", pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home()/".cache"))/"kuberds"/"cluster"))/"kubeconfig")')

.PHONY: help venv binaries images cluster-up cluster-down cluster-status up dev generate bench bench-dataplane bench-replica bench-proxy bench-cache bench-mariadb bench-mariadb-dataplane bench-e2e test e2e unit lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## the Python virtualenv with kuberds and its dev tools

binaries: ## build the pinned Kubernetes, etcd, kwok, helm, SeaweedFS, CoreDNS and Argo CD binaries (cached)
	bash hack/build-binaries.sh

images: ## build the operator, postgres and s3 images with podman (cached by content)
	python3 hack/images.py build

cluster-up: ## start the local control plane with three zoned kwok nodes (REAL_NODES=1: and two real nodes)
	python3 hack/cluster.py up $(if $(REAL_NODES),--real-nodes)

cluster-down: ## stop it and remove its state
	python3 hack/cluster.py down

cluster-status: ## what runs, where the logs are
	python3 hack/cluster.py status

up: ## real nodes, images, kuberds by Helm, a sample Multi-AZ DBInstance, and how to connect
	bash hack/up.sh

dev: venv cluster-up ## kwok-only cluster, CRDs, a sample, and the operator from source (foreground; Ctrl-C stops it)
	@if [ -n "$$($(KUBECTL) get deployments -A -l app.kubernetes.io/name=kuberds,app.kubernetes.io/component=operator -o name)" ]; then \
	  echo "error: a kuberds operator is installed in this cluster (make up): two would fight; make cluster-down first" >&2; \
	  exit 1; fi
	$(KUBECTL) apply --server-side --force-conflicts -f crds/
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

bench-replica: venv cluster-up ## read replicas: create → replicating (seeded from backup vs a base backup), lag under pgbench, promote
	$(VENV)/bin/python bench/replica.py $(BENCH_ARGS)

bench-proxy: venv cluster-up ## pgbench through the proxy vs direct at 40/400/1000 clients; held switchover stalls
	$(VENV)/bin/python bench/proxy.py

bench-cache: venv binaries ## CacheClusters through Kubernetes: apply → Available, Redis failover p50/p99 and writes lost, redis-benchmark via the Service vs the pod
	$(PY) bench/cache.py $(BENCH_ARGS)

bench-mariadb: venv binaries ## MariaDB through Kubernetes: apply → Available (Single-/Multi-AZ), primary pod deleted under writes p50/p99, commits lost
	$(PY) bench/mariadb.py $(BENCH_ARGS)

bench-mariadb-dataplane: venv cluster-up ## MariaDB's archive lag (binlogs shipped) under a write load on real servers
	$(VENV)/bin/python bench/mariadb_dataplane.py $(BENCH_ARGS)

bench-e2e: venv binaries ## through Kubernetes: apply → Available (Single-/Multi-AZ), pod-delete failover p50/p99
	$(PY) bench/e2e.py $(BENCH_ARGS)

test: venv lint ## lint, then every test: unit and control-plane tiers beside the data-plane tier (each starts its cluster if needed)
	VENV=$(VENV) bash hack/test-tiers.sh $(PYTEST_ARGS)

e2e: venv binaries ## whole-cluster scenarios: real nodes, Helm install, failover, restores (~27 min warm)
	$(VENV)/bin/pytest e2e -v -s --durations=15 $(PYTEST_ARGS)

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
