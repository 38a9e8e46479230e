"""Removing a device (``DELETE /v1/clients/{client_id}``) and joining a group
as another device of a member's account (docs/devices.md §5).

A device of the account removes another (or itself): the removed device's
key packages, queue, group memberships and links are gone, its WebSocket is
closed and its long poll ends with ``device_removed``, and every later
request signed as it gets ``device_removed`` and changes nothing. Another
account cannot remove it (the same ``404`` as an unknown ID), nor can the
last device go. A restored device of a member's account joins a group by
external commit; a stranger still gets ``unknown_group``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx_ws import WebSocketDisconnect

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.credential import encode_credential
from messenger.api.errors import ApiError, ErrorCode
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.credentials import Credential as MlsCredential
from messenger.mls.group import Group
from messenger.mls.key_package_bundle import generate_key_package
from messenger.server import create_app

from . import mls_data
from .client import ApiClient, send_token
from .conftest import TestServer, make_config, postgres_schema, serve
from .dbtools import entries, holders, member_sets, rows, snapshot
from .devices_tools import (
    add_device,
    code,
    external_commit,
    key_package_v2,
    register_with_key,
    remove,
)
from .hub_watch import DEADLINE, subscribers, until

pytestmark = pytest.mark.anyio

GID = b"\x03devices-group"


async def _group_with(server: TestServer, *members: ApiClient) -> None:
    """``members[0]`` makes GID and adds the others (epoch 1)."""
    first, others = members[0], members[1:]
    await first.create_group(GID)
    await first.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [c.me.queue_id for c in members],
        welcome=await first.welcome_for(*others),
        welcome_to=[c.me.queue_id for c in others],
    )


def _no_nonces(snap: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in snap.items() if k != "request_nonces"}


async def _removed_everywhere(server: TestServer, gone: ApiClient) -> None:
    """Every request signed as ``gone`` gets device_removed and changes nothing."""
    before = _no_nonces(await snapshot(server, exclude=()))
    requests = [
        gone.raw("GET", r.QUEUE_MESSAGES),
        gone.raw("GET", f"{r.QUEUE_MESSAGES}?wait=5"),
        gone.raw("POST", r.ACK, m.AckRequest(100)),
        gone.raw("GET", r.KEY_PACKAGE_COUNT),
        gone.raw("POST", r.KEY_PACKAGES, m.UploadKeyPackagesRequest((key_package_v2(gone),))),
        gone.raw("POST", r.CLIENTS, m.AddClientRequest(os.urandom(32), os.urandom(64))),
        gone.raw("DELETE", r.client_path(gone.me.client_id)),
        gone.raw("POST", r.LINKS, m.CreateLinkRequest(os.urandom(16))),
        gone.raw("GET", r.link_path(r.LINK_MESSAGES, os.urandom(16))),
        gone.raw(
            "POST",
            r.group_path(r.GROUP_COMMITS, GID),
            m.CommitRequest(1, mls_data.commit(GID, 1), (gone.me.queue_id,)),
        ),
        gone.raw("GET", r.group_path(r.GROUP_INFO, GID)),
        gone.raw(
            "PUT",
            r.group_path(r.GROUP_INFO, GID),
            m.GroupInfoRequest(1, mls_data.group_info(GID, 1)),
        ),
        gone.raw(
            "PUT",
            r.group_path(r.GROUP_SEND_TOKEN, GID),
            m.SendTokenRequest(1, os.urandom(32)),
        ),
    ]
    for request in requests:
        response = await request
        assert (response.status_code, code(response)) == (401, "device_removed")
    assert _no_nonces(await snapshot(server, exclude=())) == before
    async with gone.websocket(after=0) as ws:
        with pytest.raises(WebSocketDisconnect) as refused:
            await ws.next_frame(timeout=DEADLINE)
    assert (refused.value.code, refused.value.reason) == (1008, "device_removed")


async def test_a_device_removes_another_of_its_account(server: TestServer) -> None:
    alice, account_key = await register_with_key(server)
    laptop = await add_device(alice, account_key)
    bob = await server.registered()
    await _group_with(server, alice, bob, laptop)
    await laptop.upload_key_packages([key_package_v2(laptop)])
    link_id = os.urandom(16)
    await laptop.call("POST", r.LINKS, m.CreateLinkRequest(link_id), m.CreateLinkResponse)
    async with laptop.websocket(after=0) as ws:
        await until(lambda: subscribers(server.state.hub, laptop.me.queue_id) == 1, "the socket")
        (welcome,) = await ws.messages(1)
        poll = asyncio.create_task(
            laptop.raw("GET", f"{r.QUEUE_MESSAGES}?after={welcome.seq}&wait=30")
        )
        await until(lambda: subscribers(server.state.hub, laptop.me.queue_id) == 2, "the poll")
        response = await remove(alice, laptop.me.client_id)
        assert response.status_code == 200, response.json()
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                await ws.next_frame(timeout=DEADLINE)
        assert (info.value.code, info.value.reason) == (1008, "device_removed")
        polled = await asyncio.wait_for(poll, DEADLINE)
        assert (polled.status_code, code(polled)) == (401, "device_removed")
    # Its queue, entries, KeyPackages, memberships and link are gone.
    assert laptop.me.client_id not in [row[0] for row in await rows(server, "clients")]
    assert laptop.me.queue_id not in [row[0] for row in await rows(server, "queues")]
    assert laptop.me.queue_id not in [row[0] for row in await rows(server, "queue_entries")]
    # The messages it held (the commit, the Welcome) count one holder fewer.
    held = Counter(payload for _queue, _seq, payload in await entries(server))
    assert await holders(server) == held and len(held) == 2
    # The group's sealed member set still names its queue (the server cannot
    # find its groups without opening every box) but it is not a member.
    assert laptop.me.queue_id in (await member_sets(server))[GID]
    live = await server.state.db.read(lambda tx: server.state.member_sets.read(tx, GID))
    assert live is not None and laptop.me.queue_id not in live
    assert await rows(server, "group_members") == []
    assert laptop.me.client_id not in [row[1] for row in await rows(server, "key_packages")]
    assert await rows(server, "links") == []
    # Only keyed hashes of its client and queue IDs are kept.
    tombstones = [row[0] for row in await rows(server, "removed_clients")]
    assert len(tombstones) == 2
    assert not any(laptop.me.client_id.encode() in t for t in tombstones)
    await _removed_everywhere(server, laptop)
    # The group goes on without it.
    sent = await bob.send(GID, mls_data.application(GID, 1, b"still here"))
    assert sent.recipients == 2
    sent = await alice.send(GID, mls_data.application(GID, 1, b"me too"))
    assert sent.recipients == 2
    # Bob has not seen Alice's commit removing the laptop's leaf yet: his commit
    # still lists its queue, which is skipped rather than refused.
    three = [alice.me.queue_id, bob.me.queue_id, laptop.me.queue_id]
    accepted = await bob.commit(GID, 1, mls_data.commit(GID, 1), three)
    assert accepted.recipients == 2
    # The box keeps it while a committer still lists it (the commit that
    # removes its leaf drops it, which is a removal for the state keys too).
    assert (await member_sets(server))[GID] == sorted(three)
    live = await server.state.db.read(lambda tx: server.state.member_sets.read(tx, GID))
    assert live == sorted(three[:2])
    # Sends are sealed, so no signature can be refused there: what keeps the
    # laptop out is that the last token it could derive is epoch 1's (it never
    # got Bob's commit), and that token ended with the commit.
    before = await snapshot(server)
    last_known = send_token(GID, 1)
    for epoch in (1, 2):
        message = mls_data.application(GID, epoch, b"from the removed laptop")
        with pytest.raises(ApiError) as refused:
            await laptop.send(GID, message, token=last_known)
        assert refused.value.code is ErrorCode.UNKNOWN_GROUP
        with pytest.raises(ApiError) as refused:
            await laptop.send_batch(GID, [message], token=last_known)
        assert refused.value.code is ErrorCode.UNKNOWN_GROUP
    # Nor can it commit sealed: epoch 1's token is the epoch before now (its
    # commit lost the race, it is told), and it knows no later one.
    sealed = m.CommitRequest(
        1, mls_data.commit(GID, 1), tuple(three), token=last_known, claims=None
    )
    response = await laptop.raw("POST", r.group_path(r.GROUP_COMMITS, GID), sealed, signed=False)
    assert code(response) == "stale_epoch"
    signed = await laptop.raw("POST", r.group_path(r.GROUP_COMMITS, GID), sealed)
    assert code(signed) == "device_removed"
    assert await snapshot(server) == before
    await alice.commit(GID, 2, mls_data.commit(GID, 2), [alice.me.queue_id, bob.me.queue_id])
    # A queue that never existed is still refused.
    response = await alice.raw(
        "POST",
        r.group_path(r.GROUP_COMMITS, GID),
        m.CommitRequest(3, mls_data.commit(GID, 3), (*three[:2], "AAAAAAAAAAAAAAAAAAAAAA")),
    )
    assert (response.status_code, code(response)) == (403, "member_not_claimed")


async def test_a_device_removes_itself(server: TestServer) -> None:
    alice, account_key = await register_with_key(server)
    laptop = await add_device(alice, account_key)
    response = await remove(laptop, laptop.me.client_id)
    assert response.status_code == 200
    await _removed_everywhere(server, laptop)
    # Alice is now the last device.
    response = await remove(alice, alice.me.client_id)
    assert (response.status_code, code(response)) == (409, "last_device")


async def test_the_last_device_cannot_be_removed(server: TestServer) -> None:
    alice = await server.registered()
    before = _no_nonces(await snapshot(server, exclude=()))
    response = await remove(alice, alice.me.client_id)
    assert (response.status_code, code(response)) == (409, "last_device")
    assert _no_nonces(await snapshot(server, exclude=())) == before
    assert (await alice.key_package_count()).available == 0


async def test_another_account_cannot_remove_a_device(server: TestServer) -> None:
    alice, account_key = await register_with_key(server)
    laptop = await add_device(alice, account_key)
    mallory = await server.registered()
    await _group_with(server, alice, mallory, laptop)
    before = _no_nonces(await snapshot(server, exclude=()))
    foreign = await remove(mallory, laptop.me.client_id)
    unknown = await remove(mallory, "AAAAAAAAAAAAAAAAAAAAAA")
    malformed = await remove(mallory, "not-an-id!")
    assert foreign.status_code == unknown.status_code == malformed.status_code == 404
    assert foreign.json() == unknown.json() == malformed.json()
    # Alice's account's devices cannot be removed by a device of another account
    # even when it is their last one.
    single = await remove(mallory, alice.me.client_id)
    assert single.json() == unknown.json()
    assert _no_nonces(await snapshot(server, exclude=())) == before
    await laptop.key_package_count()


async def test_two_devices_removing_each_other_leave_one(server: TestServer) -> None:
    alice, account_key = await register_with_key(server)
    laptop = await add_device(alice, account_key)
    first, second = await asyncio.gather(
        remove(alice, laptop.me.client_id), remove(laptop, alice.me.client_id)
    )
    statuses = sorted([first.status_code, second.status_code])
    # The loser was removed first (401), or saw the winner still there (409).
    assert statuses[0] == 200 and statuses[1] in (401, 409)
    assert len(await rows(server, "clients")) == 1


async def test_a_removal_closes_sockets_on_every_instance(tmp_path: Path) -> None:
    """Two server instances on one PostgreSQL: the removal goes through one, the
    removed device's WebSocket is open on the other."""
    async with postgres_schema() as dsn:
        config = make_config(tmp_path / "shared", dsn)
        app_a = create_app(config, run_sweeper=False)
        app_b = create_app(config, run_sweeper=False)
        async with serve(app_a, "uvicorn", time.time) as a, serve(app_b, "uvicorn", time.time) as b:
            alice, account_key = await register_with_key(a)
            laptop = await add_device(alice, account_key)
            on_b = ApiClient(b.http, laptop.identity, laptop.clock)
            async with on_b.websocket(after=0) as ws:
                await until(lambda: subscribers(b.state.hub, laptop.me.queue_id) == 1, "socket")
                response = await remove(alice, laptop.me.client_id)
                assert response.status_code == 200
                with pytest.raises(WebSocketDisconnect) as info:
                    while True:
                        await ws.next_frame(timeout=DEADLINE)
                assert info.value.reason == "device_removed"
            response = await on_b.raw("GET", r.KEY_PACKAGE_COUNT)
            assert (response.status_code, code(response)) == (401, "device_removed")


# -- joining as another device of a member's account ------------------------------------


async def _real_group(
    server: TestServer,
) -> tuple[ApiClient, Ed25519PrivateKey, ApiClient, bytes]:
    """Alice (with an account key) makes a real MLS group and adds Bob (epoch 1).

    Alice, her account key, Bob and the GroupInfo of epoch 1.
    """
    alice, account_key = await register_with_key(server)
    bob = await server.registered()
    _, added = await alice.start_mls_group(GID, bob, _mls_group(alice))
    assert added.welcome is not None and added.group_info is not None
    return alice, account_key, bob, added.group_info


def _mls_group(client: ApiClient) -> Group:
    assert client.me.credential is not None
    bundle = generate_key_package(
        get_cipher_suite(mls_data.SUITE_ID),
        MlsCredential.basic(encode_credential(client.me.credential)),
        mls_data.private_key_bytes(client.me.key),
        os.urandom,
        now=int(time.time()),
    )
    return Group.create(bundle, os.urandom, group_id=GID)


async def test_another_device_of_a_member_joins_by_external_commit(server: TestServer) -> None:
    alice, account_key, bob, group_info = await _real_group(server)
    restored = await add_device(alice, account_key)
    mallory = await server.registered()
    # The restored device may read the GroupInfo; a stranger may not.
    assert (await restored.group_info(GID)).group_info == group_info
    response = await mallory.raw("GET", r.group_path(r.GROUP_INFO, GID))
    assert (response.status_code, code(response)) == (404, "unknown_group")
    joined, commit = external_commit(group_info, restored)
    old = [alice.me.queue_id, bob.me.queue_id]
    before = _no_nonces(await snapshot(server, exclude=()))
    path = r.group_path(r.GROUP_COMMITS, GID)
    bad_sets = [
        old,  # the joiner's queue is missing
        [*old, restored.me.queue_id, mallory.me.queue_id],  # someone else added
        [alice.me.queue_id, restored.me.queue_id],  # Bob removed
    ]
    for members in bad_sets:
        response = await restored.raw("POST", path, m.CommitRequest(1, commit, tuple(members)))
        assert (response.status_code, code(response)) == (400, "invalid_field"), members
    # Mallory's own genuine external commit is refused as for an unknown group.
    assert mallory.me.credential is not None
    _, mallorys = mls_data.mls_external_commit(group_info, mallory.me.credential, mallory.me.key)
    response = await mallory.raw(
        "POST", path, m.CommitRequest(1, mallorys, (*old, mallory.me.queue_id))
    )
    assert (response.status_code, code(response)) == (404, "unknown_group")
    # Alice's commit carried by the restored device (not its leaf) is refused.
    _, alices = external_commit(group_info, alice, resync=0)
    response = await restored.raw(
        "POST", path, m.CommitRequest(1, alices, (*old, restored.me.queue_id))
    )
    assert (response.status_code, code(response)) == (400, "invalid_message")
    assert _no_nonces(await snapshot(server, exclude=())) == before
    accepted = await restored.commit(
        GID, 1, commit, [*old, restored.me.queue_id], group_info=joined.group_info()
    )
    assert accepted.epoch == 2
    sent = await bob.send(GID, mls_data.application(GID, 2, b"hello, new device"))
    assert sent.recipients == 3


async def test_a_resync_may_drop_the_old_device_of_the_same_account(server: TestServer) -> None:
    alice, account_key, bob, group_info = await _real_group(server)
    restored = await add_device(alice, account_key)
    joined, commit = external_commit(group_info, restored, resync=0)  # Alice's old leaf
    accepted = await restored.commit(
        GID, 1, commit, [bob.me.queue_id, restored.me.queue_id], group_info=joined.group_info()
    )
    assert accepted.epoch == 2
    sent = await bob.send(GID, mls_data.application(GID, 2, b"hi"))
    assert sent.recipients == 2
