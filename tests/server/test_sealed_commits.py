"""Sealed commits (docs/metadata.md §3): a member commits without naming itself.

A commit may be sent unsigned with the current epoch's send token, which
proves membership; its Adds are proved by the claim tokens the claimer got
with each KeyPackage, not by who claimed. Each test plays a stranger, a
removed member or a member that lost a race, and checks that the server
answers as the design says and changes nothing when it refuses.
"""

from __future__ import annotations

import os

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.signing import HEADER_CLIENT

from . import mls_data
from .client import ApiClient, send_token
from .conftest import TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

GID = b"S" * 32


async def _trio(server: TestServer) -> tuple[ApiClient, ApiClient, ApiClient]:
    """Alice made the group and added Bob with a sealed commit (epoch 1); Carol is not in it."""
    alice, bob, carol = [await server.registered() for _ in range(3)]
    await alice.create_group(GID)
    queues = [alice.me.queue_id, bob.me.queue_id]
    answer = await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        queues,
        welcome=await alice.welcome_for(bob),
        welcome_to=[bob.me.queue_id],
        sealed=True,
    )
    assert answer == m.CommitResponse(1, 1)  # the commit went to the one member before it
    return alice, bob, carol


async def test_a_sealed_commit_adds_a_member_and_carries_no_signature(
    server: TestServer,
) -> None:
    alice, bob, _carol = await _trio(server)
    # Bob got the Welcome, and both the commit; Alice's commit named no one.
    bob_messages = (await bob.fetch()).messages
    assert len(bob_messages) == 1  # the Welcome
    commit = mls_data.commit(GID, 1)
    request = m.CommitRequest(
        1, commit, (alice.me.queue_id, bob.me.queue_id), token=send_token(GID, 1)
    )
    response = await bob.raw("POST", r.group_path(r.GROUP_COMMITS, GID), request, signed=False)
    assert response.status_code == 200, response.text
    assert HEADER_CLIENT not in response.request.headers
    assert (await alice.fetch()).messages[-1].data == commit


async def test_a_stranger_with_a_guessed_token_gets_a_missing_group(server: TestServer) -> None:
    alice, _bob, carol = await _trio(server)
    before = await snapshot(server)
    for guess in (b"\x00" * 32, send_token(GID, 0), send_token(b"another group" * 2, 1)):
        request = m.CommitRequest(
            1, mls_data.commit(GID, 1), (alice.me.queue_id, carol.me.queue_id), token=guess
        )
        response = await carol.raw(
            "POST", r.group_path(r.GROUP_COMMITS, GID), request, signed=False
        )
        if guess == send_token(GID, 0):
            # The epoch before's token: a member that lost a race (below).
            assert response.json()["error"]["code"] == "stale_epoch"
        else:
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "unknown_group"
    missing = await carol.raw(
        "POST",
        r.group_path(r.GROUP_COMMITS, b"N" * 32),
        m.CommitRequest(0, mls_data.commit(b"N" * 32, 0), (carol.me.queue_id,), token=b"1" * 32),
        signed=False,
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_group"
    assert await snapshot(server) == before


async def test_a_commit_that_lost_a_race_is_told_stale_and_one_older_is_a_stranger(
    server: TestServer,
) -> None:
    alice, bob, _carol = await _trio(server)
    queues = [alice.me.queue_id, bob.me.queue_id]
    await bob.commit(GID, 1, mls_data.commit(GID, 1, b"bob's"), queues, sealed=True)
    before = await snapshot(server)
    # Alice built her commit for epoch 1 too: sealed with epoch 1's token.
    with pytest.raises(ApiError) as lost:
        await alice.commit(GID, 1, mls_data.commit(GID, 1, b"alice's"), queues, sealed=True)
    assert lost.value.code is ErrorCode.STALE_EPOCH
    assert lost.value.details == {"current_epoch": 2}
    await bob.commit(GID, 2, mls_data.commit(GID, 2), queues, sealed=True)
    # Two epochs behind, the token proves nothing any more (a removed member's).
    old = m.CommitRequest(1, mls_data.commit(GID, 1), tuple(queues), token=send_token(GID, 1))
    response = await alice.raw("POST", r.group_path(r.GROUP_COMMITS, GID), old, signed=False)
    assert response.json()["error"]["code"] == "unknown_group"
    assert (await snapshot(server))["mls_groups"] != before["mls_groups"]  # only Bob's moved it


async def test_adds_need_the_claim_tokens_not_the_claimer(server: TestServer) -> None:
    alice, bob, carol = await _trio(server)
    dave = await server.registered()
    queues = [alice.me.queue_id, bob.me.queue_id]
    # Bob claims Carol's KeyPackage; Alice has no token for it, only one of Dave's.
    welcome = await bob.welcome_for(carol)
    await dave.upload_key_packages([dave.key_package()])
    await alice.claim(dave.me.account_id)

    async def add_carol(
        committer: ApiClient, claims: tuple[bytes, ...], group_id: bytes = GID, epoch: int = 1
    ) -> m.CommitResponse:
        before_add = queues if group_id == GID else [bob.me.queue_id]
        return await committer.commit(
            group_id,
            epoch,
            mls_data.commit(group_id, epoch),
            [*before_add, carol.me.queue_id],
            welcome=welcome,
            welcome_to=[carol.me.queue_id],
            sealed=True,
            claims=claims or None,
        )

    before = await snapshot(server)
    # No token, every token Alice has (Dave's claim's), its last one alone.
    for claims in ((), tuple(alice.claim_tokens), (alice.claim_tokens[-1],)):
        with pytest.raises(ApiError) as refused:
            await add_carol(alice, claims)
        assert refused.value.code is ErrorCode.MEMBER_NOT_CLAIMED
    assert await snapshot(server) == before
    # With Bob's token (he claimed it), a sealed commit adds Carol, once.
    assert (await add_carol(bob, (bob.claim_tokens[-1],))).epoch == 2
    await bob.create_group(b"T" * 32)
    with pytest.raises(ApiError) as again:
        await add_carol(bob, (bob.claim_tokens[-1],), b"T" * 32, 0)
    assert again.value.code is ErrorCode.MEMBER_NOT_CLAIMED


async def test_an_external_commit_cannot_be_sealed(server: TestServer) -> None:
    alice, bob, _carol = await _trio(server)
    before = await snapshot(server)
    request = m.CommitRequest(
        1,
        mls_data.external_commit(GID, 1),
        (alice.me.queue_id, bob.me.queue_id),
        token=send_token(GID, 1),
    )
    response = await bob.raw("POST", r.group_path(r.GROUP_COMMITS, GID), request, signed=False)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_message"
    assert await snapshot(server) == before


async def test_a_retried_sealed_commit_gets_its_first_answer(server: TestServer) -> None:
    alice, bob, _carol = await _trio(server)
    queues = [alice.me.queue_id, bob.me.queue_id]
    commit = mls_data.commit(GID, 1)
    first = await alice.commit(GID, 1, commit, queues, sealed=True, idempotency_key=b"k" * 16)
    again = await alice.commit(GID, 1, commit, queues, sealed=True, idempotency_key=b"k" * 16)
    assert first == again == m.CommitResponse(2, 2)
    assert [x.data for x in (await bob.fetch()).messages].count(commit) == 1
    # Another key is another commit: it lost the epoch to the first.
    with pytest.raises(ApiError) as lost:
        await alice.commit(GID, 1, commit, queues, sealed=True, idempotency_key=b"j" * 16)
    assert lost.value.code is ErrorCode.STALE_EPOCH


async def test_many_junk_claim_tokens_are_refused_whole(server: TestServer) -> None:
    """A member may present up to the model's limit of claim tokens; each costs
    one lookup, and junk ones prove nothing."""
    alice, bob, carol = await _trio(server)
    welcome = await bob.welcome_for(carol)
    junk = tuple(os.urandom(32) for _ in range(2_000))
    before = await snapshot(server)
    with pytest.raises(ApiError) as refused:
        await alice.commit(
            GID,
            1,
            mls_data.commit(GID, 1),
            [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id],
            welcome=welcome,
            welcome_to=[carol.me.queue_id],
            sealed=True,
            claims=junk,
        )
    assert refused.value.code is ErrorCode.MEMBER_NOT_CLAIMED
    assert await snapshot(server) == before
