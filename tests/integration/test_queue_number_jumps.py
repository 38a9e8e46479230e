"""Real clients keep receiving when their queue's numbers jump (docs/server.md, "Queues").

When an ack empties a queue, the server moves its next sequence number
ahead by a random step, so that two copies of its database do not show how
many messages the queue got in between (docs/metadata.md §2). A client only
fetches after, and acks up to, numbers the server gave it: here a real
server process on loopback and two real clients that ack at once check that
nothing is lost or shown twice across jumps, whether the client is
listening (push) or catches up after a restart from its stored cursor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import MessageKind, MessengerClient
from messenger.client.acks import AckPolicy
from messenger.client.sync.inbound import CURSOR_KEY

from .conftest import CLIENT_OPTIONS, Clients, eventually, start_server, stop_server

pytestmark = pytest.mark.anyio

#: Ack each batch as soon as it is stored, so every read empties the queue.
OPTIONS = dataclasses.replace(
    CLIENT_OPTIONS, ack_policy=AckPolicy(min_delay=0, max_delay=0, max_pending=1)
)


@contextlib.contextmanager
def server_database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The running server's SQLite database, read only."""
    path = data_dir / "messenger.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        yield db


def queue_state(data_dir: Path, queue_id: str) -> tuple[int, int]:
    """``(next_seq, entries held)`` of a queue, as the server stores them."""
    with server_database(data_dir) as db:
        (next_seq,) = db.execute(
            "SELECT next_seq FROM queues WHERE queue_id = ?", (queue_id,)
        ).fetchone()
        (held,) = db.execute(
            "SELECT COUNT(*) FROM queue_entries WHERE queue_id = ?", (queue_id,)
        ).fetchone()
    return int(next_seq), int(held)


async def cursor(client: MessengerClient) -> int:
    """The client's queue cursor: the last sequence number it processed."""
    return await client._require().store.run(lambda s: s.settings.get_int(CURSOR_KEY, 0))


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=200)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def test_clients_receive_everything_across_jumps_live_and_after_a_restart(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    server = start_server(data_dir)
    clients = Clients(tmp_path / "clients", server)
    try:
        alice = await clients.new("alice", handle="alice_jumps", options=OPTIONS)
        bob = await clients.new("bob", handle="bob_jumps", options=OPTIONS)
        contact = await alice.add_contact(f"bob_jumps@{server.host}")
        chat = await alice.create_conversation(contact.account_id)
        queue = bob._require().account.queue_id
        expected: list[str] = []

        async def bob_has_all() -> bool:
            views = await bob.conversations()
            return bool(views) and await texts(bob, views[0].id) == expected

        async def emptied() -> bool:
            # Bob processed and acked all of it: nothing waits for him.
            return queue_state(data_dir, queue)[1] == 0

        jumps = 0
        for round_ in range(3):
            for i in range(3):
                text = f"round {round_} message {i}"
                await alice.send_text(chat.id, text)
                expected.append(text)
            await eventually(bob_has_all, f"Bob to get round {round_}")
            await eventually(emptied, f"Bob to ack round {round_}")
            next_seq, _ = queue_state(data_dir, queue)
            last = await cursor(bob)
            # The emptying ack moved the next number past Bob's cursor, and
            # (but once in a million) not right after it.
            assert next_seq > last
            jumps += next_seq > last + 1
        assert jumps >= 2

        # Offline across a jump: Bob's stored cursor is below what comes next.
        await clients.close(bob)
        for i in range(3):
            text = f"while Bob was away {i}"
            await alice.send_text(chat.id, text)
            expected.append(text)
        bob = await clients.open("bob", options=OPTIONS)
        await eventually(bob_has_all, "Bob to catch up after his restart")
        await eventually(emptied, "Bob to ack what he caught up on")
        views = await bob.conversations()
        assert await texts(bob, views[0].id) == expected, "nothing lost, nothing twice"
    finally:
        await clients.close_all()
        stop_server(server)
