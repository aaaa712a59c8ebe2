"""Turn CustomResourceDefinitions into the strict JSON schemas validate.py checks against.

    python deploy/k8s/crd_schemas.py --source "strimzi/strimzi-kafka-operator 1.2.0 <commit>" \\
        --out deploy/k8s/schemas CRD.yaml...

For every served version of every CRD given: its openAPIV3Schema as a JSON schema (draft
2020-12) in OUT/<group>/<kind>_<version>.json, made strict the way the API server prunes:
an object that lists its properties and neither allows additional ones nor keeps unknown
fields (x-kubernetes-preserve-unknown-fields) gets "additionalProperties": false, so a
misspelt or unknown field is an error; x-kubernetes-int-or-string becomes "integer or string".
Each schema records where it came from ("$comment": repository, release, commit, file), and
OUT/SOURCES.txt lists them all. Only the kinds the manifests use are needed (KINDS).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

# The custom resources of deploy/k8s (validate.py fails on one without a schema).
KINDS = {
    "kafka.strimzi.io": {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"},
    "mongodbcommunity.mongodb.com": {"MongoDBCommunity"},
    "monitoring.coreos.com": {"ServiceMonitor", "PodMonitor", "PrometheusRule"},
}


def strict(node: Any) -> Any:
    """A copy of an OpenAPI v3 (structural) schema as a strict JSON schema."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "type" not in node:
        out["type"] = ["integer", "string"]
    keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def convert(crd_file: Path, source: str, out: Path) -> list[str]:
    written = []
    for crd in yaml.safe_load_all(crd_file.read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        if kind not in KINDS.get(group, set()):
            continue
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = strict(version["schema"]["openAPIV3Schema"])
            api_version = f"{group}/{version['name']}"
            # The API server checks these two itself; here they select the schema.
            schema.setdefault("properties", {})["apiVersion"] = {"const": api_version}
            schema["properties"]["kind"] = {"const": kind}
            schema["properties"]["metadata"] = {"type": "object"}
            schema = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$comment": f"{kind} {api_version} from {source}: {crd_file.name}",
                **schema,
            }
            target = out / group / f"{kind}_{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            written.append(f"{group}/{target.name}  {source}  {crd_file.name}")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="repository, release and commit")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("crds", nargs="+", type=Path)
    args = parser.parse_args()
    written = [line for crd in args.crds for line in convert(crd, args.source, args.out)]
    if not written:
        print("no CRD of a kind the manifests use", file=sys.stderr)
        return 1
    sources = args.out / "SOURCES.txt"
    kept = sources.read_text().splitlines() if sources.exists() else []
    names = {line.split()[0] for line in written}
    lines = sorted({*(line for line in kept if line.split()[0] not in names), *written})
    sources.write_text("\n".join(lines) + "\n")
    print("\n".join(f"  {line}" for line in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
