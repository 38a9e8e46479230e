"""Groups from before sealed sending keep working; apps from before padding are told to update.

docs/metadata.md §3: a group made before send tokens has no token digest on
the server; the first sealed send is refused as for an unknown group, the
client registers its epoch's digest (signed, members only) and sends again,
so no message is lost. docs/metadata.md §4: a request with a bare MLS
message (an app from before padding) gets ``outdated_client`` and a
sentence that says to update the app; it changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.client import MessengerClient, OutdatedClientError
from messenger.client.net.error_mapping import error_from_response
from messenger.server.at_rest import SealedColumn
from messenger.server.group_epochs import GroupEpochs
from messenger.server.member_sets import MemberSets
from messenger.server.server_keys import ServerKeys, load_or_create_master_secret
from messenger.server.state_keys import StateKeys

from .conftest import Clients, ServerProcess, eventually, moves_settled, start_server, stop_server
from .test_end_to_end import _group_id
from .test_metadata_proof import group_tokens
from .test_pq_suites import contact

pytestmark = pytest.mark.anyio


def _tokens(data_dir: Path) -> list[bytes | None]:
    with contextlib.closing(sqlite3.connect(data_dir / "messenger.db")) as db:
        return [row[0] for row in db.execute("SELECT send_token_hash FROM mls_groups")]


async def _forget_tokens(c: _Chat) -> None:
    """What migration 8 leaves for a group made before it: no digest, and its
    state sealed under the server's key (as apps from before made it), not its
    members' (docs/metadata.md §2), which the test opens with a member's token."""
    tokens = await group_tokens([c.alice, c.bob])
    at_rest_key = ServerKeys.derive(
        load_or_create_master_secret(c.data_dir / "server-secret.key")
    ).at_rest_key
    infos = SealedColumn(at_rest_key, "mls_groups.group_info")
    with contextlib.closing(sqlite3.connect(c.data_dir / "messenger.db", timeout=30)) as db:
        rows = db.execute(
            "SELECT group_id, state_keys, members_box, epoch_box, group_info FROM mls_groups"
        ).fetchall()
        for group_id, state_keys, members_box, epoch_box, info in rows:
            data_key = StateKeys(at_rest_key).open(group_id, state_keys, tokens[group_id])
            assert data_key is not None
            members = MemberSets(at_rest_key).open(group_id, members_box, data_key)
            epoch, info_epoch = GroupEpochs(at_rest_key).open(group_id, epoch_box, data_key)
            if info is not None:
                padded = StateKeys.sealer(data_key).open(group_id, info)
                info = infos.seal(group_id, padded)
            db.execute(
                "UPDATE mls_groups SET send_token_hash = NULL, previous_send_token_hash = NULL, "
                "state_keys = NULL, group_info_sealed = 1, members_box = ?, epoch_box = ?, "
                "group_info = ? WHERE group_id = ?",
                (
                    MemberSets(at_rest_key).seal(group_id, members),
                    GroupEpochs(at_rest_key).seal(group_id, epoch, info_epoch),
                    info,
                    group_id,
                ),
            )
        db.commit()


async def _texts(client: MessengerClient, cid: int) -> list[str]:
    views = await client.messages(cid, limit=50)
    return [v.message.body for v in views if v.message.body]


@dataclasses.dataclass
class _Chat:
    data_dir: Path
    alice: MessengerClient
    bob: MessengerClient
    chat_id: int
    bob_cid: int


@contextlib.asynccontextmanager
async def _chatting(tmp_path: Path, tag: str) -> AsyncIterator[_Chat]:
    """A server of its own (its database is edited) and Alice and Bob in a chat
    that holds "before"; everything is closed after."""
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    server = start_server(data_dir)
    clients = Clients(tmp_path / "clients", server)
    try:
        alice = await clients.new("alice", handle=f"alice_{tag}")
        bob = await clients.new("bob", handle=f"bob_{tag}")
        account = await bob.account()
        assert account is not None and account.address is not None
        bob_id = (await alice.add_contact(account.address)).account_id
        chat = await alice.create_conversation(bob_id)
        await alice.send_text(chat.id, "before")

        async def bob_chat() -> int | None:
            views = await bob.conversations()
            return views[0].id if views else None

        await eventually(lambda: _has(bob_chat), "Bob to join")
        bob_cid = await bob_chat()
        assert bob_cid is not None
        await eventually(lambda: _contains(bob, bob_cid, ["before"]), "the first message")
        # Bob moves off his contact queue with a commit (docs/metadata.md §1): the
        # tests edit the server's rows of the group, so it must have landed first.
        await moves_settled((bob,), ((alice, chat.id), (bob, bob_cid)))
        yield _Chat(data_dir, alice, bob, chat.id, bob_cid)
    finally:
        await clients.close_all()
        stop_server(server)


async def test_a_group_from_before_send_tokens_keeps_its_messages(tmp_path: Path) -> None:
    async with _chatting(tmp_path, "mig") as c:
        assert all(t is not None for t in _tokens(c.data_dir)), "commits register digests"

        await _forget_tokens(c)
        await c.alice.send_text(c.chat_id, "after the upgrade")
        await c.bob.send_text(c.bob_cid, "and back")
        await eventually(
            lambda: _contains(c.bob, c.bob_cid, ["before", "after the upgrade", "and back"]),
            "both messages after the upgrade",
        )
        await eventually(
            lambda: _contains(c.alice, c.chat_id, ["before", "after the upgrade", "and back"]),
            "Alice to get Bob's answer",
        )
        assert any(t is not None for t in _tokens(c.data_dir)), "the client registered one"


async def _has(find: object) -> bool:
    return await find() is not None  # type: ignore[operator]


async def _contains(client: MessengerClient, cid: int, wanted: list[str]) -> bool:
    """The conversation holds exactly ``wanted``, in any order (two senders race)."""
    return sorted(await _texts(client, cid)) == sorted(wanted)


async def test_an_app_from_before_padding_is_told_to_update(
    clients: Clients, server: ServerProcess
) -> None:
    alice = await clients.new("alice", handle="alice_old")
    transport = alice._require().transport
    me = alice._require().account
    bare = b"\x00\x01\x00\x02" + bytes(60)  # an MLSMessage header, as an old app sends it
    body = (
        b'{"group_id":"'
        + b64encode(b"g" * 32).encode()
        + b'","group_info":"'
        + b64encode(bare).encode()
        + b'"}'
    )
    with pytest.raises(OutdatedClientError) as caught:
        await transport.call("POST", r.GROUPS, body, m.CreateGroupResponse)
    assert "Update the app" in caught.value.user_message
    async with httpx.AsyncClient(base_url=server.url) as http:
        send = b'{"message":"' + b64encode(bare).encode() + b'"}'
        response = await http.post(
            r.group_path(r.GROUP_MESSAGES, b"g" * 32),
            content=send,
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "outdated_client"
    error = error_from_response(response.status_code, response.content, response.headers)
    assert isinstance(error, OutdatedClientError)
    # Nothing changed: the group ID is still free, and the account works.
    created = await transport.create_group(m.CreateGroupRequest(b"g" * 32))
    assert created.epoch == 0
    assert me.queue_id
    await alice.sync()


async def test_a_member_who_registers_a_wrong_token_locks_no_one_out(tmp_path: Path) -> None:
    """In a group without a digest, Bob registers garbage first; Alice's client moves the
    group to a new epoch (a commit with a path), whose digest it registers, and sends."""
    async with _chatting(tmp_path, "lock") as c:
        await _forget_tokens(c)
        group_id = await _group_id(c.bob, c.bob_cid)
        session = c.bob._require()
        group = await session.epochs.get(group_id)
        assert group is not None
        epoch = group.epoch
        await session.transport.register_send_token(group_id, epoch, os.urandom(32))

        await c.alice.send_text(c.chat_id, "despite Bob")
        await eventually(
            lambda: _contains(c.bob, c.bob_cid, ["before", "despite Bob"]),
            "the message after all",
        )
        group = await session.epochs.get(group_id)
        assert group is not None and group.epoch > epoch, "a new epoch brought a fresh token"


async def test_an_add_whose_claim_evidence_is_gone_is_claimed_again(clients: Clients) -> None:
    """An add queued by an app from before sealed commits carries KeyPackages but
    no claim tokens (and the server dropped the old evidence, migration 12):
    the server refuses it ``member_not_claimed``; the client claims again for
    the same account and the member is added, nothing dropped."""
    alice = await clients.new("alice", handle="alice_reclaim")
    bob = await clients.new("bob", handle="bob_reclaim")
    carol = await clients.new("carol", handle="carol_reclaim")
    ids = [await contact(alice, other) for other in (bob, carol)]
    group = await alice.create_group("Reclaimed", ids[:1])
    await alice.flush(30)
    from messenger.client.store.outbox import OutboxKind
    from messenger.client.sync.intents import Intent

    conversation = await alice._group_conversation(group.id)
    # Claimed in the group's suite, then its token is lost.
    stale = await alice._claim_in_group_suite(conversation.group_id, [ids[1]])
    assert alice._require().transport.claim_tokens.take(stale)
    await alice._enqueue(conversation, OutboxKind.COMMIT, Intent("add", key_packages=tuple(stale)))

    async def carol_joined() -> bool:
        return any(v.name == "Reclaimed" for v in await carol.conversations())

    await eventually(carol_joined, "Carol to be added after the client claimed again")
    await alice.send_text(group.id, "welcome, Carol")

    async def carol_reads() -> bool:
        views = await carol.conversations()
        cid = next(v.id for v in views if v.name == "Reclaimed")
        return "welcome, Carol" in await _texts(carol, cid)

    await eventually(carol_reads, "Carol to read the group")
