"""No stored row names the sender of a message (docs/threat-model.md).

A conversation runs over the real API (registration, a group, messages in
both directions, acks, retried sends and commits with idempotency keys).
Then the test reads the database as someone with a copy of it would: every
table that the database's own catalogue lists, so that a table added later
cannot be forgotten. It checks that

* every stored time is a multiple of the granularity stated for its column
  (:data:`GRANULARITY_MS`), and a time column without a stated granularity
  fails the test;
* no row outside the message tables holds a client's, account's or queue's
  ID next to a time: the join of such a row's time with a message's time is
  exactly how the sender of each message used to be found (request nonces
  kept ``client_id`` and the request time to the millisecond);
* the thief's attack (match every timed row that names a client with every
  stored message) attributes no message to its sender;
* nothing stored is a value computable from a client's ID and what it sent
  without the server secret (unkeyed hashes of ID and nonce); the request
  nonce digests match only under the key derived from the server secret;
* idempotency rows keep neither a recipient count nor an epoch in the clear.

The clock is a :class:`FakeClock` that each request moves on by 0.7 s, as a
real conversation would, so that fine times would tell requests apart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from messenger.api import routes as r
from messenger.api.fields import b64decode, b64encode
from messenger.api.signing import NONCE_BYTES
from messenger.server.storage import Tx

from . import mls_data
from .client import ApiClient, send_token
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import insert_client_before_11, opened_payload

pytestmark = pytest.mark.anyio

GID = b"privacy-senders-group"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: The tables that hold messages: a payload and one entry per recipient queue.
MESSAGE_TABLES = frozenset({"payloads", "queue_entries"})
#: Integer cells in this range are times in milliseconds (2000 to 2100) ...
MS_RANGE = (946_684_800_000, 4_102_444_800_000)
#: ... and in this one, times in seconds.
S_RANGE = (946_684_800, 4_102_444_800)


def granularity_ms(window_ms: int) -> dict[tuple[str, str], int]:
    """Every stored time column and its granularity in milliseconds."""
    return {
        # Only serves age-based retention (30 days): the hour is enough.
        ("queue_entries", "created_at"): HOUR_MS,
        # A stored message carries its entries' hour, when retention drops both.
        ("payloads", "created_at"): HOUR_MS,
        # Must outlive the timestamp window: buckets of the window.
        ("request_nonces", "expires_at"): window_ms,
        # Kept for the retention window: day buckets.
        ("idempotency_keys", "expires_at"): DAY_MS,
        # Must outlive the challenge (stateless, 10 minutes): the hour.
        ("used_challenges", "expires_at"): HOUR_MS,
        # Outlives a KeyPackage claim (key_packages.py): the hour.
        ("claim_evidence", "expires_at"): HOUR_MS,
        # Attachment blobs (blobs.py): upload and retention times, the hour.
        ("blobs", "created_at"): HOUR_MS,
        ("blobs", "completed_at"): HOUR_MS,
        ("blobs", "expires_at"): HOUR_MS,
        # Chosen by the operator (mint-invite --expires-days) and kept as
        # given: it tells when the operator minted a code, nothing of a user.
        ("invites", "expires_at"): 1,
        # When the operator installed or upgraded the server: no user's time.
        ("schema_migrations", "applied_at"): 1,
    }


@dataclass
class Sent:
    """What the test knows and the database thief does not."""

    nonces: list[tuple[str, bytes]] = field(default_factory=list)
    idempotency_keys: list[tuple[str, bytes]] = field(default_factory=list)
    senders: dict[bytes, str] = field(default_factory=dict)  # message -> client ID
    answers: set[int] = field(default_factory=set)  # epochs and recipient counts


class Actor(ApiClient):
    """A client whose every request takes 0.7 s of (fake) time and is recorded."""

    def __init__(self, server: TestServer, clock: FakeClock, sent: Sent) -> None:
        super().__init__(server.http, clock=clock)
        self.fake_clock = clock
        self.sent = sent

    def sign(
        self,
        method: str,
        target: str,
        body: bytes,
        *,
        timestamp_ms: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        nonce = nonce or b64encode(os.urandom(NONCE_BYTES))
        self.sent.nonces.append((self.me.client_id, b64decode(nonce)))
        return super().sign(method, target, body, timestamp_ms=timestamp_ms, nonce=nonce)

    async def raw(self, *args: Any, **kwargs: Any) -> Any:
        self.fake_clock.advance(0.7)
        return await super().raw(*args, **kwargs)

    async def send_once(self, epoch: int, text: bytes, *, retry: bool = True) -> None:
        """Send with an idempotency key and, like the outbox after a lost answer, retry."""
        key = os.urandom(16)
        self.sent.idempotency_keys.append((self.me.client_id, key))
        message = mls_data.application(GID, epoch, text)
        self.sent.senders[message] = self.me.client_id
        first = await self.send(GID, message, idempotency_key=key)
        self.sent.answers.update((first.epoch, first.recipients))
        if retry:
            assert await self.send(GID, message, idempotency_key=key) == first

    async def commit_once(self, epoch: int, members: list[str], **kwargs: Any) -> int:
        key = os.urandom(16)
        self.sent.idempotency_keys.append((self.me.client_id, key))
        commit = mls_data.commit(GID, epoch, b"commit by " + self.me.client_id.encode())
        self.sent.senders[commit] = self.me.client_id
        first = await self.commit(GID, epoch, commit, members, idempotency_key=key, **kwargs)
        again = await self.commit(GID, epoch, commit, members, idempotency_key=key, **kwargs)
        assert again == first
        self.sent.answers.update((first.epoch, first.recipients))
        return first.epoch


# -- reading the database through its own catalogue ---------------------------------------


async def catalogue(server: TestServer) -> dict[str, list[str]]:
    """Every table of the database and its columns, from the database's catalogue."""

    async def op(tx: Tx) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if tx.dialect == "sqlite":
            tables = await tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (name,) in tables:
                info = await tx.fetchall(f'PRAGMA table_info("{name}")')
                out[str(name)] = [str(r[1]) for r in info]
        else:
            tables = await tx.fetchall(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
            for (name,) in tables:
                info = await tx.fetchall(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = ? "
                    "ORDER BY ordinal_position",
                    name,
                )
                out[str(name)] = [str(r[0]) for r in info]
        return out

    return await server.state.db.read(op)


async def dump(server: TestServer) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as column -> value."""
    tables = await catalogue(server)

    async def op(tx: Tx) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for table, cols in tables.items():
            found = await tx.fetchall(f'SELECT * FROM "{table}"')
            out[table] = [{c: _plain(v) for c, v in zip(cols, row, strict=True)} for row in found]
        return out

    return await server.state.db.read(op)


def _plain(value: object) -> object:
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def is_time(column: str, value: object) -> bool:
    if column.endswith("_at"):
        return True
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return MS_RANGE[0] <= value <= MS_RANGE[1] or S_RANGE[0] <= value <= S_RANGE[1]


def names(value: object, ids: dict[str, str]) -> set[str]:
    """The actors (client IDs) whose client, account or queue ID ``value`` holds."""
    found = set()
    for ident, client in ids.items():
        forms = (ident.encode(), b64decode(ident))
        in_text = isinstance(value, str) and ident in value
        if in_text or (isinstance(value, bytes) and any(f in value for f in forms)):
            found.add(client)
    return found


def unkeyed_digests(pairs: list[tuple[str, bytes]], prefixes: list[bytes]) -> set[bytes]:
    """Digests of (client ID, secret) that anyone can compute without the server secret."""
    out: set[bytes] = set()
    algorithms = ("md5", "sha1", "sha256", "sha512", "sha3_256", "blake2b", "blake2s")
    for client_id, secret in pairs:
        ident = client_id.encode()
        for value in (secret, b64encode(secret).encode()):
            for sep in (b"", b"\n", b":", b"|", b"\x00"):
                for prefix in prefixes:
                    for data in (prefix + ident + sep + value, prefix + value + sep + ident):
                        for name in algorithms:
                            digest = hashlib.new(name, data).digest()
                            out.update((digest, digest[:16], digest.hex().encode()))
    return out


async def converse(server: TestServer, clock: FakeClock, sent: Sent) -> list[Actor]:
    """Registration, a group of three, messages both ways, acks, retries, a second epoch."""
    alice, bob, carol = (Actor(server, clock, sent) for _ in range(3))
    for actor in (alice, bob, carol):
        await actor.register()
    welcome = await alice.welcome_for(bob, carol)  # uploads and claims KeyPackages
    await alice.create_group(GID)
    members = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
    epoch = await alice.commit_once(
        0,
        members,
        welcome=welcome,
        welcome_to=members[1:],
        group_info=mls_data.group_info(GID, 1),
    )
    await alice.send_once(epoch, b"hi bob, hi carol")
    await bob.send_once(epoch, b"hi alice")
    await carol.send_once(epoch, b"hello both", retry=False)
    await bob.send_once(epoch, b"lunch?")
    await carol.ack((await carol.fetch()).messages[-1].seq)  # Carol is up to date
    await bob.ack((await bob.fetch()).messages[1].seq)  # Bob has read some
    epoch = await bob.commit_once(epoch, members, group_info=mls_data.group_info(GID, epoch + 1))
    await alice.send_once(epoch, b"yes")
    await carol.send_once(epoch, b"me too")
    await bob.send_once(epoch, b"see you at noon")
    return [alice, bob, carol]


async def test_no_stored_row_links_a_message_to_its_sender(
    server_factory: ServerFactory,
) -> None:
    # An odd start, so that a fine time is not a multiple of a bucket by chance.
    clock = FakeClock(start=1_900_000_000.0 + 1234.567)
    sent = Sent()
    async with server_factory(clock=clock) as server:
        actors = await converse(server, clock, sent)
        tables = await dump(server)
        window_ms = server.state.config.timestamp_window_seconds * 1000
        retention_ms = server.state.config.retention_seconds * 1000
        table_sql = await sqlite_schema(server)
    stated = granularity_ms(window_ms)
    ids = {
        ident: a.me.client_id
        for a in actors
        for ident in (a.me.client_id, a.me.account_id, a.me.queue_id)
    }

    # 1. The attack: match every row that names a client next to a time with
    #    the stored time of every message, allowing for the offsets that the
    #    thief can read from the server's public settings. It must attribute
    #    no message to its sender. (Before the fix, request_nonces held
    #    client_id and the request time + the window, to the millisecond.)
    # Payloads are stored in their padded envelopes (docs/metadata.md §4).
    payload_ids = {opened_payload(server, r["data"]): r["payload_id"] for r in tables["payloads"]}
    stored_at = {r["payload_id"]: r["created_at"] for r in tables["payloads"]}
    timed_names: list[tuple[int, set[str]]] = []
    for table, found in tables.items():
        if table in MESSAGE_TABLES:
            continue
        for row in found:
            named = set().union(*(names(v, ids) for v in row.values()))
            for column, value in row.items():
                if named and value is not None and is_time(column, value):
                    timed_names.append((int(value), named))
    attributed = 0
    still_stored = 0
    for message, sender in sent.senders.items():
        pid = payload_ids.get(message)
        if pid is None or pid not in stored_at:
            continue  # delivered and deleted
        still_stored += 1
        t = stored_at[pid]
        candidates: set[str] = set()
        for offset in (0, window_ms, 2 * window_ms, retention_ms):
            for value, named in timed_names:
                if abs(value - offset - t) < 600:  # closer than the 0.7 s between requests
                    candidates |= named
        attributed += candidates == {sender}
    assert still_stored >= 5
    assert attributed == 0, f"the thief found the sender of {attributed} of {still_stored} messages"

    # 2. No row outside the message tables names a client next to a time
    #    (queue_entries name recipient queues: every member's, the sender's too).
    for table, found in tables.items():
        if table in MESSAGE_TABLES:
            continue
        for row in found:
            named = set().union(*(names(v, ids) for v in row.values()))
            times = [c for c, v in row.items() if v is not None and is_time(c, v)]
            assert not (named and times), f"{table} names a client next to a time: {row}"

    # 3. Every stored time has a stated granularity and is a multiple of it.
    for table, found in tables.items():
        for row in found:
            for column, value in row.items():
                if value is None or not is_time(column, value):
                    continue
                assert (table, column) in stated, f"state the granularity of {table}.{column}"
                assert value % stated[(table, column)] == 0, (table, column, value)

    # 4. Nothing stored is an unkeyed digest of a client ID and its nonces.
    prefixes = [b"", b"nonce\n", b"request-nonce-v1\n", b"messenger-request-nonce-v1\n"]
    derivable = unkeyed_digests(sent.nonces, prefixes)
    for table, found in tables.items():
        for row in found:
            for value in row.values():
                cell = value.encode() if isinstance(value, str) else value
                assert not (isinstance(cell, bytes) and cell in derivable), (table, row)
    assert len(tables["request_nonces"]) >= len(sent.nonces) > 0

    # 5. Idempotency rows: a digest, an opaque answer, a coarse expiry; no
    #    recipient count or epoch in the clear, nothing that names the client.
    assert len(tables["idempotency_keys"]) == len(sent.idempotency_keys)
    for row in tables["idempotency_keys"]:
        plain = {v for c, v in row.items() if isinstance(v, int) and not is_time(c, v)}
        assert not plain & sent.answers, row
        for client_id, key in sent.idempotency_keys:
            for value in row.values():
                if isinstance(value, bytes):
                    assert key not in value and client_id.encode() not in value

    # 6. Row order: on SQLite, the nonce, idempotency and challenge tables are
    #    stored in the order of their digests (WITHOUT ROWID), not in the order
    #    of the requests, so their order cannot be matched with payload IDs.
    if table_sql:
        assert "sqlite_sequence" in tables  # the catalogue is read whole
        for table in ("request_nonces", "idempotency_keys", "used_challenges"):
            assert "WITHOUT ROWID" in table_sql[table].upper(), table


async def sqlite_schema(server: TestServer) -> dict[str, str]:
    """``CREATE TABLE`` statements by table on SQLite (empty on PostgreSQL)."""

    async def op(tx: Tx) -> dict[str, str]:
        if tx.dialect != "sqlite":
            return {}
        found = await tx.fetchall("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        return {str(name): str(sql) for name, sql in found}

    return await server.state.db.read(op)


async def test_nonce_digests_match_only_under_the_server_key(
    server_factory: ServerFactory,
) -> None:
    """What the operator with the server secret can do: link a stored nonce row to
    a client only when also given the nonce (which is never stored)."""
    from messenger.server.authentication import nonce_digest

    clock = FakeClock(start=1_900_000_000.0 + 99.123)
    sent = Sent()
    async with server_factory(clock=clock) as server:
        alice = Actor(server, clock, sent)
        await alice.register()
        for _ in range(3):
            await alice.key_package_count()
        stored = {bytes(r["nonce_hash"]) for r in (await dump(server))["request_nonces"]}
        key = server.state.keys.request_nonce_key
    assert {nonce_digest(key, c, n) for c, n in sent.nonces} == stored
    wrong = os.urandom(32)
    assert not {nonce_digest(wrong, c, n) for c, n in sent.nonces} & stored
    assert not {hmac.new(b"", c.encode() + n, "sha256").digest() for c, n in sent.nonces} & stored


async def test_replays_stay_refused_for_the_whole_window_despite_coarse_expiry(
    server_factory: ServerFactory,
) -> None:
    """Bucketed nonce expiry keeps every nonce until its timestamp has left the window."""
    clock = FakeClock(start=1_900_000_000.0 + 7.5)
    async with server_factory(clock=clock) as server:
        window_ms = server.state.config.timestamp_window_seconds * 1000
        alice = await server.registered()
        for skew_ms in (0, window_ms - 1, -(window_ms - 1)):
            start_ms = int(clock() * 1000)
            ts = start_ms + skew_ms
            headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"", timestamp_ms=ts)
            assert (await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)).status_code == 200
            # Until the timestamp leaves the window, sweeps notwithstanding, a
            # replay is refused as a replay.
            for now_ms in (*range(start_ms, ts + window_ms, 37_000), ts + window_ms):
                clock.now = now_ms / 1000
                await server.state.delivery.sweep()
                again = await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)
                assert again.status_code == 401
                assert again.json()["error"]["code"] == "auth_replayed", (skew_ms, now_ms - ts)
            clock.now = start_ms / 1000 + 1
        # Once the window has passed, the nonces are purged and the timestamp refused.
        clock.advance(4 * window_ms / 1000)
        assert (await server.state.delivery.sweep()).nonces >= 3
        again = await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)
        assert again.json()["error"]["code"] == "auth_expired"


async def test_an_idempotent_retry_still_gets_its_answer_after_a_restart(
    server_factory: ServerFactory,
) -> None:
    """The opaque answer is kept durably: a retry after a restart is answered, not redelivered."""
    clock = FakeClock(start=1_900_000_000.0 + 3.25)
    sent = Sent()
    async with server_factory(clock=clock) as server:
        alice, bob = Actor(server, clock, sent), Actor(server, clock, sent)
        for actor in (alice, bob):
            await actor.register()
        welcome = await alice.welcome_for(bob)
        await alice.create_group(GID)
        members = [alice.me.queue_id, bob.me.queue_id]
        await alice.commit(
            GID, 0, mls_data.commit(GID, 0), members, welcome=welcome, welcome_to=members[1:]
        )
        message = mls_data.application(GID, 1, b"once")
        first = await alice.send(GID, message, idempotency_key=b"r" * 32)
        alice_identity, bob_identity = alice.identity, bob.identity
    clock.advance(29 * 86400)  # a client that was offline for four weeks
    async with server_factory(clock=clock) as server:
        alice = Actor(server, clock, sent)
        alice.identity = alice_identity
        bob = Actor(server, clock, sent)
        bob.identity = bob_identity
        await bob.commit(GID, 1, mls_data.commit(GID, 1), members)  # the group moved on
        await server.state.delivery.sweep()
        # The retry carries the token of the epoch it now knows (the old one is gone).
        retry = await alice.send(GID, message, idempotency_key=b"r" * 32, token=send_token(GID, 2))
        assert retry == first
        assert [msg.data for msg in (await bob.fetch()).messages].count(message) == 1
        assert first.recipients == 2


async def test_a_request_signed_before_the_upgrade_is_not_replayable_after_it(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 4 drops the old (client ID, nonce) rows: a request signed before
    it is refused as expired afterwards, rather than accepted a second time."""
    from messenger.server import registration
    from messenger.server.authentication import HASHED_NONCES_VERSION
    from messenger.server.storage import migrations

    clock = FakeClock(start=1_900_000_000.0 + 11.5)
    older = tuple(x for x in migrations.MIGRATIONS if x.version < HASHED_NONCES_VERSION)
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", older)
        patch.setattr(migrations, "LATEST_VERSION", older[-1].version)
        patch.setattr(registration, "_insert_client", insert_client_before_11)
        async with server_factory(clock=clock) as server:
            alice = await server.registered()
            clock.advance(1)
            headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")

            async def accepted_by_the_old_server(tx: Tx) -> None:
                await tx.execute(
                    "INSERT INTO request_nonces (client_id, nonce, expires_at) VALUES (?, ?, ?)",
                    alice.me.client_id,
                    headers["X-Messenger-Nonce"],
                    int(headers["X-Messenger-Timestamp"]) + 300_000,
                )

            await server.state.db.transaction(accepted_by_the_old_server)
    clock.advance(10)  # the upgrade, well within the timestamp window
    async with server_factory(clock=clock) as server:
        replay = await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)
        assert replay.status_code == 401
        assert replay.json()["error"]["code"] == "auth_expired"
        fresh = ApiClient(server.http, alice.identity, clock)
        await fresh.key_package_count()
        # And once the window has passed, the bound no longer matters.
        clock.advance(600)
        await fresh.key_package_count()
