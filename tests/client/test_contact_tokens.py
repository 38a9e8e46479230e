"""Contact tokens, from the client's side (messenger/client/contact_tokens.py).

Against the real server app in process: an account's KeyPackages are
claimed with its contact token (docs/metadata.md §1). People who share a
group read it in each other's leaves; a stranger who knows only the account
ID gets a typed error whose sentence says what to ask for; an invite link
or a handle gives it. A profile from before moves at its next connection:
the server keeps no link to its contact queue, and every KeyPackage it
keeps is sealed under the token.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any

import pytest

from messenger.api import routes as r
from messenger.api.contact_token import CONTACT_TOKEN_EXTENSION
from messenger.client import (
    ContactTokenError,
    InvalidAddressError,
    MessengerClient,
    ServerRejectedError,
    contact_tokens,
    groups,
)
from messenger.client import contact_queue as contact_queue_module
from messenger.client.addresses import invite_link, parse_address
from messenger.client.contact_tokens import contact_token, leaf_token, own_token
from messenger.client.net.http import Transport
from messenger.client.sync import key_packages as key_packages_module
from messenger.client.sync import leaf_addresses
from messenger.client.sync import outbox as outbox_module
from messenger.client.sync.leaf_addresses import queue_token_updates

from .helpers import account_id
from .in_process import SERVER_URL, InProcessServer
from .test_link_attacks import blank, bounded

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _token(client: MessengerClient) -> bytes:
    token = own_token(client._require().account)
    assert token is not None
    return token


async def _known(client: MessengerClient, account: str) -> bytes | None:
    return await client._store.run(lambda s: s.contact_tokens.get(account))


async def _rows(server: InProcessServer, sql: str, *args: Any) -> list[Any]:
    async def op(tx: Any) -> list[Any]:
        return list(await tx.fetchall(sql, *args))

    rows: list[Any] = await server.state.db.read(op)
    return rows


async def _count(server: InProcessServer, table: str) -> int:
    (row,) = await _rows(server, f"SELECT COUNT(*) FROM {table}")
    return int(row[0])


def _claims_by(server: InProcessServer, client: MessengerClient, mark: int) -> list[Any]:
    me = client._require().account.client_id
    return [
        x for x in server.wire.exchanges[mark:] if x.path == r.CLAIM_KEY_PACKAGES and x.client == me
    ]


def _lookups_by(server: InProcessServer, client: MessengerClient, mark: int) -> list[Any]:
    me = client._require().account.client_id
    return [x for x in server.wire.exchanges[mark:] if x.path == r.HANDLE_LOOKUP and x.client == me]


def test_the_token_is_derived_from_the_account_key() -> None:
    first, second = bytes(range(32)), bytes(range(1, 33))
    assert len(contact_token(first)) == 32
    assert contact_token(first) == contact_token(first)
    assert contact_token(first) != contact_token(second)


def test_invite_links_with_and_without_a_token() -> None:
    token = bytes(range(32))
    link = invite_link(SERVER_URL, "acct_1", "alice", token)
    parsed = parse_address(link)
    assert parsed.account_id == "acct_1" and parsed.handle == "alice"
    assert parsed.token == token
    assert "=" not in link.partition("token=")[2]  # unpadded base64url
    # A link from before has no token, and still parses.
    old = parse_address(invite_link(SERVER_URL, "acct_1", "alice"))
    assert old.account_id == "acct_1" and old.token is None
    # A malformed token is refused: too short, too long, not base64url, empty.
    good = base64.urlsafe_b64encode(token).rstrip(b"=").decode()
    base = invite_link(SERVER_URL, "acct_1")
    for bad in (good[:-1], good + "A", good[:-1] + "*", "", good[:-1] + "B"):
        with pytest.raises(InvalidAddressError):
            parse_address(f"{base}&token={bad}")


async def test_members_of_a_shared_group_add_each_other_without_an_invite(
    server: InProcessServer,
) -> None:
    alice, bob, carol = [await server.client(n, introduce=False) for n in ("alice", "bob", "carol")]
    for client in (alice, bob, carol):
        await client.sync()
    bob_id, carol_id = await account_id(bob), await account_id(carol)
    # Alice knows both by handle: each lookup gives the account's token.
    await alice.add_contact("bob")
    await alice.add_contact("carol")
    assert await _known(alice, bob_id) == _token(bob)
    assert await _known(alice, carol_id) == _token(carol)
    shared = await alice.create_group("Shared", [bob_id, carol_id])
    await alice.flush(FLUSH)
    await bob.sync()
    await carol.sync()
    # Every leaf carries its account's token.
    group = await bob._require().groups.get(shared.group_id)
    assert group is not None
    tokens = {leaf_token(member.extensions) for member in group.members()}
    assert tokens == {_token(alice), _token(bob), _token(carol)}

    # Bob never looked Carol up, has no token of hers stored, and adds her to a new
    # group: the token comes from her leaf in the shared group.
    assert await _known(bob, carol_id) is None
    mark = len(server.wire.exchanges)
    chat = await bob.create_group("New", [carol_id])
    claims = _claims_by(server, bob, mark)
    assert [x.status for x in claims if x.body and carol_id.encode() in x.body] == [200]
    assert not _lookups_by(server, bob, mark)
    assert await _known(bob, carol_id) == _token(carol)
    await bob.send_text(chat.id, "no invite needed")
    await bob.flush(FLUSH)
    await carol.sync()
    assert "New" in {v.name for v in await carol.conversations()}


async def test_a_stranger_with_only_the_account_id_gets_the_typed_error(
    server: InProcessServer,
) -> None:
    alice, dave = await server.client("alice"), await server.client("dave", introduce=False)
    await alice.sync()
    await dave.sync()
    dave_id = await account_id(dave)
    before = {t: await _count(server, t) for t in ("key_packages", "claim_evidence")}
    mark = len(server.wire.exchanges)
    with pytest.raises(ContactTokenError) as caught:
        await alice.create_conversation(dave_id)
    assert caught.value.code == "contact_token_invalid"
    assert caught.value.user_message == (
        "You can't add this person yet: ask them for a new invite link, or for their handle."
    )
    # Refused without a token, and nothing was used or stored, on either side.
    assert [x.status for x in _claims_by(server, alice, mark)] == [403]
    assert {t: await _count(server, t) for t in before} == before
    assert await alice.conversations() == []
    assert await _known(alice, dave_id) is None
    # The sentence is what a UI shows for the failed operation.
    from ui.tasks import user_sentence

    assert user_sentence(caught.value) == caught.value.user_message


async def test_an_invite_link_with_the_token_lets_a_stranger_add_the_account(
    server: InProcessServer,
) -> None:
    alice, dave = await server.client("alice"), await server.client("dave", introduce=False)
    await alice.sync()
    await dave.sync()
    dave_id = await account_id(dave)
    info = await dave.account()
    assert info is not None
    assert parse_address(info.invite_link).token == _token(dave)
    # A link without a handle: the check claims a KeyPackage with the link's token.
    link = invite_link(SERVER_URL, dave_id, None, _token(dave))
    mark = len(server.wire.exchanges)
    await alice.add_contact(link, check=True)
    assert [x.status for x in _claims_by(server, alice, mark)] == [200]
    assert await _known(alice, dave_id) == _token(dave)
    chat = await alice.create_conversation(dave_id)
    await alice.send_text(chat.id, "by the link")
    await alice.flush(FLUSH)
    await dave.sync()
    assert len(await dave.conversations()) == 1


async def test_a_handle_lookup_gives_the_token_and_a_box_that_does_not_open_is_ignored(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, dave = await server.client("alice"), await server.client("dave", introduce=False)
    await alice.sync()
    await dave.sync()
    dave_id = await account_id(dave)
    # The registrations carried the handles' boxes: no handle is set again.
    assert not server.wire.sent("PUT", r.HANDLE)

    # The server sends junk in place of the box: it is ignored.
    real = Transport.look_up_handle

    async def junk(self: Transport, handle: str) -> Any:
        found = await real(self, handle)
        assert found.contact_box is not None
        return dataclasses.replace(found, contact_box=bytes(len(found.contact_box)))

    with monkeypatch.context() as patched:
        patched.setattr(Transport, "look_up_handle", junk)
        await alice.add_contact("dave")
    assert await _known(alice, dave_id) is None
    await alice.add_contact("dave")
    assert await _known(alice, dave_id) == _token(dave)
    chat = await alice.create_conversation(dave_id)
    assert chat.peer_account_id == dave_id


async def test_a_stale_token_is_replaced_by_the_handle_box(server: InProcessServer) -> None:
    alice, dave = await server.client("alice"), await server.client("dave", introduce=False)
    await alice.sync()
    await dave.sync()
    dave_id = await account_id(dave)
    await alice.add_contact("dave")
    now = alice._require().now_ms()
    await alice._store.run(lambda s: s.contact_tokens.set(dave_id, bytes(32), now=now))
    mark = len(server.wire.exchanges)
    await alice.create_conversation(dave_id)
    assert [x.status for x in _claims_by(server, alice, mark)] == [403, 200]
    assert len(_lookups_by(server, alice, mark)) == 1
    assert await _known(alice, dave_id) == _token(dave)


def _as_before(patched: pytest.MonkeyPatch) -> None:
    """The app from before contact tokens: no token in leaves, claims or handles,
    and a contact queue asked for without a kill hash."""

    def none(account: object) -> None:
        return None

    async def no_box(account_private_key: bytes, handle: str) -> None:
        return None

    for module in (contact_tokens, groups, key_packages_module, leaf_addresses, outbox_module):
        patched.setattr(module, "own_token", none)
    patched.setattr(contact_tokens, "registration_box", no_box)
    patched.setattr(contact_queue_module, "_kill_hash", lambda session: None)


async def test_a_profile_from_before_moves_at_its_next_connection(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old:
        _as_before(old)
        alice, bob = await server.client("alice"), await server.client("bob", introduce=False)
        for client in (alice, bob):
            await client.sync()
        bob_id = await account_id(bob)
        await alice.add_contact("bob")
        chat = await alice.create_group("Old", [bob_id])
        await alice.flush(FLUSH)
        await bob.sync()
        await bob.flush(FLUSH)  # Bob's move off the contact queue
        await alice.sync()
    bob_client = bob._require().account.client_id

    async def client_row() -> tuple[Any, int]:
        (row,) = await _rows(
            server,
            "SELECT contact_box, contact_killable FROM clients WHERE client_id = ?",
            bob_client,
        )
        return row[0], int(row[1])

    box, killable = await client_row()
    assert box is not None and killable == 0
    stored = await _rows(server, "SELECT data FROM key_packages WHERE client_id = ?", bob_client)
    assert stored and {bytes(x[0])[:1] for x in stored} == {b"\x01"}
    group = await alice._require().groups.get(chat.group_id)
    assert group is not None
    assert {leaf_token(m.extensions) for m in group.members()} == {None}
    assert await _known(alice, bob_id) is None

    # The update: Bob's next connection.
    contact = bob._require().contact
    assert contact is not None
    await bob.sync()
    box, killable = await client_row()
    assert box is None and killable == 1
    assert bob._require().contact is not None
    assert bob._require().contact.queue_id == contact.queue_id  # the same queue
    stored = await _rows(server, "SELECT data FROM key_packages WHERE client_id = ?", bob_client)
    assert stored and {bytes(x[0])[:1] for x in stored} == {b"\x02"}
    handle_puts = [x for x in server.wire.sent("PUT", r.HANDLE) if x.client == bob_client]
    assert [x.status for x in handle_puts] == [200]
    # Once per profile, a self-update in each group whose leaf lacks the token (the
    # group with Alice and Bob's devices group).
    assert await queue_token_updates(bob._require()) == 2
    assert await queue_token_updates(bob._require()) == 0
    await bob.flush(FLUSH)
    await alice.sync()
    group = await alice._require().groups.get(chat.group_id)
    assert group is not None
    tokens = {m.leaf_index: leaf_token(m.extensions) for m in group.members()}
    assert _token(bob) in tokens.values()
    bob_leaf = next(m for m in group.members() if leaf_token(m.extensions) == _token(bob))
    assert any(e.extension_type == CONTACT_TOKEN_EXTENSION for e in bob_leaf.extensions)
    # Alice's next commit gives her leaf the token too (she was updated as well).
    # And she adds Bob to a new group from his leaf, with no lookup.
    mark = len(server.wire.exchanges)
    await alice.create_group("New", [bob_id])
    assert [x.status for x in _claims_by(server, alice, mark)] == [200]
    assert not _lookups_by(server, alice, mark)
    assert await _known(alice, bob_id) == _token(bob)


async def test_removing_a_device_removes_its_contact_queue(server: InProcessServer) -> None:
    laptop = await server.client("laptop")
    await laptop.sync()
    desktop = await blank(server, "desktop")
    link = await laptop.start_link()
    joining = asyncio.create_task(desktop.link_account(link.code, device_name="Desktop"))
    await bounded(link.wait_offer())
    await laptop.start()  # its outbox sends the Adds
    await bounded(link.approve())
    await bounded(joining)
    await desktop.sync()
    contact = desktop._require().contact
    assert contact is not None
    desktop_client = desktop._require().account.client_id
    (row,) = await _rows(
        server,
        "SELECT contact_box, contact_killable FROM clients WHERE client_id = ?",
        desktop_client,
    )
    assert row[0] is None and int(row[1]) == 1
    await laptop.remove_device(desktop_client)
    removal = [
        x
        for x in server.wire.exchanges
        if x.method == "DELETE" and x.path == r.client_path(desktop_client)
    ]
    assert [x.status for x in removal] == [200]
    # The contact queue went with the device: no key, no entries, refused from now on.
    queues = await _rows(server, "SELECT auth_key FROM queues WHERE queue_id = ?", contact.queue_id)
    assert not queues or queues[0][0] is None
    assert not await _rows(
        server, "SELECT 1 FROM queue_entries WHERE queue_id = ?", contact.queue_id
    )


async def test_on_a_server_from_before_the_registration_goes_without_the_box(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server from before contact tokens refuses the registration's unknown
    ``contact_box`` field (requests are strict): the same proof of work registers
    without it, and the box goes with the handle once the server takes it."""
    real = Transport.register
    refused: list[bool] = []

    async def before(self: Transport, request: Any) -> Any:
        if request.contact_box is not None:
            refused.append(True)
            raise ServerRejectedError("invalid_field", "contact_box: unknown field")
        return await real(self, request)

    monkeypatch.setattr(Transport, "register", before)
    erin = await server.client("erin", introduce=False)
    assert refused == [True]
    erin_id = await account_id(erin)
    puts = [x for x in server.wire.sent("PUT", r.HANDLE) if x.status == 200]
    assert len(puts) == 1  # right after the registration
    alice = await server.client("alice", introduce=False)
    await alice.add_contact("erin")
    assert await _known(alice, erin_id) == _token(erin)
