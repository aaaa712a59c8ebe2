"""Validate rendered manifests: Kubernetes schemas (strict) and the platform's own invariants.

    python deploy/k8s/validate.py --k8s-version 1.31.0 --k8s-version 1.37.0 \
        --crd-schemas deploy/k8s/schemas FILE...

Run by deploy/k8s/check.sh (`make k8s-check`) with the interpreter of the kubernetes-validate
virtualenv. For every built-in resource, the JSON schema of each Kubernetes version given,
bundled with kubernetes-validate, in strict mode (unknown fields are errors). For every custom
resource (Strimzi, MongoDB operator, Prometheus operator), the JSON schema made from its CRD
by crd_schemas.py (CRD_SCHEMAS/<group>/<kind>_<version>.json, strict too). An apiVersion or
kind without a schema is an error; only when the CRD schema folder is missing altogether are
the custom resources listed as not validated (unless --require-crd-schemas). Then the
platform's invariants (cross references, replication, partitions, no ANONYMOUS super user).
Exits 1 on any problem, printing all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from kubernetes_validate import utils as kv

# Custom resource groups: validated by the invariants below, not by a schema.
CUSTOM_GROUPS = {
    "kafka.strimzi.io": "Strimzi",
    "mongodbcommunity.mongodb.com": "MongoDB Community Operator",
    "monitoring.coreos.com": "Prometheus Operator",
}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}

Doc = dict[str, Any]


def group_of(doc: Doc) -> str:
    api = doc.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def ident(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


class CrdSchemas:
    """The custom resources' schemas (crd_schemas.py's output), loaded once each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # the folder keeps its README when the generated schemas are absent
        self.present = folder.is_dir() and any(folder.glob("*/*.json"))
        self._loaded: dict[Path, Draft202012Validator | None] = {}

    def validator(self, doc: Doc) -> Draft202012Validator | None:
        group, _, version = doc["apiVersion"].partition("/")
        path = self.folder / group / f"{doc['kind']}_{version}.json"
        if path not in self._loaded:
            self._loaded[path] = (
                Draft202012Validator(json.loads(path.read_text())) if path.exists() else None
            )
        return self._loaded[path]


def validate_custom(path: str, doc: Doc, crds: CrdSchemas, report: Report) -> bool:
    """Validate one custom resource; False when it could not be (no schema folder)."""
    where = f"{path} {ident(doc)}"
    if not crds.present:
        return False
    validator = crds.validator(doc)
    if validator is None:
        report.error(where, f"no CRD schema for {doc['apiVersion']} {doc['kind']} in {crds.folder}")
        return True
    for problem in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        at = ".".join(str(part) for part in problem.absolute_path) or "(top)"
        report.error(where, f"{CUSTOM_GROUPS[group_of(doc)]} CRD schema: {at}: {problem.message}")
    return True


def validate_schemas(
    path: str, docs: list[Doc], versions: list[str], crds: CrdSchemas, report: Report
) -> tuple[list[str], list[str]]:
    """Validate every resource; returns the custom resources validated and those skipped."""
    custom, skipped = [], []
    for doc in docs:
        group = group_of(doc)
        if group in CUSTOM_GROUPS:
            label = f"{ident(doc)} ({doc['apiVersion']}, {CUSTOM_GROUPS[group]})"
            (custom if validate_custom(path, doc, crds, report) else skipped).append(label)
            continue
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                at = ".".join(str(part) for part in exc.path)
                report.error(f"{path} {ident(doc)}", f"Kubernetes {version}: {at}: {exc.message}")
            except kv.SchemaNotFoundError as exc:
                report.error(f"{path} {ident(doc)}", exc.message)
    return custom, skipped


def pod_spec(doc: Doc) -> Doc | None:
    if doc.get("kind") not in POD_OWNERS:
        return None
    return doc["spec"]["template"]["spec"]


def check_invariants(path: str, docs: list[Doc], report: Report) -> dict[str, str]:
    """Cross-resource checks; returns the Secrets the cluster's operators must create."""
    by_kind: dict[str, dict[str, Doc]] = defaultdict(dict)
    for doc in docs:
        by_kind[doc["kind"]][doc["metadata"]["name"]] = doc

    # Secrets: in the manifests, or written at run time by an operator from a resource here.
    provided = set(by_kind["Secret"])
    provided |= set(by_kind["KafkaUser"])  # Strimzi's User Operator: <user> with user.crt/key
    # Strimzi's Cluster Operator: the CA of the brokers' certificates, for the clients.
    provided |= {f"{name}-cluster-ca-cert" for name in by_kind["Kafka"]}
    # ... and those the people running the cluster create (name -> what for).
    external: dict[str, str] = {}
    for mongo in by_kind["MongoDBCommunity"].values():
        tls = mongo["spec"].get("security", {}).get("tls", {})
        if not tls.get("enabled"):
            report.error(f"{path} {ident(mongo)}", "spec.security.tls must be enabled")
        for ref in ("certificateKeySecretRef", "caCertificateSecretRef"):
            if ref in tls:
                external[tls[ref]["name"]] = "required"
        for user in mongo["spec"].get("users", []):
            provided.add(user["connectionStringSecretName"])
            external[user["passwordSecretRef"]["name"]] = "required"

    platform = {}
    for name, cm in by_kind["ConfigMap"].items():
        if name.startswith("lienthong-platform"):
            platform = cm.get("data", {})
    grace = float(platform.get("LIENTHONG_SHUTDOWN_GRACE_SECONDS", "10"))
    # With mTLS on, document-service refuses a plaintext fetch: signature-service must fetch
    # attachments over mTLS with its own client certificate (else every document with an
    # attachment is dead-lettered).
    if "LIENTHONG_TLS_CERT" in platform:
        fetch = (
            "LIENTHONG_SIGNATURE_DOCUMENT_SERVICE_CA",
            "LIENTHONG_SIGNATURE_CLIENT_CERT",
            "LIENTHONG_SIGNATURE_CLIENT_KEY",
        )
        for name, cm in by_kind["ConfigMap"].items():
            if not name.startswith("signature-service-config"):
                continue
            for variable in fetch:
                if not cm.get("data", {}).get(variable):
                    report.error(f"{path} {ident(cm)}", f"mTLS is on but {variable} is not set")

    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        where = f"{path} {ident(doc)}"
        account = spec.get("serviceAccountName")
        if account and account not in by_kind["ServiceAccount"]:
            report.error(where, f"ServiceAccount {account} is not defined")
        if doc["kind"] == "Deployment" and spec.get("terminationGracePeriodSeconds", 30) <= grace:
            report.error(where, "terminationGracePeriodSeconds must exceed the shutdown grace")
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef") or {}
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                if kind == "ConfigMap" and ref.get("name") not in by_kind["ConfigMap"]:
                    report.error(where, f"ConfigMap {ref.get('name')} is not defined")
            for env in container.get("env", []):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                if secret and secret["name"] not in provided:
                    external[secret["name"]] = "optional" if secret.get("optional") else "required"
        for volume in spec.get("volumes", []):
            secret = volume.get("secret")
            if secret and secret["secretName"] not in provided:
                # The TLS Secret is optional in the pod, but required once mTLS is configured.
                used = volume["name"] == "tls" and "LIENTHONG_TLS_CERT" in platform
                optional = secret.get("optional") and not used
                external[secret["secretName"]] = "optional" if optional else "required"
            if "configMap" in volume and volume["configMap"]["name"] not in by_kind["ConfigMap"]:
                report.error(where, f"ConfigMap {volume['configMap']['name']} is not defined")

    templates = [d for d in docs if pod_spec(d) is not None]
    for service in by_kind["Service"].values():
        selector = service["spec"].get("selector", {})
        matches = [
            t
            for t in templates
            if selector.items() <= t["spec"]["template"]["metadata"].get("labels", {}).items()
        ]
        if not matches:
            report.error(f"{path} {ident(service)}", f"selector {selector} matches no pod")
    for kind in ("HorizontalPodAutoscaler",):
        for hpa in by_kind[kind].values():
            target = hpa["spec"]["scaleTargetRef"]
            if target["name"] not in by_kind[target["kind"]]:
                report.error(f"{path} {ident(hpa)}", f"target {target['name']} is not defined")

    policies = by_kind["NetworkPolicy"].values()
    if policies and not any(
        p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ):
        report.error(path, "no namespace-wide default-deny NetworkPolicy (podSelector {})")
    check_kafka(path, by_kind, platform, report)
    return {name: how for name, how in sorted(external.items()) if name not in provided}


def check_kafka(
    path: str, by_kind: dict[str, dict[str, Doc]], platform: Doc, report: Report
) -> None:
    clusters = by_kind["Kafka"]
    if not clusters:
        return
    for kafka in clusters.values():
        where = f"{path} {ident(kafka)}"
        # Every principal must be a KafkaUser with its ACLs: no way in as User:ANONYMOUS.
        supers = kafka["spec"]["kafka"].get("authorization", {}).get("superUsers", [])
        if any(name in ("ANONYMOUS", "User:ANONYMOUS") for name in supers):
            report.error(where, "ANONYMOUS is a super user: any client may do anything")
        for listener in kafka["spec"]["kafka"].get("listeners", []):
            if not listener.get("tls") or "authentication" not in listener:
                report.error(
                    where, f"listener {listener['name']} must use TLS and authenticate clients"
                )
    brokers: dict[str, int] = defaultdict(int)
    for pool in by_kind["KafkaNodePool"].values():
        cluster = pool["metadata"].get("labels", {}).get("strimzi.io/cluster")
        if cluster not in clusters:
            report.error(f"{path} {ident(pool)}", f"no Kafka named {cluster}")
        if "broker" in pool["spec"]["roles"]:
            brokers[cluster] += pool["spec"]["replicas"]
    topics: dict[str, Doc] = {}
    for topic in by_kind["KafkaTopic"].values():
        where = f"{path} {ident(topic)}"
        cluster = topic["metadata"].get("labels", {}).get("strimzi.io/cluster")
        if cluster not in clusters:
            report.error(where, f"no Kafka named {cluster}")
            continue
        spec = topic["spec"]
        topics[spec.get("topicName", topic["metadata"]["name"])] = topic
        if spec["replicas"] > brokers[cluster]:
            report.error(where, f"{spec['replicas']} replicas but {brokers[cluster]} brokers")
        isr = int(spec.get("config", {}).get("min.insync.replicas", 1))
        if isr > spec["replicas"]:
            report.error(where, f"min.insync.replicas {isr} > replicas {spec['replicas']}")
    for user in by_kind["KafkaUser"].values():
        for acl in user["spec"].get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            literal = resource["type"] == "topic" and resource.get("patternType") == "literal"
            if literal and resource["name"] not in topics:
                report.error(f"{path} {ident(user)}", f"ACL on unknown topic {resource['name']}")
    factor = int(platform.get("LIENTHONG_KAFKA_REPLICATION_FACTOR", "1"))
    for count in brokers.values():
        if factor > count:
            report.error(path, f"LIENTHONG_KAFKA_REPLICATION_FACTOR {factor} > {count} brokers")
    # faust: the table changelog and the topics that write it are partitioned like the app says.
    reporting = [
        cm.get("data", {})
        for name, cm in by_kind["ConfigMap"].items()
        if name.startswith("reporting-service-config")
    ]
    if reporting and "LIENTHONG_KAFKA_PARTITIONS" in reporting[0]:
        wanted = int(reporting[0]["LIENTHONG_KAFKA_PARTITIONS"])
        for name in (
            "reporting-service-facts-changelog",
            "lienthong.documents",
            "lienthong.deliveries",
            "lienthong.deliveries.urgent",
            "lienthong.verifications",
        ):
            topic = topics.get(name)
            if topic is None:
                report.error(path, f"no KafkaTopic for {name}")
            elif topic["spec"]["partitions"] != wanted:
                report.error(
                    path,
                    f"{name} has {topic['spec']['partitions']} partitions, reporting-service "
                    f"LIENTHONG_KAFKA_PARTITIONS is {wanted}",
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k8s-version", action="append", required=True)
    parser.add_argument(
        "--crd-schemas",
        type=Path,
        default=Path(__file__).parent / "schemas",
        help="crd_schemas.py's output folder",
    )
    parser.add_argument(
        "--require-crd-schemas", action="store_true", help="fail when the folder is missing"
    )
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    report = Report()
    crds = CrdSchemas(args.crd_schemas)
    if not crds.present and args.require_crd_schemas:
        report.error(str(args.crd_schemas), "no CRD schemas (deploy/k8s/schemas/README.md)")
    for path in args.files:
        try:
            docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        except yaml.YAMLError as exc:
            report.error(path, f"not YAML: {exc}")
            continue
        custom, skipped = validate_schemas(path, docs, args.k8s_version, crds, report)
        external = check_invariants(path, docs, report)
        checked = len(docs) - len(skipped) - len(custom)
        print(
            f"{path}: {checked} resources checked against Kubernetes "
            f"{', '.join(args.k8s_version)} (strict), {len(custom)} custom resources against "
            "their CRD schemas (strict)"
        )
        if skipped:
            print(f"  NOT validated, no CRD schemas at {crds.folder} ({len(skipped)}):")
            for item in skipped:
                print(f"    {item}")
        if external:
            listed = ", ".join(f"{name} ({how})" for name, how in external.items())
            print(f"  Secrets the cluster must provide: {listed}")
    for line in report.errors:
        print(f"ERROR {line}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
