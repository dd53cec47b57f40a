# ogc-hpc-gateway — two commands matter: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: demo test cluster cluster-stop venv lint typecheck unit bench chaos stop-demo clean test-tools pyslurm fuzz keycloak keycloak-stop dist web-assets apptainer

$(STAMP): pyproject.toml
	@$(PY) -c 'import ensurepip, venv' 2>/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-dev; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,postgres,toil]'
	touch $(STAMP)

venv: $(STAMP)

# Bootstrap and Leaflet for the gateway's pages, from npm (package-lock.json) into
# gateway/web/static/vendor/: the gateway serves every asset itself.
WEB_ASSETS := gateway/web/static/vendor/.installed
$(WEB_ASSETS): package.json package-lock.json deploy/web-assets.sh
	bash deploy/web-assets.sh

web-assets: $(WEB_ASSETS)

cluster:
	$(SUDO) bash deploy/devcluster.sh install
	$(SUDO) bash deploy/devcluster.sh start
	$(SUDO) bash deploy/runtime-access.sh $(CURDIR)

cluster-stop:
	$(SUDO) bash deploy/devcluster.sh stop

demo: venv web-assets cluster
	bash deploy/demo.sh

stop-demo:
	bash deploy/demo.sh stop

lint: venv
	$(BIN)/ruff check gateway processes hpc_adapters tests bench deploy/pyslurm_pairs.py deploy/eo_mirror deploy/demo_job.py
	$(BIN)/ruff format --check gateway processes hpc_adapters tests bench deploy/pyslurm_pairs.py deploy/eo_mirror deploy/demo_job.py
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest -m unit -q

# The installable wheel (docs/installing.md): dist/ogc_hpc_gateway-<version>-py3-none-any.whl
dist: venv web-assets
	rm -rf dist build
	$(BIN)/pip wheel -q --no-deps -w dist .

test-tools:
	$(SUDO) bash deploy/install-test-tools.sh

# Keycloak (realm gep, dev mode) on 127.0.0.1:8180: fetched once with Maven into
# ~/.cache/hpcgw/keycloak, see deploy/keycloak/README.md. It keeps running afterwards.
keycloak:
	bash deploy/keycloak/keycloak.sh start

keycloak-stop:
	bash deploy/keycloak/keycloak.sh stop

# Apptainer (non-setuid) built from its Go module source into ~/.cache/hpcgw/apptainer-<version>,
# once; the container-run test uses it and is skipped without it. Not part of `make test`:
# a cold build takes 10 to 15 minutes on 2 cores (deploy/apptainer.sh).
apptainer:
	bash deploy/apptainer.sh install

# pyslurm for this host's Slurm, from a cached wheel (first build: minutes of CPU;
# cache ~/.cache/hpcgw-wheels in CI). Needs libslurm-dev and the pyslurm source:
# its GitHub tag by default (PyPI has no release for Slurm 22.05), or PYSLURM_SOURCE.
pyslurm: venv cluster
	bash deploy/install-pyslurm.sh $(BIN)/python

# pyslurm is optional: where its source cannot be fetched (no GitHub access) the
# pyslurm tests are skipped and say why; where it is installed they must pass.
# `make cluster` brings up both dev clusters (hpcgw: Slurm 22.05, mesocentre: 24.11,
# built once and cached in ~/.cache/hpcgw); every test tier uses both.
test: venv web-assets cluster test-tools keycloak
	@timeout 1200 bash deploy/install-pyslurm.sh $(BIN)/python || \
	  echo "[make test] pyslurm not installed (see above): the pyslurm adapter tests will be skipped"
	@$(BIN)/python deploy/pyslurm_pairs.py
	HPCGW_REQUIRE_CLUSTER=1 \
	HPCGW_REQUIRE_PYSLURM=$$($(BIN)/python -c 'import pyslurm' 2>/dev/null && echo 1 || echo 0) \
	  $(BIN)/python -m pytest -q -rs

# The long abuse run: schemathesis against the app's own /openapi, in-process (no
# cluster, no job created), FUZZ_EXAMPLES generated requests per operation (~25
# operations) with a fresh random seed; no 5xx and every answer as documented.
# `make test` runs the same test with 10 per operation and a fixed seed.
FUZZ_EXAMPLES ?= 250
fuzz: venv
	HPCGW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HPCGW_FUZZ_RANDOM=1 \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/security/test_openapi_fuzz.py

BENCH_SIZE ?= full
bench: venv cluster keycloak
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run --size $(BENCH_SIZE)

# Exactly once under process kills: N jobs, K SIGKILLs of random gateway processes, on
# SQLite (one serve --with-worker) and PostgreSQL (two serve + two worker); counts
# correct final states, lost jobs, duplicate Slurm jobs and core-hours (bench/README.md).
# CHAOS_SIZE=smoke: 40 jobs, 3 kills (~3 min); full: 1,000 jobs, 10 kills.
CHAOS_SIZE ?= smoke
chaos: venv cluster
	$(BIN)/python -m bench.chaos --size $(CHAOS_SIZE)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache dist build
