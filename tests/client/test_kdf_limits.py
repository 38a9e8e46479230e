"""scrypt parameters: a ceiling for everything read, a floor for everything written.

A crafted recovery file or backup used to be able to ask for N = 2**22,
r = 2, p = 16 (1 GiB and minutes of CPU) before the passphrase was even
checked. The ceiling is now checked when the file is parsed, so these tests
replace scrypt with a function that fails the test: nothing may be derived.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

import messenger.client.store.kdf as kdf_module
from messenger.client import (
    BackupCorruptError,
    ClientError,
    Profile,
    Profiles,
    StoreCorruptError,
    export_backup,
    read_backup_info,
    restore_backup,
)
from messenger.client.backup import BACKUP_MAGIC, BackupKdfLimitError
from messenger.client.store import DatabaseKey, Keychain, Store
from messenger.client.store.kdf import (
    DEFAULT_SCRYPT,
    KdfLimitError,
    KdfParamsError,
    ScryptParams,
    check_params_for_new_file,
)
from messenger.client.store.key_wrap import (
    RecoveryFileKdfLimitError,
    read_key_wrap,
    unwrap_key,
    wrap_key,
)

from .helpers import FAST_KDF, PASSPHRASE

BACKUP_PASSPHRASE = "backup passphrase 123"
#: The crafted parameters of the report: 1 GiB and 2**27 of work (128 times the default).
CRAFTED = {"n": 2**22, "r": 2, "p": 16}


@pytest.fixture
def no_scrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything derives a key with scrypt."""

    def scrypt_must_not_run(*args: object, **kwargs: object) -> object:
        pytest.fail("scrypt ran on parameters that should have been refused first")

    monkeypatch.setattr("messenger.client.store.kdf.Scrypt", scrypt_must_not_run)
    yield


def _make_store(profile: Profile, keychain: Keychain) -> None:
    """Create a store with the real (cheap) scrypt, whatever the test patched."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("messenger.client.store.kdf.Scrypt", Scrypt)
        Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF).close()


def _craft_recovery_file(profile: Profile, **params: int) -> None:
    data = json.loads(profile.key_wrap_path.read_text())
    data["kdf"].update(params)
    profile.key_wrap_path.write_text(json.dumps(data))


def _craft_backup(source: Path, target: Path, **params: int) -> None:
    """Copy the backup at ``source`` with other scrypt parameters in its header."""
    raw = source.read_bytes()
    (header_len,) = struct.unpack(">I", raw[8:12])
    header = json.loads(raw[12 : 12 + header_len])
    header["kdf"].update(params)
    new_header = json.dumps(header, sort_keys=True).encode()
    rest = raw[12 + header_len :]
    target.write_bytes(BACKUP_MAGIC + struct.pack(">I", len(new_header)) + new_header + rest)


# -- the ceiling ----------------------------------------------------------------


def test_crafted_recovery_file_is_refused_before_deriving(
    profile: Profile, keychain: Keychain, no_scrypt: None
) -> None:
    _make_store(profile, keychain)
    _craft_recovery_file(profile, **CRAFTED)

    with pytest.raises(KdfLimitError) as caught:
        Store.open(profile, passphrase=PASSPHRASE, keychain=keychain)
    assert isinstance(caught.value, RecoveryFileKdfLimitError)
    assert isinstance(caught.value, StoreCorruptError)  # what callers already handle
    assert isinstance(caught.value, ClientError)
    assert "recovery file" in caught.value.user_message
    assert caught.value.user_message.endswith(".")

    with pytest.raises(RecoveryFileKdfLimitError):
        read_key_wrap(profile.key_wrap_path)


def test_crafted_backup_is_refused_before_deriving(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = tmp_path / "real.msgbackup"
    export_backup(store, made, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    crafted = tmp_path / "crafted.msgbackup"
    _craft_backup(made, crafted, **CRAFTED)

    def scrypt_must_not_run(*args: object, **kwargs: object) -> object:
        pytest.fail("scrypt ran on a backup that should have been refused first")

    monkeypatch.setattr("messenger.client.store.kdf.Scrypt", scrypt_must_not_run)
    profiles = Profiles(tmp_path / "new-machine")
    with pytest.raises(KdfLimitError) as caught:
        restore_backup(crafted, BACKUP_PASSPHRASE, profiles, "restored", "new recovery 123")
    assert isinstance(caught.value, BackupKdfLimitError)
    assert isinstance(caught.value, BackupCorruptError)
    assert caught.value.user_message.startswith("The backup file")
    assert not profiles.exists("restored")
    assert profiles.all() == []

    with pytest.raises(BackupKdfLimitError):
        read_backup_info(crafted, BACKUP_PASSPHRASE)


@pytest.mark.parametrize(
    "params",
    [
        CRAFTED,
        {"n": 2**21, "r": 8, "p": 1},  # n above 2**20 (and 2 GiB)
        {"n": 2**14, "r": 16, "p": 1},  # r above 8
        {"n": 2**14, "r": 8, "p": 17},  # p above 16
        {"n": 2**20, "r": 8, "p": 2},  # 1 GiB, but twice the work ceiling
        {"n": 2**18, "r": 8, "p": 8},  # 256 MiB, but 2**24 of work
        {"n": 2**40, "r": 8, "p": 1},
    ],
)
def test_parameters_above_the_ceiling_are_refused_when_parsed(
    params: dict[str, int], no_scrypt: None
) -> None:
    salt = base64.b64encode(bytes(16)).decode()
    with pytest.raises(KdfLimitError):
        ScryptParams.from_json({"name": "scrypt", "salt": salt, **params})
    with pytest.raises(KdfLimitError):
        ScryptParams(params["n"], params["r"], params["p"])


def test_the_ceiling_leaves_room_above_the_default() -> None:
    for n, r, p in [(2**20, 8, 1), (2**18, 8, 4), (2**17, 8, 8), (2**14, 8, 16)]:
        ScryptParams(n=n, r=r, p=p)  # eight times the default's work is allowed
    salt = base64.b64encode(bytes(16)).decode()
    parsed, _ = ScryptParams.from_json({"name": "scrypt", "salt": salt, "n": 2**17, "r": 8, "p": 1})
    assert parsed == DEFAULT_SCRYPT


def test_derive_key_checks_the_ceiling_itself(no_scrypt: None) -> None:
    """Even parameters that slipped past construction are not derived with."""
    params = ScryptParams(n=2**14, r=8, p=1)
    object.__setattr__(params, "p", 64)  # what no constructor allows
    with pytest.raises(KdfLimitError):
        kdf_module.derive_key(PASSPHRASE, bytes(16), params)


def test_malformed_parameters_are_still_damage(profile: Profile, keychain: Keychain) -> None:
    _make_store(profile, keychain)
    _craft_recovery_file(profile, n=3 * 2**14)  # not a power of two
    with pytest.raises(StoreCorruptError) as caught:
        read_key_wrap(profile.key_wrap_path)
    assert not isinstance(caught.value, KdfLimitError)


# -- the floor (new files only) ------------------------------------------------------------


WEAK = ScryptParams(n=2**10, r=8, p=1)


def test_weak_parameters_are_refused_for_a_new_recovery_file(
    profile: Profile, keychain: Keychain
) -> None:
    with pytest.raises(KdfParamsError, match="below the floor"):
        wrap_key(DatabaseKey.generate(), PASSPHRASE, WEAK)
    with pytest.raises(KdfParamsError):
        Store.create(profile, PASSPHRASE, keychain=keychain, kdf=ScryptParams(n=2**13, r=8))
    assert not profile.key_wrap_path.exists() and not profile.db_path.exists()
    with pytest.raises(KdfParamsError):
        check_params_for_new_file(ScryptParams(n=2**14, r=4))  # 8 MiB


def test_weak_parameters_are_refused_for_a_new_backup(store: Store, tmp_path: Path) -> None:
    target = tmp_path / "weak.msgbackup"
    with pytest.raises(KdfParamsError):
        export_backup(store, target, BACKUP_PASSPHRASE, kdf=WEAK)
    assert not target.exists()
    assert list(tmp_path.glob("*.partial")) == []


def test_the_floor_admits_the_default_and_an_explicit_opt_in() -> None:
    check_params_for_new_file(DEFAULT_SCRYPT)
    check_params_for_new_file(ScryptParams(n=2**14, r=8, p=1))
    check_params_for_new_file(FAST_KDF)  # the tests' cheap parameters say allow_weak=True
    assert FAST_KDF == WEAK  # the opt-in is not part of the parameters
    assert "allow_weak" not in FAST_KDF.to_json(bytes(16))


def test_weak_files_still_open(profile: Profile, keychain: Keychain) -> None:
    """Reading is not floored: a weak file costs nothing and nothing derived leaves."""
    _make_store(profile, keychain)
    wrapped = read_key_wrap(profile.key_wrap_path)
    assert wrapped.params.n == 2**10
    unwrap_key(wrapped, PASSPHRASE)
