"""Fixtures for the client tests: an in-memory OS keyring, cheap scrypt, profiles,
the real server in-process.

No test touches the real keyring or the user's data directory: the
``keyring`` fixture installs :class:`MemoryKeyring` process-wide with
``keyring.set_keyring()`` (and puts back what was there), and profiles live
under ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from messenger.client import Profile, Profiles
from messenger.client.store import Keychain, Store

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring
from .in_process import InProcessServer, in_process_server


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """A fresh in-memory keyring, installed process-wide for the test."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """keyring's fail backend, as on a machine without a desktop session."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def keychain(memory_keyring: MemoryKeyring) -> Keychain:
    return Keychain()


@pytest.fixture
def profiles(tmp_path: Path) -> Profiles:
    return Profiles(tmp_path / "data")


@pytest.fixture
def profile(profiles: Profiles) -> Profile:
    return profiles.create("alice")


@pytest.fixture
def store(profile: Profile, keychain: Keychain) -> Iterator[Store]:
    """A new, open store at the newest schema, its key in the memory keyring."""
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as s:
        yield s


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[InProcessServer]:
    """The real server (``create_app``) in-process, through httpx's ASGI transport."""
    async with in_process_server(tmp_path) as running:
        yield running
