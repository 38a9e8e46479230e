"""A restored backup registers as a new device of its account (docs/devices.md §5).

Against the real server app in process (:mod:`.in_process`): Alice has a
device and makes a backup; the backup is restored into a new profile, which
registers a new client signed by the backed-up device's key, certified by
the account key of the backup, and rejoins every group by external commit
(RFC 9420 §12.4.3.2). The device the backup came from keeps working; Bob
sees "Alice added a device" and the same safety number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger.client import MessageStatus, MessengerClient, NoteKind
from messenger.client.errors import DeviceRemovedError
from messenger.client.restore_device import RESTORE_STATE, RESTORE_USER_MESSAGE

from .helpers import FAST_KDF, account_id, texts
from .in_process import InProcessServer
from .restoring import BACKUP_PASSPHRASE, make_backup, open_restored

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def client_id(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None
    return info.client_id


async def notes(client: MessengerClient, conversation_id: int) -> list[NoteKind]:
    return [
        v.note.kind for v in await client.messages(conversation_id, limit=100) if v.note is not None
    ]


async def restored_copy(
    server: InProcessServer, original: MessengerClient, tmp_path: Path, name: str
) -> MessengerClient:
    """A backup of ``original`` restored into a new profile, opened on the server."""
    return await open_restored(server, await make_backup(original, tmp_path, name), tmp_path, name)


async def test_a_restore_is_a_second_device_and_both_receive(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    bob_id, alice_id = await account_id(bob), await account_id(alice)
    chat = await alice.create_conversation(bob_id)
    await alice.send_text(chat.id, "before the backup")
    await alice.flush(FLUSH)
    await bob.sync()
    (bob_view,) = await bob.conversations()
    bob_chat = bob_view.id
    number_before = await bob.safety_number(alice_id)

    copy = await restored_copy(server, alice, tmp_path, "alice-restored")
    old_client = await client_id(alice)
    assert await client_id(copy) == old_client  # until it connects
    await copy.sync()  # registers the new device, rejoins the group, reads its queue

    assert await account_id(copy) == alice_id
    new_client = await client_id(copy)
    assert new_client != old_client
    adds = [x for x in server.wire.sent("POST", "/v1/clients") if x.status == 200]
    assert len(adds) == 1
    assert await texts(copy, chat.id) == ["before the backup"]  # kept from the backup
    copy_chat = await copy.conversation(chat.id)
    assert copy_chat.conversation.left_at is None

    # Bob processes the external commit: a device-added note, the same safety number.
    await bob.sync()
    assert NoteKind.DEVICE_ADDED in await notes(bob, bob_chat)
    assert (await bob.safety_number(alice_id)).number == number_before.number
    # Alice's own devices get no note about each other.
    await alice.sync()
    assert NoteKind.DEVICE_ADDED not in await notes(alice, chat.id)

    # Bob sends: both of Alice's devices receive it. The old device keeps working.
    await bob.send_text(bob_chat, "to both devices")
    await bob.flush(FLUSH)
    await alice.sync()
    await copy.sync()
    assert (await texts(alice, chat.id))[-1] == "to both devices"
    assert (await texts(copy, chat.id))[-1] == "to both devices"
    await alice.send_text(chat.id, "from the old device")
    await alice.flush(FLUSH)
    await copy.sync()
    await bob.sync()
    assert (await texts(copy, chat.id))[-1] == "from the old device"
    assert (await texts(bob, bob_chat))[-1] == "from the old device"
    await copy.send_text(chat.id, "from the new device")
    await copy.flush(FLUSH)
    await bob.sync()
    assert (await texts(bob, bob_chat))[-1] == "from the new device"

    # Done for good: a later start registers nothing more.
    await copy.sync()
    assert len([x for x in server.wire.sent("POST", "/v1/clients") if x.status == 200]) == 1


async def test_a_restore_of_a_removed_device_says_to_link_instead(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice = await server.client("alice")
    backup = tmp_path / "alice.msgbackup"
    await alice.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    first = await restored_copy(server, alice, tmp_path, "first")
    await first.sync()  # a second device of Alice's
    # From that device, Alice removes the one the backups were made on.
    session = first._require()
    await session.transport.remove_client(await client_id(alice))

    second = await restored_copy(server, alice, tmp_path, "second")
    with pytest.raises(DeviceRemovedError) as info:
        await second.sync()
    assert info.value.user_message == RESTORE_USER_MESSAGE
    # Nothing changed: the copy is still the backed-up device, still to register,
    # and its store stays readable.
    assert await client_id(second) == await client_id(alice)
    state = await second._store.run(lambda s: s.settings.get(RESTORE_STATE))
    assert state == {"step": "register"}
    assert await second.conversations() == []


async def test_a_lost_answer_mid_rejoin_resumes_on_the_next_start(
    server: InProcessServer, tmp_path: Path
) -> None:
    """The external commit reached the server, its answer did not: the next attempt
    finds this device's leaf in the GroupInfo and replaces it (RFC 9420 §12.4.3.2)."""
    from messenger.client.errors import NetworkError

    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await account_id(bob))
    await alice.flush(FLUSH)
    await bob.sync()
    (bob_view,) = await bob.conversations()
    copy = await restored_copy(server, alice, tmp_path, "alice-restored")
    server.wire.lose_answer_once(
        lambda request: request.method == "POST" and request.url.path.endswith("/commits")
    )
    with pytest.raises(NetworkError):
        await copy.sync()
    state = await copy._store.run(lambda s: s.settings.get(RESTORE_STATE))
    assert isinstance(state, dict) and state["step"] == "rejoin" and state["done"] == []
    await copy.sync()  # resumes: rejoins, replacing its own leaf of the lost attempt
    assert await copy._store.run(lambda s: s.settings.get(RESTORE_STATE)) is None
    await bob.sync()
    await alice.sync()
    members = await bob.members(bob_view.id)
    assert sorted(m.account_id for m in members) == sorted(
        {await account_id(alice), await account_id(bob)}
    )
    group = await bob._require().groups.get(await group_id(bob, bob_view.id))
    assert group is not None
    from messenger.client.groups import group_members

    clients = [m.client_id for m in group_members(group)]
    assert clients.count(await client_id(copy)) == 1  # one leaf, not two
    assert len(clients) == 3  # Bob, Alice's old device, the restored one
    await bob.send_text(bob_view.id, "after the lost answer")
    await bob.flush(FLUSH)
    await copy.sync()
    assert (await texts(copy, chat.id))[-1] == "after the lost answer"


async def group_id(client: MessengerClient, conversation_id: int) -> bytes:
    view = await client.conversation(conversation_id)
    assert view.conversation.group_id is not None
    return view.conversation.group_id


async def test_a_started_restored_copy_becomes_a_new_device_before_it_sends(
    server: InProcessServer, tmp_path: Path
) -> None:
    """The app's path: start() prepares the device before the outbox and the listener run."""
    import asyncio

    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await account_id(bob))
    await alice.flush(FLUSH)
    await bob.sync()
    (bob_view,) = await bob.conversations()
    queued = await alice.send_text(chat.id, "queued when the backup was made")
    copy = await restored_copy(server, alice, tmp_path, "alice-started")
    await alice.flush(FLUSH)  # the old device sends it itself
    old_client = await client_id(copy)

    def old_sends() -> int:
        """Messages sent under the backed-up device's name (the old device's own
        flush above included)."""
        return len(
            [
                x
                for x in server.wire.exchanges
                if x.method == "POST" and "/messages" in x.path and x.client == old_client
            ]
        )

    before = old_sends()
    await copy.start()
    await copy.wait_online(FLUSH)
    assert await client_id(copy) != old_client
    assert await copy._store.run(lambda s: s.settings.get(RESTORE_STATE)) is None
    # Nothing went out under the backed-up device's name (the new device may
    # already have told the account's other devices about itself).
    assert old_sends() == before
    # The copy's outbox was the old client's: dropped, its message marked failed.
    view = await copy.message(queued.id)
    assert view.message.status is MessageStatus.FAILED
    await bob.send_text(bob_view.id, "pushed to the new device")
    await bob.flush(FLUSH)
    deadline = asyncio.get_running_loop().time() + FLUSH
    while (await texts(copy, chat.id))[-1:] != ["pushed to the new device"]:
        assert asyncio.get_running_loop().time() < deadline, "the message did not arrive"
        await asyncio.sleep(0.01)
