"""The push WebSocket (``/v1/queue/ws``, docs/server.md) over httpx-ws.

:func:`connect_push` opens the socket with the signed headers of a ``GET``
and yields a :class:`PushSocket`: :meth:`PushSocket.receive` gives the
next batch of queue messages (:class:`~messenger.api.models.PushMessages`)
and :meth:`PushSocket.ack` deletes up to a sequence number. Failures
are mapped at the seam (:mod:`.error_mapping`). Reconnecting is the
listener's job (:mod:`messenger.client.sync.listener`).

httpx-ws runs each session in an anyio task group, which wraps an exception
leaving the ``async with`` block in an exception group; :func:`connect_push`
unwraps it, so callers see the one error that happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import httpx
import httpx_ws

from messenger.api import routes as r
from messenger.api.errors import ApiError
from messenger.api.models import PushAck, PushAcked, PushMessages, QueueMessage, parse_json

from ..errors import ProtocolError, ServerUnavailableError
from .error_mapping import error_from_api, transport_errors
from .signing import Signer

__all__ = ["MAX_FRAME_BYTES", "PushSocket", "connect_push"]

#: The largest frame accepted from the server (a batch of up to 200 messages).
MAX_FRAME_BYTES: Final = 256 << 20


class PushSocket:
    """The client side of an open push socket."""

    def __init__(self, ws: httpx_ws.AsyncWebSocketSession) -> None:
        self._ws = ws

    async def receive(self) -> tuple[QueueMessage, ...]:
        """The next batch of messages (acks confirmed by the server are skipped)."""
        while True:
            with transport_errors():
                text = await self._ws.receive_text()
            try:
                frame = parse_json(text.encode())
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "messages":
                    return PushMessages.from_json(frame).messages
                if kind == "acked":
                    PushAcked.from_json(frame)
                    continue
                if isinstance(frame, dict) and "error" in frame:
                    raise error_from_api(ApiError.from_json(frame, 400))
            except ApiError as exc:
                raise ProtocolError(f"bad push frame: {exc}") from exc
            raise ProtocolError("unknown push frame")

    async def ack(self, up_to: int) -> None:
        """Ask the server to delete every message up to ``up_to``."""
        with transport_errors():
            try:
                await self._ws.send_text(PushAck("ack", up_to).dumps().decode())
            except Exception as exc:
                # The server began closing the socket (it is stopping): wsproto
                # refuses to send on a closing connection with its own error,
                # which httpx-ws passes through unmapped.
                if self._ws.connection.state.name != "OPEN":
                    raise ServerUnavailableError("the push socket is closing") from exc
                raise


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    real = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
    if not real:
        return asyncio.CancelledError()
    return real[0]


@contextlib.asynccontextmanager
async def connect_push(
    http: httpx.AsyncClient, signer: Signer, after: int, *, by_queue: bool = False
) -> AsyncIterator[PushSocket]:
    """A signed push socket that starts after sequence number ``after``: a queue
    request (signed by the queue key alone, docs/metadata.md §1) if ``by_queue``."""
    target = f"{r.QUEUE_WEBSOCKET}?after={after}"
    if by_queue:
        headers = signer.queue_headers("GET", target, b"")
    else:
        headers = signer.headers("GET", target, b"")
    url = str(http.base_url.join(target))
    url = "ws" + url[4:] if url.startswith("http") else url
    try:
        with transport_errors():
            connection: contextlib.AbstractAsyncContextManager[httpx_ws.AsyncWebSocketSession] = (
                httpx_ws.aconnect_ws(
                    url,
                    http,
                    headers=headers,
                    max_message_size_bytes=MAX_FRAME_BYTES,
                    keepalive_ping_interval_seconds=15.0,
                    keepalive_ping_timeout_seconds=20.0,
                )
            )
            async with connection as ws:
                yield PushSocket(ws)
    except BaseExceptionGroup as group:
        error = _unwrap(group)
        try:
            with transport_errors():
                raise error
        finally:
            del error
