"""Structured logs: one JSON object per line on standard error.

What is logged: the event, route templates, status codes, durations and
counts. What is never logged: message bytes, keys, signatures, nonces,
handles, invite codes, IP addresses and account, client or queue IDs (see
docs/threat-model.md). Callers pass fields with ``extra={"fields": {...}}``.

The libraries under the server are held to the same rule:

* uvicorn's WebSocket handshake lines (``IP:port - "WebSocket /path" [accepted]``)
  become ``websocket accepted`` / ``websocket refused`` with the status only;
  its start-up line becomes ``listening`` with the server's own bind address.
* uvicorn and websockets never log below INFO: their DEBUG and TRACE output
  names the peer and dumps handshake headers (client IDs, signatures) and
  frames.
* As a last guard, anything that looks like an IP address (with its port)
  in any event text or traceback is replaced by ``[address]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Final

__all__ = ["JsonFormatter", "PrivacyFilter", "configure_logging", "log_event", "scrub_addresses"]

_RESERVED: Final = frozenset(("ts", "level", "logger", "event"))

#: An IPv4 address with an optional port, an IPv6 address in brackets with an
#: optional port, or a bare IPv6 address (containing ``::`` or 7 colons).
_ADDRESS: Final = re.compile(
    r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])"
    r"|\[[0-9A-Fa-f:.%\w]*:[0-9A-Fa-f:.%\w]*\](?::\d{1,5})?"
    r"|(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]*(?![\w:])"
)

_REPLACEMENT: Final = "[address]"


def _looks_like_ipv6(text: str) -> bool:
    return "::" in text or text.count(":") == 7


def scrub_addresses(text: str) -> str:
    """``text`` with every IP address (and its port) replaced by ``[address]``."""

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found[0].isdigit() and "." in found and found.count(":") <= 1:
            return _REPLACEMENT
        if found.startswith("[") or _looks_like_ipv6(found):
            return _REPLACEMENT
        return found

    return _ADDRESS.sub(replace, text)


#: uvicorn's WebSocket handshake lines: (peer, path with query[, status]).
_WS_LINES: Final = {
    '%s - "WebSocket %s" [accepted]': "websocket accepted",
    '%s - "WebSocket %s" 403': "websocket refused",
    '%s - "WebSocket %s" %d': "websocket refused",
}
_STARTED: Final = (
    "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
    "Uvicorn running on %s://[%s]:%d (Press CTRL+C to quit)",
)

#: Loggers of the libraries under the server, held to INFO and above.
_LIBRARY_LOGGERS: Final = ("uvicorn", "uvicorn.error", "websockets")


class PrivacyFilter(logging.Filter):
    """Rewrites library records that would name a peer (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("uvicorn", "websockets", "asyncio")):
            return True
        if record.levelno < logging.INFO and record.name.startswith(("uvicorn", "websockets")):
            return False
        template = record.msg if isinstance(record.msg, str) else None
        args = record.args if isinstance(record.args, tuple) else ()
        if template in _WS_LINES:
            fields: dict[str, object] = {}
            if template.endswith("403"):
                fields["status"] = 403
            elif template.endswith("%d") and len(args) == 3:
                fields["status"] = args[2]
            record.msg, record.args = _WS_LINES[template], ()
            record.__dict__["fields"] = fields
        elif template in _STARTED and len(args) == 3:
            record.msg, record.args = "listening", ()
            record.__dict__["fields"] = {"scheme": args[0], "host": args[1], "port": args[2]}
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": scrub_addresses(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in _RESERVED:
                    entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = scrub_addresses(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO") -> None:
    """Send every ``messenger`` and ``uvicorn`` log to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PrivacyFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        # Below INFO they name peers and dump handshake headers and frames.
        logger.setLevel(max(logging.INFO, root.level))
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
