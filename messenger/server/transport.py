"""The HTTP serving layer: uvicorn's protocols with connection limits and timeouts.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``), but it
has no timeout for a request whose line and headers never finish, nor for a
body that never finishes, and no cap on open connections: its
``limit_concurrency`` answers 503 only once a request's headers are
complete, which a slowloris client never lets happen. A few thousand such
connections would exhaust the process's file descriptors and starve
everyone else. This module adds the missing controls to uvicorn's
httptools protocol (the one ``uvicorn[standard]`` selects), as subclasses
installed with ``uvicorn.Config(http=..., ws=...)``:

* **Header timeout.** From the moment the server waits for a request (the
  connection was accepted, or the previous response was sent) the request
  line and headers must be complete within ``header_timeout_seconds``;
  otherwise the connection is aborted. Trickling bytes does not extend it.
* **Header size.** The request line and headers may take at most
  :data:`MAX_HEADER_BYTES`; uvicorn's httptools protocol buffers them
  without bound.
* **Body timeout.** A request body must be complete within
  ``body_timeout_seconds`` of its headers, and a response that the client
  stops reading (the send buffer stays full) is abandoned after the same
  time. A long poll or a slow handler is not limited: no timer runs while
  the application works on a complete request.
* **Connection caps**, checked when a connection is accepted, before a byte
  is read: at most ``max_connections`` in all (kept below the file-descriptor
  limit, which the server raises at start, so ``accept()`` never fails with
  ``EMFILE``), and at most ``max_connections_per_address`` from one IPv4
  address or IPv6 /64. A refused connection gets a ``503 unavailable`` JSON
  answer and is closed. WebSocket connections keep their slot until they
  close. Behind a reverse proxy (``trust_forwarded_for``) every connection
  comes from the proxy, so the per-address cap is off and the proxy must
  limit clients.
* **No Nagle delay.** Every accepted TCP connection gets ``TCP_NODELAY``.
  asyncio sets it only on sockets whose protocol number is ``IPPROTO_TCP``;
  a listener made with ``socket.socket()`` (protocol 0), as a socket handed
  to ``Server.serve(sockets=...)`` or uvicorn's own ``bind_socket`` are,
  would otherwise hold each response's body behind its headers until the
  client's delayed ACK: about 40 ms a request.

Nothing here logs a peer address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from messenger.api.errors import ApiError, ErrorCode

from .config import ServerConfig
from .logs import log_event

__all__ = [
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedHttpProtocol",
    "GuardedWebSocketProtocol",
    "Protocols",
    "address_key",
    "file_limit",
    "files_wanted",
    "guarded_protocols",
    "raise_file_limit",
]

_log = logging.getLogger("messenger.server.transport")

#: File descriptors kept free for the listener, log files, the database and
#: DNS, on top of the database pool.
FD_RESERVE: Final = 64

#: The listen backlog. asyncio accepts up to this many connections in one go
#: before the protocols can refuse any, so the file limit must leave room
#: for a full backlog on top of the open connections.
BACKLOG: Final = 2048

#: The most bytes a request line and its headers may take (uvicorn's httptools
#: protocol sets no bound; h11's default is 16 KiB, nginx's 32 KiB).
MAX_HEADER_BYTES: Final = 32 << 10

#: How long (seconds) a connection answered with a 400 is read and discarded
#: before it is closed, so that the client gets the answer rather than a reset.
LINGER_SECONDS: Final = 2.0

#: How often (seconds) refused connections are reported in the log.
_REFUSAL_LOG_INTERVAL: Final = 60.0


def _closing_response(error: ApiError, extra: bytes = b"") -> bytes:
    """A complete HTTP/1.1 response carrying ``error`` that closes the connection."""
    body = json.dumps(error.to_json(), separators=(",", ":")).encode()
    phrase = {400: b"Bad Request", 503: b"Service Unavailable"}.get(error.status, b"")
    return (
        b"HTTP/1.1 " + str(error.status).encode() + b" " + phrase + b"\r\n"
        b"content-type: application/json\r\n" + extra + b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


#: The answer on a connection over a cap.
_REFUSAL: Final = _closing_response(
    ApiError(ErrorCode.UNAVAILABLE, "too many connections; retry later"), b"retry-after: 5\r\n"
)
#: The answer to bytes that are not HTTP/1.1 (uvicorn's is plain text).
_BAD_REQUEST: Final = _closing_response(
    ApiError(ErrorCode.INVALID_FIELD, "not a valid HTTP/1.1 request", {"field": "request"})
)
_HEADERS_TOO_LARGE: Final = _closing_response(
    ApiError(
        ErrorCode.INVALID_FIELD,
        f"the request line and headers exceed {MAX_HEADER_BYTES} bytes",
        {"field": "headers"},
    )
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The connection-level limits of one server process."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 2048
    #: 0: no per-address cap.
    max_per_address: int = 64
    backlog: int = BACKLOG

    @classmethod
    def from_config(cls, config: ServerConfig, fd_limit: int | None = None) -> ConnectionLimits:
        """The limits that ``config`` sets. When ``fd_limit`` (the process's
        limit on open files) is known, the connection cap and the backlog are
        lowered to fit in it, so that ``accept()`` never fails for lack of
        file descriptors."""
        cap = config.max_connections
        backlog = BACKLOG
        if fd_limit is not None:
            spare = fd_limit - FD_RESERVE - 2 * config.db_pool_size
            backlog = max(16, min(BACKLOG, spare // 2))
            cap = max(1, min(cap, spare - backlog))
        return cls(
            header_timeout=config.header_timeout_seconds,
            body_timeout=config.body_timeout_seconds,
            max_connections=cap,
            max_per_address=0 if config.trust_forwarded_for else config.max_connections_per_address,
            backlog=backlog,
        )


def files_wanted(config: ServerConfig) -> int:
    """The limit on open files that lets ``config.max_connections`` be reached."""
    return config.max_connections + BACKLOG + FD_RESERVE + 2 * config.db_pool_size


def address_key(peer: object) -> str | None:
    """What the per-address cap counts: the IPv4 address or the IPv6 /64 of
    ``peer`` (a socket's ``peername``); ``None`` when there is none (Unix socket)."""
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None
    try:
        address = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionGuard:
    """Counts open connections, in all and per address, and admits new ones."""

    def __init__(self, limits: ConnectionLimits, clock: Any = time.monotonic) -> None:
        self.limits = limits
        self._open: dict[asyncio.BaseTransport, str | None] = {}
        self._per_address: Counter[str] = Counter()
        self._clock = clock
        self._refused: Counter[str] = Counter()
        self._last_report = -_REFUSAL_LOG_INTERVAL

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed."""
        return len(self._open)

    def open_from(self, peer: object) -> int:
        """Open connections counted against the address of ``peer``."""
        key = address_key(peer)
        return 0 if key is None else self._per_address[key]

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Whether a new connection may stay open; if so it is counted until
        :meth:`release`."""
        if len(self._open) >= self.limits.max_connections:
            self._report("total")
            return False
        key = None
        if self.limits.max_per_address:
            key = address_key(transport.get_extra_info("peername"))
            if key is not None and self._per_address[key] >= self.limits.max_per_address:
                self._report("per_address")
                return False
        self._open[transport] = key
        if key is not None:
            self._per_address[key] += 1
        return True

    def release(self, transport: asyncio.BaseTransport | None) -> None:
        """Stop counting ``transport`` (idempotent)."""
        if transport is None or transport not in self._open:
            return
        key = self._open.pop(transport)
        if key is not None:
            self._per_address[key] -= 1
            if self._per_address[key] <= 0:
                del self._per_address[key]

    def _report(self, limit: str) -> None:
        self._refused[limit] += 1
        now = self._clock()
        if now - self._last_report >= _REFUSAL_LOG_INTERVAL:
            self._last_report = now
            log_event(
                _log,
                "connections refused",
                logging.WARNING,
                total=self._refused["total"],
                per_address=self._refused["per_address"],
                open=len(self._open),
            )
            self._refused.clear()


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once (see the module docstring, "No Nagle delay")."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer may be gone already
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the caps and timers of this module.

    A subclass per server binds :attr:`guard` (see :func:`guarded_protocols`).
    """

    guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._refused = False
        self._in_message = False
        self._header_bytes = 0
        self._parsed_header_bytes = 0
        self._headers_too_large = False
        self._discarding = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    # -- timers -------------------------------------------------------------------------

    def _expire(self, phase: str) -> None:
        log_event(_log, "connection timed out", logging.DEBUG, phase=phase)
        self.transport.abort()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.guard.limits.header_timeout, self._expire, "headers"
            )

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._write_timer = None

    # -- connection -----------------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        if not self.guard.admit(transport):
            self._refused = True
            transport.write(_REFUSAL)
            transport.close()
            return
        _no_delay(transport)
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_timers()
        self.guard.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._discarding:
            return
        # Bytes that arrive while a request's headers are awaited count
        # against MAX_HEADER_BYTES (the count restarts when they complete).
        if self._header_timer is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._header_timer is not None
            and self._header_bytes > MAX_HEADER_BYTES
            and not self._discarding
            and not self.transport.is_closing()
        ):
            self._headers_too_large = True
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        # Answer, stop sending, and discard what the client still sends until
        # it closes (or LINGER_SECONDS pass): closing a socket with unread
        # bytes would reset the connection and lose the answer.
        self._cancel_timers()
        self._discarding = True
        self.transport.write(_HEADERS_TOO_LARGE if self._headers_too_large else _BAD_REQUEST)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._header_timer = self.loop.call_later(LINGER_SECONDS, self.transport.abort)
        else:  # pragma: no cover - TLS transports cannot half-close
            self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the transport (and its slot in the guard).
        self._cancel_timers()
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None and not self._refused:
            self._write_timer = self.loop.call_later(
                self.guard.limits.body_timeout, self._expire, "response"
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    # -- parser callbacks (httptools) -----------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self._parsed_header_bytes = 0
        self._arm_header_timer()

    def _count_header_bytes(self, size: int) -> None:
        # Headers that arrive in one read complete before data_received can
        # count them: count them as they are parsed too. Raising here makes
        # the parser fail, and uvicorn answer with send_400_response.
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > MAX_HEADER_BYTES:
            self._headers_too_large = True
            raise ValueError("request headers too large")

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        if self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(
                self.guard.limits.body_timeout, self._expire, "body"
            )

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        # Waiting for the next request: its headers must come in time. (A
        # pipelined request already started has complete headers.)
        if not pipelined and not self._in_message and not self.transport.is_closing():
            self._arm_header_timer()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that frees the connection's slot on close."""

    guard: ClassVar[ConnectionGuard]

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self.guard.release(self.transport)


@dataclass(frozen=True, slots=True)
class Protocols:
    """The protocol classes of one server and the guard they share."""

    http: type[GuardedHttpProtocol]
    ws: type[GuardedWebSocketProtocol]
    guard: ConnectionGuard


def guarded_protocols(limits: ConnectionLimits) -> Protocols:
    """Protocol classes bound to a new :class:`ConnectionGuard` for ``limits``."""
    guard = ConnectionGuard(limits)

    class MessengerHttpProtocol(GuardedHttpProtocol):
        pass

    class MessengerWebSocketProtocol(GuardedWebSocketProtocol):
        pass

    MessengerHttpProtocol.guard = guard
    MessengerWebSocketProtocol.guard = guard
    return Protocols(MessengerHttpProtocol, MessengerWebSocketProtocol, guard)


def file_limit() -> int | None:
    """The soft limit on open files of this process (``None`` if unknown/unlimited)."""
    if sys.platform == "win32":  # pragma: no cover
        return None
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_file_limit(wanted: int) -> int | None:
    """Raise the soft limit on open files towards ``wanted`` (at most the hard
    limit); the soft limit afterwards."""
    if sys.platform == "win32":  # pragma: no cover
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # the platform may refuse
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return file_limit()
