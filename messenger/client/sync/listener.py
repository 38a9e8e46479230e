"""The push listener: stay connected, catch up, process, ack; reconnect on loss.

One loop per running client:

1. state ``connecting``: **catch up** over HTTP from the last processed
   cursor (fetch, process, ack until the queue is drained), so that a client
   that was offline gets everything first;
2. open the **push socket** from the cursor (docs/server.md, "WebSocket")
   and go ``online``; each pushed batch goes through the inbound pipeline,
   then is acked on the socket;
3. on any failure go ``offline`` with the reason, wait with exponential
   backoff and jitter (:class:`~messenger.client.net.backoff.Backoff`;
   at least the server's ``Retry-After`` when rate limited), and start over.

Before each connection the device is prepared (:func:`~..restore_device.prepare_device`):
a copy restored from a backup registers as a new device of its account first. If the server
says another copy took it over (:class:`~..errors.DeviceReplacedError`),
the listener goes ``replaced`` with the user's sentence and stops for good.

Connection state changes are published as
:class:`~messenger.client.events.ConnectionStateChanged` events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..errors import ClientError, DeviceRemovedError, DeviceReplacedError, RateLimitedError
from ..events import ConnectionState, ConnectionStateChanged
from ..net.backoff import Backoff
from ..queue_keys import give_queue_key
from ..restore_device import prepare_device
from ..session import Session
from .inbound import InboundPipeline

__all__ = ["PushListener"]

_log = logging.getLogger(__name__)


class PushListener:
    """Keeps the client's queue flowing into the pipeline."""

    def __init__(
        self,
        session: Session,
        pipeline: InboundPipeline,
        *,
        backoff: Backoff | None = None,
        on_online: Callable[[], None] = lambda: None,
        replenish: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._s = session
        self._replenish = replenish
        self._pipeline = pipeline
        self._backoff = backoff or Backoff(base=0.5, maximum=30.0)
        self._on_online = on_online
        self.state = ConnectionState.OFFLINE
        self._online = asyncio.Event()

    def _set(self, state: ConnectionState, error: str | None = None) -> None:
        if state is self.state and error is None:
            return
        self.state = state
        if state is ConnectionState.ONLINE:
            self._online.set()
        else:
            self._online.clear()
        self._s.events.publish(ConnectionStateChanged(state, error))

    async def wait_online(self) -> None:
        await self._online.wait()

    async def run(self) -> None:
        """Listen until cancelled."""
        failures = 0
        try:
            while True:
                self._set(ConnectionState.CONNECTING)
                try:
                    await self._session()
                except DeviceRemovedError as exc:
                    _log.warning("this device was removed from its account; stopping")
                    self._set(ConnectionState.REMOVED, exc.user_message)
                    return
                except DeviceReplacedError as exc:
                    _log.warning("another copy of this profile took the device over; stopping")
                    self._set(ConnectionState.REPLACED, exc.user_message)
                    return
                except ClientError as exc:
                    delay = self._backoff.delay(failures)
                    if isinstance(exc, RateLimitedError):
                        delay = max(delay, exc.retry_after)
                    failures += 1
                    _log.info("push connection lost (%s); retrying in %.1f s", exc, delay)
                    self._set(ConnectionState.OFFLINE, exc.user_message)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
        finally:
            if self.state not in (ConnectionState.REPLACED, ConnectionState.REMOVED):
                self.state = ConnectionState.OFFLINE
            self._online.clear()

    async def _session(self) -> None:
        """One connection: catch up, then follow the push socket until it fails."""
        await prepare_device(self._s)
        # Once this copy is a device of its own (a restore registers first).
        await give_queue_key(self._s, replenish=self._replenish)
        cursor = await self._pipeline.catch_up()
        async with self._s.transport.push(cursor) as socket:
            self._set(ConnectionState.ONLINE)
            self._on_online()
            while True:
                batch = await socket.receive()
                cursor = await self._pipeline.process(batch)
                if batch:
                    self._pipeline.acks.processed(cursor, len(batch))
