"""Encrypted backups: export, restore on a "new machine", and damaged files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import keyring
import pytest

from messenger.client import (
    BackupCorruptError,
    BackupError,
    BackupVersionError,
    ProfileExistsError,
    Profiles,
    WeakPassphraseError,
    WrongBackupPassphraseError,
    WrongPassphraseError,
    export_backup,
    read_backup_info,
    restore_backup,
)
from messenger.client.backup import BACKUP_MAGIC
from messenger.client.restore_device import RESTORE_STATE
from messenger.client.store import (
    ConversationKind,
    Identity,
    Keychain,
    MessageKind,
    OutboxKind,
    Store,
    UnlockMethod,
)
from messenger.client.store.migrations import LATEST_VERSION

from .helpers import FAST_KDF, ME, PASSPHRASE, MemoryKeyring, add_text, direct_conversation

BACKUP_PASSPHRASE = "backup passphrase 123"
NEW_RECOVERY = "new machine passphrase"


def _fill(store: Store) -> None:
    store.identity.save(
        Identity(
            server_url="https://chat.example",
            account_id="acct-me",
            client_id="client-1",
            queue_id="queue-1",
            cipher_suite=1,
            signature_private_key=b"\x11" * 32,
            signature_public_key=b"\x22" * 32,
            credential=b"cred",
            created_at=1,
        )
    )
    store.settings.set("sync.cursor", 77)
    store.contacts.upsert("acct-peer", handle="peer", now=1)
    store.contacts.save_client("acct-peer", "phone", b"key", now=1)
    direct = direct_conversation(store, "acct-peer", group_id=b"group-direct")
    team = store.conversations.create(b"group-team", ConversationKind.GROUP, title="Team", now=1)
    store.conversations.add_member(team.id, "acct-peer", joined_at=1)
    store.groups.save(b"group-direct", 3, b"mls-state-direct", now=1)
    store.key_packages.add(b"kp-ref", b"kp-bundle", created_at=1, expires_at=10**12)
    first = add_text(store, direct.id, "a secret rendezvous at noon")
    reply = add_text(
        store, direct.id, "ok", sender=ME, kind=MessageKind.REPLY, reply_to_uid=first.uid
    )
    store.reactions.add(first.id, ME, "👍", at=3)
    store.read_markers.mark_read(direct.id, ME, first.id, at=4)
    store.outbox.enqueue(
        OutboxKind.MESSAGE, b"ciphertext", group_id=b"group-direct", message_id=reply.id, now=5
    )
    for i in range(300):  # more than one 64 KiB chunk of database
        add_text(store, team.id, f"team message {i} " + "filler " * 40)


def _dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    tables = [
        "identity",
        "settings",
        "contacts",
        "contact_clients",
        "conversations",
        "conversation_members",
        "mls_groups",
        "key_packages",
        "messages",
        "reactions",
        "read_markers",
        "outbox",
    ]
    return {t: store.db.query(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}


@pytest.fixture
def backup_file(store: Store, tmp_path: Path) -> Path:
    _fill(store)
    path = tmp_path / "alice.msgbackup"
    export_backup(store, path, BACKUP_PASSPHRASE, kdf=FAST_KDF, now_ms=1234)
    return path


def test_round_trip_to_a_new_machine(store: Store, backup_file: Path, tmp_path: Path) -> None:
    original = _dump(store)
    data = backup_file.read_bytes()
    assert data.startswith(BACKUP_MAGIC)
    assert b"secret rendezvous" not in data and b"mls-state-direct" not in data

    info = read_backup_info(backup_file, BACKUP_PASSPHRASE)
    assert (info.profile_name, info.schema_version, info.exported_at) == (
        "alice",
        LATEST_VERSION,
        1234,
    )

    # Another machine: another data directory and an empty keyring of its own.
    previous = keyring.get_keyring()
    new_keyring = MemoryKeyring()
    keyring.set_keyring(new_keyring)
    try:
        new_profiles = Profiles(tmp_path / "other-machine")
        restored = restore_backup(
            backup_file, BACKUP_PASSPHRASE, new_profiles, "alice", NEW_RECOVERY, kdf=FAST_KDF
        )
        assert restored.id != store.profile.id
        assert [p.name for p in new_profiles.all()] == ["alice"]
        assert sorted(p.name for p in restored.path.iterdir()) == [
            "profile.json",
            "store.db",
            "store.key",
        ]
        with Store.open(restored) as copy:
            assert copy.unlocked_with is UnlockMethod.KEYRING
            # The same, and marked to register as a new device when it connects.
            assert copy.settings.get(RESTORE_STATE) == {"step": "register"}
            assert copy.settings.delete(RESTORE_STATE)
            assert _dump(copy) == original
            assert [h.message.body for h in copy.messages.search("rendezvous")] == [
                "a secret rendezvous at noon"
            ]
        new_keyring.passwords.clear()
        with pytest.raises(WrongPassphraseError):
            Store.open(restored, passphrase=PASSPHRASE)
        with Store.open(restored, passphrase=NEW_RECOVERY) as copy:
            assert copy.unlocked_with is UnlockMethod.PASSPHRASE
        new_key = Keychain().load(restored.id)
    finally:
        keyring.set_keyring(previous)
    old_key = Keychain().load(store.profile.id)
    assert new_key is not None and old_key is not None and new_key != old_key


def test_restore_next_to_the_original(
    store: Store, backup_file: Path, profiles: Profiles, keychain: Keychain
) -> None:
    with pytest.raises(ProfileExistsError):
        restore_backup(
            backup_file, BACKUP_PASSPHRASE, profiles, "ALICE", NEW_RECOVERY, kdf=FAST_KDF
        )
    copy = restore_backup(
        backup_file, BACKUP_PASSPHRASE, profiles, "alice-copy", NEW_RECOVERY, kdf=FAST_KDF
    )
    with Store.open(copy, keychain=keychain) as restored:
        assert restored.messages.search("rendezvous")
    with Store.open(store.profile, keychain=keychain):
        pass


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_wrong_backup_passphrase_leaves_no_trace(
    backup_file: Path, profiles: Profiles, memory_keyring: MemoryKeyring
) -> None:
    before, entries = _tree(profiles.data_dir), dict(memory_keyring.passwords)
    with pytest.raises(WrongBackupPassphraseError) as info:
        restore_backup(
            backup_file, "not the passphrase", profiles, "bob", NEW_RECOVERY, kdf=FAST_KDF
        )
    assert info.value.user_message == "The backup passphrase is wrong."
    with pytest.raises(WrongBackupPassphraseError):
        read_backup_info(backup_file, "not the passphrase")
    assert _tree(profiles.data_dir) == before
    assert memory_keyring.passwords == entries


def _frames(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Offset of the first chunk, and (offset, length) of every chunk."""
    (header_len,) = struct.unpack(">I", data[8:12])
    start = pos = 12 + header_len + 32
    chunks = []
    while pos < len(data):
        (word,) = struct.unpack(">I", data[pos : pos + 4])
        length = word & 0x7FFF_FFFF
        chunks.append((pos, length))
        pos += 4 + length
    return start, chunks


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def _damaged(data: bytes) -> dict[str, bytes]:
    start, chunks = _frames(data)
    assert len(chunks) > 2
    last_pos, _ = chunks[-1]
    second_pos, second_len = chunks[1]
    return {
        "empty": b"",
        "not a backup": b"PK\x03\x04 a zip file",
        "magic only": BACKUP_MAGIC,
        "truncated header": data[:20],
        "truncated in a chunk": data[: second_pos + 10],
        "last chunk cut off": data[:last_pos],
        "flipped ciphertext bit": _flip(data, second_pos + 4 + second_len // 2),
        "flipped last flag": data[:last_pos]
        + bytes([data[last_pos] ^ 0x80])
        + data[last_pos + 1 :],
        "chunks swapped": data[:start]
        + data[chunks[1][0] : chunks[2][0]]
        + data[chunks[0][0] : chunks[1][0]]
        + data[chunks[2][0] :],
        "trailing data": data + b"\x00",
        "huge chunk length": data[:second_pos] + b"\x7f\xff\xff\xff" + data[second_pos + 4 :],
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "not a backup",
        "magic only",
        "truncated header",
        "truncated in a chunk",
        "last chunk cut off",
        "flipped ciphertext bit",
        "flipped last flag",
        "chunks swapped",
        "trailing data",
        "huge chunk length",
    ],
)
def test_damaged_backup_is_refused_and_leaves_no_trace(
    backup_file: Path, profiles: Profiles, memory_keyring: MemoryKeyring, case: str
) -> None:
    damaged = backup_file.with_name("damaged")
    damaged.write_bytes(_damaged(backup_file.read_bytes())[case])
    before, entries = _tree(profiles.data_dir), dict(memory_keyring.passwords)
    with pytest.raises(BackupCorruptError):
        restore_backup(damaged, BACKUP_PASSPHRASE, profiles, "bob", NEW_RECOVERY, kdf=FAST_KDF)
    assert _tree(profiles.data_dir) == before
    assert memory_keyring.passwords == entries


def _rewrite_header(data: bytes, change: dict[str, object]) -> bytes:
    (header_len,) = struct.unpack(">I", data[8:12])
    header = json.loads(data[12 : 12 + header_len])
    header.update(change)
    new = json.dumps(header).encode()
    return BACKUP_MAGIC + struct.pack(">I", len(new)) + new + data[12 + header_len :]


def test_header_edits_are_detected(backup_file: Path, profiles: Profiles) -> None:
    data = backup_file.read_bytes()
    target = backup_file.with_name("edited")
    target.write_bytes(_rewrite_header(data, {"version": 2}))
    with pytest.raises(BackupVersionError):
        restore_backup(target, BACKUP_PASSPHRASE, profiles, "bob", NEW_RECOVERY, kdf=FAST_KDF)
    target.write_bytes(_rewrite_header(data, {"chunk_size": 1 << 30}))
    with pytest.raises(BackupCorruptError):
        read_backup_info(target, BACKUP_PASSPHRASE)
    # A valid-looking but altered header fails the check value.
    target.write_bytes(_rewrite_header(data, {"chunk_size": 1 << 12}))
    with pytest.raises(WrongBackupPassphraseError):
        read_backup_info(target, BACKUP_PASSPHRASE)
    assert [p.name for p in profiles.all()] == ["alice"]


def test_export_replaces_the_destination_atomically(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "b"
    path.write_bytes(b"old")
    export_backup(store, path, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    assert path.read_bytes().startswith(BACKUP_MAGIC)
    assert [p.name for p in tmp_path.iterdir() if p.name != "data"] == ["b"]
    with pytest.raises(WeakPassphraseError):
        export_backup(store, path, "short", kdf=FAST_KDF)


def test_export_to_an_unwritable_place(store: Store, tmp_path: Path) -> None:
    with pytest.raises(BackupError):
        export_backup(store, tmp_path / "missing-dir" / "b", BACKUP_PASSPHRASE, kdf=FAST_KDF)


def test_restore_of_a_missing_file(profiles: Profiles, tmp_path: Path) -> None:
    with pytest.raises(BackupError):
        restore_backup(
            tmp_path / "nope", BACKUP_PASSPHRASE, profiles, "bob", NEW_RECOVERY, kdf=FAST_KDF
        )
    assert profiles.all() == []


def test_full_disk_while_exporting(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from messenger.client import DiskFullError

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFullError):
        export_backup(store, tmp_path / "b", BACKUP_PASSPHRASE, kdf=FAST_KDF)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
