"""Structured logs: one JSON object per line on standard error.

What is logged: the event, route templates, status codes, durations and
counts. What is never logged: message bytes, keys, signatures, nonces,
handles, invite codes, IP addresses and account, client or queue IDs (see
docs/threat-model.md). Callers pass fields with ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Final

__all__ = ["JsonFormatter", "configure_logging", "log_event"]

_RESERVED: Final = frozenset(("ts", "level", "logger", "event"))


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in _RESERVED:
                    entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO") -> None:
    """Send every ``messenger`` and ``uvicorn`` log to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The access log would print full paths (group IDs): the app logs requests itself.
    logging.getLogger("uvicorn.access").disabled = True
    # Database drivers log statements with their parameters at DEBUG: never let them.
    for name in ("aiosqlite", "asyncpg"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def log_event(
    logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object
) -> None:
    """Log ``event`` with structured ``fields``."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
