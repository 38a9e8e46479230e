"""Several server instances on one PostgreSQL: push, commit order and replay
protection hold whichever instance a client talks to.

Each instance has its own pool, hub and LISTEN connection, exactly as a
separate process would; only the database (and the secret file) are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.server import create_app
from messenger.server.storage import PostgresDatabase

from . import mls_data
from .client import ApiClient
from .conftest import TestServer, make_config, postgres_dsn, postgres_schema, serve
from .dbtools import seq_base
from .hub_watch import DEADLINE, subscribers, until, watch_waits

pytestmark = pytest.mark.anyio

GID = b"scale-out-group"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[TestServer, TestServer]]:
    async with postgres_schema() as dsn, contextlib.AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            config = make_config(tmp_path / "shared-data", dsn)
            app = create_app(config, run_sweeper=False)
            servers.append(await stack.enter_async_context(serve(app, "uvicorn", time.time)))
        yield servers[0], servers[1]


def _on(server: TestServer, client: ApiClient) -> ApiClient:
    """The same client (same keys) talking to another instance."""
    return ApiClient(server.http, client.identity, client.clock)


async def _group(a: TestServer, n: int) -> list[ApiClient]:
    clients = [await a.registered() for _ in range(n)]
    await clients[0].create_group(GID)
    queues = [c.me.queue_id for c in clients]
    await clients[0].commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        queues,
        welcome=await clients[0].welcome_for(*clients[1:]),
        welcome_to=queues[1:],
    )
    return clients


async def test_push_reaches_a_client_connected_to_another_instance(
    pair: tuple[TestServer, TestServer],
) -> None:
    a, b = pair
    alice, bob = await _group(a, 2)
    bob_on_b = _on(b, bob)
    commit = await seq_base(a, alice.me.queue_id)  # Alice's queue holds her commit
    async with alice.websocket(after=commit) as ws:
        await until(lambda: subscribers(a.state.hub, alice.me.queue_id) == 1, "the push socket")
        for i in range(5):
            await bob_on_b.send(GID, mls_data.application(GID, 1, b"via b %d" % i))
            (msg,) = await ws.messages(1, timeout=DEADLINE)
            assert msg.seq == commit + 1 + i


async def test_long_poll_on_one_instance_wakes_for_a_send_on_the_other(
    pair: tuple[TestServer, TestServer],
) -> None:
    a, b = pair
    alice, bob = await _group(a, 2)
    welcome = await seq_base(a, bob.me.queue_id)
    with watch_waits(a.state.hub, bob.me.queue_id) as polls:
        # Sent on the other instance only once the poll waits on this one's hub.
        poll = asyncio.create_task(bob.fetch(after=welcome, wait=20))
        await until(lambda: polls.waits == 1 or poll.done(), "the long poll to wait")
        await _on(b, alice).send(GID, mls_data.application(GID, 1, b"wake"))
        page = await poll
    assert [m.seq for m in page.messages] == [welcome + 1]


async def test_one_commit_per_epoch_across_instances(pair: tuple[TestServer, TestServer]) -> None:
    a, b = pair
    clients = await _group(a, 6)
    queues = [c.me.queue_id for c in clients]
    routed = [c if i % 2 == 0 else _on(b, c) for i, c in enumerate(clients)]

    async def attempt(client: ApiClient, i: int) -> object:
        try:
            return await client.commit(GID, 1, mls_data.commit(GID, 1, b"%d" % i), queues)
        except ApiError as exc:
            return exc

    results = await asyncio.gather(*(attempt(c, i) for i, c in enumerate(routed)))
    winners = [res for res in results if not isinstance(res, ApiError)]
    assert len(winners) == 1
    assert all(res.code is ErrorCode.STALE_EPOCH for res in results if isinstance(res, ApiError))


async def test_a_request_replayed_to_another_instance_is_refused(
    pair: tuple[TestServer, TestServer],
) -> None:
    a, b = pair
    alice = await a.registered()
    headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")
    assert (await a.http.get(r.KEY_PACKAGE_COUNT, headers=headers)).status_code == 200
    replay = await b.http.get(r.KEY_PACKAGE_COUNT, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "auth_replayed"


async def test_push_survives_a_dropped_listen_connection(
    pair: tuple[TestServer, TestServer],
) -> None:
    a, b = pair
    alice, bob = await _group(a, 2)
    db = a.state.db
    assert isinstance(db, PostgresDatabase)
    listener = db._listener
    assert listener is not None
    old_pid = listener.get_server_pid()
    killer = await asyncpg.connect(postgres_dsn())
    try:
        await killer.execute("SELECT pg_terminate_backend($1)", old_pid)
    finally:
        await killer.close()

    def reconnected() -> bool:
        current = db._listener
        return current is not None and current.get_server_pid() != old_pid

    await until(reconnected, "the LISTEN connection to be re-established")
    commit = await seq_base(a, alice.me.queue_id)
    async with alice.websocket(after=commit) as ws:
        await until(lambda: subscribers(a.state.hub, alice.me.queue_id) == 1, "the push socket")
        await _on(b, bob).send(GID, mls_data.application(GID, 1, b"after reconnect"))
        (msg,) = await ws.messages(1, timeout=DEADLINE)
        assert msg.seq == commit + 1
