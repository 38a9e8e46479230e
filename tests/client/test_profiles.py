"""Profiles: data directory, naming, listing, deleting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from messenger.client import (
    InvalidProfileNameError,
    ProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
    Profiles,
    default_data_dir,
)
from messenger.client.profiles import HOME_ENV
from messenger.client.store import Keychain, Store

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring


def test_data_dir_from_env_or_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home"
    assert Profiles().root == tmp_path / "home" / "profiles"
    monkeypatch.delenv(HOME_ENV)
    assert default_data_dir().name == "Messenger"


def test_create_list_get_delete(
    profiles: Profiles, keychain: Keychain, memory_keyring: MemoryKeyring
) -> None:
    assert profiles.all() == []
    alice = profiles.create("alice", now_ms=5)
    bob = profiles.create("Bob Work")
    assert [p.name for p in profiles.all()] == ["Bob Work", "alice"]
    assert [p.name for p in profiles] == ["Bob Work", "alice"]
    assert profiles.get("alice") == alice and alice.created_at == 5
    assert alice.id != bob.id and len(alice.id) == 32
    assert alice.db_path.parent == alice.path == profiles.root / "alice"
    if os.name == "posix":
        assert alice.path.stat().st_mode & 0o777 == 0o700
        assert alice.metadata_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ProfileExistsError):
        profiles.create("alice")
    with pytest.raises(ProfileExistsError):
        profiles.create("ALICE")  # case-insensitive file systems
    assert profiles.exists("Alice") and not profiles.exists("carol")

    with Store.create(alice, PASSPHRASE, keychain=keychain, kdf=FAST_KDF):
        pass
    assert memory_keyring.passwords
    profiles.delete("alice", keychain=keychain)
    assert not memory_keyring.passwords
    assert not alice.path.exists()
    with pytest.raises(ProfileNotFoundError):
        profiles.get("alice")
    with pytest.raises(ProfileNotFoundError):
        profiles.delete("alice")
    again = profiles.create("alice")
    assert again.id != alice.id  # a new keyring entry, never the old key


@pytest.mark.parametrize(
    "name",
    [
        "",
        " alice",
        "alice ",
        "alice.",
        ".hidden",
        "../evil",
        "a/b",
        "a\\b",
        "con",
        "NUL.txt",
        "x" * 65,
        "ü",
    ],
)
def test_invalid_names(profiles: Profiles, name: str) -> None:
    with pytest.raises(InvalidProfileNameError) as info:
        profiles.create(name)
    assert info.value.user_message
    assert not profiles.root.exists() or list(profiles.root.iterdir()) == []


def test_damaged_profiles_are_skipped_by_listing(profiles: Profiles) -> None:
    profiles.create("good")
    bad = profiles.root / "bad"
    bad.mkdir()
    (bad / "profile.json").write_text("{not json")
    (profiles.root / "stray-file").write_text("x")
    assert [p.name for p in profiles.all()] == ["good"]
    with pytest.raises(ProfileError):
        profiles.get("bad")


def test_newer_profile_format_is_refused(profiles: Profiles) -> None:
    profile = profiles.create("future")
    data = json.loads(profile.metadata_path.read_text())
    data["version"] = 99
    profile.metadata_path.write_text(json.dumps(data))
    with pytest.raises(ProfileError) as info:
        profiles.get("future")
    assert "newer version" in info.value.user_message
