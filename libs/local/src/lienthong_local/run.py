"""``make run``: the whole platform on this machine, until Ctrl-C.

Starts the five services on fixed ports (gRPC 50051-50055, metrics 9101-9105), loads the
sample registry into routing-service (two-tier Phú Thọ with its predecessors' closed units,
``RUN_SHAPE``) and prints the endpoints. The sandbox national axis (lienthong_local.axis) runs
beside them on 8490; its national directory is registered as external agencies, and the
gateway's axis bridge speaks to it. Kafka and the store must be
up (``make infra-up``, which ``make run`` does first).

signature-service trusts a demo PKI written once under ``deploy/local/.data/demo-pki/``
(lienthong_testing.pki.demo_pki): signed sample PDFs and a signer certificate for the README's
signature examples; its revocation is checked offline against the demo's own CRLs.

The development switches are on by default so that the README's examples flow; each one set
in the environment wins (``LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED=false make run`` applies the
real signature policy), and the launcher prints which are on.

``make run-secure`` (``python -m lienthong_local.run --secure``, or ``make run SECURE=1``) starts
the same platform with mutual TLS on every gRPC port (certificates made once under
deploy/local/.data/grpc-tls), Kafka over TLS with each service's own principal and ACLs, and
dev auth off; it prints grpcurl examples with ``-cacert/-cert/-key`` for a unit and an operator.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from lienthong.document.v1 import document_service_pb2 as document_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.axis import NATIONAL_AGENCIES
from lienthong_local.grpc_tls import GrpcTls
from lienthong_local.platform import KafkaTlsListener, Platform, free_port
from lienthong_local.sample import Shape, sample_province, sample_units
from lienthong_testing.pki import DemoPki, demo_pki

__all__ = [
    "DEMO_PKI_FOLDER",
    "DEV_SWITCHES",
    "RUN_SHAPE",
    "TRUST_ADMIN",
    "DevSwitch",
    "demo_settings",
    "describe_demo",
    "describe_switches",
    "dev_switches",
    "load_national_agencies",
    "load_sample_registry",
    "local_platform",
    "secure_examples",
    "secure_parts",
    "wait_until_admitted",
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


# the registry is written by a registry administrator (dev auth names one by header, the
# secure mode by a client certificate)
REGISTRY_ADMIN_IDENTITY = "operator/registry-admin/make-run"
REGISTRY_ADMIN = (("x-lienthong-identity", REGISTRY_ADMIN_IDENTITY),)
# who the README's trust-store calls name (dev auth: any operator name in the role will do)
TRUST_ADMIN = "operator/trust-admin/make-run"
EXAMPLE_UNIT = "unit/000.01.00.H43"
EXAMPLE_OPERATOR = "operator/observer/make-run"

GATEWAY_HTTP_PORT = "8480"
AXIS_PORT = "8490"
# relative to the clone, where make runs (the README's examples name the files from there)
DEMO_PKI_FOLDER = Path("deploy/local/.data/demo-pki")

# The province as it is since 1 July 2025 (the README's examples use its codes).
RUN_SHAPE: Shape = "two-tier"


def demo_settings(demo: DemoPki, environ: Mapping[str, str]) -> dict[str, str]:
    """signature-service's settings that trust the demo PKI, but for those the environment sets."""
    return {key: value for key, value in demo.env.items() if key not in environ}


def _channel(
    endpoint: str, credentials: grpc.ChannelCredentials | None, identity: str
) -> tuple[grpc.Channel, tuple[tuple[str, str], ...]]:
    """A channel and the metadata that names ``identity``: the dev header, or nothing when
    ``credentials`` (a client certificate of that identity) speak for it over mTLS."""
    if credentials is None:
        return grpc.insecure_channel(endpoint), (("x-lienthong-identity", identity),)
    return grpc.secure_channel(endpoint, credentials), ()


def load_sample_registry(
    endpoint: str,
    shape: Shape = "three-tier",
    credentials: grpc.ChannelCredentials | None = None,
) -> int:
    """Import the sample registry of ``shape`` (make run: ``RUN_SHAPE``) in one call, as the
    dev header's registry administrator or with ``credentials`` (its certificate) over mTLS."""
    units = sample_units(shape)
    channel, metadata = _channel(endpoint, credentials, REGISTRY_ADMIN_IDENTITY)
    with channel:
        RoutingServiceStub(channel).ImportRegistry(
            (routing_pb.ImportRegistryRequest(unit=unit) for unit in units),
            metadata=metadata,
            timeout=60,
        )
    return len(units)


def load_national_agencies(
    endpoint: str, credentials: grpc.ChannelCredentials | None = None
) -> int:
    """The sandbox axis's national directory, registered as external agencies."""
    channel, metadata = _channel(endpoint, credentials, REGISTRY_ADMIN_IDENTITY)
    with channel:
        stub = RoutingServiceStub(channel)
        for agency in NATIONAL_AGENCIES:
            unit = routing_pb.Unit(
                code=agency["code"],
                name=agency["name"],
                parent_code=agency["parent"],
                active=True,
                external=True,
            )
            stub.UpsertUnit(routing_pb.UpsertUnitRequest(unit=unit), metadata=metadata, timeout=10)
    return len(NATIONAL_AGENCIES)


@contextmanager
def sandbox_axis(log_dir: Path, port: str = AXIS_PORT) -> Iterator[str]:
    """The sandbox national axis as a process; its URL."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "sandbox-axis.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "lienthong_local.axis", "--port", port],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def secure_parts(data_dir: Path, environ: Mapping[str, str]) -> tuple[GrpcTls, KafkaTlsListener]:
    """The gRPC certificates (made once under ``data_dir``/grpc-tls) and the local broker's
    TLS listener that ``make infra-up`` set up; SystemExit when there is none."""
    kafka = KafkaTlsListener.local({**environ, "LIENTHONG_DATA_DIR": str(data_dir)})
    if kafka is None:
        raise SystemExit(
            "the local Kafka has no TLS listener (deploy/local/.data/kafka/tls, port"
            " LIENTHONG_KAFKA_TLS_PORT, 9094): make infra-down, then make infra-up with"
            " LIENTHONG_KAFKA_TLS_PORT unset"
        )
    return GrpcTls.open(data_dir / "grpc-tls"), kafka


def secure_examples(platform: Platform, tls: GrpcTls, root: Path | None = None) -> list[str]:
    """grpcurl (and curl, for the edXML gateway) calls as a unit and as an operator."""
    unit = tls.grpcurl(EXAMPLE_UNIT, root)
    operator = tls.grpcurl(EXAMPLE_OPERATOR, root)
    documents = platform.endpoint("document-service")
    reporting = platform.endpoint("reporting-service")
    lines = [
        f"grpcurl {unit} {documents} list",
        f"grpcurl {unit} -d '{{}}' {documents} lienthong.document.v1.DocumentService/ListInbox",
        f'grpcurl {operator} -d \'{{"period": "2026"}}\' {reporting}'
        " lienthong.reporting.v1.ReportingService/GetAdoptionReport",
    ]
    port = platform.env.get("LIENTHONG_GATEWAY_HTTP_PORT")
    if port and "gateway-service" in platform.processes:
        curl = tls.curl(EXAMPLE_UNIT, root)
        lines.append(f"curl {curl} https://127.0.0.1:{port}/v1/documents/pending")
    return lines


@contextmanager
def local_platform(
    *,
    log_dir: Path,
    environ: Mapping[str, str],
    prefix: str = "",
    fixed_ports: bool = True,
    extra_env: Mapping[str, str] | None = None,
    grpc_tls: GrpcTls | None = None,
    kafka_tls: KafkaTlsListener | None = None,
    demo: DemoPki | None = None,
    timeout: float = 90.0,
) -> Iterator[Platform]:
    """The platform as ``make run`` starts it: its switches, the demo PKI trusted, the two-tier
    registry loaded; with ``grpc_tls`` and ``kafka_tls`` as ``make run-secure`` does. The
    gateway's HTTP port is ``platform.env["LIENTHONG_GATEWAY_HTTP_PORT"]``."""
    env = {
        **dev_switches(environ),
        **(demo_settings(demo, environ) if demo else {}),
        **(extra_env or {}),
    }
    # the README's edXML gateway examples call it on 8480; elsewhere any free port
    env.setdefault(
        "LIENTHONG_GATEWAY_HTTP_PORT", GATEWAY_HTTP_PORT if fixed_ports else str(free_port())
    )
    with contextlib.ExitStack() as stack:
        if fixed_ports:
            env.setdefault("LIENTHONG_AXIS_URL", stack.enter_context(sandbox_axis(log_dir)))
            env.setdefault("LIENTHONG_AXIS_HUB_CODE", sample_province(RUN_SHAPE))
        platform = stack.enter_context(
            Platform.start(
                log_dir=log_dir,
                prefix=prefix,
                fixed_ports=fixed_ports,
                extra_env=env,
                grpc_tls=grpc_tls,
                kafka_tls=kafka_tls,
                timeout=timeout,
            )
        )
        admin = grpc_tls.credentials(REGISTRY_ADMIN_IDENTITY) if grpc_tls else None
        load_sample_registry(platform.endpoint("routing-service"), RUN_SHAPE, admin)
        if env.get("LIENTHONG_AXIS_URL"):
            load_national_agencies(platform.endpoint("routing-service"), admin)
        province = sample_province(RUN_SHAPE)
        wait_until_admitted(
            platform.endpoint("document-service"),
            province,
            credentials=grpc_tls.credentials(f"unit/{province}") if grpc_tls else None,
        )
        yield platform


def wait_until_admitted(
    endpoint: str,
    unit: str,
    timeout: float = 60.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Until document-service admits ``unit``: every replica learns the registry from the units
    topic, a moment after the import (the README's first submit must not meet the gap)."""
    deadline = time.monotonic() + timeout
    channel, metadata = _channel(endpoint, credentials, f"unit/{unit}")
    with channel:
        stub = DocumentServiceStub(channel)
        while True:
            try:
                stub.ListInbox(
                    document_pb.ListInboxRequest(page_size=1), metadata=metadata, timeout=5
                )
                return
            except grpc.RpcError as error:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"document-service refuses {unit}: {error}") from error
                time.sleep(0.2)


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


def main(argv: list[str] | None = None) -> int:
    secure = "--secure" in (sys.argv[1:] if argv is None else argv)
    data_dir = Path(os.environ.get("LIENTHONG_DATA_DIR", "deploy/local/.data"))
    log_dir = data_dir / "logs"
    grpc_tls, kafka_tls = secure_parts(data_dir, os.environ) if secure else (None, None)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    switches = dev_switches(os.environ)
    if secure:  # the services' certificates name the callers: no header may
        switches["LIENTHONG_DEV_AUTH"] = "false"
    print("development switches (set one in the environment to change it):")
    print("\n".join(describe_switches(switches)))
    if grpc_tls is not None and kafka_tls is not None:
        print(
            f"secure: mTLS on every gRPC port (certificates in {grpc_tls.folder}), Kafka over"
            f" TLS on {kafka_tls.bootstrap} as each service's own principal"
        )
    print(f"writing or reusing the demo PKI in {DEMO_PKI_FOLDER}/ ...", flush=True)
    demo = demo_pki(DEMO_PKI_FOLDER.resolve())
    print(f"starting the five services (logs in {log_dir}/) ...", flush=True)
    with local_platform(
        log_dir=log_dir,
        environ={**os.environ, **switches},
        grpc_tls=grpc_tls,
        kafka_tls=kafka_tls,
        demo=demo,
    ) as platform:
        units = sample_units(RUN_SHAPE)
        current = sum(not unit.valid_until for unit in units)
        print(
            f"\nlienthong is running; sample registry loaded: Phú Thọ in two tiers ({current}"
            f" units, and {len(units) - current} of its predecessors' closed on 2025-07-01).\n"
        )
        print(f"  {'service':<22} {'gRPC':<18} metrics")
        for name, service in platform.processes.items():
            metrics = f"http://127.0.0.1:{service.metrics_port}/metrics"
            print(f"  {name:<22} {service.endpoint:<18} {metrics}")
        axis = platform.env.get("LIENTHONG_AXIS_URL")
        if axis:
            agencies = ", ".join(agency["code"] for agency in NATIONAL_AGENCIES)
            print(f"\n  sandbox national axis  {axis}  (external agencies: {agencies})")
        if grpc_tls is not None:
            print(
                f"\n  every call needs a client certificate: {EXAMPLE_UNIT} (an agency),"
                f" {EXAMPLE_OPERATOR} (an operator); try:"
            )
            for line in secure_examples(platform, grpc_tls, Path.cwd()):
                print(f"  {line}")
        else:
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
