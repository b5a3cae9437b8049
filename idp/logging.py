"""Structured logging: JSON in production, readable text in development, a request id on every line.

Security events get their own level, AUDIT (between INFO and WARNING), so they can be routed
to a separate sink and are never filtered out with debug noise.
"""

from __future__ import annotations

import logging
import sys

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

from idp.config import Settings

AUDIT = 25
logging.addLevelName(AUDIT, "AUDIT")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id (or "-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = (
            g.get("request_id", "-")
            if has_request_context()
            else getattr(record, "request_id", "-")
        )
        return True


def setup_logging(settings: Settings) -> None:
    """Configure the root logger once for this process."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = settings.log_format or ("json" if settings.is_production else "text")
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s", "%H:%M:%S"
            )
        )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_idp", False)]:
        root.removeHandler(old)
    handler._idp = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
