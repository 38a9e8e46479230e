"""Real-time delivery over WebSocket (``/v1/queue/ws?after=<seq>``).

The upgrade request is signed like a ``GET`` (empty body): by the client
(with its queue proof), or as a **queue request** by the queue's own key
alone, naming no client (docs/metadata.md §1). A refused
handshake gets the same 401/429 JSON error as an HTTP request where the
ASGI server supports denial responses, and is closed with code 1008
otherwise.

After the handshake the server sends every message of the client's queue
with ``seq > after``, then each new message as soon as the transaction that
stored it commits, as :class:`~messenger.api.models.PushMessages` frames.
The client acknowledges with :class:`~messenger.api.models.PushAck`
(``{"type": "ack", "up_to": n}``), which deletes, and the server confirms
with :class:`~messenger.api.models.PushAcked`. A malformed frame gets an
error frame (the body of :class:`~messenger.api.errors.ApiError`) and the
connection stays open.

Delivery is at least once and in order: the hub hands over freshly stored
entries; whenever they do not follow on from the last one sent (another
process stored them, or the buffer overflowed), the server reads the queue
from the database instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging

from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import MAX_FETCH, PushAck, PushAcked, PushMessages, QueueMessage

from .authentication import Principal, QueueCaller
from .routes import (
    client_address,
    error_response,
    is_queue_request,
    queue_limit_key,
    request_target,
)
from .state import ServerState

__all__ = ["websocket_routes"]

_log = logging.getLogger("messenger.server.websocket")

_BATCH = 200


class _Connection:
    def __init__(self, ws: WebSocket, state: ServerState, queue_id: str) -> None:
        self.ws = ws
        self.state = state
        self.queue_id = queue_id
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._reason = ErrorCode.DEVICE_REPLACED

    async def send(self, payload: bytes | str) -> None:
        text = payload if isinstance(payload, str) else payload.decode()
        async with self._send_lock:
            if self._closed:
                raise WebSocketDisconnect(1008, str(self._reason))
            await self.ws.send_text(text)

    async def replaced(self, code: ErrorCode = ErrorCode.DEVICE_REPLACED) -> None:
        """Close the socket: a restored copy took the client over, or one of the
        account's devices removed it (``code`` says which; devices.py)."""
        async with self._send_lock:
            if self._closed:
                return
            self._closed = True
            self._reason = code
            with contextlib.suppress(Exception):
                await self.ws.close(code=1008, reason=str(code))

    async def push(self, messages: list[QueueMessage]) -> None:
        for i in range(0, len(messages), _BATCH):
            batch = tuple(messages[i : i + _BATCH])
            await self.send(PushMessages("messages", batch).dumps())
        self.state.metrics.pushed.inc(len(messages))

    async def pusher(self, after: int) -> None:
        delivery = self.state.delivery
        sub = self.state.hub.subscribe(self.queue_id)
        last = after
        try:
            while True:
                # Catch up from the database.
                while True:
                    messages, more = await delivery.fetch(self.queue_id, last, MAX_FETCH)
                    if messages:
                        await self.push(messages)
                        last = messages[-1].seq
                    if not more:
                        break
                # Then follow the hub while it hands over consecutive entries.
                while True:
                    await sub.wait()
                    entries, resync = sub.take()
                    fresh = [(seq, data) for seq, data in entries if seq > last]
                    if resync or (fresh and fresh[0][0] != last + 1):
                        break
                    if not fresh:
                        continue
                    if any(b[0] != a[0] + 1 for a, b in itertools.pairwise(fresh)):
                        break
                    await self.push([QueueMessage(seq, data) for seq, data in fresh])
                    last = fresh[-1][0]
        finally:
            self.state.hub.unsubscribe(sub)

    async def reader(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            raw_bytes = text.encode() if text is not None else (message.get("bytes") or b"")
            try:
                frame = PushAck.loads(raw_bytes)
            except ApiError as exc:
                await self.send(json.dumps(exc.to_json()))
                continue
            deleted = await self.state.delivery.ack(self.queue_id, frame.up_to)
            await self.send(PushAcked("acked", frame.up_to, deleted).dumps())


def _after(ws: WebSocket) -> int:
    raw = ws.query_params.get("after", "0")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise ApiError.invalid_field("after", "expected a non-negative integer")
    return int(raw)


async def _deny(ws: WebSocket, error: ApiError) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        response: Response = error_response(error)
        await ws.send_denial_response(response)
    else:
        await ws.close(code=1008, reason=str(error.code))


async def queue_socket(ws: WebSocket) -> None:
    """The ``/v1/queue/ws`` endpoint."""
    state: ServerState = ws.app.state.server
    caller: Principal | QueueCaller
    try:
        state.ip_limiter.hit(client_address(ws, state))
        after = _after(ws)
        if is_queue_request(ws.headers):
            caller = await state.auth.authenticate_queue("GET", request_target(ws), ws.headers, b"")
            state.account_limiter.hit(queue_limit_key(caller.queue_id))
        else:
            caller = await state.auth.authenticate("GET", request_target(ws), ws.headers, b"")
            state.account_limiter.hit(caller.account_id)
        queue_id = caller.queue_id  # auth_missing if a signed request does not prove it
    except ApiError as exc:
        if exc.code is ErrorCode.RATE_LIMITED:
            state.metrics.rate_limited.labels(limit="websocket").inc()
        if exc.code in (ErrorCode.DEVICE_REPLACED, ErrorCode.DEVICE_REMOVED):
            # Closed with the code, not denied: a client cannot read the body of a
            # denied handshake (httpx-ws), and this one must know why.
            await ws.accept()
            await ws.close(code=1008, reason=str(exc.code))
            return
        await _deny(ws, exc)
        return
    await ws.accept()
    state.metrics.websockets.inc()
    conn = _Connection(ws, state, queue_id)
    try:
        if isinstance(caller, QueueCaller):
            registered = state.devices.queue_socket(queue_id, conn.replaced)
        else:
            registered = state.devices.socket(caller.client_id, ws.headers, conn.replaced)
        with registered:
            # Registered first, checked second: a takeover or removal that
            # committed after the authentication is seen here, one that commits
            # later closes it.
            try:
                if isinstance(caller, QueueCaller):
                    await state.devices.check_queue_current(queue_id)
                else:
                    await state.devices.check_current(caller.client_id, ws.headers)
            except ApiError as exc:
                await conn.replaced(exc.code)
                return
            await _serve(conn, after)
    finally:
        state.metrics.websockets.dec()
        with contextlib.suppress(Exception):
            await ws.close()


async def _serve(conn: _Connection, after: int) -> None:
    pusher = asyncio.create_task(conn.pusher(after), name="ws-pusher")
    reader = asyncio.create_task(conn.reader(), name="ws-reader")
    try:
        done, _ = await asyncio.wait({pusher, reader}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            failure = task.exception()
            if failure is not None and not isinstance(failure, WebSocketDisconnect):
                _log.error("websocket task failed", exc_info=failure)
    finally:
        for task in (pusher, reader):
            task.cancel()
        for task in (pusher, reader):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task


def websocket_routes() -> list[WebSocketRoute]:
    """The WebSocket route of the API."""
    return [WebSocketRoute(r.QUEUE_WEBSOCKET, queue_socket)]
