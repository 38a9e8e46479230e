"""A restored backup takes the device over; the old copy is told and stops.

A real server process on loopback, clients with separate stores. Bob backs
up his profile and restores it on "another computer". Both copies hold the
same client key and read the same server queue: without the takeover they
would silently split Bob's messages. With it, the restored copy is the only
one the server serves, receives everything from then on, and the old copy
gets ``ConnectionState.REPLACED`` and stops syncing.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from messenger.client import (
    ConnectionState,
    ConnectionStateChanged,
    MessageKind,
    MessageStatus,
    MessengerClient,
)
from messenger.client.backup import restore_backup
from messenger.client.cli import RESTORE_TAKEOVER
from messenger.client.errors import DeviceReplacedError
from messenger.client.profiles import Profiles

from .conftest import FAST_KDF, PASSPHRASE, WAIT, Clients, ServerProcess, eventually, keychain
from .test_cli_new_user import Lines, _command, _env, ok, run_cli, wait_until

pytestmark = pytest.mark.anyio

BACKUP_PASSPHRASE = "takeover backup passphrase"
REPLACED = "This account was restored on another computer. This copy no longer receives messages."


async def _texts(client: MessengerClient, cid: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(cid, limit=200)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def _wait_texts(client: MessengerClient, cid: int, expected: list[str], what: str) -> None:
    async def check() -> bool:
        return await _texts(client, cid) == expected

    await eventually(check, what)


async def _only_conversation(client: MessengerClient) -> int:
    async def joined() -> bool:
        return len(await client.conversations()) == 1

    await eventually(joined, "the conversation to be joined")
    return (await client.conversations())[0].id


async def _restore(clients: Clients, backup: Path, name: str) -> MessengerClient:
    """Restore ``backup`` into a new profile ``name`` on "another computer"; open it."""
    await asyncio.to_thread(
        restore_backup,
        backup,
        BACKUP_PASSPHRASE,
        Profiles(clients.data_dir(name)),
        name,
        PASSPHRASE,
        keychain=keychain(),
        kdf=FAST_KDF,
    )
    return await clients.open(name, start=False)


async def _replaced(events: object) -> ConnectionStateChanged:
    """The first REPLACED state change in ``events`` (a client's subscription)."""

    async def first() -> ConnectionStateChanged:
        async for event in events:  # type: ignore[attr-defined]
            if isinstance(event, ConnectionStateChanged) and (
                event.state is ConnectionState.REPLACED
            ):
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(first(), WAIT)


async def _pair(clients: Clients, tag: str) -> tuple[MessengerClient, MessengerClient, int, int]:
    """Alice and Bob in a one-to-one conversation with one message: (alice, bob, ids)."""
    alice = await clients.new(f"alice{tag}", handle=f"alice{tag}")
    bob = await clients.new(f"bob{tag}", handle=f"bob{tag}")
    contact = await alice.add_contact(f"bob{tag}")
    conversation = await alice.create_conversation(contact.account_id)
    await alice.send_text(conversation.id, "before the backup")
    bob_cid = await _only_conversation(bob)
    await _wait_texts(bob, bob_cid, ["before the backup"], "Bob to get the first message")
    return alice, bob, conversation.id, bob_cid


async def test_the_restored_copy_takes_over_and_the_old_one_stops(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, alice_cid, bob_cid = await _pair(clients, "to")
    backup = tmp_path / "bob.backup"
    await bob.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    # Bob's first computer is off while he restores on the second one.
    await clients.close(bob)
    await alice.send_text(alice_cid, "while the old computer was off")

    restored = await _restore(clients, backup, "bobto-restored")
    await restored.start()
    await restored.wait_online(WAIT)
    # Nothing was lost: what waited on the server reached the restored copy.
    await _wait_texts(
        restored,
        bob_cid,
        ["before the backup", "while the old computer was off"],
        "the restored copy to catch up",
    )

    # The first computer comes back: both copies run. The old one is told, and stops.
    old = await clients.open("bobto", start=False)
    old_events = old.events()
    await old.start()
    event = await _replaced(old_events)
    assert event.error == REPLACED
    with pytest.raises(DeviceReplacedError) as info:
        await old.sync()
    assert info.value.user_message == REPLACED
    # What is typed on the old copy stays queued there: its outbox stopped
    # (no retries against the server), and nothing is marked failed or lost.
    typed = await old.send_text(bob_cid, "typed on the old computer")
    with pytest.raises(DeviceReplacedError):
        await old.flush(WAIT)
    kept = await old.message(typed.id)
    assert kept.message.status is MessageStatus.PENDING

    # New messages go to the restored copy only, and it can answer.
    await alice.send_text(alice_cid, "after the takeover")
    await _wait_texts(
        restored,
        bob_cid,
        ["before the backup", "while the old computer was off", "after the takeover"],
        "the restored copy to get the new message",
    )
    assert await _texts(old, bob_cid) == ["before the backup", "typed on the old computer"]
    await restored.send_text(bob_cid, "answered from the restored copy")
    await _wait_texts(
        alice,
        alice_cid,
        [
            "before the backup",
            "while the old computer was off",
            "after the takeover",
            "answered from the restored copy",
        ],
        "Alice to get the answer",
    )

    # The restored copy keeps its device across restarts.
    await clients.close(restored)
    restored = await clients.open("bobto-restored")
    await restored.wait_online(WAIT)
    await alice.send_text(alice_cid, "after the restart")
    await _wait_texts(
        restored,
        bob_cid,
        [
            "before the backup",
            "while the old computer was off",
            "after the takeover",
            "answered from the restored copy",
            "after the restart",
        ],
        "the restarted copy to get the message",
    )
    assert await _texts(old, bob_cid) == ["before the backup", "typed on the old computer"]


async def test_a_running_old_copy_is_cut_off_when_the_restored_one_connects(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, alice_cid, bob_cid = await _pair(clients, "run")
    await bob.wait_online(WAIT)
    backup = tmp_path / "bob.backup"
    await bob.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    old_events = bob.events()

    restored = await _restore(clients, backup, "bobrun-restored")
    await restored.start()
    # The old copy's open push socket is closed by the server: it stops at once.
    event = await _replaced(old_events)
    assert event.error == REPLACED
    await restored.wait_online(WAIT)
    for i in range(3):
        await alice.send_text(alice_cid, f"after the takeover {i}")
    await _wait_texts(
        restored,
        bob_cid,
        ["before the backup", *(f"after the takeover {i}" for i in range(3))],
        "the restored copy to get every new message",
    )
    assert await _texts(bob, bob_cid) == ["before the backup"]


async def test_the_command_line_says_what_happened(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    await asyncio.to_thread(ok, data, "carol", "create-account", server.url, "--handle", "carolto")
    backup = tmp_path / "carol.backup"
    await asyncio.to_thread(ok, data, "carol", "backup", str(backup))
    elsewhere = tmp_path / "other-computer"
    out = await asyncio.to_thread(ok, elsewhere, "carol", "restore", str(backup))
    assert "Restored into profile 'carol'." in out and RESTORE_TAKEOVER in out
    # The restored copy connects (and so takes over); then the old one listens.
    restored = subprocess.Popen(
        _command(elsewhere, "carol", "listen", "--timeout", str(WAIT * 3)),
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    restored_err = Lines(restored.stderr)
    try:
        wait_until(lambda: restored_err.count("connected") == 1, "the restored copy to connect")
    finally:
        restored.terminate()
        restored.wait(WAIT)
        restored_err.close()
    listener = subprocess.Popen(
        _command(data, "carol", "listen", "--timeout", str(WAIT * 3)),
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    err = Lines(listener.stderr)
    try:
        wait_until(lambda: err.count(REPLACED) == 1, "listen to say the copy was replaced")
        assert listener.wait(WAIT) == 1  # it stops by itself
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
        err.close()
        assert listener.stdout is not None
        listener.stdout.close()
    code, _, sync_err = await asyncio.to_thread(run_cli, data, "carol", "sync")
    assert code == 1 and REPLACED in sync_err
    # Reading still shows what the old copy has, saying why it is not current.
    code, _, history_err = await asyncio.to_thread(run_cli, data, "carol", "conversations")
    assert code == 0 and f"{REPLACED} (showing what this copy has)" in history_err
