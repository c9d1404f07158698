"""Structured logs: one JSON object per line, each carrying the request id it was written under.

The request id is the client's ``X-Request-ID`` (when it is a sane token) or a new one; the
response echoes it, so a trainer's log line and the server's can be joined.
"""
from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SANE = re.compile(r"[A-Za-z0-9._:/=+-]{1,128}")


def request_id_from(header: str | None) -> str:
    return header if header and _SANE.fullmatch(header) else uuid.uuid4().hex


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def configure(fmt: str = "json", level: str = "INFO") -> None:
    """Route every logger (uvicorn's included) through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
