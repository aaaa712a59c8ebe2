"""``make run``: the whole platform on this machine, until Ctrl-C.

Starts the five services on fixed ports (gRPC 50051-50055, metrics 9101-9105), loads the
sample registry into routing-service and prints the endpoints. Kafka and the store must be
up (``make infra-up``, which ``make run`` does first).

signature-service trusts a demo PKI written once under ``deploy/local/.data/demo-pki/``
(lienthong_testing.pki.demo_pki): signed sample PDFs and a signer certificate for the README's
signature examples; its revocation is checked offline against the demo's own CRLs.

The development switches are on by default so that the README's examples flow; each one set
in the environment wins (``LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED=false make run`` applies the
real signature policy), and the launcher prints which are on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.platform import Platform, free_port
from lienthong_local.sample import sample_units
from lienthong_testing.pki import DemoPki, demo_pki

__all__ = [
    "DEMO_PKI_FOLDER",
    "DEV_SWITCHES",
    "TRUST_ADMIN",
    "DevSwitch",
    "demo_settings",
    "describe_demo",
    "describe_switches",
    "dev_switches",
    "load_sample_registry",
    "local_platform",
]


@dataclass(frozen=True)
class DevSwitch:
    env: str
    default: str
    meaning: str


DEV_SWITCHES = (
    DevSwitch(
        "LIENTHONG_DEV_AUTH",
        "true",
        "x-lienthong-identity (unit/<code>, operator/<role>/<name>) names the caller",
    ),
    DevSwitch(
        "LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED",
        "true",
        "a document with no signature at all is accepted (signed ones are fully verified)",
    ),
    DevSwitch("LIENTHONG_FAILPOINTS", "", "crash-test failpoints"),
)
_ON = {"1", "true", "yes", "on"}
_OFF = {"", "0", "false", "no", "off"}


def dev_switches(environ: Mapping[str, str]) -> dict[str, str]:
    """Every development switch: the environment's value when set, make run's default otherwise."""
    return {switch.env: environ.get(switch.env, switch.default) for switch in DEV_SWITCHES}


def describe_switches(values: Mapping[str, str]) -> list[str]:
    lines = []
    for switch in DEV_SWITCHES:
        value = values[switch.env]
        if switch.env == "LIENTHONG_FAILPOINTS":
            state = f"on ({value})" if value else "off"
        elif value.strip().lower() in _ON:
            state = "on"
        elif value.strip().lower() in _OFF:
            state = "off"
        else:
            state = f"{value!r} is not a boolean: the services will refuse to start"
        lines.append(f"  {switch.env:<38} {state:<5} {switch.meaning}")
    return lines


# the registry is written by a registry administrator (dev auth names one by header)
REGISTRY_ADMIN = (("x-lienthong-identity", "operator/registry-admin/make-run"),)
# who the README's trust-store calls name (dev auth: any operator name in the role will do)
TRUST_ADMIN = "operator/trust-admin/make-run"

GATEWAY_HTTP_PORT = "8480"
# relative to the clone, where make runs (the README's examples name the files from there)
DEMO_PKI_FOLDER = Path("deploy/local/.data/demo-pki")


def demo_settings(demo: DemoPki, environ: Mapping[str, str]) -> dict[str, str]:
    """signature-service's settings that trust the demo PKI, but for those the environment sets."""
    return {key: value for key, value in demo.env.items() if key not in environ}


def load_sample_registry(endpoint: str) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        stub = RoutingServiceStub(channel)
        units = sample_units()
        for unit in units:
            stub.UpsertUnit(
                routing_pb.UpsertUnitRequest(unit=unit), metadata=REGISTRY_ADMIN, timeout=10
            )
    return len(units)


@contextmanager
def local_platform(
    *,
    log_dir: Path,
    environ: Mapping[str, str],
    prefix: str = "",
    fixed_ports: bool = True,
    extra_env: Mapping[str, str] | None = None,
    demo: DemoPki | None = None,
    timeout: float = 90.0,
) -> Iterator[Platform]:
    """The platform as ``make run`` starts it: its switches, the demo PKI trusted, the sample
    registry loaded; the gateway's HTTP port is ``platform.env["LIENTHONG_GATEWAY_HTTP_PORT"]``."""
    env = {
        **dev_switches(environ),
        **(demo_settings(demo, environ) if demo else {}),
        **(extra_env or {}),
    }
    # the README's edXML gateway examples call it on 8480; elsewhere any free port
    env.setdefault(
        "LIENTHONG_GATEWAY_HTTP_PORT", GATEWAY_HTTP_PORT if fixed_ports else str(free_port())
    )
    with Platform.start(
        log_dir=log_dir, prefix=prefix, fixed_ports=fixed_ports, extra_env=env, timeout=timeout
    ) as platform:
        load_sample_registry(platform.endpoint("routing-service"))
        yield platform


def describe_demo(demo: DemoPki, environ: Mapping[str, str]) -> list[str]:
    folder = DEMO_PKI_FOLDER
    samples = ", ".join(f"{name}.pdf" for name in demo.samples)
    lines = [
        f"\n  signatures: a demo PKI in {folder}/ (demo keys: development only)",
        f"    signed sample PDFs   {folder}/samples/: {samples}",
        f"    a signer certificate {folder}/pki/{demo.certificate.name}",
        f"    a CA under its root  {folder}/pki/{demo.public_ca.name} (for AddTrustAnchor)",
        f"    trust-store calls as -H 'x-lienthong-identity: {TRUST_ADMIN}'",
    ]
    overridden = sorted(key for key in demo.env if key in environ)
    if overridden:
        lines.append(
            f"    set in your environment, so not the demo's: {', '.join(overridden)}"
            " (the demo's samples may be refused)"
        )
    else:
        lines.append("    its root is trusted; revocation is checked offline against its CRLs")
    return lines


def main() -> int:
    log_dir = Path("deploy/local/.data/logs")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    switches = dev_switches(os.environ)
    print("development switches (set one in the environment to change it):")
    print("\n".join(describe_switches(switches)))
    print(f"writing or reusing the demo PKI in {DEMO_PKI_FOLDER}/ ...", flush=True)
    demo = demo_pki(DEMO_PKI_FOLDER.resolve())
    print("starting the five services (logs in deploy/local/.data/logs/) ...", flush=True)
    with local_platform(log_dir=log_dir, environ=os.environ, demo=demo) as platform:
        print(f"\nlienthong is running; sample registry loaded ({len(sample_units())} units).\n")
        print(f"  {'service':<22} {'gRPC':<18} metrics")
        for name, service in platform.processes.items():
            metrics = f"http://127.0.0.1:{service.metrics_port}/metrics"
            print(f"  {name:<22} {service.endpoint:<18} {metrics}")
        print("\n  try: grpcurl -plaintext 127.0.0.1:50051 list")
        if switches["LIENTHONG_DEV_AUTH"].strip().lower() in _ON:
            print(
                "  dev auth is on: send -H 'x-lienthong-identity: unit/<code>' to act as a unit,"
                " 'operator/observer/<name>' (or registry-admin, trust-admin) as an operator"
            )
        print("\n".join(describe_demo(demo, os.environ)))
        print("\nCtrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            for name, service in platform.processes.items():
                if service.process.poll() is not None:
                    print(f"{name} exited ({service.process.returncode}); see {service.log_path}")
                    return 1
        print("stopping ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
