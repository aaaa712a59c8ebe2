#!/usr/bin/env bash
# `make k8s-check`: everything that can be checked about the image and the manifests without
# a cluster or a Docker engine. Exits non-zero if any step fails (all steps run, so one run
# shows every problem).
#
#   1. kustomize build of every overlay, of the base alone and of the base with each component
#   2. kubernetes-validate (strict, bundled schemas) of everything built, plus the platform's
#      invariants (validate.py); custom resources are listed as skipped
#   3. kube-linter of every overlay, with deploy/k8s/kube-linter.yaml
#   4. promtool: check and unit-test the PrometheusRule of every overlay that has one
#   5. hadolint of the Dockerfile, and the Dockerfile's workspace list against the workspace
#
# The tools come from deploy/k8s/k8s.mk (KUSTOMIZE, KUBE_LINTER, K8S_PYTHON, HADOLINT,
# PROMTOOL, K8S_VERSIONS); ROOT is the repository; K8S_DIR may point at a copy of deploy/k8s
# (to try a change, or to see the check fail on a broken copy).
set -uo pipefail

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
K8S_DIR=$(cd "${K8S_DIR:-deploy/k8s}" && pwd)
DOCKERFILE=${DOCKERFILE:-Dockerfile}
: "${KUSTOMIZE:?}" "${KUBE_LINTER:?}" "${K8S_PYTHON:?}" "${HADOLINT:?}"
PROMTOOL=${PROMTOOL:-}
# Tool paths relative to the repository root work from any directory below.
abs() { case $1 in /* | '') echo "$1" ;; */*) echo "$ROOT/$1" ;; *) echo "$1" ;; esac; }
KUSTOMIZE=$(abs "$KUSTOMIZE") KUBE_LINTER=$(abs "$KUBE_LINTER") K8S_PYTHON=$(abs "$K8S_PYTHON")
HADOLINT=$(abs "$HADOLINT") PROMTOOL=$(abs "$PROMTOOL")
K8S_VERSIONS=${K8S_VERSIONS:-1.31.0 1.37.0}

OUT=$(mktemp -d "${TMPDIR:-/tmp}/k8s-check.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
started=$(date +%s)
failed=()

step() { printf '\n== k8s-check: %s\n' "$*"; }
fail() { failed+=("$1"); printf 'k8s-check: FAILED: %s\n' "$1" >&2; }

# --- 1. build ------------------------------------------------------------------------------
step "kustomize build ($("$KUSTOMIZE" version))"
overlays=()
for dir in "$K8S_DIR"/overlays/*/; do
  name=$(basename "$dir")
  if "$KUSTOMIZE" build "$dir" >"$OUT/overlay-$name.yaml"; then
    overlays+=("$OUT/overlay-$name.yaml")
    printf '  overlays/%-22s %3d resources\n' "$name" "$(grep -c '^kind:' "$OUT/overlay-$name.yaml")"
  else
    fail "kustomize build overlays/$name"
  fi
done
[[ ${#overlays[@]} -gt 0 ]] || fail "no overlay under $K8S_DIR/overlays"
# The base alone and with each component on its own: every component must build by itself.
combos=()
for dir in "$K8S_DIR"/base "$K8S_DIR"/components/*/; do
  name=$(basename "$dir")
  mkdir -p "$OUT/combo-$name"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "namespace: lienthong-check"
    # (kustomize takes relative paths only)
    echo "resources: [$(realpath --relative-to="$OUT/combo-$name" "$K8S_DIR/base")]"
    [[ $name == base ]] || echo "components: [$(realpath --relative-to="$OUT/combo-$name" "$dir")]"
  } >"$OUT/combo-$name/kustomization.yaml"
  label=$([[ $name == base ]] && echo "base" || echo "base + components/$name")
  if "$KUSTOMIZE" build "$OUT/combo-$name" >"$OUT/combo-$name.yaml"; then
    combos+=("$OUT/combo-$name.yaml")
    printf '  %-31s %3d resources\n' "$label" "$(grep -c '^kind:' "$OUT/combo-$name.yaml")"
  else
    fail "kustomize build $label"
  fi
done

# --- 2. validate ---------------------------------------------------------------------------
step "kubernetes-validate, strict, Kubernetes $K8S_VERSIONS"
versions=()
for version in $K8S_VERSIONS; do versions+=(--k8s-version "$version"); done
if [[ ${#overlays[@]} -gt 0 ]]; then
  (cd "$OUT" && "$K8S_PYTHON" "$K8S_DIR/validate.py" "${versions[@]}" \
    $(for f in "${overlays[@]}"; do basename "$f"; done)) || fail "validation of the overlays"
fi
if [[ ${#combos[@]} -gt 0 ]]; then
  (cd "$OUT" && "$K8S_PYTHON" "$K8S_DIR/validate.py" "${versions[@]}" \
    $(for f in "${combos[@]}"; do basename "$f"; done) | grep -vE '^    |^  (skipped|Secrets)') \
    || fail "validation of the base and components"
fi

# --- 3. lint -------------------------------------------------------------------------------
step "kube-linter $("$KUBE_LINTER" version) (config deploy/k8s/kube-linter.yaml)"
for file in "${overlays[@]}"; do
  name=$(basename "$file" .yaml)
  if result=$("$KUBE_LINTER" lint --config "$K8S_DIR/kube-linter.yaml" "$file" 2>&1); then
    echo "  $name: $(echo "$result" | grep -v '^KubeLinter ' | grep -v '^$')"
  else
    echo "$result" | grep -v '^$' | sed "s/^/  $name: /"
    fail "kube-linter $name"
  fi
done

# --- 4. alert rules ------------------------------------------------------------------------
step "promtool: the PrometheusRule of each overlay"
tested=0
if [[ -z $PROMTOOL ]]; then
  fail "promtool is not installed (make promtool, as root: Debian package prometheus)"
else
  for file in "${overlays[@]}"; do
    name=$(basename "$file" .yaml)
    dir="$OUT/rules-$name"
    mkdir -p "$dir"
    "$K8S_PYTHON" - "$file" "$dir/rules.yaml" <<'EOF' || { fail "extract rules of $name"; continue; }
import sys, yaml
rules = [d["spec"] for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
if rules:
    yaml.safe_dump({"groups": [g for r in rules for g in r["groups"]]}, open(sys.argv[2], "w"))
EOF
    if [[ ! -s $dir/rules.yaml ]]; then
      echo "  $name: no PrometheusRule (monitoring component not used)"
      continue
    fi
    cp "$K8S_DIR"/components/monitoring/tests/*.test.yaml "$dir/"
    (cd "$dir" && "$PROMTOOL" check rules rules.yaml && "$PROMTOOL" test rules ./*.test.yaml) 2>&1 \
      | grep -v '^$' | sed "s/^/  $name: /"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || fail "promtool rules of $name"
    tested=$((tested + 1))
  done
  [[ $tested -gt 0 ]] || fail "no overlay has rules to test"
fi

# --- 5. Dockerfile -------------------------------------------------------------------------
step "Dockerfile: hadolint $("$HADOLINT" --version | awk '{print $NF}'), workspace members"
"$HADOLINT" --no-color "$DOCKERFILE" && echo "  hadolint: clean" || fail "hadolint $DOCKERFILE"
# Step 1 of the Dockerfile copies every workspace member's pyproject.toml by name: a member
# added to the workspace must be added there too.
members=$(ls libs/*/pyproject.toml services/*/pyproject.toml | sort)
copied=$(grep -oE '^COPY [^ ]+/pyproject.toml' "$DOCKERFILE" | awk '{print $2}' | sort)
if [[ $members == "$copied" ]]; then
  echo "  workspace members copied in step 1: $(echo "$copied" | wc -l)"
else
  diff <(echo "$members") <(echo "$copied") | sed 's/^/  /'
  fail "the Dockerfile's pyproject.toml list differs from the workspace (< missing, > extra)"
fi

# --- summary -------------------------------------------------------------------------------
elapsed=$(($(date +%s) - started))
echo
if [[ ${#failed[@]} -eq 0 ]]; then
  echo "k8s-check: passed in ${elapsed} s"
else
  echo "k8s-check: ${#failed[@]} step(s) failed in ${elapsed} s:" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
