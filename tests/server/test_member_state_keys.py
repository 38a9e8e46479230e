"""A group's GroupInfo sealed under its members' keys (docs/metadata.md §2).

The server keeps a group's GroupInfo under a data key that only the send
tokens of the epochs since its last removal unwrap (messenger.server.state_keys),
so the operator, who holds the secret key file, cannot read it from the
database. Each test plays the operator, a stranger, a removed member or a
device restoring a backup, and checks what opens and that a refusal changes
nothing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.server.at_rest import SealedColumn
from messenger.server.state_keys import WRAP_BYTES, WRAP_LIMIT, StateKeys
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .client import ApiClient, send_token, send_token_hash
from .conftest import TestServer
from .dbtools import snapshot
from .devices_tools import add_device, code, external_commit, register_with_key

pytestmark = pytest.mark.anyio

GID = b"K" * 32


async def _group_row(server: TestServer, group_id: bytes = GID) -> dict[str, Any]:
    async def op(tx: Tx) -> dict[str, Any]:
        row = await tx.fetchone(
            "SELECT group_info, group_info_sealed, state_keys FROM mls_groups WHERE group_id = ?",
            group_id,
        )
        assert row is not None
        return {
            "group_info": None if row[0] is None else bytes(row[0]),
            "group_info_sealed": row[1],
            "state_keys": None if row[2] is None else bytes(row[2]),
        }

    return await server.state.db.read(op)


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
    assert row["group_info_sealed"] == 2
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
    response = await bob.raw("GET", r.group_path(r.GROUP_INFO, GID))
    assert _error(response) == (400, "outdated_client")
    response = await bob.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(os.urandom(32))
    )
    assert _error(response) == (409, "rejoin_token_stale")
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
    keys = StateKeys(server.state.keys.at_rest_key)
    for epoch in (0, 1, 2):  # every token Carol ever had
        assert keys.open(GID, row["state_keys"], send_token(GID, epoch)) is None
        response = await bob.raw(
            "POST",
            r.group_path(r.GROUP_REJOIN_INFO, GID),
            m.RejoinInfoRequest(send_token(GID, epoch)),
        )
        assert _error(response) == (409, "rejoin_token_stale")
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
    assert row["group_info_sealed"] == 2 and len(row["state_keys"]) == 2 * WRAP_BYTES
    response = await alice.raw("GET", r.group_path(r.GROUP_INFO, GID))
    assert _error(response) == (400, "outdated_client")
    for epoch in (1, 2):
        assert (await alice.rejoin_info(GID, send_token(GID, epoch))).epoch == 2
    # Epoch 0's token never had a wrap.
    response = await alice.raw(
        "POST", r.group_path(r.GROUP_REJOIN_INFO, GID), m.RejoinInfoRequest(send_token(GID, 0))
    )
    assert _error(response) == (409, "rejoin_token_stale")


async def test_replacing_the_groupinfo_needs_a_token_that_opens_the_state(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.start_group(GID, bob, group_info=True, member_keys=True)
    before = _without_nonces(await snapshot(server, exclude=()))
    for token in (None, os.urandom(32)):
        with pytest.raises(ApiError) as refused:
            await bob.put_group_info(GID, 1, mls_data.group_info(GID, 1), token)
        assert refused.value.code is ErrorCode.REJOIN_TOKEN_STALE
    assert _without_nonces(await snapshot(server, exclude=())) == before
    replaced = mls_data.group_info(GID, 1)
    await bob.put_group_info(GID, 1, replaced, send_token(GID, 0))
    row = await _group_row(server)
    assert row["group_info_sealed"] == 2
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
    refused = {
        None: (409, "rejoin_token_stale"),  # no key to the state
        os.urandom(32): (409, "rejoin_token_stale"),
    }
    for rejoin, expected in refused.items():
        request = m.CommitRequest(
            1,
            commit,
            tuple(members),
            group_info=joined.group_info(),
            next_token=send_token(GID, 2),
            rejoin_token=rejoin,
        )
        assert _error(await restored.raw("POST", path, request)) == expected
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
    assert _error(response) == (409, "rejoin_token_stale")
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
    # The table holds the handle and the box: no account, client, group or time.
    assert (await snapshot(server))["rejoin_boxes"] == [(handle, newer)]
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
