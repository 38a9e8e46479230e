"""Groups, commit ordering, fan-out, fetch and ack, retention, GroupInfo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from messenger.api.errors import ApiError, ErrorCode

from . import mls_data
from .client import ApiClient, send_token
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import count, rows, seq_base, snapshot
from .hub_watch import until, watch_waits

pytestmark = pytest.mark.anyio

GID = b"\x01group-id\xff"
OTHER_GID = b"\x02another group"


async def _members(server: TestServer, n: int) -> list[ApiClient]:
    return [await server.registered() for _ in range(n)]


async def _group(clients: list[ApiClient], gid: bytes = GID) -> int:
    """``clients[0]`` creates the group and adds the rest; the epoch (1)."""
    creator = clients[0]
    await creator.create_group(gid)
    queues = [c.me.queue_id for c in clients]
    response = await creator.commit(
        gid,
        0,
        mls_data.commit(gid, 0),
        queues,
        welcome=await creator.welcome_for(*clients[1:]) if len(clients) > 1 else None,
        welcome_to=queues[1:] if len(clients) > 1 else None,
        group_info=mls_data.group_info(gid, 1),
    )
    return response.epoch


async def _plaintexts(client: ApiClient, after: int = 0) -> list[bytes]:
    from messenger.mls.messages import MLSMessage

    out = []
    for msg in (await client.fetch(after, limit=1000)).messages:
        body = MLSMessage.from_bytes(msg.data).body
        ciphertext = getattr(body, "ciphertext", None)
        out.append(mls_data.decrypt(ciphertext) if ciphertext is not None else b"<welcome>")
    return out


async def test_create_group_once(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    assert (await alice.create_group(GID)).epoch == 0
    with pytest.raises(ApiError) as info:
        await bob.create_group(GID)
    assert info.value.code is ErrorCode.GROUP_EXISTS and info.value.status == 409


async def test_commit_with_welcome(server: TestServer) -> None:
    alice, bob, carol = await _members(server, 3)
    await alice.create_group(GID)
    response = await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0, b"add bob and carol"),
        [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id],
        welcome=await alice.welcome_for(bob, carol),
        welcome_to=[bob.me.queue_id, carol.me.queue_id],
    )
    assert (response.epoch, response.recipients) == (1, 1)
    # The commit goes to the members of epoch 0 (the committer sees it come back);
    # the new members get the Welcome.
    assert await _plaintexts(alice) == [b"add bob and carol"]
    assert await _plaintexts(bob) == [b"<welcome>"]
    assert await _plaintexts(carol) == [b"<welcome>"]


async def test_exactly_one_concurrent_commit_per_epoch_wins(server: TestServer) -> None:
    clients = await _members(server, 6)
    epoch = await _group(clients)
    queues = [c.me.queue_id for c in clients]
    before = [len((await c.fetch()).messages) for c in clients]

    async def attempt(i: int) -> object:
        try:
            return await clients[i].commit(
                GID, epoch, mls_data.commit(GID, epoch, b"commit by %d" % i), queues
            )
        except ApiError as exc:
            return exc

    results = await asyncio.gather(*(attempt(i) for i in range(len(clients))))
    winners = [r for r in results if not isinstance(r, ApiError)]
    losers = [r for r in results if isinstance(r, ApiError)]
    assert len(winners) == 1
    assert winners[0].epoch == epoch + 1  # type: ignore[attr-defined]
    assert len(losers) == len(clients) - 1
    for exc in losers:
        assert exc.code is ErrorCode.STALE_EPOCH and exc.status == 409
        assert exc.details["current_epoch"] == epoch + 1
    # Every member got the winning commit, and only it.
    winner = next(i for i, r in enumerate(results) if not isinstance(r, ApiError))
    for client, seen in zip(clients, before, strict=True):
        assert (await _plaintexts(client))[seen:] == [b"commit by %d" % winner]


async def test_recovering_from_a_stale_epoch(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    epoch = await _group([alice, bob])
    queues = [alice.me.queue_id, bob.me.queue_id]
    await alice.commit(GID, epoch, mls_data.commit(GID, epoch), queues)
    before = await snapshot(server)
    with pytest.raises(ApiError) as info:
        await bob.commit(GID, epoch, mls_data.commit(GID, epoch), queues)
    assert info.value.details["current_epoch"] == epoch + 1
    # A send with the old epoch's token: that token is not the group's any
    # more, so the answer is the one for a missing group (docs/metadata.md §3).
    with pytest.raises(ApiError) as info:
        await bob.send(GID, mls_data.application(GID, epoch, b"old epoch"))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    # With the current epoch's token, a message of the old epoch is stale.
    with pytest.raises(ApiError) as info:
        await bob.send(
            GID,
            mls_data.application(GID, epoch, b"old epoch"),
            token=send_token(GID, epoch + 1),
        )
    assert info.value.code is ErrorCode.STALE_EPOCH
    assert info.value.details["current_epoch"] == epoch + 1
    assert await snapshot(server) == before
    # The client applies the winning commit, then retries in the new epoch.
    retry = await bob.commit(GID, epoch + 1, mls_data.commit(GID, epoch + 1), queues)
    assert retry.epoch == epoch + 2


async def test_fan_out_reaches_every_member_in_the_same_order(server: TestServer) -> None:
    clients = await _members(server, 5)
    epoch = await _group(clients)
    marks = [len((await c.fetch()).messages) for c in clients]
    sends = [
        clients[i % 5].send(GID, mls_data.application(GID, epoch, b"msg %d" % i)) for i in range(20)
    ]
    results = await asyncio.gather(*sends)
    assert all(r.recipients == 5 for r in results)
    orders = [(await _plaintexts(c))[mark:] for c, mark in zip(clients, marks, strict=True)]
    assert sorted(orders[0]) == sorted(b"msg %d" % i for i in range(20))
    assert all(order == orders[0] for order in orders)  # one order for everyone


async def test_membership_changes_follow_the_commit(server: TestServer) -> None:
    alice, bob, carol = await _members(server, 3)
    epoch = await _group([alice, bob, carol])
    # Alice removes Carol: Carol still gets that commit (she was a member).
    await alice.commit(
        GID,
        epoch,
        mls_data.commit(GID, epoch, b"remove carol"),
        [alice.me.queue_id, bob.me.queue_id],
    )
    await alice.send(GID, mls_data.application(GID, epoch + 1, b"after removal"))
    carol_sees = await _plaintexts(carol)
    assert b"remove carol" in carol_sees and b"after removal" not in carol_sees
    assert (await _plaintexts(bob))[-1] == b"after removal"
    # A former member is told what anyone else is: there is no such group.
    with pytest.raises(ApiError) as info:
        await carol.send(GID, mls_data.application(GID, epoch + 1, b"let me in"))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP and info.value.status == 404
    with pytest.raises(ApiError) as info:
        await carol.commit(GID, epoch + 1, mls_data.commit(GID, epoch + 1), [carol.me.queue_id])
    assert info.value.code is ErrorCode.UNKNOWN_GROUP


async def test_commit_validation_leaves_state_intact(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    epoch = await _group([alice, bob])
    queues = [alice.me.queue_id, bob.me.queue_id]
    before = await snapshot(server)
    cases = [
        ({"commit": mls_data.commit(b"other group", epoch)}, ErrorCode.GROUP_MISMATCH),
        ({"commit": mls_data.commit(GID, epoch + 1)}, ErrorCode.INVALID_MESSAGE),
        ({"commit": mls_data.application(GID, epoch, b"x")}, ErrorCode.WRONG_MESSAGE_TYPE),
        ({"commit": b"\x00\x01\x00\x02 not mls"}, ErrorCode.INVALID_MESSAGE),
        ({"members": [*queues, "Q" * 22]}, ErrorCode.MEMBER_NOT_CLAIMED),
        ({"welcome": mls_data.welcome(), "welcome_to": ["Q" * 22]}, ErrorCode.INVALID_FIELD),
        ({"welcome": mls_data.welcome()}, ErrorCode.INVALID_FIELD),
        ({"welcome": mls_data.commit(GID, 1), "welcome_to": queues}, ErrorCode.WRONG_MESSAGE_TYPE),
        ({"group_info": mls_data.group_info(GID, epoch)}, ErrorCode.INVALID_MESSAGE),
        ({"group_info": mls_data.group_info(b"x", epoch + 1)}, ErrorCode.GROUP_MISMATCH),
    ]
    for changes, code in cases:
        args = {"commit": mls_data.commit(GID, epoch), "members": queues, **changes}
        commit = args.pop("commit")
        members = args.pop("members")
        with pytest.raises(ApiError) as info:
            await alice.commit(GID, epoch, commit, members, **args)  # type: ignore[arg-type]
        assert info.value.code is code, changes
        assert 400 <= info.value.status < 500
    with pytest.raises(ApiError) as info:
        await alice.commit(b"no such group", 0, mls_data.commit(b"no such group", 0), queues)
    assert info.value.code is ErrorCode.UNKNOWN_GROUP and info.value.status == 404
    with pytest.raises(ApiError) as info:
        await alice.send(GID, mls_data.commit(GID, epoch))
    assert info.value.code is ErrorCode.WRONG_MESSAGE_TYPE
    with pytest.raises(ApiError) as info:
        await alice.send(b"no such group", mls_data.application(b"no such group", 0, b"x"))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    with pytest.raises(ApiError) as info:
        await alice.send(GID, mls_data.application(GID + b"?", epoch, b"x"))
    assert info.value.code is ErrorCode.GROUP_MISMATCH
    assert await snapshot(server) == before


async def test_proposals_are_fanned_out_like_messages(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    epoch = await _group([alice, bob])
    from messenger.mls.content import ContentType

    response = await bob.send(
        GID, mls_data.private_message(GID, epoch, b"proposal", ContentType.PROPOSAL)
    )
    assert response.recipients == 2
    await bob.send(GID, mls_data.public_proposal(GID, epoch))
    assert len((await alice.fetch()).messages) == 3


async def test_fetch_cursor_limit_and_ack(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    base = await seq_base(server, bob.me.queue_id)  # Bob's queue counts from its origin
    epoch = await _group([alice, bob])
    for i in range(5):
        await alice.send(GID, mls_data.application(GID, epoch, b"m%d" % i))
    page = await bob.fetch(after=0, limit=2)
    assert [m.seq - base for m in page.messages] == [1, 2] and page.more
    page = await bob.fetch(after=base + 2, limit=10)
    assert [m.seq - base for m in page.messages] == [3, 4, 5, 6] and not page.more
    assert (await bob.ack(base + 3)).deleted == 3
    assert [m.seq - base for m in (await bob.fetch()).messages] == [4, 5, 6]
    assert (await bob.ack(base + 3)).deleted == 0  # acking again is harmless
    assert (await bob.ack(base + 6)).deleted == 3
    assert (await bob.fetch()).messages == ()
    # Payloads go once every queue that held them has acked.
    payloads_before = await count(server, "payloads")
    assert (await alice.ack(await seq_base(server, alice.me.queue_id))).deleted == 6
    assert await count(server, "payloads") < payloads_before
    await server.state.delivery.sweep()
    assert await count(server, "payloads") == 0
    assert await count(server, "queue_entries") == 0


async def test_long_poll_returns_as_soon_as_a_message_arrives(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    epoch = await _group([alice, bob])
    welcome = await seq_base(server, bob.me.queue_id)
    await bob.ack(welcome)
    following = await seq_base(server, bob.me.queue_id) + 1  # emptied: the numbers jumped
    with watch_waits(server.state.hub, bob.me.queue_id) as polls:
        # The message is sent only once the poll waits on the hub: getting it
        # means the poll was woken by it (an unwoken poll returns nothing, after
        # its 20 s), and had not returned early either.
        poll = asyncio.create_task(bob.fetch(after=welcome, wait=20))
        await until(lambda: polls.waits == 1 or poll.done(), "the long poll to wait")
        await alice.send(GID, mls_data.application(GID, epoch, b"wake up"))
        page = await poll
        assert [m.seq for m in page.messages] == [following]
        # With nothing new, the poll waits, then answers with nothing.
        empty = await bob.fetch(after=following, wait=1)
        assert empty.messages == () and polls.waits == 2


async def test_full_queues_refuse_new_messages_and_old_ones_expire(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, retention_seconds=3600, max_queue_length=3) as server:
        alice, bob = await _members(server, 2)
        base = await seq_base(server, bob.me.queue_id)
        alice_base = await seq_base(server, alice.me.queue_id)
        epoch = await _group([alice, bob])  # Bob's queue: the Welcome; Alice's: the commit
        for i in range(2):
            await alice.send(GID, mls_data.application(GID, epoch, b"m%d" % i))
        before = await snapshot(server)
        with pytest.raises(ApiError) as info:
            await alice.send(GID, mls_data.application(GID, epoch, b"one too many"))
        assert info.value.code is ErrorCode.QUEUE_FULL and info.value.status == 507
        assert await snapshot(server) == before  # refused whole: no queue got it
        # Nothing unread is evicted to make room.
        result = await server.state.delivery.sweep()
        assert (result.overflow, result.expired) == (0, 0)
        assert [m.seq - base for m in (await bob.fetch()).messages] == [1, 2, 3]
        await bob.ack(base + 3)
        await alice.ack(alice_base + 3)
        base = await seq_base(server, bob.me.queue_id)  # emptied: the numbers jumped
        await alice.send(GID, mls_data.application(GID, epoch, b"m2"))  # room again
        # Age still drops what was never fetched.
        clock.advance(3601)
        await alice.send(GID, mls_data.application(GID, epoch, b"fresh"))
        result = await server.state.delivery.sweep()
        assert result.expired == 2  # "m2" in both queues
        assert [m.seq - base for m in (await bob.fetch()).messages] == [2]
        assert await _plaintexts(bob) == [b"fresh"]


async def test_group_info_for_external_rejoins(server: TestServer) -> None:
    alice, bob = await _members(server, 2)
    _, added = await alice.start_mls_group(GID, bob)
    queues = [alice.me.queue_id, bob.me.queue_id]
    epoch = 1
    stored = await bob.group_info(GID)
    assert stored.epoch == epoch and stored.group_info == added.group_info
    # Bob lost his state: he rejoins with an external commit for the current
    # epoch, from the stored GroupInfo, replacing his old leaf (1).
    rejoined, commit = mls_data.mls_external_commit(
        stored.group_info,
        bob.me.credential,  # type: ignore[arg-type]
        bob.me.key,
        resync=1,
    )
    response = await bob.commit(GID, epoch, commit, queues, group_info=rejoined.group_info())
    assert response.epoch == epoch + 1
    assert (await alice.group_info(GID)).epoch == epoch + 1
    await bob.send(GID, mls_data.application(GID, epoch + 1, b"bob is back"))
    assert (await _plaintexts(alice))[-1] == b"bob is back"
    # A member can replace the GroupInfo of the current epoch; not of another one.
    new_info = mls_data.group_info(GID, epoch + 1)
    await alice.put_group_info(GID, epoch + 1, new_info)
    assert (await bob.group_info(GID)).group_info == new_info
    with pytest.raises(ApiError) as info:
        await alice.put_group_info(GID, epoch, mls_data.group_info(GID, epoch))
    assert info.value.code is ErrorCode.STALE_EPOCH
    # A commit without GroupInfo leaves none (a stale one would not help anyone).
    await alice.commit(GID, epoch + 1, mls_data.commit(GID, epoch + 1), queues)
    with pytest.raises(ApiError) as info:
        await bob.group_info(GID)
    assert info.value.code is ErrorCode.NO_GROUP_INFO
    with pytest.raises(ApiError) as info:
        await bob.group_info(b"unknown")
    assert info.value.code is ErrorCode.UNKNOWN_GROUP


async def test_group_info_only_for_members_and_existence_is_not_revealed(
    server: TestServer,
) -> None:
    alice, bob, mallory = await _members(server, 3)
    epoch = await _group([alice, bob])
    info = mls_data.group_info(GID, epoch)
    await alice.put_group_info(GID, epoch, info)

    async def refusal(call: Awaitable[object]) -> tuple[ErrorCode, int, str]:
        with pytest.raises(ApiError) as exc:
            await call
        return exc.value.code, exc.value.status, exc.value.message

    unknown = b"no-such-group-id"
    for_unknown = await refusal(mallory.group_info(unknown))
    assert for_unknown[:2] == (ErrorCode.UNKNOWN_GROUP, 404)
    # A non-member gets exactly the answer for a group that does not exist.
    assert await refusal(mallory.group_info(GID)) == for_unknown
    put_unknown = await refusal(
        mallory.put_group_info(unknown, epoch, mls_data.group_info(unknown, epoch))
    )
    assert put_unknown == for_unknown
    assert await refusal(mallory.put_group_info(GID, epoch, mls_data.group_info(GID, epoch))) == (
        for_unknown
    )
    assert (await bob.group_info(GID)).group_info == info  # unchanged, members still get it
    # A removed member loses access with the commit that removes it.
    await alice.commit(
        GID,
        epoch,
        mls_data.commit(GID, epoch),
        [alice.me.queue_id],
        group_info=mls_data.group_info(GID, epoch + 1),
    )
    assert await refusal(bob.group_info(GID)) == for_unknown
    assert (await alice.group_info(GID)).epoch == epoch + 1


async def test_a_retried_send_with_its_idempotency_key_is_delivered_once(
    server: TestServer,
) -> None:
    alice, bob = await _members(server, 2)
    epoch = await _group([alice, bob])
    key = b"k" * 16
    message = mls_data.application(GID, epoch, b"once")
    first = await alice.send(GID, message, idempotency_key=key)
    again = await alice.send(GID, message, idempotency_key=key)
    assert again == first
    assert await _plaintexts(bob) == [b"<welcome>", b"once"]
    # A sealed send does not name its sender, so the key belongs to the group
    # (docs/metadata.md §3): the same key from another member is a retry too
    # (clients draw keys at random, so only a retry repeats one).
    assert (
        await bob.send(GID, mls_data.application(GID, epoch, b"bob's"), idempotency_key=key)
        == first
    )
    assert (await _plaintexts(bob))[1:] == [b"once"]
    # In another group the same key is another send.
    await _group([bob, alice], OTHER_GID)
    await bob.send(OTHER_GID, mls_data.application(OTHER_GID, 1, b"elsewhere"), idempotency_key=key)
    assert (await _plaintexts(alice))[-1:] == [b"elsewhere"]
    # A retry is answered even once the group has moved on (it is not stale),
    # when it carries the current epoch's token.
    queues = [alice.me.queue_id, bob.me.queue_id]
    await bob.commit(GID, epoch, mls_data.commit(GID, epoch), queues)
    retry = await alice.send(GID, message, idempotency_key=key, token=send_token(GID, epoch + 1))
    assert retry == first
    # The server keeps a digest, not the key, the client or the group.
    stored = await rows(server, "idempotency_keys")
    assert len(stored) == 2
    for row in stored:
        assert key not in row[0] and alice.me.client_id.encode() not in row[0]
        assert GID not in row[0] and OTHER_GID not in row[0]


async def test_a_retried_commit_gets_its_first_answer(server: TestServer) -> None:
    alice, bob, carol = await _members(server, 3)
    epoch = await _group([alice, bob, carol])
    queues = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
    commit = mls_data.commit(GID, epoch, b"alice's commit")
    first = await alice.commit(GID, epoch, commit, queues, idempotency_key=b"c" * 16)
    again = await alice.commit(GID, epoch, commit, queues, idempotency_key=b"c" * 16)
    assert again == first and first.epoch == epoch + 1
    assert (await _plaintexts(bob))[-1:] == [b"alice's commit"]
    assert len((await bob.fetch()).messages) == 2  # the Welcome and one commit
    # Without the key (or with another one), the same epoch is stale.
    with pytest.raises(ApiError) as info:
        await alice.commit(GID, epoch, commit, queues, idempotency_key=b"d" * 16)
    assert info.value.code is ErrorCode.STALE_EPOCH


async def test_idempotency_keys_expire_with_the_retention_window(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, retention_seconds=60) as server:
        alice, bob = await _members(server, 2)
        epoch = await _group([alice, bob])
        await alice.send(GID, mls_data.application(GID, epoch, b"x"), idempotency_key=b"e" * 16)
        assert await count(server, "idempotency_keys") == 1
        clock.advance(61)
        result = await server.state.delivery.sweep()
        assert result.idempotency_keys == 1
        assert await count(server, "idempotency_keys") == 0


async def test_a_last_resort_key_package_claimed_twice_adds_to_two_groups(
    server: TestServer,
) -> None:
    """Claim evidence counts claims: a last-resort KeyPackage handed out twice
    to one claimer is evidence for two Adds, not more (adding a new device to
    every group of its account may run out of one-time KeyPackages)."""
    alice, bob = await _members(server, 2)
    await bob.upload_key_packages([], bob.key_package())
    refs = []
    for _ in range(2):
        (claimed,) = (await alice.claim(bob.me.account_id)).key_packages
        assert claimed.last_resort
        refs.append(mls_data.key_package_ref(claimed.key_package))
    assert refs[0] == refs[1]
    queues = [alice.me.queue_id, bob.me.queue_id]
    for gid in (b"group one", b"group two"):
        await alice.create_group(gid)
        added = await alice.commit(
            gid,
            0,
            mls_data.commit(gid, 0),
            queues,
            welcome=mls_data.welcome(refs[:1]),
            welcome_to=[bob.me.queue_id],
        )
        assert added.epoch == 1
    # Two claims, two Adds: a third needs a third claim.
    await alice.create_group(b"group three")
    before = await snapshot(server)
    with pytest.raises(ApiError) as info:
        await alice.commit(
            b"group three",
            0,
            mls_data.commit(b"group three", 0),
            queues,
            welcome=mls_data.welcome(refs[:1]),
            welcome_to=[bob.me.queue_id],
        )
    assert info.value.code is ErrorCode.MEMBER_NOT_CLAIMED
    assert await snapshot(server) == before
