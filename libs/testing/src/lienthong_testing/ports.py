"""A free local port for a server started a moment later (test servers, the local platform)."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port"]

_PORTS = random.SystemRandom()


def free_port() -> int:
    """A port free now. Picked below the kernel's ephemeral range (32768 and up): a port the
    kernel hands out for bind(0) is soon reused by some outgoing connection (Kafka, the store),
    and the server then fails with EADDRINUSE."""
    for _ in range(200):
        port = _PORTS.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
