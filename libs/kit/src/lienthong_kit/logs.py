"""structlog JSON logging with fixed keys: ts, level, event, service, trace_id.

    configure_logging("document-service", "info")   # once, at process start
    log = get_logger(__name__)
    log.info("document_submitted", document_id=doc_id)  # context as key-values, no f-strings

Library loggers that use the standard ``logging`` module (aiokafka, faust, grpc) are
rendered through the same JSON pipeline.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from lienthong_kit.context import current_trace_id

__all__ = ["add_service_and_trace", "configure_logging", "get_logger"]

_service_name = "lienthong"


def add_service_and_trace(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The structlog processor adding the service's name and the current span's trace id."""
    event_dict.setdefault("service", _service_name)
    event_dict.setdefault("trace_id", current_trace_id())
    return event_dict


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        add_service_and_trace,
        structlog.processors.format_exc_info,
    ]


def configure_logging(
    service: str, level: str = "info", *, libraries_at_level: Sequence[str] = ()
) -> None:
    """``libraries_at_level``: library loggers that keep the service's own level (for
    example faust's, whose INFO lines are its rebalances and recoveries); the others are
    held at WARNING."""
    global _service_name
    _service_name = service
    level_no = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_processors(), structlog.processors.JSONRenderer(ensure_ascii=False)],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Third-party libraries are chatty at INFO; their warnings and errors still come through.
    root.setLevel(max(level_no, logging.WARNING))
    for name in libraries_at_level:
        logging.getLogger(name).setLevel(level_no)


def get_logger(name: str = "lienthong") -> Any:
    return structlog.get_logger(name)
