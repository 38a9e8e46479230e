"""``Transport.send_batch``: the batch send route, from the client's network layer.

Against the real server on a loopback socket (uvicorn on 127.0.0.1), and
against a mock for the answers a real server would not give.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.client.errors import (
    ProtocolError,
    RateLimitedError,
    StaleEpochError,
    UnknownGroupError,
)
from messenger.client.net import Signer, Transport
from messenger.server import create_app
from tests.server import mls_data
from tests.server.client import ApiClient, send_token
from tests.server.conftest import make_config, serve

pytestmark = pytest.mark.anyio

GID = os.urandom(32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def _loopback(tmp_path: Path, **overrides: object) -> AsyncIterator[tuple[str, ApiClient]]:
    """A real server on 127.0.0.1; its URL and a member of GID (with a second member)."""
    config = make_config(tmp_path / "data", f"sqlite:///{tmp_path / 'm.db'}", **overrides)
    app = create_app(config, clock=time.time, run_sweeper=False)
    async with serve(app, "uvicorn", time.time) as server:
        alice = await server.registered()
        bob = await server.registered()
        await alice.create_group(GID)
        await alice.commit(
            GID,
            0,
            mls_data.commit(GID, 0),
            [alice.me.queue_id, bob.me.queue_id],
            welcome=await alice.welcome_for(bob),
            welcome_to=[bob.me.queue_id],
        )
        yield str(server.http.base_url).rstrip("/"), alice


def _transport(url: str, member: ApiClient) -> Transport:
    signer = Signer(member.me.client_id, member.me.key.private_bytes_raw())
    return Transport(url, signer=signer)


async def test_send_batch_over_loopback(tmp_path: Path) -> None:
    async with _loopback(tmp_path) as (url, alice):
        transport = _transport(url, alice)
        try:
            token = send_token(GID, 1)
            requests = [
                m.SendRequest(mls_data.application(GID, 1, b"%d" % i), token=token)
                for i in range(60)
            ]
            # Models and finished bodies (as the outbox stores them) mix.
            items: list[m.SendRequest | bytes] = [
                req if i % 2 else req.dumps() for i, req in enumerate(requests)
            ]
            results = await transport.send_batch(GID, items)
            assert [(x.epoch, x.recipients) for x in results] == [(1, 2)] * 60
            page = await transport.fetch(0, limit=100)
            sent = [msg.data for msg in page.messages][-60:]
            assert sent == [req.message for req in requests]
            # A message for another epoch, with the current token: stale.
            old = m.SendRequest(mls_data.application(GID, 0, b"x"), token=token)
            with pytest.raises(StaleEpochError) as info:
                await transport.send_batch(GID, [old])
            assert info.value.current_epoch == 1
            # The old epoch's token is no longer a member's: as for a missing group.
            older = m.SendRequest(mls_data.application(GID, 0, b"x"), token=send_token(GID, 0))
            with pytest.raises(UnknownGroupError):
                await transport.send_batch(GID, [older])
            with pytest.raises(ValueError):
                await transport.send_batch(GID, [])
            with pytest.raises(ValueError):
                await transport.send_batch(GID, requests + requests)
        finally:
            await transport.aclose()


async def test_a_flood_by_batches_is_rate_limited(tmp_path: Path) -> None:
    async with _loopback(tmp_path, sender_messages_per_queue_per_minute=30) as (url, alice):
        transport = _transport(url, alice)
        try:
            batch = [
                m.SendRequest(mls_data.application(GID, 1, b"%d" % i), token=send_token(GID, 1))
                for i in range(20)
            ]
            await transport.send_batch(GID, batch)
            with pytest.raises(RateLimitedError) as info:
                await transport.send_batch(GID, batch)
            assert info.value.retry_after >= 1
        finally:
            await transport.aclose()


async def test_an_answer_with_the_wrong_number_of_results_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == r.group_path(r.GROUP_MESSAGES_BATCH, GID)
        assert len(json.loads(request.content)["messages"]) == 2
        return httpx.Response(200, json={"results": [{"epoch": 1, "recipients": 2}]})

    signer = Signer("client-1", os.urandom(32))
    transport = Transport(
        "http://server.test", signer=signer, transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(ProtocolError):
            await transport.send_batch(GID, [b'{"message":"AQ"}', b'{"message":"Ag"}'])
    finally:
        await transport.aclose()
