# syntax=docker/dockerfile:1
#
# One image template for the five services, built from the repository root:
#
#   docker build --build-arg SERVICE=document-service -f Dockerfile .
#   make image service=document-service            (the same, with a tag)
#
# SERVICE is a uv workspace member under services/ (document-service, routing-service,
# signature-service, notification-service, reporting-service, gateway-service). The image runs
# `python -m <module>` (document-service -> document_service) as a non-root user, with the
# virtualenv only: no uv, no sources, no tests, no compilers. SERVICE=lienthong-cli (libs/cli)
# builds the `lienthong` command's image the same way (entrypoint `python -m lienthong_cli`).
#
# Base image, pinned by digest. PLACEHOLDER: the machine these files were written on cannot
# reach a container registry, so the current digest could not be read. Before the first
# release, look it up and pin it (here, or with --build-arg / `make image PYTHON_DIGEST=...`):
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{.Manifest.Digest}}'
# Until PYTHON_DIGEST is set the tag alone is used.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG PYTHON_DIGEST=
# uv, from PyPI, the version the Makefile installs.
ARG UV_VERSION=0.13.9

# --- build: resolve and install into /app/.venv ------------------------------------------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@${PYTHON_DIGEST}} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG UV_VERSION
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<name>-service" >&2; exit 1; }

RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Step 1, the dependencies only: this layer changes only when uv.lock or a pyproject.toml
# does. uv needs every workspace member's pyproject.toml to read the workspace.
COPY uv.lock pyproject.toml ./
COPY libs/proto/pyproject.toml libs/proto/
COPY libs/kit/pyproject.toml libs/kit/
COPY libs/local/pyproject.toml libs/local/
COPY libs/cli/pyproject.toml libs/cli/
COPY libs/edxml/pyproject.toml libs/edxml/
COPY libs/audit/pyproject.toml libs/audit/
COPY libs/testing/pyproject.toml libs/testing/
COPY services/document-service/pyproject.toml services/document-service/
COPY services/routing-service/pyproject.toml services/routing-service/
COPY services/signature-service/pyproject.toml services/signature-service/
COPY services/notification-service/pyproject.toml services/notification-service/
COPY services/reporting-service/pyproject.toml services/reporting-service/
COPY services/gateway-service/pyproject.toml services/gateway-service/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "${SERVICE}"

# Step 2, the workspace packages (the service, lienthong-kit, lienthong-proto), installed as
# wheels (--no-editable) so that the runtime image needs no source tree.
COPY libs/ libs/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${SERVICE}"

# The entrypoint: exec, so that python is PID 1 and receives SIGTERM itself (the service
# then reports NOT_SERVING and drains in-flight calls within its grace period).
RUN module="$(printf '%s' "${SERVICE}" | tr '-' '_')" \
    && /app/.venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${module}') is None)" \
    && printf '#!/bin/sh\nexec /app/.venv/bin/python -m %s "$@"\n' "${module}" > /app/entrypoint \
    && chmod 0555 /app/entrypoint

# --- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}${PYTHON_DIGEST:+@${PYTHON_DIGEST}} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="lienthong ${SERVICE}" \
      org.opencontainers.image.description="lienthong document-exchange platform: ${SERVICE}"

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 lienthong \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin lienthong

COPY --from=build --chown=0:0 /app /app
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIENTHONG_GRPC_HOST=0.0.0.0 \
    LIENTHONG_GRPC_PORT=50051 \
    LIENTHONG_METRICS_PORT=9100
# The only writable places in Kubernetes (read-only root filesystem) are emptyDir volumes:
# /tmp, and reporting-service's LIENTHONG_REPORTING_DATA_DIR.
WORKDIR /tmp
USER 10001:10001
EXPOSE 50051 50052 9100
ENTRYPOINT ["/app/entrypoint"]
