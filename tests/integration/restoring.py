"""What the tests of restored backups share: reading a conversation's texts and
restoring a backup into a new profile, as on another computer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from messenger.client import MessageKind, MessengerClient
from messenger.client.backup import restore_backup
from messenger.client.profiles import Profiles

from .conftest import FAST_KDF, PASSPHRASE, Clients, eventually, keychain


async def texts(client: MessengerClient, cid: int) -> list[str]:
    """The bodies of the conversation's messages (system notes left out)."""
    return [
        v.message.body or ""
        for v in await client.messages(cid, limit=200)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def wait_texts(client: MessengerClient, cid: int, expected: list[str], what: str) -> None:
    """Wait until the conversation holds exactly ``expected``."""

    async def check() -> bool:
        return await texts(client, cid) == expected

    await eventually(check, what)


async def restore(
    clients: Clients, backup: Path, backup_passphrase: str, name: str
) -> MessengerClient:
    """Restore ``backup`` into a new profile ``name`` on "another computer"; open it."""
    await asyncio.to_thread(
        restore_backup,
        backup,
        backup_passphrase,
        Profiles(clients.data_dir(name)),
        name,
        PASSPHRASE,
        keychain=keychain(),
        kdf=FAST_KDF,
    )
    return await clients.open(name, start=False)
