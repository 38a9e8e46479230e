"""Creating and unlocking the store: keyring first, then the recovery passphrase."""

from __future__ import annotations

import json

import keyring
import pytest

from messenger.client import (
    KeyringProblem,
    KeyringUnavailableError,
    PassphraseRequiredError,
    Profile,
    Profiles,
    StoreCorruptError,
    StoreNotFoundError,
    WeakPassphraseError,
    WrongKeyError,
    WrongPassphraseError,
)
from messenger.client.store import Database, DatabaseKey, Keychain, Store, UnlockMethod
from messenger.client.store.key_wrap import read_key_wrap
from messenger.client.store.keychain import KEYRING_SERVICE

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring, add_text, direct_conversation


def _snapshot(profile: Profile) -> dict[str, bytes]:
    """The bytes of every file in the profile directory."""
    return {p.name: p.read_bytes() for p in sorted(profile.path.iterdir()) if p.is_file()}


def _seed(profile: Profile, keychain: Keychain) -> None:
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as store:
        conversation = direct_conversation(store)
        add_text(store, conversation.id, "hello from before")


def _bodies(store: Store) -> list[str | None]:
    conversation = store.conversations.all()[0]
    return [m.body for m in store.messages.latest(conversation.id)]


def test_create_stores_the_key_in_the_keyring_and_reopens_without_passphrase(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as store:
        assert store.unlocked_with is UnlockMethod.CREATED
        assert store.key_in_keyring
        add_text(store, direct_conversation(store).id, "hi")
    assert (KEYRING_SERVICE, profile.id) in memory_keyring.passwords
    with Store.open(profile, keychain=keychain) as store:
        assert store.unlocked_with is UnlockMethod.KEYRING
        assert _bodies(store) == ["hi"]


def test_files_hold_no_plaintext_and_no_key(profile: Profile, keychain: Keychain) -> None:
    _seed(profile, keychain)
    key = keychain.load(profile.id)
    assert key is not None
    for name, data in _snapshot(profile).items():
        assert b"hello from before" not in data, name
        assert key.hex().encode() not in data and key.raw not in data, name
    assert profile.db_path.read_bytes()[:16] != b"SQLite format 3\x00"


def test_wrong_database_key_is_refused_at_open(profile: Profile, keychain: Keychain) -> None:
    _seed(profile, keychain)
    before = _snapshot(profile)
    with pytest.raises(WrongKeyError) as info:
        Database.open(profile.db_path, DatabaseKey.generate())
    assert "file is not a database" in str(info.value)
    assert info.value.user_message
    assert _snapshot(profile) == before


def test_keyring_unavailable_falls_back_to_the_passphrase(
    profile: Profile, no_keyring: None
) -> None:
    keychain = Keychain()
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as store:
        assert not store.key_in_keyring
        add_text(store, direct_conversation(store).id, "offline")
    with pytest.raises(PassphraseRequiredError) as info:
        Store.open(profile, keychain=keychain)
    assert info.value.reason is KeyringProblem.UNAVAILABLE
    with Store.open(profile, passphrase=PASSPHRASE, keychain=keychain) as store:
        assert store.unlocked_with is UnlockMethod.PASSPHRASE
        assert not store.key_in_keyring
        assert _bodies(store) == ["offline"]


def test_missing_keyring_entry_asks_for_the_passphrase_then_repairs(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    memory_keyring.passwords.clear()
    with pytest.raises(PassphraseRequiredError) as info:
        Store.open(profile, keychain=keychain)
    assert info.value.reason is KeyringProblem.MISSING
    with Store.open(profile, passphrase=PASSPHRASE, keychain=keychain) as store:
        assert store.key_in_keyring
    with Store.open(profile, keychain=keychain) as store:
        assert store.unlocked_with is UnlockMethod.KEYRING


def test_stale_keyring_key_falls_back_and_the_keyring_is_repaired(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    stale = DatabaseKey.generate()
    memory_keyring.passwords[(KEYRING_SERVICE, profile.id)] = stale.hex()
    before = _snapshot(profile)
    with pytest.raises(PassphraseRequiredError) as info:
        Store.open(profile, keychain=keychain)
    assert info.value.reason is KeyringProblem.STALE
    assert _snapshot(profile) == before
    with Store.open(profile, passphrase=PASSPHRASE, keychain=keychain) as store:
        assert store.unlocked_with is UnlockMethod.PASSPHRASE
        assert store.key_in_keyring
        assert _bodies(store) == ["hello from before"]
    repaired = keychain.load(profile.id)
    assert repaired is not None and repaired != stale
    with Store.open(profile, keychain=keychain) as store:
        assert store.unlocked_with is UnlockMethod.KEYRING


def test_keyring_entry_that_is_not_a_key_counts_as_missing(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    memory_keyring.passwords[(KEYRING_SERVICE, profile.id)] = "not hex"
    with pytest.raises(PassphraseRequiredError) as info:
        Store.open(profile, keychain=keychain)
    assert info.value.reason is KeyringProblem.MISSING


def test_wrong_passphrase_overwrites_nothing(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    memory_keyring.passwords.clear()
    before = _snapshot(profile)
    writes = memory_keyring.writes
    with pytest.raises(WrongPassphraseError) as info:
        Store.open(profile, passphrase="not the passphrase", keychain=keychain)
    assert info.value.user_message == "The recovery passphrase is wrong."
    assert _snapshot(profile) == before
    assert memory_keyring.writes == writes and not memory_keyring.passwords


def test_the_passphrase_is_checked_even_when_the_keyring_works(
    profile: Profile, keychain: Keychain
) -> None:
    _seed(profile, keychain)
    with pytest.raises(WrongPassphraseError):
        Store.open(profile, passphrase="not the passphrase", keychain=keychain)


def test_change_passphrase(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    with Store.open(profile, keychain=keychain) as store:
        wrap_before = profile.key_wrap_path.read_bytes()
        with pytest.raises(WrongPassphraseError):
            store.change_passphrase("wrong old passphrase", "a brand new passphrase", kdf=FAST_KDF)
        assert profile.key_wrap_path.read_bytes() == wrap_before
        with pytest.raises(WeakPassphraseError):
            store.change_passphrase(PASSPHRASE, "short", kdf=FAST_KDF)
        assert profile.key_wrap_path.read_bytes() == wrap_before
        store.change_passphrase(PASSPHRASE, "a brand new passphrase", kdf=FAST_KDF)
    memory_keyring.passwords.clear()
    with pytest.raises(WrongPassphraseError):
        Store.open(profile, passphrase=PASSPHRASE, keychain=keychain)
    with Store.open(profile, passphrase="a brand new passphrase", keychain=keychain) as store:
        assert _bodies(store) == ["hello from before"]
    assert not list(profile.path.glob("*.tmp"))


def test_passphrase_is_normalized(profile: Profile, keychain: Keychain) -> None:
    composed, decomposed = "pass\u00e9phrase!", "passe\u0301phrase!"
    with Store.create(profile, composed, keychain=keychain, kdf=FAST_KDF):
        pass
    with Store.open(profile, passphrase=decomposed, keychain=keychain):
        pass


def test_weak_passphrase_is_refused_and_nothing_is_created(
    profile: Profile, keychain: Keychain
) -> None:
    with pytest.raises(WeakPassphraseError):
        Store.create(profile, "short", keychain=keychain, kdf=FAST_KDF)
    assert not profile.db_path.exists() and not profile.key_wrap_path.exists()


def test_recovery_file_binds_its_parameters(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    """Editing the KDF parameters (even to valid ones) makes the file fail to open."""
    _seed(profile, keychain)
    memory_keyring.passwords.clear()
    data = json.loads(profile.key_wrap_path.read_text())
    data["kdf"]["n"] = 2**11
    profile.key_wrap_path.write_text(json.dumps(data))
    with pytest.raises(WrongPassphraseError):
        Store.open(profile, passphrase=PASSPHRASE, keychain=keychain)


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"format": "other"}', b"\xff\xfe", b"[]"],
)
def test_damaged_recovery_file(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring, content: bytes
) -> None:
    _seed(profile, keychain)
    memory_keyring.passwords.clear()
    profile.key_wrap_path.write_bytes(content)
    with pytest.raises(StoreCorruptError):
        Store.open(profile, passphrase=PASSPHRASE, keychain=keychain)


def test_recovery_file_with_crafted_costs_is_refused(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    data = json.loads(profile.key_wrap_path.read_text())
    data["kdf"]["n"] = 2**30
    profile.key_wrap_path.write_text(json.dumps(data))
    with pytest.raises(StoreCorruptError):
        read_key_wrap(profile.key_wrap_path)


def test_missing_recovery_file(
    profile: Profile, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    _seed(profile, keychain)
    profile.key_wrap_path.unlink()
    with Store.open(profile, keychain=keychain):  # the keyring still works
        pass
    with pytest.raises(StoreNotFoundError):
        Store.open(profile, passphrase=PASSPHRASE, keychain=keychain)


def test_recovery_file_of_another_profile(
    profiles: Profiles, profile: Profile, keychain: Keychain
) -> None:
    _seed(profile, keychain)
    other = profiles.create("bob")
    _seed(other, keychain)
    profile.key_wrap_path.write_bytes(other.key_wrap_path.read_bytes())
    with pytest.raises(StoreCorruptError):
        Store.open(profile, passphrase=PASSPHRASE, keychain=keychain)


def test_open_without_a_store(profile: Profile, keychain: Keychain) -> None:
    with pytest.raises(StoreNotFoundError):
        Store.open(profile, keychain=keychain)
    assert not profile.db_path.exists()


def test_remember_key_once_a_keyring_appears(profile: Profile, no_keyring: None) -> None:
    with Store.create(profile, PASSPHRASE, keychain=Keychain(), kdf=FAST_KDF) as store:
        assert not store.remember_key()
        assert not store.key_in_keyring
        backend = MemoryKeyring()
        keyring.set_keyring(backend)  # the no_keyring fixture puts the old one back
        assert store.remember_key()
        assert backend.passwords


def test_keychain_maps_any_backend_failure(profile: Profile) -> None:
    class Broken(MemoryKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            raise OSError("dbus went away")

        def set_password(self, service: str, username: str, password: str) -> None:
            raise RuntimeError("locked")

        def delete_password(self, service: str, username: str) -> None:
            raise RuntimeError("locked")

    keychain = Keychain(backend=Broken())
    with pytest.raises(KeyringUnavailableError):
        keychain.load("x")
    assert not keychain.try_save("x", DatabaseKey.generate())
    keychain.forget("x")  # ignored


def test_database_key_hides_itself() -> None:
    key = DatabaseKey.generate()
    assert key.hex() not in repr(key) and key.hex() not in str(key)
    assert key == DatabaseKey(key.raw) and key != DatabaseKey.generate()
    with pytest.raises(TypeError):
        hash(key)
    with pytest.raises(ValueError):
        DatabaseKey(b"short")
    with pytest.raises(ValueError):
        DatabaseKey.from_hex("zz" * 32)
