"""The batch send route: ``POST /v1/groups/{group_id}/messages/batch``.

Each item is checked as the single send route checks it, the batch is
stored in one transaction (all or nothing) on every backend, and every
limit counts messages, not requests: batching must not let anyone do what
single sends would not.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.padding import pad
from messenger.mls.content import ContentType, PrivateMessage
from messenger.mls.messages import MLSMessage
from messenger.server.storage import Database

from . import mls_data
from .client import ApiClient, send_token
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import rows, snapshot
from .hub_watch import until

pytestmark = pytest.mark.anyio

GID = os.urandom(32)
OTHER = os.urandom(32)


async def _group(server: TestServer, n: int, gid: bytes = GID) -> list[ApiClient]:
    """``n`` clients; the first creates ``gid`` (epoch 1 after adding the rest)."""
    clients = [await server.registered() for _ in range(n)]
    creator = clients[0]
    await creator.create_group(gid)
    queues = [c.me.queue_id for c in clients]
    await creator.commit(
        gid,
        0,
        mls_data.commit(gid, 0),
        queues,
        welcome=await creator.welcome_for(*clients[1:]) if n > 1 else None,
        welcome_to=queues[1:] if n > 1 else None,
    )
    return clients


async def _texts(client: ApiClient, after: int = 0) -> list[bytes]:
    """The plaintexts of the application messages in ``client``'s queue."""
    out = []
    for msg in (await client.fetch(after, limit=1000)).messages:
        body = MLSMessage.from_bytes(msg.data).body
        if isinstance(body, PrivateMessage) and body.content_type is ContentType.APPLICATION:
            out.append(mls_data.decrypt(body.ciphertext))
    return out


def _batch(gid: bytes, epoch: int, texts: list[bytes]) -> list[bytes | m.SendRequest]:
    return [mls_data.application(gid, epoch, t) for t in texts]


async def _raw_batch(client: ApiClient, gid: bytes, body: dict[str, Any] | m.Model) -> Any:
    """A sealed (unsigned) batch request, answered as it comes."""
    return await client.raw("POST", r.group_path(r.GROUP_MESSAGES_BATCH, gid), body, signed=False)


async def test_a_batch_is_stored_in_order_and_answered_per_item(server: TestServer) -> None:
    alice, bob, carol = await _group(server, 3)
    await alice.send(GID, mls_data.application(GID, 1, b"single before"))
    texts = [b"batch %d" % i for i in range(7)]
    response = await bob.send_batch(GID, _batch(GID, 1, texts))
    assert [(x.epoch, x.recipients) for x in response.results] == [(1, 3)] * 7
    single = await carol.send(GID, mls_data.application(GID, 1, b"single after"))
    assert (single.epoch, single.recipients) == (1, 3)
    expected = [b"single before", *texts, b"single after"]
    for client in (alice, bob, carol):  # the sender's own queue gets them too
        assert await _texts(client) == expected
    # Consecutive sequence numbers, one payload per message.
    seqs = [msg.seq for msg in (await bob.fetch(0, limit=100)).messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert len(await rows(server, "payloads")) == 2 + 9  # commit, Welcome, messages


async def test_a_batch_is_one_transaction(server: TestServer) -> None:
    alice, _ = await _group(server, 2)
    db: Database = server.state.db
    calls = 0

    def counting(real: Any) -> Any:
        async def run(op: Any) -> Any:
            nonlocal calls
            calls += 1
            return await real(op)

        return run

    db.transaction = counting(db.transaction)  # type: ignore[method-assign]
    db.statement = counting(db.statement)  # type: ignore[method-assign]
    try:
        await alice.send(GID, mls_data.application(GID, 1, b"single"))
        single, calls = calls, 0
        await alice.send_batch(GID, _batch(GID, 1, [b"%d" % i for i in range(100)]))
    finally:
        del db.transaction
        del db.statement
    # A sealed send is not signed, so it stores no nonce: the send is the
    # only write, for one message as for a hundred.
    assert calls == single == 1
    assert len(await _texts(alice)) == 101


async def test_a_batch_is_pushed_in_order(server: TestServer) -> None:
    alice, bob = await _group(server, 2)
    mark = (await bob.fetch()).messages[-1].seq
    async with bob.websocket(after=mark) as ws:
        await until(lambda: server.state.hub.subscriber_count == 1, "the socket subscribed")
        await alice.send_batch(GID, _batch(GID, 1, [b"push %d" % i for i in range(20)]))
        pushed = await ws.messages(20)
    assert [msg.seq for msg in pushed] == list(range(mark + 1, mark + 21))
    got = [
        mls_data.decrypt(MLSMessage.from_bytes(msg.data).body.ciphertext)  # type: ignore[union-attr]
        for msg in pushed
    ]
    assert got == [b"push %d" % i for i in range(20)]


async def test_idempotency_keys_work_per_item(server: TestServer) -> None:
    alice, bob = await _group(server, 2)
    keys = [os.urandom(16) for _ in range(3)]
    items: list[bytes | m.SendRequest] = [
        m.SendRequest(mls_data.application(GID, 1, b"k%d" % i), keys[i]) for i in range(3)
    ]
    first = await alice.send_batch(GID, items)
    before = await snapshot(server)
    # The answer was lost: the same batch again is answered alike and stored once.
    again = await alice.send_batch(GID, items)
    assert again == first
    assert await snapshot(server) == before
    # Even after the group moved on, answered items are answered, not refused as
    # stale (the retry carries the current epoch's token: the old one is gone).
    await alice.commit(GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id, bob.me.queue_id])
    with pytest.raises(ApiError) as info:
        await alice.send_batch(GID, items[:2])
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    now = send_token(GID, 2)
    assert await alice.send_batch(GID, items[:2], token=now) == m.SendBatchResponse(
        first.results[:2]
    )
    # A batch mixing answered items and new ones stores only the new ones.
    mixed = [items[2], m.SendRequest(mls_data.application(GID, 2, b"new"), os.urandom(16))]
    answer = await alice.send_batch(GID, mixed, token=now)
    assert [(x.epoch, x.recipients) for x in answer.results] == [(1, 2), (2, 2)]
    assert await _texts(bob) == [b"k0", b"k1", b"k2", b"new"]
    # A key already used by a single send answers in a batch too, and back.
    single_key = os.urandom(16)
    single = await alice.send(
        GID, mls_data.application(GID, 2, b"single"), idempotency_key=single_key
    )
    repeated = await alice.send_batch(
        GID, [m.SendRequest(mls_data.application(GID, 2, b"single"), single_key)]
    )
    assert repeated.results == (single,)
    assert await _texts(bob) == [b"k0", b"k1", b"k2", b"new", b"single"]


async def test_strangers_and_removed_members_learn_nothing_and_change_nothing(
    server: TestServer,
) -> None:
    alice, bob = await _group(server, 2)
    mallory = await server.registered()
    missing = os.urandom(32)
    before = await snapshot(server)
    # Mallory cannot know the token: she sends her guess.
    on_real = await _raw_batch(
        mallory, GID, m.SendBatchRequest((mallory.sealed(GID, mls_data.application(GID, 1, b"x")),))
    )
    on_missing = await _raw_batch(
        mallory,
        missing,
        m.SendBatchRequest((mallory.sealed(missing, mls_data.application(missing, 1, b"x")),)),
    )
    assert on_real.status_code == on_missing.status_code == 404
    assert on_real.content == on_missing.content
    assert on_real.json()["error"]["code"] == "unknown_group"
    # Another epoch: still the same answer.
    other = await _raw_batch(
        mallory, GID, m.SendBatchRequest((mallory.sealed(GID, mls_data.application(GID, 9, b"x")),))
    )
    assert other.status_code == 404 and other.content == on_missing.content
    assert await snapshot(server) == before
    # Bob is removed; with the last token he knew (epoch 1's), his batches are
    # answered as for a missing group.
    await alice.commit(GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id])
    after_removal = await snapshot(server)
    known = send_token(GID, 1)
    removed = await _raw_batch(
        bob,
        GID,
        m.SendBatchRequest((m.SendRequest(mls_data.application(GID, 2, b"x"), None, known),)),
    )
    missing_answer = await _raw_batch(
        bob,
        missing,
        m.SendBatchRequest((m.SendRequest(mls_data.application(missing, 2, b"x"), None, known),)),
    )
    assert (removed.status_code, removed.content) == (
        missing_answer.status_code,
        missing_answer.content,
    )
    assert await snapshot(server) == after_removal


async def test_oversized_and_malformed_batches_are_refused(server: TestServer) -> None:
    alice, _ = await _group(server, 2)
    before = await snapshot(server)
    # Items as a current client writes them: the padded message and the token.
    item = {
        "message": mls_data.b64(pad(mls_data.application(GID, 1, b"x"))),
        "token": mls_data.b64(send_token(GID, 1)),
    }
    cases: dict[str, dict[str, Any]] = {
        "too many items": {"messages": [item] * (m.MAX_SEND_BATCH_ITEMS + 1)},
        "no items": {"messages": []},
        "not a list": {"messages": item},
        "unknown field in an item": {"messages": [{**item, "sender": "x"}]},
        "a shared idempotency key": {
            "messages": [
                {**item, "idempotency_key": mls_data.b64(b"k" * 16)},
                {**item, "idempotency_key": mls_data.b64(b"k" * 16)},
            ]
        },
    }
    for name, body in cases.items():
        response = await _raw_batch(alice, GID, body)
        assert response.status_code == 400, name
        assert response.json()["error"]["code"] == "invalid_field", name
    third = m.MAX_SEND_BATCH_BYTES // 3 + 1
    big = [mls_data.application(GID, 1, os.urandom(third)) for _ in range(3)]
    response = await _raw_batch(
        alice, GID, m.SendBatchRequest(tuple(alice.sealed(GID, b) for b in big))
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "messages"}
    assert await snapshot(server) == before


@pytest.mark.parametrize(
    "bad",
    ["stale epoch", "future epoch", "another group", "a commit", "not MLS", "a Welcome"],
)
async def test_one_bad_item_refuses_the_whole_batch(server: TestServer, bad: str) -> None:
    alice, bob = await _group(server, 2)
    await alice.commit(GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id, bob.me.queue_id])
    items = _batch(GID, 2, [b"good %d" % i for i in range(5)])
    items[3] = {
        "stale epoch": mls_data.application(GID, 1, b"bad"),
        "future epoch": mls_data.application(GID, 3, b"bad"),
        "another group": mls_data.application(OTHER, 2, b"bad"),
        "a commit": mls_data.commit(GID, 2),
        "not MLS": b"\x00\x01garbage",
        "a Welcome": mls_data.welcome(),
    }[bad]
    expected = {
        "stale epoch": ErrorCode.STALE_EPOCH,
        "future epoch": ErrorCode.STALE_EPOCH,
        "another group": ErrorCode.GROUP_MISMATCH,
        "a commit": ErrorCode.WRONG_MESSAGE_TYPE,
        "not MLS": ErrorCode.INVALID_MESSAGE,
        "a Welcome": ErrorCode.WRONG_MESSAGE_TYPE,
    }[bad]
    before = await snapshot(server)
    with pytest.raises(ApiError) as info:  # every item with the current token
        await alice.send_batch(GID, items, token=send_token(GID, 2))
    assert info.value.code is expected
    if expected is ErrorCode.STALE_EPOCH:
        assert info.value.details == {"current_epoch": 2}
    assert await snapshot(server) == before
    # Nothing was taken from any budget either: the good items go through.
    del items[3]
    await alice.send_batch(GID, items)
    assert await _texts(bob) == [b"good %d" % i for i in (0, 1, 2, 4)]


async def test_a_flood_is_counted_per_message(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, sender_messages_per_queue_per_minute=10) as server:
        mallory, victim = await _group(server, 2)
        # The group may send ten a minute towards the victim's queue (the
        # Welcome was the committer's, not the group's).
        await mallory.send_batch(GID, _batch(GID, 1, [b"a%d" % i for i in range(5)]))
        before = await snapshot(server)
        with pytest.raises(ApiError) as info:
            await mallory.send_batch(GID, _batch(GID, 1, [b"b%d" % i for i in range(6)]))
        assert info.value.code is ErrorCode.RATE_LIMITED and info.value.status == 429
        assert await snapshot(server) == before  # all or nothing
        await mallory.send_batch(GID, _batch(GID, 1, [b"c%d" % i for i in range(5)]))
        with pytest.raises(ApiError) as info:
            await mallory.send(GID, mls_data.application(GID, 1, b"one more"))
        assert info.value.code is ErrorCode.RATE_LIMITED
        # A batch larger than a whole minute's budget can never pass: split it.
        clock.advance(60)
        before = await snapshot(server)
        with pytest.raises(ApiError) as info:
            await mallory.send_batch(GID, _batch(GID, 1, [b"d%d" % i for i in range(11)]))
        assert info.value.code is ErrorCode.LIMIT_EXCEEDED and info.value.status == 400
        assert info.value.details == {"max_items": 10, "max_bytes": 16 << 20}
        assert await snapshot(server) == before
        await mallory.send_batch(GID, _batch(GID, 1, [b"e%d" % i for i in range(10)]))
        assert len(await _texts(victim)) == 5 + 5 + 10


async def test_bytes_are_budgeted_per_message(server_factory: ServerFactory) -> None:
    budget = 1 << 20
    async with server_factory(sender_bytes_per_queue_per_minute=budget) as server:
        mallory, _ = await _group(server, 2)
        half = [mls_data.application(GID, 1, os.urandom(budget // 2 - 1000)) for _ in range(3)]
        with pytest.raises(ApiError) as info:  # more than a full bucket
            await mallory.send_batch(GID, list(half))
        assert info.value.code is ErrorCode.LIMIT_EXCEEDED
        await mallory.send_batch(GID, list(half[:1]))
        with pytest.raises(ApiError) as info:  # fits a full bucket, not what is left
            await mallory.send_batch(GID, list(half[1:]))
        assert info.value.code is ErrorCode.RATE_LIMITED


def _sealed_batch(client: ApiClient, count: int) -> m.SendBatchRequest:
    return m.SendBatchRequest(
        tuple(client.sealed(GID, mls_data.application(GID, 1, b"%d" % i)) for i in range(count))
    )


async def test_the_address_budget_counts_each_message(server_factory: ServerFactory) -> None:
    async with server_factory(ip_requests_per_minute=40) as server:
        alice, _ = await _group(server, 2)  # a few requests of the budget
        await alice.send_batch(GID, _batch(GID, 1, [b"fits %d" % i for i in range(5)]))
        before = await snapshot(server)
        response = await _raw_batch(alice, GID, _sealed_batch(alice, 40))
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
        assert await snapshot(server, exclude=("request_nonces",)) == before


async def test_sealed_sends_take_nothing_from_the_account_budget(
    server_factory: ServerFactory,
) -> None:
    # A sealed send does not say whose it is (docs/metadata.md §3), so it
    # cannot count towards an account: the address budget is what limits it.
    async with server_factory(account_requests_per_minute=40) as server:
        alice, bob = await _group(server, 2)
        for _ in range(3):
            response = await _raw_batch(alice, GID, _sealed_batch(alice, 40))
            assert response.status_code == 200, response.text
        assert len(await _texts(bob)) == 120
        # Signed requests still count: the account's budget is spent by them alone.
        answers = [(await alice.raw("GET", r.KEY_PACKAGE_COUNT)).status_code for _ in range(40)]
        assert answers[-1] == 429 and answers[0] == 200


async def test_a_batch_needs_room_for_every_message(server_factory: ServerFactory) -> None:
    async with server_factory(max_queue_length=20) as server:
        alice, bob = await _group(server, 2)  # Bob's queue holds the Welcome
        await alice.send_batch(GID, _batch(GID, 1, [b"a%d" % i for i in range(15)]))
        before = await snapshot(server)
        with pytest.raises(ApiError) as info:  # 16 + 5 > 20
            await alice.send_batch(GID, _batch(GID, 1, [b"b%d" % i for i in range(5)]))
        assert info.value.code is ErrorCode.QUEUE_FULL and info.value.status == 507
        assert info.value.details == {"retry_after": 60}
        assert await snapshot(server) == before
        await alice.send_batch(GID, _batch(GID, 1, [b"c%d" % i for i in range(4)]))
        with pytest.raises(ApiError) as info:
            await alice.send(GID, mls_data.application(GID, 1, b"full"))
        assert info.value.code is ErrorCode.QUEUE_FULL
        # A batch larger than the queue itself never fits, even into an empty one.
        last = (await bob.fetch(0, limit=100)).messages[-1].seq
        await bob.ack(last)
        await alice.ack((await alice.fetch(0, limit=100)).messages[-1].seq)
        with pytest.raises(ApiError) as info:
            await alice.send_batch(GID, _batch(GID, 1, [b"d%d" % i for i in range(21)]))
        assert info.value.code is ErrorCode.QUEUE_FULL
        await alice.send_batch(GID, _batch(GID, 1, [b"e%d" % i for i in range(20)]))
        assert len(await _texts(bob, after=last)) == 20
