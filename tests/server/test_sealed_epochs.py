"""A group's epoch is sealed at rest (server migration 17): a copy of the
database does not show how many commits a group had."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from messenger.api.errors import ApiError, ErrorCode
from messenger.server.group_epochs import GroupEpochs
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .client import ApiClient, send_token_hash
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import (
    assert_start_refused_with_another_key,
    columns,
    insert_group_row,
    rows,
    schema_at,
)

pytestmark = pytest.mark.anyio

GID = b"E" * 32
OTHER_GID = b"F" * 32


async def _epochs(server: TestServer) -> dict[bytes, tuple[int, int | None]]:
    async def op(tx: Tx) -> dict[bytes, tuple[int, int | None]]:
        found = await tx.fetchall("SELECT group_id, epoch_box FROM mls_groups")
        return {bytes(g): server.state.group_epochs.open(bytes(g), box) for g, box in found}

    return await server.state.db.read(op)


async def _plain(server: TestServer) -> list[tuple[object, object]]:
    names = await columns(server, "mls_groups")
    found = await rows(server, "mls_groups")
    return [(r[names.index("epoch")], r[names.index("group_info_epoch")]) for r in found]


def test_an_epoch_box_opens_only_for_its_own_group_and_key() -> None:
    epochs = GroupEpochs(os.urandom(32))
    box = epochs.seal(GID, 7, 6)
    assert epochs.open(GID, box) == (7, 6)
    assert epochs.open(GID, epochs.seal(GID, 0, None)) == (0, None)
    assert len(epochs.seal(GID, 0, None)) == len(box), "every box has the same size"
    with pytest.raises(StorageError):  # copied into another group's row
        epochs.open(OTHER_GID, box)
    with pytest.raises(StorageError):  # another server's key
        GroupEpochs(os.urandom(32)).open(GID, box)
    with pytest.raises(StorageError):
        epochs.open(GID, None)
    with pytest.raises(ValueError):
        epochs.seal(GID, -1, None)


async def test_the_database_shows_no_epoch(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    await alice.start_group(GID, bob, group_info=True)
    members = [alice.me.queue_id, bob.me.queue_id]
    await bob.commit(GID, 1, mls_data.commit(GID, 1), members)
    await alice.commit(GID, 2, mls_data.commit(GID, 2), members)
    stored_info = mls_data.group_info(GID, 3)
    await alice.put_group_info(GID, 3, stored_info)
    assert await _plain(server) == [(0, None)]
    assert await _epochs(server) == {GID: (3, 3)}
    # The running server still orders commits by epoch.
    with pytest.raises(ApiError) as stale:
        await bob.commit(GID, 2, mls_data.commit(GID, 2), members)
    assert stale.value.code is ErrorCode.STALE_EPOCH
    assert stale.value.details["current_epoch"] == 3
    info = await bob.group_info(GID)
    assert (info.epoch, info.group_info) == (3, stored_info)
    sent = mls_data.application(GID, 3, b"still here")
    assert (await bob.send(GID, sent)).recipients == 2


async def test_migration_17_seals_every_epoch(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-16 database with plain epochs (one group with a GroupInfo,
    more groups than one batch without): after the upgrade every epoch is
    sealed, the plain columns are cleared, and the groups go on from their
    epoch."""
    clock = FakeClock(start=1_900_000_000.0)
    with schema_at(monkeypatch, 16):
        async with server_factory(clock=clock) as old:
            alice = await old.registered()
            bob = await old.registered()
            others = [os.urandom(32) for _ in range(250)]

            async def legacy_rows(tx: Tx) -> None:
                box = old.state.member_sets.seal(GID, [alice.me.queue_id, bob.me.queue_id])
                await tx.execute(
                    "INSERT INTO mls_groups (group_id, epoch, group_info, group_info_epoch, "
                    "group_info_sealed, send_token_hash, members_box) "
                    "VALUES (?, 5, ?, 5, 1, ?, ?)",
                    GID,
                    old.state.delivery._sealed_info(GID, mls_data.group_info(GID, 5)),
                    send_token_hash(GID, 5),
                    box,
                )
                await tx.executemany(
                    "INSERT INTO mls_groups (group_id, epoch, members_box) VALUES (?, ?, ?)",
                    [(g, i, old.state.member_sets.seal(g, [])) for i, g in enumerate(others)],
                )

            await old.state.db.transaction(legacy_rows)
    async with server_factory(clock=clock) as new:
        assert set(await _plain(new)) == {(0, None)}
        epochs = await _epochs(new)
        assert epochs[GID] == (5, 5)
        assert {epochs[g] for g in others} == {(i, None) for i in range(len(others))}
        assert await rows(new, "maintenance") == []  # compacted after sealing
        alice_now = ApiClient(new.http, alice.identity, clock)
        bob_now = ApiClient(new.http, bob.identity, clock)
        assert (await bob_now.group_info(GID)).epoch == 5
        members = [alice.me.queue_id, bob.me.queue_id]
        assert (await alice_now.commit(GID, 5, mls_data.commit(GID, 5), members)).epoch == 6
        sealed = await _epochs(new)
    # A second start finds nothing left to seal, and changes nothing.
    async with server_factory(clock=clock) as again:
        assert await _epochs(again) == sealed


async def test_epochs_sealed_under_another_key_file_stop_the_start(
    server_factory: ServerFactory, database_url: str, tmp_path: Path
) -> None:
    """The start opens one epoch box: a database sealed under another secret
    key file is refused then, not request by request."""
    async with server_factory() as first:
        foreign = GroupEpochs(os.urandom(32)).seal(GID, 1, None)
        await insert_group_row(first, "epoch_box", GID, foreign)
    await assert_start_refused_with_another_key(database_url, tmp_path)
