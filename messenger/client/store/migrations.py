"""The schema of the store and its versioned migrations.

The schema version is SQLite's ``PRAGMA user_version`` (0 for a new file).
Each :class:`Migration` moves it up by one, inside one transaction that also
sets the new version: a crash or an error leaves the database at the old
version with the old schema. A database whose version is newer than the
newest migration was written by a newer app; it is refused
(:class:`StoreVersionError`) and left untouched.

Migrations are append-only: once released, a migration is never edited; a
change is a new migration. A migration that rebuilds a table (SQLite's
"12-step" ALTER, https://sqlite.org/lang_altertable.html) sets
``foreign_keys_off``: foreign keys are switched off around its transaction,
and ``PRAGMA foreign_key_check`` must pass before it commits.

Conventions of the schema: times are Unix milliseconds (INTEGER); ids that
come from the server or from MLS are TEXT (server ids) or BLOB (MLS group
ids, message uids, KeyPackage refs); booleans are INTEGER 0/1 with a CHECK.
Enumerations (message kind and status, outbox kind) are TEXT without a
CHECK, so that a new value needs no table rebuild; the repositories accept
only the values of their enums.

Version 1 -- the tables:

* ``settings`` -- key/value pairs (JSON values), e.g. the sync cursor.
* ``identity`` -- this client's account and keys (one row).
* ``contacts``, ``contact_clients`` -- other accounts, their clients'
  signature keys, and whether the user verified their safety number.
* ``conversations``, ``conversation_members`` -- a conversation is one MLS
  group (``direct``: a 2-member group with ``peer_account_id``).
* ``mls_groups`` -- the serialized MLS group state and its epoch, by group id.
* ``key_packages`` -- KeyPackage private keys by KeyPackageRef.
* ``messages`` -- one row per displayed message (text, reply, system);
  edits and deletes change the row, reactions and read receipts live in
  ``reactions`` and ``read_markers``. ``messages_by_conversation`` makes
  "the newest N messages of a conversation" an index range scan.
* ``outbox`` -- sends waiting for the server, with an idempotency key.

Version 2 -- ``messages_fts``, an FTS5 index over ``messages.body``
(external content, kept in step by triggers), built from existing rows.

Version 3 -- what the sync layer needs:

* ``identity.server_key`` -- the server's credential-signing key, which
  every member credential is checked against;
* ``outbox`` gains what a send needs to be (re)built in a later epoch:
  ``intent`` (JSON: what the user asked for), ``content`` (the encoded
  message content), ``epoch`` (the epoch the payload was made in),
  ``pending_state`` (for a commit: the group state once it is accepted)
  and ``message_hash`` (SHA-256 of the MLS message in the payload);
* ``sent_messages`` -- hashes of MLS messages this client sent, so that the
  server's echo of them is recognised and dropped;
* ``pending_inbound`` -- messages that cannot be processed yet (a future
  epoch, a group not joined yet), kept until a commit or Welcome lets them in.

Version 4 -- per-conversation choices the UI offers:

* ``conversations.muted_until`` -- with ``muted``: muted until this time
  (NULL: until unmuted);
* ``conversations.read_receipts``, ``conversations.typing_indicators`` --
  whether to send read receipts and typing notices in this conversation
  (NULL: as the global setting says);
* ``conversations.draft``, ``conversations.draft_updated_at`` -- the text
  typed and not sent yet.

Version 5 -- system messages as kinds with parameters, not sentences:
``messages.note_kind`` and ``messages.note_params`` (JSON: account ids, a
group name). Existing notes are converted where the sentence names no one
("You left", "You created “…”", "You joined “…”", "You were removed...");
the others keep their sentence as ``legacy_text``. Their ``body`` is
cleared, so no note sentence is left in ``messages`` or its search index.

Version 6 -- ``mls_group_ratchets``: the secret-tree slots (tree secrets,
leaf ratchets with their retained out-of-order keys, RFC 9420 §9) of a
group's kept epochs, one row each, so that an application message writes
its sender's slot and not the whole group (``mls_groups.state`` then holds
the state without them). Existing groups keep their whole state, no rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import StoreError, StoreVersionError
from .database import Database

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "migrate",
    "schema_version",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """Moves the schema from ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[Database], None]
    foreign_keys_off: bool = False


def _script(*statements: str) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        for statement in statements:
            db.execute(statement)

    return apply


_V1 = _script(
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE identity (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        server_url TEXT NOT NULL,
        account_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        queue_id TEXT NOT NULL,
        handle TEXT,
        display_name TEXT,
        cipher_suite INTEGER NOT NULL,
        signature_private_key BLOB NOT NULL,
        signature_public_key BLOB NOT NULL,
        credential BLOB NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE contacts (
        account_id TEXT PRIMARY KEY,
        handle TEXT,
        display_name TEXT,
        verified_fingerprint BLOB,
        verified_at INTEGER,
        blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
        added_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        CHECK ((verified_fingerprint IS NULL) = (verified_at IS NULL))
    )
    """,
    "CREATE INDEX contacts_by_handle ON contacts (handle)",
    """
    CREATE TABLE contact_clients (
        account_id TEXT NOT NULL REFERENCES contacts (account_id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        signature_key BLOB NOT NULL,
        first_seen_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, client_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        group_id BLOB NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
        title TEXT,
        peer_account_id TEXT,
        created_at INTEGER NOT NULL,
        last_activity_at INTEGER NOT NULL,
        muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)),
        archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
        left_at INTEGER,
        CHECK ((kind = 'direct') = (peer_account_id IS NOT NULL))
    )
    """,
    "CREATE INDEX conversations_by_activity ON conversations (archived, last_activity_at)",
    "CREATE INDEX conversations_by_peer ON conversations (peer_account_id)",
    """
    CREATE TABLE conversation_members (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        account_id TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, account_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE mls_groups (
        id INTEGER PRIMARY KEY,
        group_id BLOB NOT NULL UNIQUE,
        epoch INTEGER NOT NULL CHECK (epoch >= 0),
        state BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE key_packages (
        id INTEGER PRIMARY KEY,
        ref BLOB NOT NULL UNIQUE,
        bundle BLOB NOT NULL,
        last_resort INTEGER NOT NULL DEFAULT 0 CHECK (last_resort IN (0, 1)),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        uploaded_at INTEGER
    )
    """,
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        uid BLOB NOT NULL,
        sender_account_id TEXT NOT NULL,
        sender_client_id TEXT NOT NULL,
        outgoing INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
        kind TEXT NOT NULL,
        body TEXT,
        reply_to_uid BLOB,
        status TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        edited_at INTEGER,
        deleted_at INTEGER,
        server_seq INTEGER,
        epoch INTEGER,
        UNIQUE (conversation_id, uid)
    )
    """,
    "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
    """
    CREATE TABLE reactions (
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        account_id TEXT NOT NULL,
        emoji TEXT NOT NULL,
        reacted_at INTEGER NOT NULL,
        PRIMARY KEY (message_id, account_id, emoji)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE read_markers (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        account_id TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        read_at INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, account_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        idempotency_key BLOB NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        group_id BLOB,
        message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
        payload BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX outbox_due ON outbox (next_attempt_at)",
    "CREATE INDEX outbox_by_message ON outbox (message_id)",
)

_V2 = _script(
    # External content: the index stores only tokens; the text stays in
    # ``messages``. Deleted messages (body NULL) are not indexed, so the
    # triggers must hand the exact indexed values back on delete.
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        body,
        content = 'messages',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
    WHEN new.body IS NOT NULL BEGIN
        INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
    END
    """,
    """
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.body IS NOT NULL BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END
    """,
    """
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body)
            SELECT 'delete', old.id, old.body WHERE old.body IS NOT NULL;
        INSERT INTO messages_fts (rowid, body)
            SELECT new.id, new.body WHERE new.body IS NOT NULL;
    END
    """,
    # Index the messages stored before this version.
    """
    INSERT INTO messages_fts (rowid, body)
        SELECT id, body FROM messages WHERE body IS NOT NULL
    """,
)

_V3 = _script(
    "ALTER TABLE identity ADD COLUMN server_key BLOB",
    "ALTER TABLE outbox ADD COLUMN epoch INTEGER",
    "ALTER TABLE outbox ADD COLUMN intent TEXT",
    "ALTER TABLE outbox ADD COLUMN content BLOB",
    "ALTER TABLE outbox ADD COLUMN pending_state BLOB",
    "ALTER TABLE outbox ADD COLUMN message_hash BLOB",
    "CREATE INDEX outbox_by_hash ON outbox (message_hash)",
    """
    CREATE TABLE sent_messages (
        hash BLOB PRIMARY KEY,
        group_id BLOB NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX sent_messages_by_age ON sent_messages (created_at)",
    """
    CREATE TABLE pending_inbound (
        id INTEGER PRIMARY KEY,
        group_id BLOB NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        received_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX pending_inbound_by_group ON pending_inbound (group_id, id)",
    "CREATE INDEX pending_inbound_by_age ON pending_inbound (received_at)",
)

_V4 = _script(
    "ALTER TABLE conversations ADD COLUMN muted_until INTEGER",
    "ALTER TABLE conversations ADD COLUMN read_receipts INTEGER "
    "CHECK (read_receipts IS NULL OR read_receipts IN (0, 1))",
    "ALTER TABLE conversations ADD COLUMN typing_indicators INTEGER "
    "CHECK (typing_indicators IS NULL OR typing_indicators IN (0, 1))",
    "ALTER TABLE conversations ADD COLUMN draft TEXT",
    "ALTER TABLE conversations ADD COLUMN draft_updated_at INTEGER",
)

#: The sentences of earlier versions that name no one, and their note kinds.
_OLD_NOTES: Final = (
    (re.compile(r"You left"), "you_left"),
    (re.compile(r"You were removed from the conversation"), "you_were_removed"),
    (re.compile(r"You created (?:the group|“(?P<name>.*)”)", re.DOTALL), "created"),
    (re.compile(r"You joined (?:the group|“(?P<name>.*)”)", re.DOTALL), "joined"),
)


def _old_note(text: str) -> tuple[str, str]:
    """The kind and JSON parameters of a note stored as an English sentence."""
    for pattern, kind in _OLD_NOTES:
        match = pattern.fullmatch(text)
        if match is not None:
            name = match.groupdict().get("name")
            return kind, json.dumps({} if name is None else {"name": name}, ensure_ascii=False)
    return "legacy_text", json.dumps({"text": text}, ensure_ascii=False)


def _v5(db: Database) -> None:
    db.execute("ALTER TABLE messages ADD COLUMN note_kind TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN note_params TEXT")
    rows = db.query("SELECT id, body FROM messages WHERE kind = 'system'")
    db.executemany(
        "UPDATE messages SET note_kind = ?, note_params = ?, body = NULL WHERE id = ?",
        [(*_old_note(body or ""), message_id) for message_id, body in rows],
    )


_V6 = _script(
    """
    CREATE TABLE mls_group_ratchets (
        group_id BLOB NOT NULL,
        epoch INTEGER NOT NULL CHECK (epoch >= 0),
        node INTEGER NOT NULL CHECK (node >= 0),
        data BLOB NOT NULL,
        PRIMARY KEY (group_id, epoch, node)
    ) WITHOUT ROWID
    """,
)

# Unread counts (read_markers.unread_count) run for every arriving message's
# event view: a partial index of just the countable rows, carrying the
# columns the count tests, makes it an index-only range scan instead of a
# table lookup per unread message.
_V7 = _script(
    "CREATE INDEX messages_unread ON messages (conversation_id, id, outgoing, deleted_at, kind) "
    "WHERE outgoing = 0 AND deleted_at IS NULL AND kind != 'system'",
)


# Several devices per account (docs/devices.md §1): the account key pair and
# this device's certificate; a contact's pinned account key.
_V8 = _script(
    "ALTER TABLE identity ADD COLUMN account_private_key BLOB",
    "ALTER TABLE identity ADD COLUMN account_public_key BLOB",
    "ALTER TABLE identity ADD COLUMN certified_at INTEGER",
    "ALTER TABLE identity ADD COLUMN device_certificate BLOB",
    "ALTER TABLE contacts ADD COLUMN account_key BLOB",
    "ALTER TABLE contacts ADD COLUMN account_key_changed_at INTEGER",
    "ALTER TABLE contacts ADD COLUMN account_key_offered BLOB",
)

# The devices group and what it syncs (docs/devices.md §3): the account's
# devices as this device knows them, and the clock of each synced value. The
# devices group is a conversation of its own kind, ``devices`` (never listed):
# ``conversations`` is rebuilt (SQLite's 12 steps, foreign keys off) to let
# its kind CHECK take it. Its children (members, messages, read markers)
# name it by id and keep their rows; its indexes are made again.
_V9 = _script(
    """
    CREATE TABLE conversations_v9 (
        id INTEGER PRIMARY KEY,
        group_id BLOB NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'devices')),
        title TEXT,
        peer_account_id TEXT,
        created_at INTEGER NOT NULL,
        last_activity_at INTEGER NOT NULL,
        muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)),
        archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
        left_at INTEGER,
        muted_until INTEGER,
        read_receipts INTEGER CHECK (read_receipts IS NULL OR read_receipts IN (0, 1)),
        typing_indicators INTEGER
            CHECK (typing_indicators IS NULL OR typing_indicators IN (0, 1)),
        draft TEXT,
        draft_updated_at INTEGER,
        CHECK ((kind = 'direct') = (peer_account_id IS NOT NULL))
    )
    """,
    """
    INSERT INTO conversations_v9 (id, group_id, kind, title, peer_account_id, created_at,
        last_activity_at, muted, archived, left_at, muted_until, read_receipts,
        typing_indicators, draft, draft_updated_at)
    SELECT id, group_id, kind, title, peer_account_id, created_at, last_activity_at, muted,
        archived, left_at, muted_until, read_receipts, typing_indicators, draft,
        draft_updated_at
    FROM conversations
    """,
    "DROP TABLE conversations",
    "ALTER TABLE conversations_v9 RENAME TO conversations",
    "CREATE INDEX conversations_by_activity ON conversations (archived, last_activity_at)",
    "CREATE INDEX conversations_by_peer ON conversations (peer_account_id)",
    """
    CREATE TABLE devices_group (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        group_id BLOB NOT NULL UNIQUE
    )
    """,
    """
    CREATE TABLE devices (
        client_id TEXT PRIMARY KEY,
        signature_key BLOB NOT NULL,
        name TEXT,
        last_seen_at INTEGER,
        added_at INTEGER NOT NULL,
        removed_at INTEGER
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE sync_clock (
        record TEXT NOT NULL,
        key TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        by_client TEXT NOT NULL,
        PRIMARY KEY (record, key)
    ) WITHOUT ROWID
    """,
)

# Links in progress (docs/devices.md §2), so a link cut short by a crash is
# finished or undone on the next start.
_V10 = _script(
    """
    CREATE TABLE pending_links (
        link_id BLOB PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('creator', 'new')),
        state TEXT NOT NULL,
        client_id TEXT,
        created_at INTEGER NOT NULL,
        data BLOB
    ) WITHOUT ROWID
    """,
)

# Attachments and disappearing messages (docs/attachments.md). An attachment
# is one row per file message; its transfer (upload or download) is the
# row's state, so the queue survives restarts with the row.
_V11 = _script(
    "ALTER TABLE messages ADD COLUMN expires_after INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN expires_at INTEGER",
    "CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL",
    # Received disappearing messages whose countdown waits for this user to read them.
    "CREATE INDEX messages_countdown ON messages (conversation_id, id) "
    "WHERE expires_after > 0 AND expires_at IS NULL",
    "ALTER TABLE conversations ADD COLUMN disappearing_seconds INTEGER NOT NULL DEFAULT 0",
    """
    CREATE TABLE attachments (
        message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        blob_id BLOB NOT NULL,
        access BLOB NOT NULL,
        file_key BLOB NOT NULL,
        digest BLOB NOT NULL,
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        name TEXT NOT NULL,
        width INTEGER NOT NULL DEFAULT 0,
        height INTEGER NOT NULL DEFAULT 0,
        thumbnail BLOB,
        state TEXT NOT NULL,
        local_file TEXT,
        done INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX attachments_work ON attachments (state, next_attempt_at)",
    # A deleted message's tokens leave the full-text index at once instead of
    # staying in a segment until it is merged (FTS5 'secure-delete', SQLite 3.44).
    "INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1)",
)

# Rejoin boxes (docs/metadata.md §2, ``messenger/client/rejoin_boxes.py``): per
# group, the epoch of the send token last put in the account's rejoin box
# (NULL: none yet) and the epoch made by the latest commit that removed a leaf
# (NULL: none seen); and the groups left whose box is still to be deleted from
# the server. Existing groups have no box yet: each is uploaded once, and
# again after their next commit, which is the one that moves the group's
# state on the server under its members' keys (so it counts as a removal).
_V12 = _script(
    "ALTER TABLE mls_groups ADD COLUMN rejoin_box_epoch INTEGER "
    "CHECK (rejoin_box_epoch IS NULL OR rejoin_box_epoch >= 0)",
    "ALTER TABLE mls_groups ADD COLUMN rejoin_removal_epoch INTEGER "
    "CHECK (rejoin_removal_epoch IS NULL OR rejoin_removal_epoch >= 0)",
    "UPDATE mls_groups SET rejoin_removal_epoch = epoch + 1",
    "CREATE TABLE rejoin_box_deletions (group_id BLOB PRIMARY KEY) WITHOUT ROWID",
)

# When each group's rejoin box was last written (Unix ms; NULL: not known, so
# a box uploaded before is written again once). The server deletes a box not
# written for 180 days; the uploader writes each again every 60
# (``messenger/client/rejoin_boxes.py``).
_V13 = _script(
    "ALTER TABLE mls_groups ADD COLUMN rejoin_box_at INTEGER",
)

# Outbox items get IDs that are never used again (AUTOINCREMENT). SQLite
# otherwise gives a new row the highest ID plus one, so once the outbox was
# emptied the next item took the ID of one just removed: a send still on its
# way for the old item (its echo had come back meanwhile and removed it,
# sync/inbound.py) then wrote its request into the new item and removed it as
# sent, and the new message was never sent (tests/client/test_outbox_ids.py).
_V13_OUTBOX_COLUMNS = (
    "id, idempotency_key, kind, group_id, message_id, payload, attempts, next_attempt_at, "
    "last_error, created_at, epoch, intent, content, pending_state, message_hash"
)
_V14 = _script(
    """
    CREATE TABLE outbox_v14 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key BLOB NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        group_id BLOB,
        message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
        payload BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        epoch INTEGER,
        intent TEXT,
        content BLOB,
        pending_state BLOB,
        message_hash BLOB
    )
    """,
    f"INSERT INTO outbox_v14 ({_V13_OUTBOX_COLUMNS}) SELECT {_V13_OUTBOX_COLUMNS} FROM outbox",  # noqa: S608 - constant column names
    "DROP TABLE outbox",
    "ALTER TABLE outbox_v14 RENAME TO outbox",
    "CREATE INDEX outbox_due ON outbox (next_attempt_at)",
    "CREATE INDEX outbox_by_message ON outbox (message_id)",
    "CREATE INDEX outbox_by_hash ON outbox (message_hash)",
)

# When this client last gave each group a fresh leaf of its own (Unix ms): it
# joined or made the group, or a commit of its own carried an update path.
# The maintenance commits a self-update in a group whose leaf is older than a
# week (``messenger/client/sync/leaf_rotation.py``). Existing groups get a
# time spread over the past week, so that their first updates do not all go
# out at once.
_V15 = _script(
    "ALTER TABLE mls_groups ADD COLUMN leaf_rotated_at INTEGER",
    "UPDATE mls_groups SET leaf_rotated_at = "
    "CAST(strftime('%s', 'now') AS INTEGER) * 1000 - abs(random() % 604800000)",
)

# A group the server moved where this client cannot follow (a commit it could
# not process, or a send token it cannot match): when this client saw it, so
# the conversation offers to start again, and from which group a group was
# started again (RFC 9420 §11.3; ``messenger/client/group_restart.py``).
_V16 = _script(
    "ALTER TABLE mls_groups ADD COLUMN stuck_at INTEGER",
    "ALTER TABLE mls_groups ADD COLUMN branch_of BLOB",
)

# The contact tokens of other accounts (docs/metadata.md §1): a claim of an
# account's KeyPackages presents its token; this client learns them from
# invite links, handle lookups and the leaves of shared groups
# (``messenger/client/contact_tokens.py``).
_V17 = _script(
    """
    CREATE TABLE contact_tokens (
        account_id TEXT PRIMARY KEY,
        token BLOB NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables", _V1),
    Migration(2, "full-text search over messages", _V2),
    Migration(3, "sync: server key, rebuildable outbox, sent hashes, pending inbound", _V3),
    Migration(4, "conversations: mute until, receipts and typing choices, drafts", _V4),
    Migration(5, "system messages as note kinds with parameters", _v5),
    Migration(6, "MLS secret-tree slots saved per message", _V6),
    Migration(7, "a partial index for unread counts", _V7),
    Migration(8, "devices: the account key, device certificates, pinned account keys", _V8),
    Migration(
        9, "devices: the devices group, known devices, sync clocks", _V9, foreign_keys_off=True
    ),
    Migration(10, "devices: links in progress", _V10),
    Migration(11, "attachments and disappearing messages", _V11),
    Migration(12, "rejoin boxes: the epochs of each group's box and last removal", _V12),
    Migration(13, "rejoin boxes: when each was last written", _V13),
    Migration(14, "outbox item IDs are never used again", _V14),
    Migration(15, "when each group's own leaf was last made fresh", _V15),
    Migration(16, "groups that cannot go on, and the groups started again from them", _V16),
    Migration(17, "the contact tokens of other accounts", _V17),
)

LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(db: Database) -> int:
    """The database's schema version (0 for a new, empty database)."""
    return int(db.query_value("PRAGMA user_version"))


def migrate(
    db: Database,
    *,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Apply the pending migrations up to ``target`` (default: all); the new version.

    StoreVersionError if the database is newer than the newest migration.
    """
    _check_sequence(migrations)
    latest = migrations[-1].version if migrations else 0
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise ValueError(f"no migration to version {target}")
    current = schema_version(db)
    if current > latest:
        raise StoreVersionError(f"database schema {current} is newer than {latest}")
    for migration in migrations:
        if current < migration.version <= target:
            _apply(db, migration)
            current = migration.version
    return current


def _apply(db: Database, migration: Migration) -> None:
    if migration.foreign_keys_off:
        db.execute("PRAGMA foreign_keys = OFF")
    try:
        with db.transaction():
            migration.apply(db)
            if migration.foreign_keys_off and db.query("PRAGMA foreign_key_check"):
                raise StoreError(f"migration {migration.version} broke a foreign key")
            db.execute(f"PRAGMA user_version = {migration.version:d}")
    finally:
        if migration.foreign_keys_off:
            db.execute("PRAGMA foreign_keys = ON")


def _check_sequence(migrations: Sequence[Migration]) -> None:
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migration {migration.version} is out of sequence")
