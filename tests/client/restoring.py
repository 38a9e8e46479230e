"""What the in-process tests of restored backups share: making a backup and
opening its restored copy on the in-process server, as on another computer."""

from __future__ import annotations

from pathlib import Path

from messenger.client import ClientOptions, MessengerClient, Profiles
from messenger.client.backup import restore_backup
from messenger.client.net import Backoff
from messenger.client.store import Keychain

from .helpers import FAST_KDF, MemoryKeyring
from .in_process import InProcessServer, WireTap, _InProcessTransport

BACKUP_PASSPHRASE = "a backup passphrase for the tests"
RECOVERY = "a recovery passphrase for the copy"


async def make_backup(client: MessengerClient, tmp_path: Path, name: str) -> Path:
    """A backup of ``client`` in ``tmp_path``."""
    backup = tmp_path / f"{name}.msgbackup"
    await client.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    return backup


async def open_restored(
    server: InProcessServer, backup: Path, tmp_path: Path, name: str
) -> MessengerClient:
    """``backup`` restored into a new profile ``name``, opened on ``server`` (not started)."""
    keychain = Keychain(backend=MemoryKeyring())
    profiles = Profiles(tmp_path / "restored" / name)
    profile = restore_backup(
        backup, BACKUP_PASSPHRASE, profiles, name, RECOVERY, keychain=keychain, kdf=FAST_KDF
    )
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    options = ClientOptions(
        http_transport=WireTap(server.wire, inner),
        backoff=Backoff(base=0.01, maximum=0.05),
        timeout=10.0,
    )
    copy = await MessengerClient.open(profile, keychain=keychain, options=options)
    server.opened.append(copy)
    return copy
