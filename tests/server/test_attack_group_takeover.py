"""Attack: taking over a group with an external commit (security issue, item 2).

The attacker is another user of the server. Before the fix, a commit framed
as ``new_member_commit`` with a random signature was accepted from anyone:
the server replaced the member list and the epoch, the members were refused
on every send, and the GroupInfo was then served to the attacker. Now the
server accepts an external commit only from a client whose queue is already
a member (a rejoin after lost state), with the member set unchanged, if its
signature verifies against the GroupContext of the GroupInfo it holds for
the current epoch (RFC 9420 §6.1, §12.4.3.2), by a leaf that carries the
requesting client's registered key and server-issued credential.

The groups here are real MLS groups (messenger.mls) of registered clients.
"""

from __future__ import annotations

import dataclasses
import os

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.mls.content import FramedContentAuthData
from messenger.mls.group import Group
from messenger.mls.messages import MLSMessage

from . import mls_data
from .client import ApiClient
from .conftest import TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

GID = b"\x02takeover-target-group"


@dataclasses.dataclass
class HonestGroup:
    alice: ApiClient
    bob: ApiClient
    group: Group  # Alice's MLS state, at epoch 1
    group_info: bytes  # the GroupInfo of epoch 1 the server holds

    @property
    def queues(self) -> list[str]:
        return [self.alice.me.queue_id, self.bob.me.queue_id]


async def _honest_group(server: TestServer, group_id: bytes = GID) -> HonestGroup:
    """Alice creates a real group and adds Bob with a KeyPackage she claimed."""
    alice = await server.registered()
    bob = await server.registered()
    group, added = await alice.start_mls_group(group_id, bob)
    assert added.welcome is not None and added.group_info is not None
    return HonestGroup(alice, bob, group, added.group_info)


async def _post_commit(
    client: ApiClient, group_id: bytes, request: m.CommitRequest
) -> httpx.Response:
    return await client.raw("POST", r.group_path(r.GROUP_COMMITS, group_id), request)


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def _still_intact(server: TestServer, honest: HonestGroup, attacker: ApiClient) -> None:
    """Epoch, members and GroupInfo unchanged; members can send; the attacker learns nothing."""
    stored = await honest.bob.group_info(GID)
    assert (stored.epoch, stored.group_info) == (1, honest.group_info)
    for member in (honest.alice, honest.bob):
        sent = await member.send(GID, mls_data.application(GID, 1, b"still our group"))
        assert (sent.epoch, sent.recipients) == (1, 2)
    with pytest.raises(ApiError) as info:
        await attacker.group_info(GID)
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    with pytest.raises(ApiError) as info:
        await attacker.send(GID, mls_data.application(GID, 1, b"am I in?"))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    assert [m.data for m in (await attacker.fetch()).messages] == []


async def test_a_forged_external_commit_from_a_stranger_changes_nothing(
    server: TestServer,
) -> None:
    honest = await _honest_group(server)
    mallory = await server.registered()
    before = await snapshot(server)
    # The reproduction of the issue: a new_member_commit with a random signature.
    forged = m.CommitRequest(
        1,
        mls_data.external_commit(GID, 1),
        (mallory.me.queue_id,),
        group_info=mls_data.group_info(GID, 2),
    )
    response = await _post_commit(mallory, GID, forged)
    assert (response.status_code, _code(response)) == (404, "unknown_group")
    # Exactly what a group that does not exist gets.
    missing = os.urandom(len(GID))
    elsewhere = dataclasses.replace(
        forged,
        commit=mls_data.external_commit(missing, 1),
        group_info=mls_data.group_info(missing, 2),
    )
    other = await _post_commit(mallory, missing, elsewhere)
    assert (other.status_code, other.content) == (response.status_code, response.content)
    assert await snapshot(server) == before
    await _still_intact(server, honest, mallory)


async def test_a_valid_external_commit_from_a_stranger_is_refused(server: TestServer) -> None:
    honest = await _honest_group(server)
    mallory = await server.registered()
    assert mallory.me.credential is not None
    # Mallory got hold of the current GroupInfo (it is a public object) and
    # makes a genuine external commit with her own key and credential.
    _, commit = mls_data.mls_external_commit(
        honest.group_info, mallory.me.credential, mallory.me.key
    )
    before = await snapshot(server)
    for members in ([mallory.me.queue_id], [*honest.queues, mallory.me.queue_id], honest.queues):
        response = await _post_commit(mallory, GID, m.CommitRequest(1, commit, tuple(members)))
        assert (response.status_code, _code(response)) == (404, "unknown_group")
    assert await snapshot(server) == before
    await _still_intact(server, honest, mallory)


async def test_a_removed_member_cannot_rejoin_with_an_external_commit(server: TestServer) -> None:
    honest = await _honest_group(server)
    alice, bob = honest.alice, honest.bob
    assert bob.me.credential is not None
    # Alice removes Bob (leaf 1). Bob keeps every key he had, and even gets
    # the GroupInfo of the new epoch from someone.
    removal = honest.group.commit(os.urandom, remove=[1])
    assert removal.group_info is not None
    await alice.commit(GID, 1, removal.message, [alice.me.queue_id], group_info=removal.group_info)
    honest.group.merge(removal.staged)
    _, commit = mls_data.mls_external_commit(removal.group_info, bob.me.credential, bob.me.key)
    before = await snapshot(server)
    for members in ([alice.me.queue_id, bob.me.queue_id], [alice.me.queue_id]):
        response = await _post_commit(bob, GID, m.CommitRequest(2, commit, tuple(members)))
        assert (response.status_code, _code(response)) == (404, "unknown_group")
    assert await snapshot(server) == before
    sent = await alice.send(GID, mls_data.application(GID, 2, b"just me"))
    assert sent.recipients == 1
    assert (await alice.group_info(GID)).group_info == removal.group_info


def _with_signature(commit: bytes, signature: bytes) -> bytes:
    message = MLSMessage.from_bytes(commit)
    public = message.public_message
    auth = FramedContentAuthData(signature, public.auth.confirmation_tag)
    return MLSMessage(dataclasses.replace(public, auth=auth)).to_bytes()


async def test_a_members_external_commit_must_verify_and_carry_their_own_leaf(
    server: TestServer,
) -> None:
    honest = await _honest_group(server)
    bob = honest.bob
    mallory = await server.registered()
    assert bob.me.credential is not None and mallory.me.credential is not None
    rejoined, good = mls_data.mls_external_commit(
        honest.group_info, bob.me.credential, bob.me.key, resync=1
    )
    signature = MLSMessage.from_bytes(good).public_message.auth.signature
    # A GroupInfo of another group with the same ID and epoch (Mallory's):
    # a commit signed over its GroupContext must not pass for the stored one.
    imitation = mls_data.mls_group(mallory.me.credential, mallory.me.key, GID)
    lookalike = imitation.commit(os.urandom, add=[mls_data.key_package()])
    assert lookalike.group_info is not None
    _, wrong_context = mls_data.mls_external_commit(
        lookalike.group_info, bob.me.credential, bob.me.key
    )
    _, mallorys_leaf = mls_data.mls_external_commit(
        honest.group_info, mallory.me.credential, mallory.me.key
    )
    _, wrong_credential = mls_data.mls_external_commit(
        honest.group_info,
        mallory.me.credential,
        bob.me.key,  # Bob's key under Mallory's credential
        resync=1,
    )
    queues = tuple(honest.queues)
    cases = [
        ("a random signature and no path", mls_data.external_commit(GID, 1), queues, None),
        ("a broken signature", _with_signature(good, bytes(64)), queues, None),
        ("a signature moved over", _with_signature(mallorys_leaf, signature), queues, None),
        ("signed over another GroupContext", wrong_context, queues, None),
        ("another client's leaf", mallorys_leaf, queues, None),
        ("another client's credential", wrong_credential, queues, None),
    ]
    before = await snapshot(server)
    for what, commit, members, welcome in cases:
        response = await _post_commit(bob, GID, m.CommitRequest(1, commit, members, welcome))
        assert (response.status_code, _code(response)) == (400, "invalid_message"), what
    # A rejoin adds no one and removes no one.
    for members in ((*queues, mallory.me.queue_id), (bob.me.queue_id,)):
        response = await _post_commit(bob, GID, m.CommitRequest(1, good, members))
        assert (response.status_code, _code(response)) == (400, "invalid_field")
    with_welcome = m.CommitRequest(1, good, queues, mls_data.welcome(), (honest.alice.me.queue_id,))
    response = await _post_commit(bob, GID, with_welcome)
    assert (response.status_code, _code(response)) == (400, "invalid_field")
    assert await snapshot(server) == before
    await _still_intact(server, honest, mallory)
    # Bob's own, verified rejoin is accepted, and changes only the epoch.
    accepted = await bob.commit(GID, 1, good, list(queues), group_info=rejoined.group_info())
    assert accepted.epoch == 2
    sent = await honest.alice.send(GID, mls_data.application(GID, 2, b"welcome back"))
    assert sent.recipients == 2


async def test_an_external_commit_needs_the_groupinfo_of_the_current_epoch(
    server: TestServer,
) -> None:
    honest = await _honest_group(server)
    alice, bob = honest.alice, honest.bob
    # A commit without a GroupInfo: the server holds none for epoch 2.
    await alice.commit(GID, 1, mls_data.commit(GID, 1), honest.queues)
    before = await snapshot(server)
    response = await _post_commit(
        bob, GID, m.CommitRequest(2, mls_data.external_commit(GID, 2), tuple(honest.queues))
    )
    assert (response.status_code, _code(response)) == (404, "no_group_info")
    assert await snapshot(server) == before


async def test_member_commits_come_only_from_members(server: TestServer) -> None:
    honest = await _honest_group(server)
    mallory = await server.registered()
    before = await snapshot(server)
    response = await _post_commit(
        mallory,
        GID,
        m.CommitRequest(1, mls_data.commit(GID, 1), (mallory.me.queue_id,)),
    )
    assert (response.status_code, _code(response)) == (404, "unknown_group")
    assert await snapshot(server) == before
    await _still_intact(server, honest, mallory)
