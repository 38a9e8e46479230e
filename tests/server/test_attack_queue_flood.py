"""Attack: putting someone's queue into a group, and flooding it (security issue, item 3).

Before the fix the committer's member list was taken on trust, so a stranger
could put a victim's queue into a group of their own and flood it; once the
queue was over ``max_queue_length``, retention evicted the victim's oldest,
unread, legitimate messages (60 junk sends removed all 6 legitimate entries
with ``max_queue_length=50``). Now:

* a commit may add a queue only with a Welcome naming a KeyPackage that the
  committing client claimed from that queue's client (claim evidence, used
  once, expiring after ``claim_evidence_ttl_seconds``);
* a full queue refuses new entries (``queue_full``, 507), the whole send,
  and nothing unread is evicted;
* each group has a budget of messages and bytes a minute per recipient
  queue (``rate_limited``, 429, in memory): sends are sealed, so the budget
  is the group's, not the sender's (docs/metadata.md §3).
"""

from __future__ import annotations

import os

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.server.delivery import SenderBudgets

from . import mls_data
from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import rows, seq_base, snapshot

pytestmark = pytest.mark.anyio

HONEST = b"\x03alice-and-victim"
JUNK = b"\x03mallory-junk-group"


async def _legitimate(server: TestServer, messages: int = 6) -> tuple[ApiClient, ApiClient]:
    """Alice adds the victim to a group and sends ``messages`` the victim has not read."""
    alice = await server.registered()
    victim = await server.registered()
    await alice.create_group(HONEST)
    await alice.commit(
        HONEST,
        0,
        mls_data.commit(HONEST, 0),
        [alice.me.queue_id, victim.me.queue_id],
        welcome=await alice.welcome_for(victim),
        welcome_to=[victim.me.queue_id],
    )
    for i in range(messages):
        await alice.send(HONEST, mls_data.application(HONEST, 1, b"legitimate %d" % i))
    return alice, victim


async def _legitimate_entries(victim: ApiClient) -> list[bytes]:
    from messenger.mls.messages import MLSMessage

    found = []
    for message in (await victim.fetch(limit=1000)).messages:
        body = MLSMessage.from_bytes(message.data).body
        ciphertext = getattr(body, "ciphertext", None)
        if ciphertext is not None:
            found.append(mls_data.decrypt(ciphertext))
    return [p for p in found if p.startswith(b"legitimate")]


async def _commit_status(
    client: ApiClient, group_id: bytes, epoch: int, request: m.CommitRequest
) -> tuple[int, str]:
    response = await client.raw("POST", r.group_path(r.GROUP_COMMITS, group_id), request)
    body = response.json()
    return response.status_code, body["error"]["code"] if "error" in body else "ok"


async def test_a_stranger_cannot_put_a_victims_queue_into_a_group(server: TestServer) -> None:
    _, victim = await _legitimate(server)
    mallory = await server.registered()
    puppet = await server.registered()  # Mallory's second account
    carol = await server.registered()  # an honest user who claims the victim's KeyPackage
    await victim.upload_key_packages([victim.key_package()])
    (carols,) = (await carol.claim(victim.me.account_id)).key_packages
    await mallory.create_group(JUNK)
    await puppet.upload_key_packages([puppet.key_package()])
    (puppets,) = (await mallory.claim(puppet.me.account_id)).key_packages
    members = (mallory.me.queue_id, victim.me.queue_id)
    to_victim = (victim.me.queue_id,)
    attempts = {
        "no Welcome": m.CommitRequest(0, mls_data.commit(JUNK, 0), members),
        "a Welcome to a made-up KeyPackage": m.CommitRequest(
            0, mls_data.commit(JUNK, 0), members, mls_data.welcome(), to_victim
        ),
        "a Welcome to a KeyPackage she claimed from someone else": m.CommitRequest(
            0,
            mls_data.commit(JUNK, 0),
            members,
            mls_data.welcome([mls_data.key_package_ref(puppets.key_package)]),
            to_victim,
        ),
        "a Welcome to the victim's KeyPackage that Carol claimed": m.CommitRequest(
            0,
            mls_data.commit(JUNK, 0),
            members,
            mls_data.welcome([mls_data.key_package_ref(carols.key_package)]),
            to_victim,
        ),
        "the victim named, the Welcome sent to her puppet": m.CommitRequest(
            0,
            mls_data.commit(JUNK, 0),
            (*members, puppet.me.queue_id),
            mls_data.welcome([mls_data.key_package_ref(puppets.key_package)]),
            (puppet.me.queue_id,),
        ),
    }
    before = await snapshot(server)
    for what, attempt in attempts.items():
        assert await _commit_status(mallory, JUNK, 0, attempt) == (403, "member_not_claimed"), what
    assert await snapshot(server) == before
    # Whatever Mallory sends to her group does not reach the victim.
    for i in range(60):
        await mallory.send(JUNK, mls_data.application(JUNK, 0, b"junk %d" % i))
    await server.state.delivery.sweep()
    assert await _legitimate_entries(victim) == [b"legitimate %d" % i for i in range(6)]
    assert len((await victim.fetch(limit=1000)).messages) == 7  # the Welcome and the six


async def test_claim_evidence_is_the_claimers_used_once_and_expires(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    ttl = 3 * 24 * 3600
    async with server_factory(clock=clock, claim_evidence_ttl_seconds=ttl) as server:
        carol = await server.registered()
        victim = await server.registered()
        await victim.upload_key_packages([victim.key_package()], victim.key_package())
        await carol.create_group(HONEST)
        queues = [carol.me.queue_id, victim.me.queue_id]
        (claimed,) = (await carol.claim(victim.me.account_id)).key_packages
        welcome = mls_data.welcome([mls_data.key_package_ref(claimed.key_package)])
        stored = await rows(server, "claim_evidence")
        assert len(stored) == 1
        for value in (carol.me.client_id, victim.me.queue_id, victim.me.client_id):
            assert value.encode() not in repr(stored).encode()
        assert mls_data.key_package_ref(claimed.key_package) not in repr(stored).encode()
        assert stored[0][2] % 3_600_000 == 0  # the expiry is rounded to the hour

        async def add(epoch: int) -> None:
            await carol.commit(
                HONEST,
                epoch,
                mls_data.commit(HONEST, epoch),
                queues,
                welcome=welcome,
                welcome_to=[victim.me.queue_id],
            )

        await add(0)  # used up here
        assert await rows(server, "claim_evidence") == []
        await carol.commit(HONEST, 1, mls_data.commit(HONEST, 1), [carol.me.queue_id])
        with pytest.raises(ApiError) as info:
            await add(2)  # the same Welcome again
        assert info.value.code is ErrorCode.MEMBER_NOT_CLAIMED and info.value.status == 403
        assert info.value.details == {"queue": victim.me.queue_id}
        # A new claim (here the last-resort KeyPackage) is new evidence ...
        (again,) = (await carol.claim(victim.me.account_id)).key_packages
        assert again.last_resort
        welcome = mls_data.welcome([mls_data.key_package_ref(again.key_package)])
        # ... for a limited time.
        clock.advance(ttl + 3600)
        with pytest.raises(ApiError) as info:
            await add(2)
        assert info.value.code is ErrorCode.MEMBER_NOT_CLAIMED
        assert (await server.state.delivery.sweep()).claim_evidence == 1
        (again,) = (await carol.claim(victim.me.account_id)).key_packages
        welcome = mls_data.welcome([mls_data.key_package_ref(again.key_package)])
        await add(2)


async def test_a_full_queue_refuses_new_messages_instead_of_evicting_unread_ones(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(
        max_queue_length=50, sender_messages_per_queue_per_minute=1000
    ) as server:
        alice, victim = await _legitimate(server)
        mallory = await server.registered()
        # The victim's queue holds 7 (the Welcome, 6 messages), numbered from its origin.
        base = await seq_base(server, victim.me.queue_id) - 7
        # Anyone may start a conversation with the victim: Mallory claims a
        # KeyPackage of hers and adds her, legitimately, then floods.
        await mallory.create_group(JUNK)
        await mallory.commit(
            JUNK,
            0,
            mls_data.commit(JUNK, 0),
            [mallory.me.queue_id, victim.me.queue_id],
            welcome=await mallory.welcome_for(victim),
            welcome_to=[victim.me.queue_id],
        )
        accepted = 0
        for i in range(60):
            try:
                await mallory.send(JUNK, mls_data.application(JUNK, 1, b"junk %d" % i))
            except ApiError as exc:
                assert exc.code is ErrorCode.QUEUE_FULL and exc.status == 507
                assert exc.details == {"retry_after": 60}
                break
            accepted += 1
        # The victim's queue: Welcome + 6 legitimate + Mallory's Welcome + junk = 50.
        assert accepted == 50 - 8
        before = await snapshot(server)
        response = await mallory.raw(
            "POST",
            r.group_path(r.GROUP_MESSAGES, JUNK),
            mallory.sealed(JUNK, mls_data.application(JUNK, 1, b"more junk")),
            signed=False,
        )
        assert (response.status_code, response.headers["retry-after"]) == (507, "60")
        assert response.json()["error"]["code"] == "queue_full"
        assert await snapshot(server) == before  # refused whole: Mallory's own queue too
        await server.state.delivery.sweep()
        assert await _legitimate_entries(victim) == [b"legitimate %d" % i for i in range(6)]
        # The trade-off: until the victim reads, Alice cannot add to her queue either.
        with pytest.raises(ApiError) as info:
            await alice.send(HONEST, mls_data.application(HONEST, 1, b"legitimate 6"))
        assert info.value.code is ErrorCode.QUEUE_FULL
        # ... but can remove her (a commit always reaches the members it removes).
        await alice.commit(HONEST, 1, mls_data.commit(HONEST, 1), [alice.me.queue_id])
        last = (await victim.fetch(after=base + 50, limit=10)).messages
        assert [msg.seq - base for msg in last] == [51]
        # Once the victim reads her queue, there is room again.
        await victim.ack(base + 51)
        await mallory.send(JUNK, mls_data.application(JUNK, 1, b"junk again"))


async def test_each_sender_has_a_budget_per_recipient_queue(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    budget_bytes = 3 << 20
    async with server_factory(
        clock=clock,
        sender_messages_per_queue_per_minute=10,
        sender_bytes_per_queue_per_minute=budget_bytes,
    ) as server:
        alice, victim = await _legitimate(server, messages=0)
        mallory = await server.registered()
        await mallory.create_group(JUNK)
        await mallory.commit(
            JUNK,
            0,
            mls_data.commit(JUNK, 0),
            [mallory.me.queue_id, victim.me.queue_id],
            welcome=await mallory.welcome_for(victim),
            welcome_to=[victim.me.queue_id],
        )
        sent = 0
        for i in range(60):
            try:
                await mallory.send(JUNK, mls_data.application(JUNK, 1, b"junk %d" % i))
            except ApiError as exc:
                assert exc.code is ErrorCode.RATE_LIMITED and exc.status == 429
                break
            sent += 1
        # Ten a minute from the group (the Welcome was Mallory's commit, not the group's).
        assert sent == 10
        before = await snapshot(server)
        response = await mallory.raw(
            "POST",
            r.group_path(r.GROUP_MESSAGES, JUNK),
            mallory.sealed(JUNK, mls_data.application(JUNK, 1, b"one more")),
            signed=False,
        )
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert await snapshot(server) == before
        # Other groups keep their own budget towards the victim.
        await alice.send(HONEST, mls_data.application(HONEST, 1, b"legitimate"))
        # Bytes: after a minute the budget is back, and 3 MiB is all it holds.
        clock.advance(60)
        big = os.urandom(1_000_000)
        accepted_bytes = 0
        for _ in range(10):
            message = mls_data.application(JUNK, 1, big)
            try:
                await mallory.send(JUNK, message)
            except ApiError as exc:
                assert exc.code is ErrorCode.RATE_LIMITED
                break
            accepted_bytes += len(message)
        assert 2 * len(big) < accepted_bytes <= budget_bytes
        stored = sum(len(row[1]) for row in await rows(server, "payloads"))
        assert stored < budget_bytes + 100_000
        # A sealed send does not say who sent it, so the sender's own queue is
        # budgeted like any other: a group of one gets ten a minute too.
        await mallory.create_group(b"\x03alone")
        for i in range(10):
            await mallory.send(b"\x03alone", mls_data.application(b"\x03alone", 0, b"%d" % i))
        with pytest.raises(ApiError) as info:
            await mallory.send(b"\x03alone", mls_data.application(b"\x03alone", 0, b"11th"))
        assert info.value.code is ErrorCode.RATE_LIMITED


async def test_sender_budgets_are_all_or_nothing_and_refunded() -> None:
    clock = FakeClock()
    budgets = SenderBudgets(messages_per_minute=2, bytes_per_minute=100, clock=clock)
    budgets.take("mallory", {"a": (1, 10), "b": (1, 10)})
    budgets.take("mallory", {"a": (1, 10)})
    with pytest.raises(ApiError) as info:
        budgets.take("mallory", {"a": (1, 10), "b": (1, 10)})  # "a" is spent
    assert info.value.code is ErrorCode.RATE_LIMITED and info.value.details == {"retry_after": 30}
    taken = budgets.take("mallory", {"b": (1, 90)})  # nothing was taken from "b" above
    with pytest.raises(ApiError):
        budgets.take("mallory", {"b": (1, 1)})
    budgets.refund(taken)  # a send that was not stored gives its tokens back
    budgets.take("mallory", {"b": (1, 90)})
    budgets.take("alice", {"a": (2, 100)})  # every sender has its own budget
    clock.advance(30)
    budgets.take("mallory", {"a": (1, 10)})  # half a minute: one message back
    huge = budgets.take("carol", {"a": (1, 10**9)})  # larger than the budget: a full bucket
    assert huge == {("carol", "a"): (1.0, 100.0)}
