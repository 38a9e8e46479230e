"""The push listener: stay connected, catch up, process, ack; reconnect on loss.

One loop per running client:

1. state ``connecting``: **catch up** over HTTP from the last processed
   cursor (fetch, process, ack until the queue is drained), so that a client
   that was offline gets everything first;
2. open the **push socket** from the cursor (docs/server.md, "WebSocket")
   and go ``online``; each pushed batch goes through the inbound pipeline,
   then is acked on the socket;
3. beside the socket, **long-poll the contact queue** (:mod:`..contact_queue`),
   where Welcomes and a new group's first messages arrive; a failure of
   either ends both;
4. on any failure go ``offline`` with the reason, wait with exponential
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
from collections.abc import Callable, Coroutine

from ..contact_queue import set_up_queues
from ..errors import ClientError, DeviceRemovedError, DeviceReplacedError, RateLimitedError
from ..events import ConnectionState, ConnectionStateChanged
from ..net.backoff import Backoff
from ..net.push import PushSocket
from ..restore_device import prepare_device
from ..session import Session
from .inbound import InboundPipeline
from .key_packages import KeyPackagePool

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
        pool: KeyPackagePool | None = None,
    ) -> None:
        self._s = session
        self._pool = pool
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
        await set_up_queues(self._s, self._pool)
        cursor = await self._pipeline.catch_up()
        async with self._s.transport.push(cursor) as socket:
            self._set(ConnectionState.ONLINE)
            self._on_online()
            await _until_one_fails(self._follow(socket), self._follow_contact())

    async def _follow_contact(self) -> None:
        """Long-poll the contact queue; if the server lost it (restored from a
        backup made before it was), ask for a new one and go on with that."""
        while self._s.contact is not None:
            await self._pipeline.follow_contact()
            await set_up_queues(self._s, self._pool)

    async def _follow(self, socket: PushSocket) -> None:
        """Process each pushed batch, then ack it on the socket, until it fails."""
        while True:
            batch = await socket.receive()
            cursor = await self._pipeline.process(batch)
            if batch:
                self._pipeline.acks.processed(cursor, len(batch))


async def _until_one_fails(*loops: Coroutine[object, object, None]) -> None:
    """Run ``loops`` together until one raises (or all return): then stop the
    others and raise what the first raised."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # the failure, if any, goes to the caller
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
