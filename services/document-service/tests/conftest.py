"""document-service's real server in-process (port 0), on the real broker and store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from document_service.__main__ import Settings, build
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong_kit.server import ServiceApp


@pytest.fixture
async def service(start_service: Any) -> ServiceApp:
    app: ServiceApp = await start_service("document-service", build, Settings)
    return app


@pytest.fixture
async def stub(service: ServiceApp) -> AsyncIterator[DocumentServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        yield DocumentServiceStub(channel)
