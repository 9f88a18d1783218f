"""Structured logs: one JSON object per line on stderr, carrying the current request id."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.msgspec import MsgspecFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
        return True


def configure_logging(level: str, service: str) -> None:
    """Route every logger (ours, uvicorn's, libraries') through one JSON handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(
        MsgspecFormatter(
            "{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service},
            timestamp="time",  # ISO 8601, UTC
        )
    )
    # Our lines carry none of the caller's file and line, thread or process: not working
    # them out for each record is the logging HOWTO's own optimization (a request's
    # access line is on every request).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # httpx logs every request at INFO; a worker's backend calls are in its own log lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # sqlitedict logs a failed statement as a stack dump, line by line; the usage spool
    # logs each failure once, in our shape, instead.
    logging.getLogger("sqlitedict").setLevel(logging.CRITICAL)
    # aiokafka logs every failed connection attempt while Kafka is away; the exporter logs
    # the outage once and counts it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
