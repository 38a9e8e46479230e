"""A group's state sealed under its members' keys (docs/metadata.md §2).

The server keeps a group's GroupInfo, member set and epochs under a data
key that only the send tokens of the epochs since its last removal unwrap
(messenger.server.state_keys), so the operator, who holds the secret key
file, cannot read them from the database. Each test plays the operator, a
stranger, a removed member or a device restoring a backup, and checks what
opens and that a refusal changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import padme
from messenger.api.errors import ApiError, ErrorCode
from messenger.server.at_rest import SealedColumn
from messenger.server.group_epochs import GroupEpochs
from messenger.server.member_sets import MemberSets
from messenger.server.rejoin_boxes import EXPIRY_BUCKET_MS
from messenger.server.state_keys import WRAP_BYTES, WRAP_LIMIT, StateKeys
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .blob_tools import (
    access_pair,
    blob_file,
    create,
    created,
    delete,
    fetched,
    get,
    padded,
    put,
    recipients,
    status,
    store,
)
from .client import ApiClient, send_token, send_token_hash
from .conftest import ServerFactory, TestServer
from .dbtools import rows, snapshot
from .devices_tools import add_device, code, external_commit, register_with_key

pytestmark = pytest.mark.anyio

GID = b"K" * 32


async def _group_row(server: TestServer, group_id: bytes = GID) -> dict[str, Any]:
    async def op(tx: Tx) -> dict[str, Any]:
        row = await tx.fetchone(
            "SELECT group_info, group_info_sealed, state_keys, members_box, epoch_box "
            "FROM mls_groups WHERE group_id = ?",
            group_id,
        )
        assert row is not None
        return {
            "group_info": None if row[0] is None else bytes(row[0]),
            "group_info_sealed": row[1],
            "state_keys": None if row[2] is None else bytes(row[2]),
            "members_box": bytes(row[3]),
            "epoch_box": bytes(row[4]),
        }

    return await server.state.db.read(op)


def _opened_with(
    server: TestServer, row: dict[str, Any], token: bytes
) -> tuple[list[str], tuple[int, int | None]] | None:
    """The member set and epochs ``token`` opens with the key file (the operator's
    view, had it recorded the token); None if it opens nothing."""
    at_rest_key = server.state.keys.at_rest_key
    data_key = StateKeys(at_rest_key).open(GID, row["state_keys"], token)
    if data_key is None:
        return None
    members = MemberSets(at_rest_key).open(GID, row["members_box"], data_key)
    return members, GroupEpochs(at_rest_key).open(GID, row["epoch_box"], data_key)


def _assert_closed_to_the_key_file(server: TestServer, row: dict[str, Any]) -> None:
    """The key file alone opens neither the member set nor the epochs."""
    at_rest_key = server.state.keys.at_rest_key
    assert row["group_info_sealed"] == 3 and row["state_keys"] is not None
    with pytest.raises(StorageError):
        MemberSets(at_rest_key).open(GID, row["members_box"])
    with pytest.raises(StorageError):
        GroupEpochs(at_rest_key).open(GID, row["epoch_box"])


def _without_nonces(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {k: v for k, v in snap.items() if k != "request_nonces"}


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, code(response)


async def _start(alice: ApiClient, *others: ApiClient) -> bytes:
    """Alice makes GID with its tokens and adds ``others`` (epoch 1); the GroupInfo stored."""
    await alice.create_group(GID, member_keys=True)
    info = mls_data.group_info(GID, 1)
    queues = [alice.me.queue_id, *(o.me.queue_id for o in others)]
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        queues,
        welcome=await alice.welcome_for(*others),
        welcome_to=queues[1:],
        group_info=info,
        next_token=True,
    )
    return info


async def test_the_operator_cannot_open_a_groupinfo_sealed_under_the_members_keys(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    info = await _start(alice, bob)
    row = await _group_row(server)
    assert row["group_info_sealed"] == 3
    # Nor the member set or the epochs: only a token of the group opens them.
    _assert_closed_to_the_key_file(server, row)
    queues = sorted([alice.me.queue_id, bob.me.queue_id])
    for epoch in (0, 1):
        assert _opened_with(server, row, send_token(GID, epoch)) == (queues, (1, 1))
    assert _opened_with(server, row, os.urandom(32)) is None
    # The running server reads them only with a token too.
    read = server.state.member_sets.read
    assert await server.state.db.read(lambda tx: read(tx, GID)) is None
    assert await server.state.db.read(lambda tx: read(tx, GID, send_token(GID, 1))) == queues
    # Two wraps: epoch 0's token (creation) and epoch 1's (the commit).
    assert row["state_keys"] is not None and len(row["state_keys"]) == 2 * WRAP_BYTES
    at_rest_key = server.state.keys.at_rest_key
    # The key file alone does not open it, as it opens a GroupInfo sealed by the server.
    with pytest.raises(StorageError):
        SealedColumn(at_rest_key, "mls_groups.group_info").open(GID, row["group_info"])
    keys = StateKeys(at_rest_key)
    assert keys.open(GID, row["state_keys"], b"\x00" * 32) is None
    # A token of the group does, with the key file.
    data_key = keys.open(GID, row["state_keys"], send_token(GID, 1))
    assert data_key is not None
    opened = StateKeys.sealer(data_key).open(GID, row["group_info"])
    assert info in opened
    # Members read it with a token of an epoch since the last removal, not without.
    for epoch in (0, 1):
        answer = await bob.rejoin_info(GID, send_token(GID, epoch))
        assert answer == m.GroupInfoResponse(1, info)
    # Without a token the server cannot read the member set: Bob is a stranger.
    response = await bob.raw("GET", r.group_path(r.GROUP_INFO, GID))
    assert _error(response) == (404, "unknown_group")
    response = await bob.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(os.urandom(32))
    )
    assert _error(response) == (404, "unknown_group")
    # A stranger holding a right token learns nothing: the group is "missing".
    carol = await server.registered()
    for group_id in (GID, b"N" * 32):
        response = await carol.raw(
            "POST",
            r.group_path(r.GROUP_REJOIN_INFO, group_id),
            m.RejoinInfoRequest(send_token(GID, 1)),
        )
        assert _error(response) == (404, "unknown_group")


async def test_a_removal_draws_a_new_key_that_old_tokens_do_not_open(server: TestServer) -> None:
    alice, bob, carol = [await server.registered() for _ in range(3)]
    await alice.start_group(GID, bob, carol, group_info=True, member_keys=True)
    queues = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
    await alice.commit(
        GID,
        1,
        mls_data.commit(GID, 1, b"update"),
        queues,
        group_info=mls_data.group_info(GID, 2),
        next_token=True,
        sealed=True,
    )
    assert len((await _group_row(server))["state_keys"]) == 3 * WRAP_BYTES
    # Alice removes Carol: one wrap left, under epoch 3's token.
    await alice.commit(
        GID,
        2,
        mls_data.commit(GID, 2, b"remove carol"),
        queues[:2],
        group_info=mls_data.group_info(GID, 3),
        next_token=True,
        sealed=True,
    )
    row = await _group_row(server)
    assert len(row["state_keys"]) == WRAP_BYTES
    _assert_closed_to_the_key_file(server, row)
    assert _opened_with(server, row, send_token(GID, 3)) == (sorted(queues[:2]), (3, 3))
    keys = StateKeys(server.state.keys.at_rest_key)
    for epoch in (0, 1, 2):  # every token Carol ever had
        assert keys.open(GID, row["state_keys"], send_token(GID, epoch)) is None
        assert _opened_with(server, row, send_token(GID, epoch)) is None
        response = await bob.raw(
            "POST",
            r.group_path(r.GROUP_REJOIN_INFO, GID),
            m.RejoinInfoRequest(send_token(GID, epoch)),
        )
        assert _error(response) == (404, "unknown_group")
    assert (await bob.rejoin_info(GID, send_token(GID, 3))).epoch == 3
    # Carol, removed, is a stranger whatever she presents.
    response = await carol.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(send_token(GID, 3))
    )
    assert _error(response) == (404, "unknown_group")


async def test_commits_must_keep_carrying_the_token_and_its_digest_must_match(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.start_group(GID, bob, group_info=True, member_keys=True)
    queues = (alice.me.queue_id, bob.me.queue_id)
    before = _without_nonces(await snapshot(server, exclude=()))
    path = r.group_path(r.GROUP_COMMITS, GID)
    commit = mls_data.commit(GID, 1)
    # An app from before sends only the digest: it must update.
    old_app = m.CommitRequest(
        1, commit, queues, send_token_hash=send_token_hash(GID, 2), token=send_token(GID, 1)
    )
    response = await alice.raw("POST", path, old_app, signed=False)
    assert _error(response) == (400, "outdated_client")
    # A next token whose digest is not the one registered is refused.
    mismatched = m.CommitRequest(
        1,
        commit,
        queues,
        send_token_hash=send_token_hash(GID, 2),
        token=send_token(GID, 1),
        next_token=os.urandom(32),
    )
    response = await alice.raw("POST", path, mismatched, signed=False)
    assert _error(response) == (400, "invalid_field")
    assert response.json()["error"]["details"]["field"] == "next_token"
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The digest may be left out: the server computes it from the token.
    only_token = m.CommitRequest(
        1, commit, queues, token=send_token(GID, 1), next_token=send_token(GID, 2)
    )
    response = await alice.raw("POST", path, only_token, signed=False)
    assert response.status_code == 200, response.text
    send = m.SendRequest(mls_data.application(GID, 2, b"after"), token=send_token(GID, 2))
    response = await bob.raw("POST", r.group_path(r.GROUP_MESSAGES, GID), send, signed=False)
    assert response.status_code == 200, response.text
    # The commit stored no GroupInfo: the token opens the state, which holds none.
    response = await bob.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(send_token(GID, 2))
    )
    assert _error(response) == (404, "no_group_info")


async def test_a_group_sealed_by_the_server_moves_with_its_first_commit_carrying_the_token(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.start_group(GID, bob, group_info=True)  # an app from before
    row = await _group_row(server)
    assert (row["group_info_sealed"], row["state_keys"]) == (1, None)
    assert (await bob.group_info(GID)).epoch == 1
    # rejoin-info reads it too, whatever the token, while the server's key seals it.
    assert (await bob.rejoin_info(GID, os.urandom(32))).epoch == 1
    queues = [alice.me.queue_id, bob.me.queue_id]
    await bob.commit(
        GID,
        1,
        mls_data.commit(GID, 1),
        queues,
        group_info=mls_data.group_info(GID, 2),
        sealed=True,
        next_token=True,
    )
    row = await _group_row(server)
    # Wrapped under the token the commit proved (epoch 1's, which the boxes and
    # backups of that epoch hold) and the new epoch's.
    assert row["group_info_sealed"] == 3 and len(row["state_keys"]) == 2 * WRAP_BYTES
    response = await alice.raw("GET", r.group_path(r.GROUP_INFO, GID))
    assert _error(response) == (404, "unknown_group")
    for epoch in (1, 2):
        assert (await alice.rejoin_info(GID, send_token(GID, epoch))).epoch == 2
    # Epoch 0's token never had a wrap.
    response = await alice.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(send_token(GID, 0))
    )
    assert _error(response) == (404, "unknown_group")


async def test_replacing_the_groupinfo_needs_a_token_that_opens_the_state(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.start_group(GID, bob, group_info=True, member_keys=True)
    before = _without_nonces(await snapshot(server, exclude=()))
    for token in (None, os.urandom(32)):
        with pytest.raises(ApiError) as refused:
            await bob.put_group_info(GID, 1, mls_data.group_info(GID, 1), token)
        assert refused.value.code is ErrorCode.UNKNOWN_GROUP
    assert _without_nonces(await snapshot(server, exclude=())) == before
    replaced = mls_data.group_info(GID, 1)
    await bob.put_group_info(GID, 1, replaced, send_token(GID, 0))
    row = await _group_row(server)
    assert row["group_info_sealed"] == 3
    assert (await alice.rejoin_info(GID, send_token(GID, 1))).group_info == replaced


async def _restorable_group(
    server: TestServer,
) -> tuple[ApiClient, Ed25519PrivateKey, ApiClient, bytes]:
    alice, account_key = await register_with_key(server)
    bob = await server.registered()
    _, added = await alice.start_mls_group(GID, bob, member_keys=True)
    assert added.group_info is not None
    return alice, account_key, bob, added.group_info


async def test_a_restored_device_rejoins_with_a_token_since_the_last_removal(
    server: TestServer,
) -> None:
    alice, account_key, bob, group_info = await _restorable_group(server)
    restored = await add_device(alice, account_key)
    # The restored device reads the GroupInfo with its backup's token (epoch 0 or 1).
    assert (await restored.rejoin_info(GID, send_token(GID, 0))).group_info == group_info
    joined, commit = external_commit(group_info, restored)
    members = [alice.me.queue_id, bob.me.queue_id, restored.me.queue_id]
    path = r.group_path(r.GROUP_COMMITS, GID)
    before = _without_nonces(await snapshot(server, exclude=()))
    for rejoin in (None, os.urandom(32)):  # no key to the state: a stranger
        request = m.CommitRequest(
            1,
            commit,
            tuple(members),
            group_info=joined.group_info(),
            next_token=send_token(GID, 2),
            rejoin_token=rejoin,
        )
        assert _error(await restored.raw("POST", path, request)) == (404, "unknown_group")
    # Without the next token the state could not be sealed again.
    request = m.CommitRequest(1, commit, tuple(members), rejoin_token=send_token(GID, 1))
    assert _error(await restored.raw("POST", path, request)) == (400, "outdated_client")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    accepted = await restored.commit(
        GID,
        1,
        commit,
        members,
        group_info=joined.group_info(),
        next_token=True,
        rejoin_token=send_token(GID, 1),
    )
    assert accepted.epoch == 2
    # No one was removed: the earlier tokens still open the state, and the new one.
    row = await _group_row(server)
    assert len(row["state_keys"]) == 3 * WRAP_BYTES
    for epoch in (0, 1, 2):
        assert (await bob.rejoin_info(GID, send_token(GID, epoch))).epoch == 2


async def test_a_resync_that_drops_the_old_device_draws_a_new_key(server: TestServer) -> None:
    alice, account_key, bob, group_info = await _restorable_group(server)
    restored = await add_device(alice, account_key)
    joined, commit = external_commit(group_info, restored, resync=0)  # Alice's old leaf
    accepted = await restored.commit(
        GID,
        1,
        commit,
        [bob.me.queue_id, restored.me.queue_id],
        group_info=joined.group_info(),
        next_token=True,
        rejoin_token=send_token(GID, 1),
    )
    assert accepted.epoch == 2
    row = await _group_row(server)
    assert len(row["state_keys"]) == WRAP_BYTES
    response = await bob.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(send_token(GID, 1))
    )
    assert _error(response) == (404, "unknown_group")
    assert (await bob.rejoin_info(GID, send_token(GID, 2))).epoch == 2


async def test_a_commit_dropping_a_removed_devices_queue_draws_a_new_key(
    server: TestServer,
) -> None:
    alice, account_key = await register_with_key(server)
    laptop = await add_device(alice, account_key)
    bob = await server.registered()
    await alice.start_group(GID, bob, laptop, member_keys=True)
    # Alice removes her laptop from the account: its queue is deleted at once.
    assert (await alice.raw("DELETE", r.client_path(laptop.me.client_id))).status_code == 200
    queues = [alice.me.queue_id, bob.me.queue_id, laptop.me.queue_id]
    # Bob has not seen it yet and still lists the laptop: no one is removed.
    await bob.commit(GID, 1, mls_data.commit(GID, 1), queues, sealed=True, next_token=True)
    assert len((await _group_row(server))["state_keys"]) == 3 * WRAP_BYTES
    # Alice's commit removes the laptop's leaf: every earlier token stops opening.
    await alice.commit(GID, 2, mls_data.commit(GID, 2), queues[:2], sealed=True, next_token=True)
    row = await _group_row(server)
    assert len(row["state_keys"]) == WRAP_BYTES
    keys = StateKeys(server.state.keys.at_rest_key)
    assert [keys.open(GID, row["state_keys"], send_token(GID, e)) is None for e in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_wraps_keep_the_newest_and_open_only_for_their_group_and_token() -> None:
    keys = StateKeys(os.urandom(32))
    data_key, stored = keys.new(GID, b"t" * 32)
    assert keys.open(GID, stored, b"t" * 32) == data_key
    assert keys.open(b"another group", stored, b"t" * 32) is None
    # Another server's key file does not open them either.
    assert StateKeys(os.urandom(32)).open(GID, stored, b"t" * 32) is None
    tokens = [i.to_bytes(32, "big") for i in range(WRAP_LIMIT + 10)]
    for token in tokens:
        stored = keys.extend(GID, stored, data_key, token)
    assert len(stored) == WRAP_LIMIT * WRAP_BYTES
    assert keys.open(GID, stored, b"t" * 32) is None  # the oldest went first
    assert keys.open(GID, stored, tokens[9]) is None
    assert keys.open(GID, stored, tokens[10]) == data_key
    assert keys.open(GID, stored, tokens[-1]) == data_key
    # A wrap changed in the database opens nothing; a column cut short is an error.
    changed = bytearray(stored)
    changed[-1] ^= 1
    assert keys.open(GID, bytes(changed), tokens[-1]) is None
    with pytest.raises(StorageError):
        keys.open(GID, stored[:-1], tokens[-1])


async def test_rejoin_boxes_are_stored_by_handle_and_name_no_one(server: TestServer) -> None:
    alice, mallory = await server.registered(), await server.registered()
    handle, box = os.urandom(32), os.urandom(68)
    path = r.rejoin_box_path(handle)
    response = await alice.raw("GET", path)
    assert _error(response) == (404, "not_found")
    await alice.call("PUT", path, m.RejoinBox(box), m.Empty)
    assert await alice.call("GET", path, None, m.RejoinBoxResponse) == m.RejoinBoxResponse(box)
    newer = os.urandom(68)
    await alice.call("PUT", path, m.RejoinBox(newer), m.Empty)
    assert (await alice.call("GET", path, None, m.RejoinBoxResponse)).box == newer
    # The table holds the handle, the box and a week its expiry falls on: no
    # account, client, group or time of writing (tests/server/test_rejoin_box_limits.py).
    [(stored_handle, stored_box, expires_at)] = (await snapshot(server))["rejoin_boxes"]
    assert (stored_handle, stored_box) == (handle, newer)
    assert expires_at % EXPIRY_BUCKET_MS == 0
    # Unsigned requests and malformed handles or boxes are refused, changing nothing.
    before = _without_nonces(await snapshot(server, exclude=()))
    assert (await alice.raw("GET", path, signed=False)).status_code == 401
    assert (await alice.raw("PUT", path, m.RejoinBox(box), signed=False)).status_code == 401
    for bad in (b"short", os.urandom(33)):
        response = await mallory.raw("GET", r.rejoin_box_path(bad))
        assert _error(response) == (400, "invalid_field")
    for size in (31, 257):
        response = await mallory.raw("PUT", path, {"box": mls_data.b64(os.urandom(size))})
        assert _error(response) == (400, "invalid_field")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    await alice.call("DELETE", path, None, m.Empty)
    await alice.call("DELETE", path, None, m.Empty)  # idempotent
    assert _error(await alice.raw("GET", path)) == (404, "not_found")


async def _three_then_carol_removed(server: TestServer) -> tuple[ApiClient, ApiClient, ApiClient]:
    """Alice, Bob and Carol (epoch 1); Alice updates (epoch 2), then removes Carol (epoch 3)."""
    alice, bob, carol = [await server.registered() for _ in range(3)]
    await alice.start_group(GID, bob, carol, group_info=True, member_keys=True)
    queues = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
    await alice.commit(GID, 1, mls_data.commit(GID, 1), queues, sealed=True, next_token=True)
    await alice.commit(
        GID,
        2,
        mls_data.commit(GID, 2, b"remove carol"),
        queues[:2],
        group_info=mls_data.group_info(GID, 3),
        sealed=True,
        next_token=True,
    )
    return alice, bob, carol


async def test_a_stranger_and_a_removed_member_get_unknown_group_and_change_nothing(
    server: TestServer,
) -> None:
    """Every route that reads the state, tried with every token Carol ever had
    (and a stranger's guesses, and Mallory with the current token on the signed
    routes): a missing group's answer, and not a row changed."""
    alice, bob, carol = await _three_then_carol_removed(server)
    mallory = await server.registered()
    _, access_hash = access_pair()
    queues = (alice.me.queue_id, bob.me.queue_id, carol.me.queue_id)
    before = _without_nonces(await snapshot(server, exclude=()))
    old = [send_token(GID, e) for e in (0, 1, 2)] + [os.urandom(32)]

    async def refused(response: Any) -> None:
        assert _error(response) == (404, "unknown_group"), response.text

    for epoch, token in enumerate(old):
        sent = m.SendRequest(mls_data.application(GID, epoch, b"hi"), token=token)
        await refused(
            await carol.raw("POST", r.group_path(r.GROUP_MESSAGES, GID), sent, signed=False)
        )
        commit = m.CommitRequest(
            epoch, mls_data.commit(GID, epoch), queues, token=token, next_token=os.urandom(32)
        )
        path = r.group_path(r.GROUP_COMMITS, GID)
        if epoch == 2:
            # The previous epoch's token: the group moved on, which Carol knew. The
            # commit that did removed her, so her token opens nothing: the epoch
            # told is the one after her commit's, read from her own request.
            response = await carol.raw("POST", path, commit, signed=False)
            assert _error(response) == (409, "stale_epoch")
            assert response.json()["error"]["details"] == {"current_epoch": 3}
        else:
            await refused(await carol.raw("POST", path, commit, signed=False))
        await refused(await carol.raw("POST", path, commit))  # the signed fallback
        external = m.CommitRequest(
            3,
            mls_data.external_commit(GID, 3),
            (*queues[:2], carol.me.queue_id),
            next_token=os.urandom(32),
            rejoin_token=token,
        )
        await refused(await carol.raw("POST", path, external))
        rejoin = m.RejoinInfoRequest(token)
        await refused(await carol.raw("POST", r.group_path(r.GROUP_REJOIN_INFO, GID), rejoin))
        info = m.GroupInfoRequest(3, mls_data.group_info(GID, 3), token)
        await refused(await carol.raw("PUT", r.group_path(r.GROUP_INFO, GID), info))
        await refused(await create(carol, GID, padme(1000), access_hash, token))
    await refused(await carol.raw("GET", r.group_path(r.GROUP_INFO, GID)))
    # Mallory holds the current token (as if a member leaked it): the signed
    # routes still check membership once the state is open.
    current = send_token(GID, 3)
    for client in (mallory, carol):
        rejoin = m.RejoinInfoRequest(current)
        await refused(await client.raw("POST", r.group_path(r.GROUP_REJOIN_INFO, GID), rejoin))
        await refused(await create(client, GID, padme(1000), access_hash, current))
        commit = m.CommitRequest(
            3, mls_data.commit(GID, 3), queues, token=current, next_token=os.urandom(32)
        )
        await refused(await client.raw("POST", r.group_path(r.GROUP_COMMITS, GID), commit))
    # Registering a send token names no token: the server cannot read the
    # members of such a group, so even a member is told it is missing.
    register = m.SendTokenRequest(3, send_token_hash(GID, 3))
    await refused(await alice.raw("PUT", r.group_path(r.GROUP_SEND_TOKEN, GID), register))
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The members are not locked out: Bob sends with the current token.
    await bob.send(GID, mls_data.application(GID, 3, b"still here"))


async def test_sends_open_the_state_with_a_matching_token_and_move_old_rows(
    server: TestServer,
) -> None:
    alice, bob, carol = await _three_then_carol_removed(server)
    path = r.group_path(r.GROUP_MESSAGES, GID)

    sent: dict[bytes, bytes] = {}

    async def send(client: ApiClient, token: bytes, text: bytes) -> Any:
        sent[text] = mls_data.application(GID, 3, text)
        request = m.SendRequest(sent[text], token=token)
        return await client.raw("POST", path, request, signed=False)

    # Sends arriving together may share a transaction (delivery._drain): each
    # still gets its own answer, and the right token opens the state for them.
    answers = await asyncio.gather(
        send(carol, send_token(GID, 2), b"carol"),
        send(bob, send_token(GID, 3), b"bob 1"),
        send(carol, os.urandom(32), b"guess"),
        send(bob, send_token(GID, 3), b"bob 2"),
    )
    assert [a.status_code for a in answers] == [404, 200, 404, 200]
    assert {a.json()["recipients"] for a in answers[1::2]} == {2}
    queued = {msg.data for msg in (await alice.fetch()).messages}
    assert {sent[b"bob 1"], sent[b"bob 2"]} <= queued
    assert not {sent[b"carol"], sent[b"guess"]} & queued
    # A row of server migration 20 (its member set and epochs still under the
    # server's key) opens as before and moves to the data key with a send.
    row = await _group_row(server)
    at_rest_key = server.state.keys.at_rest_key
    opened = _opened_with(server, row, send_token(GID, 3))
    assert opened is not None
    members, (epoch, info_epoch) = opened

    async def as_before(tx: Tx) -> None:
        await tx.execute(
            "UPDATE mls_groups SET members_box = ?, epoch_box = ?, group_info_sealed = 2 "
            "WHERE group_id = ?",
            MemberSets(at_rest_key).seal(GID, members),
            GroupEpochs(at_rest_key).seal(GID, epoch, info_epoch),
            GID,
        )

    await server.state.db.transaction(as_before)
    assert (await bob.rejoin_info(GID, send_token(GID, 3))).epoch == 3
    response = await bob.raw("GET", r.group_path(r.GROUP_INFO, GID))
    assert _error(response) == (404, "unknown_group")  # a token is needed all the same
    assert (await send(carol, send_token(GID, 2), b"carol")).status_code == 404
    assert (await _group_row(server))["group_info_sealed"] == 2  # a refusal moves nothing
    assert (await send(bob, send_token(GID, 3), b"moves it")).status_code == 200
    row = await _group_row(server)
    _assert_closed_to_the_key_file(server, row)
    assert _opened_with(server, row, send_token(GID, 3)) == (members, (epoch, info_epoch))


async def test_a_commit_that_lost_a_race_is_told_the_epoch_it_may_know(
    server: TestServer,
) -> None:
    alice, bob, carol = [await server.registered() for _ in range(3)]
    await alice.start_group(GID, bob, carol, group_info=True, member_keys=True)
    queues = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
    path = r.group_path(r.GROUP_COMMITS, GID)

    def bobs(epoch: int) -> m.CommitRequest:
        return m.CommitRequest(
            epoch,
            mls_data.commit(GID, epoch, b"bob"),
            tuple(queues),
            token=send_token(GID, epoch),
            next_token=send_token(GID, epoch + 1),
        )

    # Alice's update wins epoch 1: Bob's token of epoch 1 still opens the state.
    await alice.commit(GID, 1, mls_data.commit(GID, 1), queues, sealed=True, next_token=True)
    response = await bob.raw("POST", path, bobs(1), signed=False)
    assert _error(response) == (409, "stale_epoch")
    assert response.json()["error"]["details"] == {"current_epoch": 2}
    # Alice's removal of Carol wins epoch 2: Bob's token of epoch 2 opens nothing
    # now, and the answer is the epoch after his commit's (the same, here).
    await alice.commit(GID, 2, mls_data.commit(GID, 2), queues[:2], sealed=True, next_token=True)
    before = _without_nonces(await snapshot(server, exclude=()))
    response = await bob.raw("POST", path, bobs(2), signed=False)
    assert _error(response) == (409, "stale_epoch")
    assert response.json()["error"]["details"] == {"current_epoch": 3}
    # Signed, with that token, it is a stranger's commit: the state does not open.
    response = await bob.raw("POST", path, bobs(2))
    assert _error(response) == (404, "unknown_group")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # Caught up, Bob commits with epoch 3's token, sealed or signed.
    answer = await bob.commit(
        GID, 3, mls_data.commit(GID, 3, b"bob"), queues[:2], sealed=True, next_token=True
    )
    assert answer.epoch == 4
    answer = await bob.commit(GID, 4, mls_data.commit(GID, 4, b"bob"), queues[:2], next_token=True)
    assert answer.epoch == 5
    _assert_closed_to_the_key_file(server, await _group_row(server))


async def test_blobs_of_a_group_under_its_members_keys_need_its_token(server: TestServer) -> None:
    alice, bob, carol = [await server.registered() for _ in range(3)]
    mallory = await server.registered()
    await alice.start_group(GID, bob, carol, group_info=True, member_keys=True)
    token = send_token(GID, 1)
    data = padded(3000)
    access, access_hash = access_pair()
    # Create: a member with a token of an epoch since the last removal.
    before = await store(server)
    for refused in (None, os.urandom(32)):
        response = await create(bob, GID, len(data), access_hash, refused)
        assert _error(response) == (404, "unknown_group")
    response = await create(mallory, GID, len(data), access_hash, token)
    assert _error(response) == (404, "unknown_group")
    assert await store(server) == before
    blob_id = await created(bob, GID, len(data), access_hash, send_token(GID, 0))
    # A part but the last needs no membership; the last takes the recipients.
    assert (await put(bob, blob_id, 0, data[:1000])).status_code == 200
    before = await store(server)
    for refused in (None, os.urandom(32)):
        response = await put(bob, blob_id, 1000, data[1000:], token=refused)
        assert _error(response) == (404, "unknown_group")
    assert await store(server) == before
    assert (await put(bob, blob_id, 1000, data[1000:], token=token)).status_code == 200
    assert await recipients(server, alice, bob, carol) == {
        (blob_id, alice.me.queue_id),
        (blob_id, carol.me.queue_id),
    }
    # The creator's status needs no token; a recipient's does.
    assert (await status(bob, blob_id)).status_code == 200
    assert _error(await status(alice, blob_id, access)) == (404, "unknown_group")
    assert (await status(alice, blob_id, access, token)).status_code == 200
    # Downloads: the capability first (a guess is not_found whatever the token), then the token.
    assert _error(await get(mallory, blob_id, os.urandom(32), token=token)) == (404, "not_found")
    assert _error(await get(alice, blob_id, None, token=token)) == (404, "not_found")
    assert _error(await get(alice, blob_id, access)) == (404, "unknown_group")
    assert _error(await get(mallory, blob_id, access, token=token)) == (404, "not_found")
    response = await get(alice, blob_id, access, token=token)
    assert response.status_code == 200 and response.content == data
    # Alice removes Carol: every token Carol had opens nothing, capability or not.
    await alice.commit(
        GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id, bob.me.queue_id], next_token=True
    )
    before = await store(server)
    for old in (send_token(GID, 0), token, None):
        assert _error(await get(carol, blob_id, access, token=old)) == (404, "unknown_group")
        assert _error(await fetched(carol, blob_id, access, old)) == (404, "unknown_group")
        assert _error(await status(carol, blob_id, access, old)) == (404, "unknown_group")
    assert await store(server) == before
    # The sweep has no token: it cannot see that Carol left, so her row waits.
    await server.state.blobs.sweep()
    assert (blob_id, carol.me.queue_id) in await recipients(server, alice, bob, carol)
    # Alice's fetched opens the member set: Carol no longer holds the blob back.
    response = await fetched(alice, blob_id, access, token)  # stale: a removal since
    assert _error(response) == (404, "unknown_group")
    assert (await fetched(alice, blob_id, access, send_token(GID, 2))).status_code == 200
    assert await rows(server, "blobs") == []
    assert not blob_file(server, blob_id).exists()
    # Withdrawing an upload is the creator's right and needs no token.
    other = await created(bob, GID, len(data), access_hash, send_token(GID, 2))
    assert (await delete(bob, other)).status_code == 200


async def test_a_server_holding_only_groups_under_members_keys_restarts(
    server_factory: ServerFactory,
) -> None:
    """The server checks its key file against a sealed row when it starts: not
    against a member set or epoch box that only members' tokens open."""
    async with server_factory() as server:
        alice, bob = await server.registered(), await server.registered()
        await _start(alice, bob)
        row = await _group_row(server)
    async with server_factory() as server:
        assert await _group_row(server) == row
        again = ApiClient(server.http, bob.identity, bob.clock)
        assert (await again.rejoin_info(GID, send_token(GID, 1))).epoch == 1
