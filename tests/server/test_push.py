"""Real-time delivery over WebSocket: backlog, live push, fan-out, ack."""

from __future__ import annotations

import asyncio
import json

import pytest

from . import mls_data
from .client import ApiClient
from .conftest import TestServer
from .dbtools import seq_base
from .hub_watch import subscribers, until

pytestmark = pytest.mark.anyio

GID = b"push-group"


async def _group(server: TestServer, n: int) -> tuple[list[ApiClient], int]:
    clients = [await server.registered() for _ in range(n)]
    await clients[0].create_group(GID)
    queues = [c.me.queue_id for c in clients]
    await clients[0].commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        queues,
        welcome=await clients[0].welcome_for(*clients[1:]) if n > 1 else None,
        welcome_to=queues[1:] if n > 1 else None,
    )
    return clients, 1


async def test_backlog_then_live_push_then_ack(server: TestServer) -> None:
    (alice, bob), epoch = await _group(server, 2)
    b = await seq_base(server, bob.me.queue_id) - 1  # Bob's queue holds the Welcome
    await alice.send(GID, mls_data.application(GID, epoch, b"before connect"))
    async with bob.websocket(after=0) as ws:
        backlog = await ws.messages(2)  # the Welcome and the first message
        assert [m.seq - b for m in backlog] == [1, 2]
        await alice.send(GID, mls_data.application(GID, epoch, b"live"))
        (live,) = await ws.messages(1)  # fails after its deadline if never pushed
        assert live.seq == b + 3
        acked = await ws.ack(b + 2)
        assert (acked.up_to, acked.deleted) == (b + 2, 2)
    assert [m.seq - b for m in (await bob.fetch()).messages] == [3]


async def test_resume_after_a_cursor(server: TestServer) -> None:
    (alice, bob), epoch = await _group(server, 2)
    b = await seq_base(server, bob.me.queue_id) - 1
    for i in range(3):
        await alice.send(GID, mls_data.application(GID, epoch, b"%d" % i))
    async with bob.websocket(after=b + 3) as ws:
        got = await ws.messages(1)
        assert [m.seq - b for m in got] == [4]


async def test_push_fans_out_to_every_connected_member(server: TestServer) -> None:
    clients, epoch = await _group(server, 4)
    for c in clients:
        await c.ack(1 << 62)
    after = [await seq_base(server, c.me.queue_id) for c in clients]
    async with (
        clients[0].websocket(after=after[0]) as ws0,
        clients[1].websocket(after=after[1]) as ws1,
        clients[2].websocket(after=after[2]) as ws2,
        clients[3].websocket(after=after[3]) as ws3,
    ):
        await until(
            lambda: all(subscribers(server.state.hub, c.me.queue_id) == 1 for c in clients),
            "the four push sockets",
        )
        heads = [(await c.fetch()).messages for c in clients]
        assert all(h == () for h in heads)
        for i in range(10):
            await clients[i % 4].send(GID, mls_data.application(GID, epoch, b"n%d" % i))
        # Every queue held one message (commit or Welcome), acked above.
        received = [await ws.messages(10) for ws in (ws0, ws1, ws2, ws3)]
    for got in received:
        assert len(got) == 10
        datas = [m.data for m in got]
        assert datas == [m.data for m in received[0]]


async def test_a_commit_is_pushed_and_a_welcome_reaches_the_new_member(server: TestServer) -> None:
    (alice, bob), epoch = await _group(server, 2)
    carol = await server.registered()
    welcome_for_carol = await alice.welcome_for(carol)
    welcome = await seq_base(server, bob.me.queue_id)
    async with bob.websocket(after=welcome) as bob_ws, carol.websocket() as carol_ws:
        await alice.commit(
            GID,
            epoch,
            mls_data.commit(GID, epoch, b"add carol"),
            [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id],
            welcome=welcome_for_carol,
            welcome_to=[carol.me.queue_id],
        )
        (commit,) = await bob_ws.messages(1)
        (welcome,) = await carol_ws.messages(1)
    assert commit.data.startswith(b"\x00\x01\x00\x02")  # PrivateMessage
    assert welcome.data.startswith(b"\x00\x01\x00\x03")  # Welcome


async def test_malformed_frames_get_an_error_and_the_socket_stays(server: TestServer) -> None:
    (alice, bob), epoch = await _group(server, 2)
    welcome = await seq_base(server, bob.me.queue_id)
    async with bob.websocket(after=welcome) as ws:
        await ws.ws.send_text("{not json")
        frame = await ws.next_frame()
        assert frame["error"]["code"] == "malformed_json"
        await ws.ws.send_text(json.dumps({"type": "ack", "up_to": -1}))
        frame = await ws.next_frame()
        assert frame["error"]["code"] == "invalid_field"
        await alice.send(GID, mls_data.application(GID, epoch, b"still here"))
        (msg,) = await ws.messages(1)
        assert msg.seq == welcome + 1


async def test_many_messages_arrive_in_order(server: TestServer) -> None:
    (alice, bob), epoch = await _group(server, 2)
    welcome = await seq_base(server, bob.me.queue_id)
    async with bob.websocket(after=welcome) as ws:
        await asyncio.gather(
            *(alice.send(GID, mls_data.application(GID, epoch, b"%d" % i)) for i in range(60))
        )
        got = await ws.messages(60)
    assert [m.seq for m in got] == list(range(welcome + 1, welcome + 61))
