# lienthong — one Makefile for the whole workspace. `make help` lists the targets.
#
# The two commands a new user needs:
#   make run    install what is missing, start Kafka + the store + the five services
#   make test   install what is missing, start the infrastructure, lint, typecheck, check the
#               generated code for drift and run every test

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GOBIN := $(shell go env GOPATH 2>/dev/null)/bin
# the caller's own PATH, before ours: `make run` says when grpcurl is not on it
USER_PATH := $(PATH)
export PATH := $(CURDIR)/.venv/bin:$(CURDIR)/.tools/bin:$(GOBIN):$(PATH)
export UV_PYTHON_DOWNLOADS := never
# Registries may be reached through a TLS-inspecting proxy whose CA is only in the system store.
export UV_SYSTEM_CERTS := 1
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv

UV_VERSION := 0.13.9
BUF_VERSION := v1.72.0
GRPCURL_VERSION := v1.9.3
PYTHON ?= python3
UV := .tools/bin/uv
VENV := .venv/.synced
PY := .venv/bin/python

PROTO_FILES := $(shell find proto -name '*.proto' | sort)
PROTO_OUT := libs/proto/src
PYTEST_ARGS ?=

.PHONY: help run run-secure test lint typecheck proto proto-check buf-lint infra-up infra-down \
	infra-status install tools example-tools promtool curl openssl poppler bench replay faults clean \
	format

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# --- installation -------------------------------------------------------------------------
# Each step runs once, when its result is missing, and says what it does and how long it took
# on a 2-core machine with empty caches (docs/benchmarks.md, "First run").

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "python3 (3.11+) is required" >&2; exit 1; }
	@echo "install: uv $(UV_VERSION) into .tools/ with pip (about 5 s)"
	$(PYTHON) -m venv .tools
	.tools/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(VENV): $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	@echo "install: the Python workspace into .venv/ from uv.lock (about 5 s the first time)"
	$(UV) sync --locked --all-packages
	@touch $@

install: $(VENV) ## create .venv from uv.lock (only when it changed)
	deploy/local/infra.sh install

$(GOBIN)/buf:
	@command -v go >/dev/null || { echo "Go is required to build buf" >&2; exit 1; }
	@echo "install: building buf $(BUF_VERSION) with go install (about 190 s the first time)"
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(GOBIN)/grpcurl:
	@command -v go >/dev/null || { echo "Go is required to build grpcurl" >&2; exit 1; }
	@echo "install: building grpcurl $(GRPCURL_VERSION) with go install (about 60 s the first time)"
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

tools: $(GOBIN)/buf example-tools ## build buf and grpcurl, install promtool and curl (once)

example-tools: $(GOBIN)/grpcurl promtool curl ## what the README's examples use: grpcurl, promtool, curl

promtool: ## install promtool (Debian package prometheus) when missing and apt is usable
	@if command -v promtool >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "install: promtool (Debian package prometheus, with apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends prometheus >/dev/null; \
	else echo "promtool not installed (needs root and apt); metrics tests use the Python parser only"; fi

curl: ## the README's metrics example uses curl: install it when missing
	@if command -v curl >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "install: curl (Debian package curl, with apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends curl >/dev/null; \
	else echo "curl is missing: the README's metrics example needs it (apt-get install curl)"; fi

openssl: ## signature-service's test PKI runs `openssl ocsp` and `openssl cms`: install it when missing
	@if command -v openssl >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "install: openssl (Debian package openssl, with apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends openssl >/dev/null; \
	else echo "openssl is required by the signature tests (apt-get install openssl)" >&2; exit 1; fi

poppler: ## the CLI's report test renders the PDF with pdftoppm (Debian package poppler-utils)
	@if command -v pdftoppm >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing pdftoppm (Debian package poppler-utils)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends poppler-utils >/dev/null; \
	else echo "pdftoppm is required by the report test (apt-get install poppler-utils)" >&2; exit 1; fi

# --- generated code -----------------------------------------------------------------------

define generate
	rm -rf $(1)/lienthong && mkdir -p $(1)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$(1) --grpc_python_out=$(1) \
		--mypy_out=quiet:$(1) --mypy_grpc_out=quiet:$(1) $(PROTO_FILES)
	find $(1)/lienthong -type d -exec touch {}/__init__.py \;
	touch $(1)/lienthong/py.typed
endef

proto: $(VENV) ## regenerate libs/proto from proto/ (the only way generated code changes)
	$(call generate,$(PROTO_OUT))

PROTO_CHECK_DIR := .tools/proto-check

proto-check: $(VENV) ## fail if the committed generated code differs from proto/
	$(call generate,$(PROTO_CHECK_DIR))
	@diff -r -x __pycache__ $(PROTO_CHECK_DIR)/lienthong $(PROTO_OUT)/lienthong \
		|| { echo "generated code is stale: run 'make proto' and commit" >&2; exit 1; }
	@echo "proto-check: generated code matches proto/"

buf-lint: $(GOBIN)/buf ## buf lint of the proto module
	cd proto && buf lint

# --- quality ------------------------------------------------------------------------------

lint: $(VENV) buf-lint ## ruff, import contracts, buf lint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.venv/bin/lint-imports

format: $(VENV) ## apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: $(VENV) ## mypy --strict over libraries and services
	$(PY) -m mypy

# --- infrastructure -----------------------------------------------------------------------

infra-up: ## start Kafka, PostgreSQL and FerretDB (idempotent; reuses running ones)
	PYTHON=$(PYTHON) deploy/local/infra.sh up

infra-down: ## stop Kafka, FerretDB and PostgreSQL started by infra-up
	deploy/local/infra.sh down

infra-status: ## say whether Kafka and the store answer
	PYTHON=$(PYTHON) deploy/local/infra.sh status

# --- the two commands ---------------------------------------------------------------------

run: $(VENV) example-tools infra-up ## start the whole platform locally with a sample registry; Ctrl-C stops it
	@(PATH='$(USER_PATH)'; command -v grpcurl >/dev/null) || echo "note: grpcurl is in $(GOBIN), \
	which is not on your PATH; in the terminal you call from: export PATH=\"\$$PATH:$(GOBIN)\""
	$(PY) -m lienthong_local.run $(if $(filter 1 true yes,$(SECURE)),--secure)

run-secure: SECURE := 1
run-secure: run ## make run with mTLS on every gRPC port, Kafka TLS and ACLs, dev auth off (also: make run SECURE=1)

test: $(VENV) lint typecheck proto-check example-tools openssl poppler k8s-check infra-up ## lint, typecheck, drift checks, manifests and every test
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	echo; echo "Kafka, FerretDB and PostgreSQL are still running (the next make test or make run reuses"; \
	echo "them): make infra-status says where, make infra-down stops them."; exit $$status

REPLAY_ARGS ?=
replay: $(VENV) ## replay a month of traffic into `make run`'s platform and check the report (docs/reporting.md)
	$(PY) -m lienthong_local.replay $(REPLAY_ARGS)

bench: $(VENV) openssl infra-up ## benchmarks (each prints its figure and its baseline as a ratio)
	@ls benchmarks/*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	for b in benchmarks/*.py; do $(PY) $$b; done

clean-namespaces: $(VENV) infra-up ## remove the topics and databases killed test and benchmark runs left behind (not while tests run)
	$(PY) -m lienthong_testing.cleanup

faults: $(VENV) openssl infra-up ## the fault harness and the long fuzz round (kills Kafka, FerretDB, PostgreSQL: never on a shared machine)
	LIENTHONG_FAULTS=full LIENTHONG_FUZZ=full $(PY) -m pytest tests/faults tests/fuzz -s -p no:cacheprovider $(PYTEST_ARGS)

# Container image and Kubernetes manifests: k8s-check, k8s-render, image (deploy/k8s/k8s.mk).
include deploy/k8s/k8s.mk

clean: ## remove the virtualenv, tools and local data (stops the infrastructure first)
	-deploy/local/infra.sh purge
	rm -rf .venv .tools deploy/local/.data .mypy_cache .ruff_cache .pytest_cache
