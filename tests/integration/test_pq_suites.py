"""The hybrid post-quantum suite end to end (docs/pq-suites.md, "Suite choice and migration").

A real server process on loopback; clients with separate stores. New clients
keep KeyPackages in suite 1 and in 0xF001 and make groups in 0xF001 when every
member can join one; a client from before suites (``cipher_suites=(1,)``:
suite-1 KeyPackages only) makes a conversation fall back to suite 1, and
cannot be added to a hybrid group -- the adder gets a typed error naming it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import (
    MessageKind,
    MessengerClient,
    NotAllowedError,
    SuiteNotSupportedError,
)

from .conftest import (
    CLIENT_OPTIONS,
    WAIT,
    Clients,
    ServerProcess,
    eventually,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The server process of this module's tests, on SQLite and on PostgreSQL
    (migration 9 and the per-suite claims run on both)."""
    data = tmp_path_factory.mktemp("server")
    if request.param == "sqlite":
        running = start_server(data)
        try:
            yield running
        finally:
            stop_server(running)
        return
    import secrets

    import asyncpg

    from tests.server.conftest import postgres_dsn, with_search_path

    base, schema = postgres_dsn(), "t_" + secrets.token_hex(6)

    async def sql(statement: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(sql(f"CREATE SCHEMA {schema}"))
    try:
        running = start_server(data, database_url=with_search_path(base, schema))
        try:
            yield running
        finally:
            stop_server(running)
    finally:
        asyncio.run(sql(f"DROP SCHEMA {schema} CASCADE"))


HYBRID = "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519"
CLASSIC = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
OLD = dataclasses.replace(CLIENT_OPTIONS, cipher_suites=(1,))


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=50)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def joined(client: MessengerClient, n: int) -> list[int]:
    async def enough() -> bool:
        return len(await client.conversations()) >= n

    await eventually(enough, f"{n} conversations")
    return sorted(v.id for v in await client.conversations())


async def wait_texts(client: MessengerClient, cid: int, want: list[str]) -> None:
    async def check() -> bool:
        return await texts(client, cid) == want

    await eventually(check, f"messages {want!r}")


async def account_id(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None
    return info.account_id


async def contact(adder: MessengerClient, other: MessengerClient) -> str:
    info = await other.account()
    assert info is not None
    return (await adder.add_contact(info.invite_link)).account_id


async def test_new_clients_talk_in_the_hybrid_suite(clients: Clients) -> None:
    alice = await clients.new("alice")
    bob = await clients.new("bob")
    chat = await alice.create_conversation(await contact(alice, bob))
    assert await alice.cipher_suite(chat.id) == HYBRID
    await alice.send_text(chat.id, "post-quantum hello")
    (bob_chat,) = await joined(bob, 1)
    await wait_texts(bob, bob_chat, ["post-quantum hello"])
    assert await bob.cipher_suite(bob_chat) == HYBRID
    await bob.send_text(bob_chat, "and back")
    await wait_texts(alice, chat.id, ["post-quantum hello", "and back"])


async def test_an_old_client_makes_the_conversation_use_suite_1(clients: Clients) -> None:
    alice = await clients.new("alice")
    old = await clients.new("old", options=OLD)
    carol = await clients.new("carol")
    # The new client asks for the hybrid suite first and gets suite 1.
    chat = await alice.create_conversation(await contact(alice, old))
    assert await alice.cipher_suite(chat.id) == CLASSIC
    await alice.send_text(chat.id, "hi old friend")
    (old_chat,) = await joined(old, 1)
    await wait_texts(old, old_chat, ["hi old friend"])
    await old.send_text(old_chat, "hello from the past")
    await wait_texts(alice, chat.id, ["hi old friend", "hello from the past"])
    # The old client claims suite 1 only, even from a new client.
    back = await old.create_conversation(await contact(old, carol))
    assert await old.cipher_suite(back.id) == CLASSIC
    await old.send_text(back.id, "suite 1 it is")
    (carol_chat,) = await joined(carol, 1)
    await wait_texts(carol, carol_chat, ["suite 1 it is"])


async def test_a_group_with_one_old_member_falls_back_for_everyone(clients: Clients) -> None:
    alice = await clients.new("alice")
    bob = await clients.new("bob")
    old = await clients.new("old", options=OLD)
    members = [await contact(alice, bob), await contact(alice, old)]
    group = await alice.create_group("mixed", members)
    assert await alice.cipher_suite(group.id) == CLASSIC
    await alice.send_text(group.id, "all in suite 1")
    for member in (bob, old):
        (cid,) = await joined(member, 1)
        await wait_texts(member, cid, ["all in suite 1"])
        assert await member.cipher_suite(cid) == CLASSIC


async def test_an_old_client_cannot_be_added_to_a_hybrid_group(clients: Clients) -> None:
    alice = await clients.new("alice")
    bob = await clients.new("bob")
    old = await clients.new("old", options=OLD)
    group = await alice.create_group("pq only", [await contact(alice, bob)])
    assert await alice.cipher_suite(group.id) == HYBRID
    old_id = await contact(alice, old)
    with pytest.raises(SuiteNotSupportedError) as caught:
        await alice.add_members(group.id, [old_id])
    assert caught.value.user_message.endswith(
        "'s app does not support this conversation's encryption yet."
    )
    assert caught.value.user_message != SuiteNotSupportedError.default_user_message
    # Nothing changed: the group goes on without the old client.
    await alice.flush(WAIT)
    assert {m.account_id for m in await alice.members(group.id)} == {
        await account_id(alice),
        await account_id(bob),
    }
    await alice.send_text(group.id, "still here")
    (bob_group,) = await joined(bob, 1)
    await wait_texts(bob, bob_group, ["still here"])
    assert await old.conversations() == []


# -- moving an existing conversation to the hybrid suite (ReInit) -----------------------------


async def test_a_group_moves_to_the_hybrid_suite_and_goes_on(clients: Clients) -> None:
    alice = await clients.new("alice")
    bob = await clients.new("bob")
    carol = await clients.new("carol", options=OLD)  # made while one member was old: suite 1
    group = await alice.create_group(
        "upgrade me", [await contact(alice, bob), await contact(alice, carol)]
    )
    assert await alice.cipher_suite(group.id) == CLASSIC
    await alice.send_text(group.id, "before")
    bob_group = (await joined(bob, 1))[0]
    carol_group = (await joined(carol, 1))[0]
    await wait_texts(bob, bob_group, ["before"])
    await wait_texts(carol, carol_group, ["before"])

    # Carol's app cannot join a hybrid group yet: nothing changes.
    with pytest.raises(SuiteNotSupportedError):
        await alice.upgrade_encryption(group.id)
    assert await alice.cipher_suite(group.id) == CLASSIC

    # Carol updates her app (she keeps hybrid KeyPackages from now on).
    await clients.close(carol)
    carol = await clients.open("carol")

    async def carol_has_hybrid_key_packages() -> bool:
        try:
            await alice.upgrade_encryption(group.id)
        except SuiteNotSupportedError:
            return False
        return True

    await eventually(carol_has_hybrid_key_packages, "the upgrade once Carol has hybrid KeyPackages")
    assert await alice.cipher_suite(group.id) == HYBRID
    for member, cid in ((bob, bob_group), (carol, carol_group)):

        async def moved(member: MessengerClient = member, cid: int = cid) -> bool:
            return await member.cipher_suite(cid) == HYBRID

        await eventually(moved, "the member to continue in the new group")
    # Same conversations, history kept, messages flow in the new group.
    assert len(await alice.conversations()) == 1
    await alice.send_text(group.id, "after")
    await wait_texts(bob, bob_group, ["before", "after"])
    await bob.send_text(bob_group, "from bob")
    await wait_texts(carol, carol_group, ["before", "after", "from bob"])
    await wait_texts(alice, group.id, ["before", "after", "from bob"])
    with pytest.raises(NotAllowedError):
        await alice.upgrade_encryption(group.id)


async def test_the_command_line_upgrades_a_conversation(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    from .test_cli import cli

    data = tmp_path / "cli"
    await cli(data, "create-account", server.url, "--handle", "alicepq")
    bob = await clients.new("bob", handle="bobpq", options=OLD)
    await cli(data, "add-contact", f"bobpq@{server.host}")
    await cli(data, "send", "bobpq", "hello")
    (bob_chat,) = await joined(bob, 1)
    await wait_texts(bob, bob_chat, ["hello"])
    assert await bob.cipher_suite(bob_chat) == CLASSIC

    code, _, err = await cli(data, "upgrade-encryption", "bobpq", check=False)
    assert code == 1 and "app does not support this conversation's encryption yet" in err

    await clients.close(bob)
    bob = await clients.open("bob")  # Bob updates his app

    async def upgraded() -> bool:
        code, out, _ = await cli(data, "upgrade-encryption", "bobpq", check=False)
        return code == 0 and HYBRID in out

    await eventually(upgraded, "the CLI to upgrade the conversation")

    async def bob_moved() -> bool:
        return await bob.cipher_suite(bob_chat) == HYBRID

    await eventually(bob_moved, "Bob's conversation to continue in the hybrid suite")
    await cli(data, "send", "bobpq", "after")
    await wait_texts(bob, bob_chat, ["hello", "after"])


@dataclasses.dataclass
class _CutOff:
    alice: MessengerClient
    bob: MessengerClient
    chat_id: int
    bob_chat: int


async def _upgrade_cut_off(clients: Clients, monkeypatch: pytest.MonkeyPatch) -> _CutOff:
    """Alice and Bob (who updated his app) in a suite-1 chat holding "one"; Alice's
    upgrade commits the ReInit and is cut off before the new group (then restored)."""
    from messenger.client import suite_upgrade

    alice = await clients.new("alice")
    bob = await clients.new("bob", options=OLD)
    chat = await alice.create_conversation(await contact(alice, bob))
    await alice.send_text(chat.id, "one")
    (bob_chat,) = await joined(bob, 1)
    await wait_texts(bob, bob_chat, ["one"])
    await clients.close(bob)
    bob = await clients.open("bob")

    real = suite_upgrade._make_successor

    async def cut_off(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the network went away after the ReInit")

    monkeypatch.setattr(suite_upgrade, "_make_successor", cut_off)

    async def reinit_committed() -> bool:
        try:
            await alice.upgrade_encryption(chat.id)
        except SuiteNotSupportedError:
            return False  # Bob's hybrid KeyPackages are not there yet
        except ConnectionError:
            return True
        return False

    await eventually(reinit_committed, "the ReInit to be committed")
    monkeypatch.setattr(suite_upgrade, "_make_successor", real)
    return _CutOff(alice, bob, chat.id, bob_chat)


async def test_an_upgrade_cut_off_after_its_reinit_is_finished_by_running_it_again(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = await _upgrade_cut_off(clients, monkeypatch)
    assert await c.alice.cipher_suite(c.chat_id) == CLASSIC  # the old group, ended
    await c.alice.upgrade_encryption(c.chat_id)  # finishes the move
    assert await c.alice.cipher_suite(c.chat_id) == HYBRID

    async def bob_moved() -> bool:
        return await c.bob.cipher_suite(c.bob_chat) == HYBRID

    await eventually(bob_moved, "Bob to continue in the new group")
    await c.bob.send_text(c.bob_chat, "two")
    await wait_texts(c.alice, c.chat_id, ["one", "two"])


async def test_messages_sent_while_a_conversation_moves_follow_it(
    clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages queued for the old group -- by the member who upgrades, after the
    ReInit and before the new group, and by a member who merged the ReInit and
    has not joined the new group yet -- are sent in the new group, not failed."""
    from messenger.client import MessageStatus

    c = await _upgrade_cut_off(clients, monkeypatch)
    alice, bob, bob_chat = c.alice, c.bob, c.bob_chat
    await alice.send_text(c.chat_id, "alice meanwhile")
    await bob.send_text(bob_chat, "bob meanwhile")

    async def statuses(client: MessengerClient, cid: int) -> dict[str, MessageStatus | None]:
        return {
            v.message.body or "": v.message.status
            for v in await client.messages(cid, limit=50)
            if v.message.kind is not MessageKind.SYSTEM
        }

    async def both_waiting() -> bool:
        mine, his = await statuses(alice, c.chat_id), await statuses(bob, bob_chat)
        return (
            mine["alice meanwhile"] is MessageStatus.PENDING
            and his["bob meanwhile"] is MessageStatus.PENDING
            and await bob.cipher_suite(bob_chat) == CLASSIC
        )

    await eventually(both_waiting, "both messages to wait for the new group")
    await alice.upgrade_encryption(c.chat_id)
    want = ["alice meanwhile", "bob meanwhile", "one"]
    for client, cid in ((alice, c.chat_id), (bob, bob_chat)):

        async def arrived(client: MessengerClient = client, cid: int = cid) -> bool:
            return sorted(await texts(client, cid)) == want

        await eventually(arrived, "the messages sent meanwhile, in the new group")
    assert await bob.cipher_suite(bob_chat) == HYBRID
    assert (await statuses(alice, c.chat_id))["alice meanwhile"] is not MessageStatus.FAILED
    assert (await statuses(bob, bob_chat))["bob meanwhile"] is not MessageStatus.FAILED
