"""After a conversation the database holds no plaintext, no handle in the
clear and no sender of an application message (docs/threat-model.md)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from . import mls_data
from .conftest import TestServer
from .dbtools import TABLES, columns, entries, opened_payload, rows

pytestmark = pytest.mark.anyio

GID = os.urandom(16)


def _cells(table_rows: dict[str, list[tuple[Any, ...]]]) -> list[bytes]:
    out: list[bytes] = []
    for found in table_rows.values():
        for row in found:
            for value in row:
                if isinstance(value, bytes):
                    out.append(value)
                elif value is not None:
                    out.append(str(value).encode())
    return out


async def test_the_database_learns_as_little_as_possible(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger")
    secret_handles = ["alice.secret-handle", "bob.hidden-handle"]
    alice = await server.registered(handle=secret_handles[0])
    bob = await server.registered()
    await bob.set_handle(secret_handles[1])
    carol = await server.registered()
    await carol.upload_key_packages([carol.key_package() for _ in range(2)])
    assert (await alice.lookup(secret_handles[1])).account_id == bob.me.account_id
    (carol_kp,) = (await alice.claim(carol.me.account_id)).key_packages
    await bob.upload_key_packages([bob.key_package()])
    (bob_kp,) = (await alice.claim(bob.me.account_id)).key_packages
    await alice.create_group(GID)
    queues = [alice.me.queue_id, bob.me.queue_id, carol_kp.queue_id]
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0, b"PLAINTEXT-COMMIT-add-bob-and-carol"),
        queues,
        welcome=mls_data.welcome(
            [mls_data.key_package_ref(kp.key_package) for kp in (bob_kp, carol_kp)]
        ),
        welcome_to=queues[1:],
        group_info=mls_data.group_info(GID, 1),
    )
    plaintexts = [b"PLAINTEXT-%d-meet me at the usual place" % i for i in range(6)]
    senders = [alice, bob, carol]
    sent: dict[bytes, Any] = {}
    for i, text in enumerate(plaintexts):
        message = mls_data.application(GID, 1, text)
        await senders[i % 3].send(GID, message)
        sent[message] = senders[i % 3]
    await bob.ack((await bob.fetch()).messages[1].seq)  # some delivered, the rest waiting

    everything = {table: await rows(server, table) for table in TABLES}
    cells = _cells(everything)
    raw_files = b""
    if server.state.db.dialect == "sqlite":
        base = Path(server.state.config.effective_database_url.removeprefix("sqlite://"))
        for path in (base, Path(f"{base}-wal")):
            if path.exists():
                raw_files += path.read_bytes()

    forbidden = [*plaintexts, b"PLAINTEXT", *(h.encode() for h in secret_handles)]
    for needle in forbidden:
        assert not any(needle in cell for cell in cells), needle
        assert needle not in raw_files, needle
        assert needle.decode() not in caplog.text

    # No column could hold a sender; messages are stored as bytes plus routing only.
    for table in TABLES:
        assert not any("sender" in c or "from" in c for c in await columns(server, table))
    assert sorted(await columns(server, "payloads")) == [
        "created_at",
        "data",
        "holders",
        "holders_box",
        "payload_id",
        "sealed",
    ]
    assert sorted(await columns(server, "queue_entries")) == [
        "created_at",
        "legacy_payload",
        "payload_ref",
        "queue_id",
        "seq",
    ]

    # Each application message went to every member's queue, its sender's
    # included, so the recipients do not point at the sender either.
    payload_ids = {opened_payload(server, data): pid for pid, data, *_ in everything["payloads"]}
    held = await entries(server)
    waiting = 0
    for message, sender in sent.items():
        pid = payload_ids.get(message)
        if pid is None:
            continue  # acked by everyone
        waiting += 1
        holders = {q for q, _, p in held if p == pid}
        # Everyone holds it (Bob may have acked it already).
        assert holders | {bob.me.queue_id} == set(queues)
        for ident in (sender.me.account_id, sender.me.client_id):
            assert not any(ident.encode() in bytes(row[1]) for row in everything["payloads"])
    assert waiting >= 4, "Bob acked two; the others have not acked"
    # Entries refer to their message sealed, each differently: no two share a
    # value, so the table does not show which queues hold the same message.
    names = await columns(server, "queue_entries")
    refs = [row[names.index("payload_ref")] for row in everything["queue_entries"]]
    assert len(set(refs)) == len(refs) == len(held)
    assert all(row[names.index("legacy_payload")] is None for row in everything["queue_entries"])
    # Each stored message counts the entries that hold it, sealed: the plain
    # column is 0, so the table does not show how many queues it went to.
    names = await columns(server, "payloads")
    assert {row[names.index("holders")] for row in everything["payloads"]} == {0}
    stored = {
        row[names.index("payload_id")]: server.state.payload_refs.open_count(
            row[names.index("payload_id")], row[names.index("holders_box")], None
        )
        for row in everything["payloads"]
    }
    assert stored == Counter(p for _, _, p in held)

    # The logs name no account, client or queue.
    for client in (alice, bob, carol):
        for ident in (client.me.account_id, client.me.client_id, client.me.queue_id):
            assert ident not in caplog.text
