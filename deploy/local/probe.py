"""Readiness probe for the local infrastructure, standard library only.

It speaks the real wire protocols, so "ready" means the servers answer, not just that a port
is open:

* Kafka: a Metadata request (API key 3, version 4) must list at least one broker;
* the document store: an OP_MSG ``{ping: 1}`` against ``admin`` must answer ``ok: 1``.

Usage::

    python3 deploy/local/probe.py kafka 127.0.0.1:9092 [--wait SECONDS]
    python3 deploy/local/probe.py mongo 127.0.0.1:27017 [--wait SECONDS]

Exit status 0 when the server answered, 1 otherwise (the last error is printed).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.extend(chunk)
    return bytes(chunks)


def kafka_broker_count(host: str, port: int, timeout: float = 2.0) -> int:
    """Send Metadata v4 (all topics) and return the number of brokers in the answer."""
    client_id = b"lienthong-probe"
    header = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id
    body = struct.pack(">i?", -1, False)  # topics = null (all), allow_auto_topic_creation
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        response = _recv_exact(sock, size)
    correlation_id, _throttle, brokers = struct.unpack(">iii", response[:12])
    if correlation_id != 7:
        raise ValueError(f"unexpected correlation id {correlation_id}")
    return int(brokers)


def _bson_ping() -> bytes:
    elements = b"\x10ping\x00" + struct.pack("<i", 1)
    db = b"admin\x00"
    elements += b"\x02$db\x00" + struct.pack("<i", len(db)) + db
    return struct.pack("<i", len(elements) + 5) + elements + b"\x00"


def _bson_ok(document: bytes) -> float:
    """Read the top-level ``ok`` field of a BSON document (double, int32 or int64)."""
    pos = 4
    end = struct.unpack("<i", document[:4])[0] - 1
    while pos < end:
        kind = document[pos]
        name_end = document.index(b"\x00", pos + 1)
        name = document[pos + 1 : name_end]
        pos = name_end + 1
        sizes = {0x01: 8, 0x08: 1, 0x09: 8, 0x10: 4, 0x11: 8, 0x12: 8, 0x07: 12, 0x0A: 0}
        if name == b"ok":
            if kind == 0x01:
                return float(struct.unpack("<d", document[pos : pos + 8])[0])
            if kind == 0x10:
                return float(struct.unpack("<i", document[pos : pos + 4])[0])
            if kind == 0x12:
                return float(struct.unpack("<q", document[pos : pos + 8])[0])
            raise ValueError(f"ok has BSON type {kind}")
        if kind in sizes:
            pos += sizes[kind]
        elif kind in (0x02, 0x0D, 0x0E):
            pos += 4 + struct.unpack("<i", document[pos : pos + 4])[0]
        elif kind in (0x03, 0x04):
            pos += struct.unpack("<i", document[pos : pos + 4])[0]
        elif kind == 0x05:
            pos += 5 + struct.unpack("<i", document[pos : pos + 4])[0]
        else:
            raise ValueError(f"unsupported BSON type {kind} before ok")
    raise ValueError("no ok field in reply")


def mongo_ping(host: str, port: int, timeout: float = 2.0) -> float:
    """Send OP_MSG {ping: 1} and return the reply's ``ok`` value."""
    payload = struct.pack("<I", 0) + b"\x00" + _bson_ping()
    header = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(header + payload)
        (length,) = struct.unpack("<i", _recv_exact(sock, 4))
        rest = _recv_exact(sock, length - 4)
    _request_id, _response_to, opcode = struct.unpack("<iii", rest[:12])
    if opcode != 2013:
        raise ValueError(f"unexpected opcode {opcode}")
    # rest[12:16] flag bits, rest[16] section kind 0, then the body document
    return _bson_ok(rest[17:])


def probe(kind: str, host: str, port: int) -> None:
    if kind == "kafka":
        if kafka_broker_count(host, port) < 1:
            raise ValueError("metadata lists no broker")
    elif mongo_ping(host, port) != 1.0:
        raise ValueError("ping did not answer ok: 1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["kafka", "mongo"])
    parser.add_argument("address", help="host:port")
    parser.add_argument("--wait", type=float, default=0.0, help="retry for this many seconds")
    args = parser.parse_args()
    host, _, port_text = args.address.rpartition(":")
    deadline = time.monotonic() + args.wait
    while True:
        try:
            probe(args.kind, host, int(port_text))
            return 0
        except (OSError, ValueError, struct.error) as exc:
            if time.monotonic() >= deadline:
                print(f"{args.kind} at {args.address} does not answer: {exc}", file=sys.stderr)
                return 1
            time.sleep(0.25)


if __name__ == "__main__":
    sys.exit(main())
