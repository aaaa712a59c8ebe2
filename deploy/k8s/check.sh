#!/usr/bin/env bash
# `make k8s-check`: everything that can be checked about the image and the manifests without
# a cluster or a Docker engine. Exits non-zero if any step fails (all steps run, so one run
# shows every problem).
#
#   1. kustomize build of every overlay, of the base alone and of the base with each component
#   2. kubernetes-validate (strict, bundled schemas) of everything built, the custom resources
#      against their CRD schemas (strict, deploy/k8s/schemas), the platform's invariants
#      (validate.py); then the same check on a copy with unknown fields, which must fail
#   2b. the KafkaUsers against the services' declared Kafka access (kafka_users.py --check);
#      then a copy with one ACL missing, which must fail
#   3. kube-linter of every overlay, with deploy/k8s/kube-linter.yaml
#   4. promtool: check and unit-test the PrometheusRule of every overlay that has one
#   5. hadolint of the Dockerfile, and the Dockerfile's workspace list against the workspace
#
# The tools come from deploy/k8s/k8s.mk (KUSTOMIZE, KUBE_LINTER, K8S_PYTHON, HADOLINT,
# PROMTOOL, K8S_VERSIONS; LIENTHONG_PYTHON, the project's interpreter, for the declared Kafka
# access; CRD_SCHEMAS, K8S_REQUIRE_CRD_SCHEMAS); ROOT is the repository; K8S_DIR may point at a copy of deploy/k8s
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
LIENTHONG_PYTHON=$(abs "${LIENTHONG_PYTHON:-.venv/bin/python}")
CRD_SCHEMAS=$(abs "${CRD_SCHEMAS:-$K8S_DIR/schemas}")
crd_args=(--crd-schemas "$CRD_SCHEMAS")
[[ ${K8S_REQUIRE_CRD_SCHEMAS:-} == 1 ]] && crd_args+=(--require-crd-schemas)

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
  (cd "$OUT" && "$K8S_PYTHON" "$K8S_DIR/validate.py" "${versions[@]}" "${crd_args[@]}" \
    $(for f in "${overlays[@]}"; do basename "$f"; done)) || fail "validation of the overlays"
fi
if [[ ${#combos[@]} -gt 0 ]]; then
  (cd "$OUT" && "$K8S_PYTHON" "$K8S_DIR/validate.py" "${versions[@]}" "${crd_args[@]}" \
    $(for f in "${combos[@]}"; do basename "$f"; done) | grep -vE '^    |^  (NOT|Secrets)') \
    || fail "validation of the base and components"
fi
# The validation must see a broken custom resource: unknown fields in a Kafka and a KafkaTopic.
if compgen -G "$CRD_SCHEMAS/*/*.json" >/dev/null && [[ -s $OUT/overlay-prod.yaml ]]; then
  "$K8S_PYTHON" - "$OUT/overlay-prod.yaml" >"$OUT/broken.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
next(d for d in docs if d["kind"] == "KafkaTopic")["spec"]["partitionz"] = 6
next(d for d in docs if d["kind"] == "Kafka")["spec"]["kafka"]["listeners"][0]["tlz"] = True
yaml.safe_dump_all(docs, sys.stdout)
EOF
  found=$("$K8S_PYTHON" "$K8S_DIR/validate.py" --k8s-version "${K8S_VERSIONS##* }" \
    "${crd_args[@]}" "$OUT/broken.yaml" 2>&1 | grep -cE "'(partitionz|tlz)' was unexpected")
  if [[ $found -eq 2 ]]; then
    echo "  a copy with unknown fields in Kafka and KafkaTopic: both refused"
  else
    fail "validate.py let an unknown field of a custom resource through"
  fi
fi

# --- 2b. Kafka ACLs ------------------------------------------------------------------------
step "KafkaUsers against the declared Kafka access (lienthong_kit.kafka_access)"
if "$LIENTHONG_PYTHON" -m lienthong_kit.kafka_access >"$OUT/access.json"; then
  users=$K8S_DIR/components/kafka-strimzi/users.yaml
  "$K8S_PYTHON" "$K8S_DIR/kafka_users.py" --check --users "$users" "$OUT/access.json" \
    || fail "KafkaUsers differ from the declared Kafka access (make k8s-users)"
  # A KafkaUser without one of its ACLs must be caught.
  "$K8S_PYTHON" - "$users" >"$OUT/users-broken.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
docs[0]["spec"]["authorization"]["acls"].pop()
yaml.safe_dump_all(docs, sys.stdout)
EOF
  refused=$("$K8S_PYTHON" "$K8S_DIR/kafka_users.py" --check --users "$OUT/users-broken.yaml" \
    "$OUT/access.json")
  if [[ $refused == *"missing"* ]]; then
    echo "  a copy with one ACL removed: refused"
  else
    fail "kafka_users.py --check let a missing ACL through"
  fi
else
  fail "python -m lienthong_kit.kafka_access (LIENTHONG_PYTHON=$LIENTHONG_PYTHON)"
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
