"""The proof of docs/threat-model.md's comparison table: what a copy of the database shows.

Real clients (real MLS, padding, sealed sends) hold a conversation among
three users on a real ``messenger-server`` process, on SQLite and on
PostgreSQL: a group, texts of many lengths both ways, a file. Their acks are
held back (the ack policy's delay is an hour), so every message is still on
the server. Then the test reads **every table the database's catalogue
lists** (so a table added later cannot be forgotten) and, on SQLite, the raw
database files and the blob files, as a thief with a copy would, and
asserts each cell the table marks "learns nothing" for the database thief:

* **message ↔ sender**: no stored row puts an account or client next to a
  group or a message; every group message is held by *every* member queue
  (none is missing, so none is singled out as the sender's); no stored
  message is a PublicMessage (whose sender is in the clear).
* **queue ↔ account**: no stored row names a client or an account next to
  a member's queue, in any form (the client's queue is sealed at rest,
  server migration 11), and no stored GroupInfo shows a member's
  credential (GroupInfos are sealed too). Even with the key file (the
  operator's view), no stored row joins a client or an account to a queue:
  no client row names its queue or its contact queue, sealed or not
  (server migrations 22 to 24), every stored KeyPackage is sealed under its
  account's contact token, which the server does not keep (the key file
  alone opens none), and, opened with the token, names a *contact queue*,
  never a queue a member reads its groups from; no member set holds a
  contact queue once every member moved off it.
* **group ↔ members**: no stored row puts a group ID next to a member's
  queue, in any form (member sets are sealed at rest, server migration 13;
  ``group_members`` is empty), and not even the key file opens a group's
  member set, epochs or GroupInfo (sealed under the group's data key, which
  only its members' send tokens unwrap), and no stored message shows its group ID
  (payloads are sealed too), and no value in ``queue_entries`` but the hour
  is shared by queues holding the same unread message (each entry refers to
  it sealed, server migration 15; on SQLite the rows lie in queue order),
  and no group's epoch is shown (sealed, server migration 17).
* **message ↔ exact size**: every MLS message stored anywhere (payloads,
  GroupInfos, inside their seal) is a canonical padded envelope of a bucket size, no bare MLS
  message of the conversation's kinds is stored at all, and each blob file
  has a Padmé size; texts of different lengths share their size.
* **message ↔ exact time**: no time in a table tied to groups or messages
  is finer than the hour, and no time anywhere finer than 5 minutes but the
  operator's own (install times, invite expiries) and the certifying
  device's certificate time (docs/devices.md §1).

The live side of "message ↔ sender" (sealed sends and commits carry nothing
that names the client) is checked on the requests as they leave the clients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messenger.api import routes as r
from messenger.api.blobs import is_padme
from messenger.api.delivery_address import SEALED_ADDRESS_LENGTH
from messenger.api.padding import is_bucket, unpad
from messenger.api.signing import HEADER_CLIENT, HEADER_DEVICE_TOKEN, HEADER_SIGNATURE
from messenger.client import ClientOptions, MessengerClient
from messenger.client.acks import AckPolicy
from messenger.client.contact_tokens import contact_token
from messenger.client.groups import group_members
from messenger.client.sealed_sending import send_token
from messenger.client.store.store import Store
from messenger.mls.content import ContentType, PrivateMessage, WireFormat
from messenger.mls.messages import MLSMessage
from messenger.server.at_rest import SEALED_OVERHEAD, SealedColumn
from messenger.server.group_epochs import GroupEpochs
from messenger.server.key_packages import token_sealed_column
from messenger.server.member_sets import MemberSets
from messenger.server.mls_frames import key_package_delivery
from messenger.server.payload_refs import PayloadRefs
from messenger.server.queue_addresses import QueueAddresses
from messenger.server.rejoin_boxes import EXPIRY_BUCKET_MS
from messenger.server.server_keys import ServerKeys, load_or_create_master_secret
from messenger.server.state_keys import StateKeys
from messenger.server.storage import StorageError

from .conftest import CLIENT_OPTIONS, Clients, ServerProcess, eventually, start_server, stop_server

pytestmark = pytest.mark.anyio

HOUR_MS = 3_600_000
FIVE_MINUTES_MS = 300_000
#: Integer cells in this range are times in milliseconds (2000 to 2100).
MS_RANGE = (946_684_800_000, 4_102_444_800_000)
#: Tables whose rows are about groups or messages.
GROUP_TABLES = frozenset(
    {
        "payloads",
        "queue_entries",
        "mls_groups",
        "group_members",
        "idempotency_keys",
        "blobs",
        "blob_recipients",
        "blob_fetchers",
    }
)
#: Times that are not a user's: the operator's, or chosen by a device and
#: shown to every group member anyway (docs/threat-model.md, "What is stored").
NOT_USER_TIMES = frozenset(
    {("schema_migrations", "applied_at"), ("invites", "expires_at"), ("clients", "certified_at")}
)
TEXTS = ["ok", "see you at 8", "x" * 90, "y" * 180, "z" * 700, "w" * 3000]


class Recording(httpx.AsyncBaseTransport):
    """The network transport, recording each request's path and headers."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, dict(request.headers)))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Kept open: every client's connections share it (each closes it when it
        closes); the test closes it once, after the last client."""


@dataclasses.dataclass
class Database:
    """The server's database as a thief would read it: every table, every row."""

    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
    raw_files: list[bytes]
    #: The server's at-rest key: the thief does not have it; the test uses
    #: it only to tell which stored message is which, after the thief's checks.
    at_rest_key: bytes
    #: SQLite only: each table's CREATE statement (how its rows lie in the file).
    schema: dict[str, str] = dataclasses.field(default_factory=dict)


@contextlib.asynccontextmanager
async def running_server(kind: str, data_dir: Path) -> AsyncIterator[tuple[ServerProcess, str]]:
    if kind == "sqlite":
        running = start_server(data_dir)
        try:
            yield running, ""
        finally:
            stop_server(running)
        return
    from tests.server.conftest import postgres_schema

    async with postgres_schema() as dsn:
        running = start_server(data_dir, database_url=dsn)
        try:
            yield running, dsn
        finally:
            stop_server(running)


async def read_database(data_dir: Path, dsn: str) -> Database:
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    raw: list[bytes] = []
    if not dsn:
        path = data_dir / "messenger.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            names = [
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            for name in names:
                cursor = db.execute(f'SELECT * FROM "{name}"')
                columns = [c[0] for c in cursor.description]
                tables[name] = (columns, [tuple(row) for row in cursor.fetchall()])
            schema = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        for suffix in ("", "-wal"):
            file = Path(str(path) + suffix)
            if file.exists():
                raw.append(file.read_bytes())
        return Database(tables, raw, _at_rest_key(data_dir), schema)
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        names = [
            row[0]
            for row in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                schema,
            )
        ]
        for name in names:
            rows = await conn.fetch(f'SELECT * FROM "{name}"')
            columns = [
                row[0]
                for row in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    schema,
                    name,
                )
            ]
            tables[name] = (columns, [tuple(row[c] for c in columns) for row in rows])
    finally:
        await conn.close()
    return Database(tables, raw, _at_rest_key(data_dir))


def _at_rest_key(data_dir: Path) -> bytes:
    return ServerKeys.derive(
        load_or_create_master_secret(data_dir / "server-secret.key")
    ).at_rest_key


def opened_payload(db: Database, value: bytes) -> bytes:
    """A stored message, opened with the server's key (the operator's view)."""
    assert value[:1] == b"\x01", "a stored message is not sealed"
    return unpad(SealedColumn(db.at_rest_key, "payloads.data").open(b"", value))


def column(db: Database, table: str, name: str) -> list[Any]:
    columns, rows = db.tables[table]
    index = columns.index(name)
    return [row[index] for row in rows]


def bare_mls(value: bytes) -> WireFormat | None:
    """The wire format if ``value`` is a whole bare MLSMessage, else None."""
    if value[:2] != b"\x00\x01":
        return None
    try:
        return MLSMessage.from_bytes(value).wire_format
    except Exception:
        return None


async def conversation(clients: Clients) -> tuple[list[MessengerClient], Path]:
    alice = await clients.new("alice", handle="alice_proof")
    bob = await clients.new("bob", handle="bob_proof")
    carol = await clients.new("carol", handle="carol_proof")
    ids = []
    for other in (bob, carol):
        account = await other.account()
        assert account is not None and account.address is not None
        ids.append((await alice.add_contact(account.address)).account_id)
    group = await alice.create_group("Proof", ids)
    for text in TEXTS:
        await alice.send_text(group.id, text)

    async def joined(client: MessengerClient) -> int:
        async def found() -> bool:
            views = await client.conversations()
            return any(v.name == "Proof" for v in views)

        await eventually(found, "the group to be joined")
        return next(v.id for v in await client.conversations() if v.name == "Proof")

    bob_group = await joined(bob)
    carol_group = await joined(carol)
    for client in (alice, bob):  # the file stays on the server, waiting for them
        await client.set_auto_download_bytes(0)
    for text in TEXTS[:3]:
        await bob.send_text(bob_group, "re: " + text)
    attachment = clients.root / "notes.txt"
    attachment.write_bytes(os.urandom(20_000))
    await carol.send_file(carol_group, attachment)

    async def everyone_has_everything() -> bool:
        # The file message goes out once its upload is complete, so Alice and
        # Bob having it means the blob is stored whole. (Counting messages
        # alone passed early: the sender shows the file while it uploads.)
        counts = []
        files = []
        for client, cid in ((alice, group.id), (bob, bob_group), (carol, carol_group)):
            views = await client.messages(cid, limit=200)
            counts.append(sum(1 for v in views if v.message.body or v.attachment))
            files.append(any(v.attachment for v in views))
        return all(c >= len(TEXTS) + 4 for c in counts) and all(files)

    await eventually(everyone_has_everything, "every message to reach everyone")
    for client in (alice, bob, carol):
        await client.flush(30)
    return [alice, bob, carol], clients.root


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_copy_of_the_database_learns_nothing_the_table_says_it_does_not(
    kind: str, tmp_path: Path
) -> None:
    recording = Recording()
    options = dataclasses.replace(
        CLIENT_OPTIONS,
        ack_policy=AckPolicy(min_delay=3600, max_delay=3600, max_pending=10_000),
        http_transport=recording,
    )
    assert isinstance(options, ClientOptions)
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    async with running_server(kind, data_dir) as (server, dsn):
        clients = Clients(tmp_path / "clients", server)
        clients.new = _with_options(clients, options)  # type: ignore[method-assign]
        try:
            members, _ = await conversation(clients)
            for member in members:
                # Its contact queue is made and its new KeyPackages are up: the pool's
                # lock is held from the one to the other (messenger/client/contact_queue.py).
                await eventually(
                    lambda m=member: _has_contact_queue(m), "every contact queue to be made"
                )
                pool = member._pool
                assert pool is not None
                await pool.replenish()
            # Taken before the copy: a token of an epoch since the last
            # removal opens the state (the test's key to it; a thief has none).
            tokens = await group_tokens(members)
            db = await read_database(data_dir, dsn)
            blob_sizes = [f.stat().st_size for f in (data_dir / "blobs").rglob("*") if f.is_file()]
            identities = await _identities(members)
            queues = {c._require().account.queue_id for c in members}
            moved = {_contact_queue(c): c._require().account.queue_id for c in members}
            contacts = set(moved)
            tokens_of = {c._require().account.client_id: _token(c) for c in members}
            await _assert_leaves_hide_queues(members, queues)
        finally:
            await clients.close_all()
            await recording.inner.aclose()

    _assert_sizes(db, blob_sizes)
    _assert_times(db)
    _assert_senders(db, identities, tokens, moved)
    _assert_uploader_hidden(db, queues)
    _assert_queues_unlinked(db, identities, queues | contacts)
    _assert_groups_unlinked(db, queues)
    _assert_group_infos_closed_to_the_operator(db, tokens, queues)
    _assert_key_packages_closed_to_the_operator(db, data_dir, queues, contacts, tokens_of)
    _assert_sealed_requests(recording)


async def _has_contact_queue(client: MessengerClient) -> bool:
    return client._require().contact is not None


def _contact_queue(client: MessengerClient) -> str:
    contact = client._require().contact
    assert contact is not None, "every member has a contact queue"
    return contact.queue_id


def _token(client: MessengerClient) -> bytes:
    private = client._require().account.identity.account_private_key
    assert private is not None, "every member's account has an account key"
    return contact_token(private)


def _assert_key_packages_closed_to_the_operator(
    db: Database,
    data_dir: Path,
    queues: set[str],
    contacts: set[str],
    tokens: dict[str, bytes],
) -> None:
    """The operator's view of the KeyPackages it keeps to hand out and of the
    contact queues (docs/metadata.md §1, "Contact tokens"). With the key file,
    it opens no stored KeyPackage: each is sealed under its account's contact
    token, which no table holds. Opened with the token (as a claim does, live),
    each names its account and a contact queue, never a queue a member reads
    its groups from. No client row names its contact queue, sealed or not:
    each contact queue has a kill hash instead."""
    keys = ServerKeys.derive(load_or_create_master_secret(data_dir / "server-secret.key"))
    addresses = QueueAddresses(keys.address_key)
    key_file_alone = SealedColumn(db.at_rest_key, "key_packages.data")
    columns, rows = db.tables["key_packages"]
    client, data = columns.index("client_id"), columns.index("data")
    named: set[str | None] = set()
    for row in rows:
        owner, stored = str(row[client]), bytes(row[data])
        with pytest.raises(StorageError):
            key_file_alone.open(owner.encode("ascii"), stored)
        opened = token_sealed_column(db.at_rest_key, tokens[owner]).open(
            owner.encode("ascii"), stored
        )
        address = key_package_delivery(opened)
        named.add(None if address is None else addresses.resolve(address))
    assert rows and named <= contacts, (
        "a stored KeyPackage names a queue other than a contact queue"
    )
    assert not named & queues
    every_token = set(tokens.values())
    for table, (_columns, table_rows) in db.tables.items():
        for values in table_rows:
            for value in values:
                if isinstance(value, bytes | memoryview):
                    assert not any(t in bytes(value) for t in every_token), (
                        f"{table} holds a contact token"
                    )
    columns, rows = db.tables["clients"]
    box, killable = columns.index("contact_box"), columns.index("contact_killable")
    assert all(row[box] is None for row in rows), "a client row names its contact queue"
    assert all(int(row[killable]) == 1 for row in rows)
    columns, rows = db.tables["queues"]
    ids, kills = columns.index("queue_id"), columns.index("kill_hash")
    killed = {str(row[ids]) for row in rows if row[kills] is not None}
    assert contacts <= killed, "every contact queue has a kill hash"


def _with_options(clients: Clients, options: ClientOptions) -> Any:
    original = clients.new

    async def new(name: str, *, handle: str | None = None, start: bool = True) -> MessengerClient:
        return await original(name, handle=handle, start=start, options=options)

    return new


async def _assert_leaves_hide_queues(members: list[MessengerClient], queues: set[str]) -> None:
    """What other users read of a member's queue: its leaf's delivery address
    (messenger.api.delivery_address), never the queue ID, in every group."""

    def group_ids(s: Store) -> list[bytes]:
        return [c.group_id for c in s.conversations.all()]

    seen = 0
    for client in members:
        session = client._require()
        assert session.account.delivery_address is not None
        for group_id in await client._store.run(group_ids):
            group = await session.groups.get(group_id)
            assert group is not None
            for member in group_members(group):
                assert member.queue_id is not None
                assert len(member.queue_id) == SEALED_ADDRESS_LENGTH, "a leaf shows a queue ID"
                assert member.queue_id not in queues
                seen += 1
    assert seen >= 9  # three members, each seeing three leaves


async def group_tokens(members: list[MessengerClient]) -> dict[bytes, bytes]:
    """The send token of each group a member is in, at its current epoch."""
    tokens: dict[bytes, bytes] = {}
    for client in members:
        session = client._require()
        for group_id in await session.store.run(lambda s: s.groups.group_ids()):
            async with session.group_lock(group_id):
                group = await session.epochs.get(group_id)
                if group is not None and group.active:
                    tokens[group_id] = await session.mls(send_token, group)
    return tokens


def _opened_state(
    db: Database, tokens: dict[bytes, bytes], group_id: bytes
) -> tuple[bytes, list[str], tuple[int, int | None]]:
    """A group's data key, member set and epochs, opened with a member's token and
    the key file (what the running server does with the token a request carries)."""
    row = _group_row(db, group_id)
    data_key = StateKeys(db.at_rest_key).open(group_id, bytes(row["state_keys"]), tokens[group_id])
    assert data_key is not None, "a member's token does not open its group's state"
    members = MemberSets(db.at_rest_key).open(group_id, row["members_box"], data_key)
    return data_key, members, GroupEpochs(db.at_rest_key).open(group_id, row["epoch_box"], data_key)


def _group_row(db: Database, group_id: bytes) -> dict[str, Any]:
    columns, rows = db.tables["mls_groups"]
    (row,) = [r for r in rows if bytes(r[columns.index("group_id")]) == group_id]
    return dict(zip(columns, row, strict=True))


async def _identities(members: list[MessengerClient]) -> set[str]:
    found: set[str] = set()
    for client in members:
        info = await client.account()
        assert info is not None
        found.add(info.account_id)
        found.add(client._require().account.client_id)
    return found


def _assert_sizes(db: Database, blob_sizes: list[int]) -> None:
    payloads = [bytes(v) for v in column(db, "payloads", "data")]
    infos = [bytes(v) for v in column(db, "mls_groups", "group_info") if v is not None]
    assert len(payloads) >= len(TEXTS) + 4, "the messages are still on the server"
    for value in payloads:  # sealed at rest: the seal's bytes on a bucket
        size = len(value) - SEALED_OVERHEAD
        assert is_bucket(size), f"a stored message of {size} bytes is not a bucket"
        opened_payload(db, value)  # canonical: the right bucket, zero padding
    assert infos, "the group's GroupInfo is stored"
    for value in infos:  # sealed at rest: the seal's bytes on a bucket
        assert is_bucket(len(value) - SEALED_OVERHEAD), "a GroupInfo's size is not a bucket"
    sizes = {len(v) for v in payloads}
    assert len(sizes) < len(payloads), "messages of different lengths share a stored size"
    # No bare MLS message of the conversation's kinds anywhere (KeyPackages are
    # public objects the server hands out; their size is the suite's).
    for table, (_columns, rows) in db.tables.items():
        for row in rows:
            for value in row:
                if isinstance(value, bytes | memoryview) and len(value) > 64:
                    kind = bare_mls(bytes(value))
                    assert kind in (None, WireFormat.KEY_PACKAGE), (
                        f"a bare {kind} is stored in {table}"
                    )
    assert blob_sizes, "the attachment is stored"
    assert all(is_padme(size) for size in blob_sizes), "blob files have Padmé sizes"


def _assert_times(db: Database) -> None:
    for table, (columns, rows) in db.tables.items():
        for row in rows:
            for name, value in zip(columns, row, strict=True):
                if not isinstance(value, int) or not MS_RANGE[0] <= value <= MS_RANGE[1]:
                    continue
                if (table, name) in NOT_USER_TIMES:
                    continue
                unit = HOUR_MS if table in GROUP_TABLES else FIVE_MINUTES_MS
                assert value % unit == 0, f"{table}.{name} keeps a time finer than {unit} ms"


def _assert_senders(
    db: Database, identities: set[str], tokens: dict[bytes, bytes], moved: dict[str, str]
) -> None:
    def names_someone(row: tuple[Any, ...]) -> bool:
        return any(isinstance(v, str) and v in identities for v in row)

    for table in GROUP_TABLES & db.tables.keys():
        _columns, rows = db.tables[table]
        assert not any(names_someone(row) for row in rows), f"{table} names an account or client"
    # Every group message is held by every member queue: no queue is missing,
    # so the set of holders does not point at the sender. (The thief cannot
    # tell which message is which; the test opens them with the server's key.)
    # A message sent before a new member moved off its contact queue is held
    # there in place of the member's queue (``moved``: contact queue -> queue).
    members = {
        bytes(g): set(_opened_state(db, tokens, bytes(g))[1])
        for g in column(db, "mls_groups", "group_id")
    }
    holders: dict[int, set[str]] = {}
    refs = PayloadRefs(db.at_rest_key)
    for ref, queue_id in zip(
        column(db, "queue_entries", "payload_ref"),
        column(db, "queue_entries", "queue_id"),
        strict=True,
    ):
        holders.setdefault(refs.open(str(queue_id), ref), set()).add(str(queue_id))
    data = dict(
        zip(
            (int(v) for v in column(db, "payloads", "payload_id")),
            (bytes(v) for v in column(db, "payloads", "data")),
            strict=True,
        )
    )
    for payload_id, queues in holders.items():
        message = MLSMessage.from_bytes(opened_payload(db, data[payload_id]))
        assert message.wire_format is not WireFormat.PUBLIC_MESSAGE, "a sender in the clear"
        body = message.body
        if not isinstance(body, PrivateMessage) or body.content_type is not ContentType.APPLICATION:
            continue  # a Welcome goes to new members only, a commit to the epoch's members
        assert {moved.get(q, q) for q in queues} == members[body.group_id], (
            "an application message is missing from a member's queue: the sender's?"
        )


def _assert_uploader_hidden(db: Database, queues: set[str]) -> None:
    """A kept attachment does not name its uploader: its recipients (every member
    but the uploader) are keyed hashes, so no member queue is seen to be missing."""
    (blob_id,) = column(db, "blobs", "blob_id")
    recipients = [
        bytes(r)
        for b, r in zip(
            column(db, "blob_fetchers", "blob_id"),
            column(db, "blob_fetchers", "recipient"),
            strict=True,
        )
        if bytes(b) == bytes(blob_id)
    ]
    assert len(recipients) == len(queues) - 1, "the file waits for the two other members"
    for table in ("blobs", "blob_recipients", "blob_fetchers"):
        for row in db.tables[table][1]:
            for value in row:
                if isinstance(value, bytes | memoryview):
                    text = bytes(value).hex()
                elif isinstance(value, str):
                    text = value
                else:
                    continue
                assert not any(q in text or q.encode().hex() in text for q in queues), (
                    f"{table} names a member queue"
                )


def _assert_queues_unlinked(db: Database, identities: set[str], queues: set[str]) -> None:
    """No row puts a client or account next to a member queue; no GroupInfo shows one."""

    for table, (_columns, rows) in db.tables.items():
        for row in rows:
            texts = [t for v in row for t in _shown(v)]
            someone = any(i in t for i in identities for t in texts)
            queue = any(q in t or q.encode().hex() in t for q in queues for t in texts)
            assert not (someone and queue), f"{table} joins a client or account to its queue"
    for info in column(db, "mls_groups", "group_info"):
        if info is not None:
            assert not any(i.encode() in bytes(info) for i in identities), (
                "a stored GroupInfo shows a member's credential"
            )
    assert "queue_id" not in db.tables["clients"][0], "clients has no plain queue column"
    _assert_queues_keyed(db, queues)


def _assert_queues_keyed(db: Database, queues: set[str]) -> None:
    """Every member's queue has a key of its own, and no client row names a queue,
    not even sealed under the key file (docs/metadata.md §1): the operator, who
    holds the key file, finds no client ↔ queue row either."""
    columns, rows = db.tables["clients"]
    for name in ("queue_box", "legacy_queue_id"):
        index = columns.index(name)
        assert all(row[index] is None for row in rows), f"clients.{name} names a queue"
    columns, rows = db.tables["queues"]
    ids, keys, kills = (columns.index(c) for c in ("queue_id", "auth_key", "kill_hash"))
    keyed = {str(row[ids]): row for row in rows if str(row[ids]) in queues}
    assert set(keyed) == queues, "every member queue is stored"
    for row in keyed.values():
        assert len(bytes(row[keys])) == 32 and len(bytes(row[kills])) == 32


def _assert_group_infos_closed_to_the_operator(
    db: Database, tokens: dict[bytes, bytes], queues: set[str]
) -> None:
    """The key file alone opens no GroupInfo, member set or epoch: each is under
    its group's data key, which only the members' send tokens unwrap
    (docs/metadata.md §2). So the operator learns group ↔ members from a copy
    only by recording the tokens of live requests."""
    infos = column(db, "mls_groups", "group_info")
    assert any(info is not None for info in infos)
    server_seals = {
        name: SealedColumn(db.at_rest_key, f"mls_groups.{name}")
        for name in ("group_info", "members_box", "epoch_box")
    }
    conversation: list[str] = []
    for group_id in (bytes(g) for g in column(db, "mls_groups", "group_id")):
        row = _group_row(db, group_id)
        assert row["group_info_sealed"] == 3 and row["state_keys"] is not None, (
            "a group's state is under the server's key"
        )
        for name, seal in server_seals.items():
            if row[name] is not None:
                with pytest.raises(StorageError):
                    seal.open(group_id, bytes(row[name]))
        data_key, members, (epoch, info_epoch) = _opened_state(db, tokens, group_id)
        assert members and set(members) <= queues
        if len(members) == len(queues):
            conversation = members
        if row["group_info"] is not None:
            assert info_epoch == epoch
            opened = StateKeys.sealer(data_key).open(group_id, bytes(row["group_info"]))
            assert is_bucket(len(opened))
    assert sorted(conversation) == sorted(queues), "the conversation's members are all in it"
    # A rejoin box: its handle, its bytes and the week it expires on; no account,
    # client, group or time of writing (messenger.server.rejoin_boxes).
    columns, boxes = db.tables["rejoin_boxes"]
    assert sorted(columns) == ["box", "expires_at", "handle"]
    expiry = columns.index("expires_at")
    assert all(box[expiry] is None or box[expiry] % EXPIRY_BUCKET_MS == 0 for box in boxes)


def _assert_sealed_requests(recording: Recording) -> None:
    sealed_paths = {"messages", "batch", "commits"}
    sends = [
        (method, path, headers)
        for method, path, headers in recording.requests
        if method == "POST"
        and path.startswith("/v1/groups/")
        and path.rsplit("/", 1)[-1] in sealed_paths
    ]
    assert sends, "the clients sent group messages"
    for _method, _path, headers in sends:
        lowered = {k.lower() for k in headers}
        for header in (HEADER_CLIENT, HEADER_SIGNATURE, HEADER_DEVICE_TOKEN):
            assert header.lower() not in lowered, f"a sealed send carries {header}"
    assert any(path.endswith("/commits") for _m, path, _h in sends), "commits are sealed too"
    assert r.GROUP_MESSAGES.endswith("/messages")


def _shown(value: Any) -> list[str]:
    """How a stored value could show an ID: as text, as hex, as raw bytes."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        return [raw.hex(), raw.decode("latin-1")]
    return []


def _assert_groups_unlinked(db: Database, queues: set[str]) -> None:
    """No row puts a group next to a member queue; no stored message shows its group."""
    groups = [bytes(g) for g in column(db, "mls_groups", "group_id")]
    assert len(groups) >= 4, "the conversation and each account's devices group are stored"
    assert db.tables["group_members"][1] == [], "group_members is empty (member sets are sealed)"
    for table, (_columns, rows) in db.tables.items():
        for row in rows:
            texts = [t for v in row for t in _shown(v)]
            group = any(g.hex() in t or g.decode("latin-1") in t for g in groups for t in texts)
            queue = any(q in t or q.encode().hex() in t for q in queues for t in texts)
            assert not (group and queue), f"{table} joins a group to a member queue"
    for box in column(db, "mls_groups", "members_box"):
        assert not any(q.encode() in bytes(box) for q in queues), "a member set in the clear"
    for value in column(db, "payloads", "data"):
        assert not any(g in bytes(value) for g in groups), "a stored message shows its group"
    # Queues holding the same unread message share no value in queue_entries
    # but the hour: each entry refers to the message sealed, with a nonce of
    # its own (server migration 15). Sequence numbers are each queue's own.
    names, entries = db.tables["queue_entries"]
    queue = names.index("queue_id")
    assert len({e[queue] for e in entries}) >= 3, "messages wait in several member queues"
    for name in set(names) - {"queue_id", "seq", "created_at"}:
        holders: dict[bytes, set[str]] = {}
        for entry in entries:
            value = entry[names.index(name)]
            if value is not None:
                holders.setdefault(repr(value).encode(), set()).add(str(entry[queue]))
        assert all(len(h) == 1 for h in holders.values()), f"queues share queue_entries.{name}"
    assert column(db, "queue_entries", "legacy_payload") == [None] * len(entries)
    # Nor how many queues a message went to: each payload's count of holders
    # is sealed, in boxes of one size (server migration 18).
    assert set(column(db, "payloads", "holders")) == {0}
    assert len({len(bytes(box)) for box in column(db, "payloads", "holders_box")}) == 1
    # Nor which queues got the same messages: each queue counts from an origin
    # of its own, so the members' queues, which got the conversation's
    # messages together, do not count in step (server migration 18).
    names, stored = db.tables["queues"]
    counted = {str(r[names.index("queue_id")]): int(r[names.index("next_seq")]) for r in stored}
    assert len({counted[q] for q in queues}) == len(queues)
    assert min(counted.values()) > 1
    if db.schema:  # SQLite: no rowid shows the order in which one send wrote the entries
        assert "WITHOUT ROWID" in db.schema["queue_entries"].upper()
    # Nor how many commits a group had: epochs are sealed, in boxes of one
    # size (server migration 17).
    assert set(column(db, "mls_groups", "epoch")) == {0}
    assert set(column(db, "mls_groups", "group_info_epoch")) == {None}
    assert len({len(bytes(box)) for box in column(db, "mls_groups", "epoch_box")}) == 1
