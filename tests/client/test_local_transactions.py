"""Transactions that need not wait for the disk, and those that must.

A change of this device's alone (a message typed and queued, a send the
server accepted) is committed with ``synchronous = NORMAL``
(:meth:`AsyncStore.local_transaction`); everything else -- MLS state, the
queue cursor before an ack, a statement outside any transaction such as a
KeyPackage's private keys before their upload -- with ``FULL``. The mode is
switched only when it changes, so a burst of local commits costs no extra
statements, and nothing durable ever runs in the relaxed mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger.client.profiles import Profiles
from messenger.client.store import AsyncStore, Keychain, Store

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

pytestmark = pytest.mark.anyio

FULL, NORMAL = 2, 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    profile = Profiles(tmp_path).create("alice")
    opened = await AsyncStore.create(
        profile, PASSPHRASE, keychain=Keychain(backend=MemoryKeyring()), kdf=FAST_KDF
    )
    try:
        yield opened
    finally:
        await opened.close()


def _mode(s: Store) -> int:
    return int(s.db.query_value("PRAGMA synchronous"))


def _mode_inside(s: Store) -> int:
    s.settings.set("touched", 1)
    return _mode(s)


async def test_each_write_runs_in_the_mode_it_needs(store: AsyncStore) -> None:
    assert await store.transaction(_mode_inside) == FULL
    assert await store.local_transaction(_mode_inside) == NORMAL
    assert await store.local_transaction(_mode_inside) == NORMAL
    # A durable transaction after local ones switches back before it begins.
    assert await store.transaction(_mode_inside) == FULL
    assert await store.local_transaction(_mode_inside) == NORMAL

    # A write outside any transaction (e.g. a KeyPackage's keys before upload) is durable.
    def autocommit(s: Store) -> int:
        s.settings.set("alone", 1)
        return _mode(s)

    assert await store.run(autocommit) == FULL


async def test_a_failed_local_transaction_changes_nothing_and_the_next_is_durable(
    store: AsyncStore,
) -> None:
    def broken(s: Store) -> None:
        s.settings.set("half", 1)
        raise RuntimeError("in the middle")

    with pytest.raises(RuntimeError):
        await store.local_transaction(broken)
    assert await store.run(lambda s: s.settings.get("half")) is None
    assert await store.transaction(_mode_inside) == FULL


async def test_local_commits_are_there_after_reopening(store: AsyncStore, tmp_path: Path) -> None:
    for i in range(20):
        await store.local_transaction(lambda s, i=i: s.settings.set(f"queued {i}", i))
    profile = store.profile
    await store.close()
    reopened = await AsyncStore.open(
        profile, passphrase=PASSPHRASE, keychain=Keychain(backend=MemoryKeyring())
    )
    try:
        values = await reopened.run(lambda s: [s.settings.get(f"queued {i}") for i in range(20)])
        assert values == list(range(20))
    finally:
        await reopened.close()
