"""``make run``: the whole platform on this machine, until Ctrl-C.

Starts the five services on fixed ports (gRPC 50051-50055, metrics 9101-9105), loads the
sample registry into routing-service and prints the endpoints. Kafka and the store must be
up (``make infra-up``, which ``make run`` does first).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import grpc

from lienthong.routing.v1 import routing_service_pb2 as routing_pb
from lienthong.routing.v1.routing_service_pb2_grpc import RoutingServiceStub
from lienthong_local.platform import Platform
from lienthong_local.sample import sample_units


def load_sample_registry(endpoint: str) -> int:
    with grpc.insecure_channel(endpoint) as channel:
        stub = RoutingServiceStub(channel)
        units = sample_units()
        for unit in units:
            stub.UpsertUnit(routing_pb.UpsertUnitRequest(unit=unit), timeout=10)
    return len(units)


def main() -> int:
    log_dir = Path("deploy/local/.data/logs")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("starting the five services (logs in deploy/local/.data/logs/) ...", flush=True)
    with Platform.start(log_dir=log_dir, fixed_ports=True) as platform:
        count = load_sample_registry(platform.endpoint("routing-service"))
        print(f"\nlienthong is running; sample registry loaded ({count} units).\n")
        print(f"  {'service':<22} {'gRPC':<18} metrics")
        for name, service in platform.processes.items():
            metrics = f"http://127.0.0.1:{service.metrics_port}/metrics"
            print(f"  {name:<22} {service.endpoint:<18} {metrics}")
        print("\n  try: grpcurl -plaintext 127.0.0.1:50051 list")
        print("  dev auth is on: send -H 'x-lienthong-unit: <unit code>' to act as a unit")
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
