"""Versioned schema migrations, for both backends.

Each :class:`Migration` is a list of DDL statements written once with two
placeholders that differ between the backends: ``{blob}`` (``BLOB`` or
``BYTEA``) and ``{serial}`` (an auto-incrementing 64-bit primary key).
``schema_migrations`` records what has been applied; :func:`migrate` applies
the rest in order, each in its own transaction, so a crash leaves the schema
at a known version. Applied migrations are never edited: a change is a new
migration.

What the tables hold is described in docs/threat-model.md. In short: no
plaintext, no handle in the clear, no sender of a group message, and group
membership only as pseudonymous queue IDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .base import Database, StorageError, Tx

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "migrate",
    "schema_version",
]

#: Serialises migrations of server processes that start together on PostgreSQL.
_PG_LOCK_ID: Final = 0x6D657373656E6772

_TYPES: Final = {
    "sqlite": {
        "blob": "BLOB",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        # Rows lie in primary-key order, not insertion order (no rowid).
        "without_rowid": " WITHOUT ROWID",
    },
    "postgresql": {
        "blob": "BYTEA",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "without_rowid": "",
    },
}


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema.

    ``by_dialect`` adds statements for one backend only, run after the
    common ones. ``rebuilds_tables`` runs the migration with SQLite's
    foreign-key enforcement off, as its table rebuild needs
    (https://sqlite.org/lang_altertable.html#otheralter): dropping the old
    copy of a parent table must not cascade to its children.
    """

    version: int
    name: str
    statements: tuple[str, ...]
    by_dialect: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rebuilds_tables: bool = False

    def sql(self, dialect: str) -> list[str]:
        """The statements for ``dialect``."""
        only = [s for name, group in self.by_dialect if name == dialect for s in group]
        return [s.format(**_TYPES[dialect]) for s in (*self.statements, *only)]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "accounts, queues, groups, key packages",
        (
            # Delivery queues: pseudonymous, one per client.
            """CREATE TABLE queues (
                queue_id TEXT PRIMARY KEY,
                next_seq BIGINT NOT NULL DEFAULT 1
            )""",
            # Accounts: a random ID and, optionally, a keyed hash of the handle.
            """CREATE TABLE accounts (
                account_id TEXT PRIMARY KEY,
                handle_hash {blob} UNIQUE
            )""",
            """CREATE TABLE clients (
                client_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
                signature_key {blob} NOT NULL UNIQUE,
                queue_id TEXT NOT NULL UNIQUE REFERENCES queues (queue_id)
            )""",
            "CREATE INDEX clients_account ON clients (account_id)",
            # MLS messages, stored once however many queues they go to.
            """CREATE TABLE payloads (
                payload_id {serial},
                data {blob} NOT NULL
            )""",
            """CREATE TABLE queue_entries (
                queue_id TEXT NOT NULL REFERENCES queues (queue_id) ON DELETE CASCADE,
                seq BIGINT NOT NULL,
                payload_id BIGINT NOT NULL REFERENCES payloads (payload_id),
                created_at BIGINT NOT NULL,
                PRIMARY KEY (queue_id, seq)
            )""",
            "CREATE INDEX queue_entries_payload ON queue_entries (payload_id)",
            "CREATE INDEX queue_entries_created ON queue_entries (created_at)",
            # Groups: the epoch the server orders commits by, and the GroupInfo.
            """CREATE TABLE mls_groups (
                group_id {blob} PRIMARY KEY,
                epoch BIGINT NOT NULL,
                group_info {blob},
                group_info_epoch BIGINT
            )""",
            """CREATE TABLE group_members (
                group_id {blob} NOT NULL REFERENCES mls_groups (group_id) ON DELETE CASCADE,
                queue_id TEXT NOT NULL REFERENCES queues (queue_id) ON DELETE CASCADE,
                PRIMARY KEY (group_id, queue_id)
            )""",
            """CREATE TABLE key_packages (
                kp_id {serial},
                client_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
                last_resort INTEGER NOT NULL,
                data {blob} NOT NULL
            )""",
            "CREATE INDEX key_packages_client ON key_packages (client_id, last_resort, kp_id)",
            # Abuse controls: invite codes (hashed), spent challenges, request nonces.
            """CREATE TABLE invites (
                code_hash {blob} PRIMARY KEY,
                uses_left INTEGER NOT NULL,
                expires_at BIGINT
            )""",
            """CREATE TABLE used_challenges (
                challenge_hash {blob} PRIMARY KEY,
                expires_at BIGINT NOT NULL
            )""",
            "CREATE INDEX used_challenges_expiry ON used_challenges (expires_at)",
            """CREATE TABLE request_nonces (
                client_id TEXT NOT NULL,
                nonce TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (client_id, nonce)
            )""",
            "CREATE INDEX request_nonces_expiry ON request_nonces (expires_at)",
        ),
    ),
    Migration(
        2,
        "idempotency keys of sends and commits",
        (
            # A digest of (client, idempotency key) and the answer given:
            # a retried send is answered again and not delivered twice. The
            # digest does not name the client (the key is random and not kept).
            """CREATE TABLE idempotency_keys (
                key_hash {blob} PRIMARY KEY,
                epoch BIGINT NOT NULL,
                recipients INTEGER NOT NULL,
                expires_at BIGINT NOT NULL
            )""",
            "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",
        ),
    ),
    Migration(
        3,
        "evidence of KeyPackage claims, for adding members",
        (
            # One row per KeyPackage handed out by a claim: a commit may add a
            # queue only with a Welcome for a KeyPackage its committer claimed
            # from that queue's client. Both columns are HMACs under a key
            # derived from the server secret (not in the database):
            # evidence_hash of (claimer client, KeyPackageRef), queue_hash of
            # (claimer client, target queue), so a copy of the database does not
            # tell who claimed whose KeyPackage. The expiry is rounded up to the
            # hour, and rows lie in digest order (no rowid on SQLite), so the
            # order and time of claims are not kept either; a row is deleted
            # when used.
            """CREATE TABLE claim_evidence (
                evidence_hash {blob} PRIMARY KEY,
                queue_hash {blob} NOT NULL,
                expires_at BIGINT NOT NULL
            ){without_rowid}""",
            "CREATE INDEX claim_evidence_expiry ON claim_evidence (expires_at)",
        ),
    ),
    Migration(
        4,
        "no client ID next to a request time; coarse stored times",
        (
            # Request nonces: an HMAC of (client ID, nonce) under a key derived
            # from the server secret, and an expiry in buckets of the timestamp
            # window (authentication.py). The old rows named the client next to
            # the request time to the millisecond, which found the sender of
            # every stored message; they are dropped (requests signed before
            # the upgrade are refused as expired). No rowid on SQLite: rows lie
            # in digest order, not in request order.
            "DROP TABLE request_nonces",
            """CREATE TABLE request_nonces (
                nonce_hash {blob} PRIMARY KEY,
                expires_at BIGINT NOT NULL
            ){without_rowid}""",
            "CREATE INDEX request_nonces_expiry ON request_nonces (expires_at)",
            # Idempotency keys: a digest of (client, key), the answer given
            # masked under a key derived from (client, key), which is not kept,
            # and an expiry rounded down to the day (delivery.py). The old
            # rows kept the epoch, the recipient count and the send time to the
            # millisecond; they are dropped: a retry of a send made before the
            # upgrade then meets stale_epoch (and the client finds its own
            # echo in its queue) or is a copy whose MLS generation is spent.
            "DROP TABLE idempotency_keys",
            """CREATE TABLE idempotency_keys (
                key_hash {blob} PRIMARY KEY,
                answer {blob} NOT NULL,
                expires_at BIGINT NOT NULL
            ){without_rowid}""",
            "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)",
            # Spent challenges: the expiry rounded up to the hour, no rowid.
            """CREATE TABLE used_challenges_v4 (
                challenge_hash {blob} PRIMARY KEY,
                expires_at BIGINT NOT NULL
            ){without_rowid}""",
            "INSERT INTO used_challenges_v4 (challenge_hash, expires_at) "
            "SELECT challenge_hash, ((expires_at + 3599999) / 3600000) * 3600000 "
            "FROM used_challenges",
            "DROP TABLE used_challenges",
            "ALTER TABLE used_challenges_v4 RENAME TO used_challenges",
            "CREATE INDEX used_challenges_expiry ON used_challenges (expires_at)",
            # Message times only serve retention: rounded down to the hour.
            "UPDATE queue_entries SET created_at = (created_at / 3600000) * 3600000",
        ),
    ),
    Migration(
        5,
        "device tokens: a restored copy takes over its client",
        (
            # SHA-256 of the device token of the copy that took the client
            # over (devices.py); NULL until a restore takes it over.
            "ALTER TABLE clients ADD COLUMN device_token_hash {blob}",
        ),
    ),
    Migration(
        6,
        "several devices per account: account keys, removed clients, link mailboxes",
        (
            # The account's public Ed25519 key (docs/devices.md §1), which every
            # version-2 credential shows anyway; NULL for accounts from before
            # account keys until a device asks to be certified.
            "ALTER TABLE accounts ADD COLUMN account_key {blob}",
            # The account key's certificate of the client's signature key.
            "ALTER TABLE clients ADD COLUMN certified_at BIGINT",
            "ALTER TABLE clients ADD COLUMN device_certificate {blob}",
            # Removed clients: HMACs of the client ID and of its queue ID under
            # a key derived from the server secret (devices.py), so that a
            # removed device is told so and members that still list its queue
            # are not refused; no time, no account, no rowid on SQLite.
            """CREATE TABLE removed_clients (
                tombstone {blob} PRIMARY KEY
            ){without_rowid}""",
            # Link mailboxes (links.py): the ID both devices derive from a
            # one-time code, the creator (for authorisation; the row goes with
            # it), the idle and hard expiries, and counters for the limits.
            """CREATE TABLE links (
                link_id {blob} PRIMARY KEY,
                creator_id TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
                expires_at BIGINT NOT NULL,
                max_expires_at BIGINT NOT NULL,
                total_bytes BIGINT NOT NULL,
                to_creator_count INTEGER NOT NULL,
                next_seq_new BIGINT NOT NULL,
                next_seq_creator BIGINT NOT NULL
            )""",
            "CREATE INDEX links_creator ON links (creator_id)",
            # How many times the claimer got this KeyPackage: a last-resort
            # KeyPackage handed out again (adding a new device to many groups)
            # is evidence for as many Adds (key_packages.ClaimEvidence).
            "ALTER TABLE claim_evidence ADD COLUMN uses INTEGER NOT NULL DEFAULT 1",
            "CREATE INDEX links_expiry ON links (expires_at)",
            # Sealed messages of a mailbox, per direction (0: to the new
            # device, 1: to the creator), numbered from 1.
            """CREATE TABLE link_messages (
                link_id {blob} NOT NULL REFERENCES links (link_id) ON DELETE CASCADE,
                direction INTEGER NOT NULL,
                seq BIGINT NOT NULL,
                sealed {blob} NOT NULL,
                PRIMARY KEY (link_id, direction, seq)
            )""",
        ),
    ),
    Migration(
        7,
        "attachment blobs",
        (
            # Attachment blobs (blobs.py, docs/attachments.md §3): the random
            # ID, the group whose members may fetch it, an HMAC of the creating
            # account under a key derived from the server secret (the quota and
            # the creator's rights, without naming the account), the padded
            # size, the bytes received, the SHA-256 of the access capability,
            # and times rounded to the hour. The bytes are in files named by an
            # HMAC of the ID. No rowid on SQLite: rows lie in ID order.
            """CREATE TABLE blobs (
                blob_id {blob} PRIMARY KEY,
                group_id {blob} NOT NULL,
                owner_hash {blob} NOT NULL,
                size BIGINT NOT NULL,
                received BIGINT NOT NULL,
                complete INTEGER NOT NULL,
                access_hash {blob} NOT NULL,
                created_at BIGINT NOT NULL,
                completed_at BIGINT,
                expires_at BIGINT NOT NULL
            ){without_rowid}""",
            "CREATE INDEX blobs_owner ON blobs (owner_hash)",
            "CREATE INDEX blobs_expiry ON blobs (expires_at)",
            # The member queues that have yet to fetch a complete blob.
            """CREATE TABLE blob_recipients (
                blob_id {blob} NOT NULL REFERENCES blobs (blob_id) ON DELETE CASCADE,
                queue_id TEXT NOT NULL REFERENCES queues (queue_id) ON DELETE CASCADE,
                PRIMARY KEY (blob_id, queue_id)
            ){without_rowid}""",
            "CREATE INDEX blob_recipients_queue ON blob_recipients (queue_id)",
        ),
    ),
    Migration(
        8,
        "sealed sending",
        (
            # The digest (messenger.api.sealed.token_digest) of the current
            # epoch's send token, which members derive from the MLS exporter
            # (docs/metadata.md §3): a send proves membership with the token
            # instead of a client signature. NULL for a group made before,
            # until a member registers it or the next commit sets it.
            "ALTER TABLE mls_groups ADD COLUMN send_token_hash {blob}",
        ),
    ),
    Migration(
        9,
        "key package cipher suites",
        (
            # Each KeyPackage's cipher suite (RFC 9420 §10, §17.1; docs/pq-suites.md):
            # a client keeps one-time and last-resort KeyPackages per suite, and a
            # claim hands out one suite for a whole account. Rows from before
            # were all made in suite 1.
            "ALTER TABLE key_packages ADD COLUMN cipher_suite INTEGER NOT NULL DEFAULT 1",
            "DROP INDEX key_packages_client",
            "CREATE INDEX key_packages_client_suite "
            "ON key_packages (client_id, cipher_suite, last_resort, kp_id)",
        ),
    ),
    Migration(
        10,
        "blob recipients by keyed hash",
        (
            # The recipients of a complete blob as HMACs of (blob, queue) under a
            # key from the server secret (messenger.server.blobs): a copy of the
            # database cannot tell which member queue is missing, i.e. which one
            # uploaded it (docs/threat-model.md). Rows of blob_recipients from
            # before are moved here by the server, which holds the key
            # (Blobs._adopt_legacy_recipients); that table then stays empty.
            """CREATE TABLE blob_fetchers (
                blob_id {blob} NOT NULL REFERENCES blobs (blob_id) ON DELETE CASCADE,
                recipient {blob} NOT NULL,
                PRIMARY KEY (blob_id, recipient)
            ){without_rowid}""",
        ),
    ),
    Migration(
        11,
        "client queues and GroupInfos sealed at rest",
        (
            # Spare queues (messenger.server.queue_links): a new client takes
            # one at random, so that neither rowids nor physical row order pair
            # its clients row with its queue.
            """CREATE TABLE spare_queues (
                queue_id TEXT PRIMARY KEY REFERENCES queues (queue_id) ON DELETE CASCADE
            ){without_rowid}""",
            # GroupInfos are sealed under a key from the server secret
            # (messenger.server.at_rest): their ratchet trees name every
            # member's account and client. 0 for rows from before, until the
            # server seals them when it starts (DeliveryService.adopt_legacy).
            "ALTER TABLE mls_groups ADD COLUMN group_info_sealed INTEGER NOT NULL DEFAULT 0",
        ),
        # clients.queue_id becomes queue_box, the queue sealed under a key from
        # the server secret (messenger.server.queue_links), with no foreign key
        # to queues. The old plain ID waits in legacy_queue_id until the
        # server, which holds the key, seals it when it starts.
        by_dialect=(
            (
                "sqlite",
                (
                    """CREATE TABLE clients_v11 (
                        client_id TEXT PRIMARY KEY,
                        account_id TEXT NOT NULL
                            REFERENCES accounts (account_id) ON DELETE CASCADE,
                        signature_key {blob} NOT NULL UNIQUE,
                        queue_box {blob},
                        legacy_queue_id TEXT,
                        device_token_hash {blob},
                        certified_at BIGINT,
                        device_certificate {blob}
                    )""",
                    "INSERT INTO clients_v11 (client_id, account_id, signature_key, "
                    "legacy_queue_id, device_token_hash, certified_at, device_certificate) "
                    "SELECT client_id, account_id, signature_key, queue_id, device_token_hash, "
                    "certified_at, device_certificate FROM clients",
                    "DROP TABLE clients",
                    "ALTER TABLE clients_v11 RENAME TO clients",
                    "CREATE INDEX clients_account ON clients (account_id)",
                ),
            ),
            (
                "postgresql",
                (
                    "ALTER TABLE clients RENAME COLUMN queue_id TO legacy_queue_id",
                    "ALTER TABLE clients DROP CONSTRAINT IF EXISTS clients_queue_id_fkey",
                    "ALTER TABLE clients DROP CONSTRAINT IF EXISTS clients_queue_id_key",
                    "ALTER TABLE clients ALTER COLUMN legacy_queue_id DROP NOT NULL",
                    "ALTER TABLE clients ADD COLUMN queue_box BYTEA",
                ),
            ),
        ),
        rebuilds_tables=True,
    ),
    Migration(
        12,
        "sealed commits",
        (
            # The send-token digest of the epoch before the current one: a
            # sealed commit made in it lost a race, and is told stale_epoch
            # (to catch up and commit again, still sealed) rather than
            # unknown_group (docs/metadata.md §3).
            "ALTER TABLE mls_groups ADD COLUMN previous_send_token_hash {blob}",
            # Claim evidence keyed by a claim token the claimer gets, not by the
            # claimer (messenger.server.key_packages.ClaimEvidence): an HMAC of
            # the token, and the target queue and KeyPackageRef sealed under a
            # key derived from it. Rows from before name no token; they are
            # dropped (a KeyPackage claimed before the upgrade is claimed again).
            "DROP TABLE claim_evidence",
            """CREATE TABLE claim_evidence (
                token_hash {blob} PRIMARY KEY,
                target {blob} NOT NULL,
                expires_at BIGINT NOT NULL
            ){without_rowid}""",
            "CREATE INDEX claim_evidence_expiry ON claim_evidence (expires_at)",
        ),
    ),
    Migration(
        13,
        "group member sets sealed at rest",
        (
            # Each group's member queues, sealed under a key from the server
            # secret (messenger.server.member_sets). NULL for groups from
            # before, until the server, which holds the key, moves their
            # group_members rows into it when it starts; the table stays empty.
            "ALTER TABLE mls_groups ADD COLUMN members_box {blob}",
        ),
    ),
    Migration(
        14,
        "stored messages sealed at rest",
        (
            # 1 once payloads.data is sealed (messenger.server.delivery). Rows
            # from before are 0 until the server, which holds the key, seals
            # them when it starts; the partial index finds them without a scan.
            "ALTER TABLE payloads ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX payloads_unsealed ON payloads (payload_id) WHERE sealed = 0",
        ),
    ),
    Migration(
        15,
        "queue entries hold sealed payload references",
        (
            # How many queue entries still hold the message (each entry's
            # reference is sealed, so no join counts them), and the hour it
            # was stored, when retention drops it with its entries.
            "ALTER TABLE payloads ADD COLUMN holders BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE payloads ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0",
            "UPDATE payloads SET holders = (SELECT count(*) FROM queue_entries e "
            "WHERE e.payload_id = payloads.payload_id), created_at = COALESCE("
            "(SELECT max(e.created_at) FROM queue_entries e "
            "WHERE e.payload_id = payloads.payload_id), 0)",
            "CREATE INDEX payloads_created ON payloads (created_at)",
        ),
        # queue_entries.payload_id becomes payload_ref, the payload's ID sealed
        # under a key from the server secret and bound to the entry's queue
        # (messenger.server.payload_refs): entries of one message in several
        # queues share no value, so a copy of the database does not show that
        # those queues hold the same message. On SQLite the table is rebuilt
        # without a rowid, so its rows lie in (queue, seq) order, not in the
        # order one send wrote them. New payload IDs are drawn at random by
        # the server (no identity column on PostgreSQL).
        # Rows from before keep their plain reference in legacy_payload until
        # the server, which holds the key, seals it when it starts
        # (PayloadRefs.seal_legacy); the partial index finds them.
        by_dialect=(
            (
                "sqlite",
                (
                    """CREATE TABLE queue_entries_v15 (
                        queue_id TEXT NOT NULL REFERENCES queues (queue_id) ON DELETE CASCADE,
                        seq BIGINT NOT NULL,
                        payload_ref BLOB,
                        legacy_payload BIGINT,
                        created_at BIGINT NOT NULL,
                        PRIMARY KEY (queue_id, seq)
                    ) WITHOUT ROWID""",
                    "INSERT INTO queue_entries_v15 (queue_id, seq, legacy_payload, created_at) "
                    "SELECT queue_id, seq, payload_id, created_at FROM queue_entries",
                    "DROP TABLE queue_entries",
                    "ALTER TABLE queue_entries_v15 RENAME TO queue_entries",
                    "CREATE INDEX queue_entries_created ON queue_entries (created_at)",
                    "CREATE INDEX queue_entries_legacy ON queue_entries (legacy_payload) "
                    "WHERE legacy_payload IS NOT NULL",
                ),
            ),
            (
                "postgresql",
                (
                    "ALTER TABLE queue_entries RENAME COLUMN payload_id TO legacy_payload",
                    "ALTER TABLE queue_entries "
                    "DROP CONSTRAINT IF EXISTS queue_entries_payload_id_fkey",
                    "DROP INDEX IF EXISTS queue_entries_payload",
                    "ALTER TABLE queue_entries ALTER COLUMN legacy_payload DROP NOT NULL",
                    "ALTER TABLE queue_entries ADD COLUMN payload_ref BYTEA",
                    "ALTER TABLE payloads ALTER COLUMN payload_id DROP IDENTITY IF EXISTS",
                    "CREATE INDEX queue_entries_legacy ON queue_entries (legacy_payload) "
                    "WHERE legacy_payload IS NOT NULL",
                ),
            ),
        ),
        rebuilds_tables=True,
    ),
    Migration(
        16,
        "compact after sealing",
        (
            # Tasks the server runs once when it starts, after it has sealed
            # the rows from before (ServerState._maintain). 'compact' rewrites
            # the tables that held values in the clear until migrations 10 to
            # 15 had them sealed or moved (group_members, clients' queues,
            # GroupInfos, KeyPackages, payloads, queue entries): deleting a
            # row or sealing a value in place leaves its old bytes in the
            # database files. Only a database that has accounts needs it.
            """CREATE TABLE maintenance (
                task TEXT PRIMARY KEY
            ){without_rowid}""",
            "INSERT INTO maintenance (task) SELECT 'compact' WHERE EXISTS (SELECT 1 FROM accounts)",
        ),
    ),
    Migration(
        17,
        "group epochs sealed at rest",
        (
            # Each group's epoch and its GroupInfo's, sealed under a key from
            # the server secret (messenger.server.group_epochs): an epoch
            # counts a group's commits. NULL for groups from before, until
            # the server, which holds the key, seals them when it starts and
            # leaves epoch 0 and group_info_epoch NULL; the partial index
            # finds them. The plain values then linger in the files, so the
            # next start compacts again (after sealing).
            "ALTER TABLE mls_groups ADD COLUMN epoch_box {blob}",
            "CREATE INDEX mls_groups_epoch_unsealed ON mls_groups (group_id) "
            "WHERE epoch_box IS NULL",
            "INSERT INTO maintenance (task) SELECT 'compact' "
            "WHERE EXISTS (SELECT 1 FROM accounts) ON CONFLICT DO NOTHING",
        ),
    ),
    Migration(
        18,
        "holder counts sealed, queue sequence numbers from a random origin",
        (
            # How many queue entries still hold a message, sealed under a key
            # from the server secret and bound to the payload ID
            # (messenger.server.payload_refs): a plain count tells how many
            # queues the message went to, the size of its group. NULL for rows
            # from before, until the server, which holds the key, seals them
            # when it starts and leaves holders 0; the partial index finds them.
            "ALTER TABLE payloads ADD COLUMN holders_box {blob}",
            "CREATE INDEX payloads_holders_unsealed ON payloads (payload_id) "
            "WHERE holders_box IS NULL",
            # New queues count from a random origin (messenger.server.queue_links),
            # so next_seq does not tell how many messages a queue ever got, nor
            # count in step with the queues that joined the same groups with it.
            # 'seq_origins' moves the queues that never got a message (the
            # spares among them) to one; the server draws it, so it runs at
            # start. The plain counts then linger in the files: compact again.
            "INSERT INTO maintenance (task) VALUES ('seq_origins') ON CONFLICT DO NOTHING",
            "INSERT INTO maintenance (task) SELECT 'compact' "
            "WHERE EXISTS (SELECT 1 FROM accounts) ON CONFLICT DO NOTHING",
        ),
    ),
    Migration(
        19,
        "queues from before move to a random origin once empty",
        (
            # 'seq_origins' now also moves the queues from before that got
            # messages, once they are empty (messenger.server.queue_numbers),
            # and stays until no queue counts from below the origins; a server
            # past migration 18 struck it off after moving only the unused ones.
            "INSERT INTO maintenance (task) VALUES ('seq_origins') ON CONFLICT DO NOTHING",
        ),
    ),
    Migration(
        20,
        "group state under the members' keys; rejoin boxes",
        (
            # The keys that open a group's sealed GroupInfo
            # (messenger.server.state_keys): a random data key wrapped under
            # keys derived from the send tokens of the epochs since the last
            # removal, which only members hold. NULL for groups sealed under
            # the server's key alone, until a commit carries the new epoch's
            # token (group_info_sealed is then 2).
            "ALTER TABLE mls_groups ADD COLUMN state_keys {blob}",
            # Each account's rejoin boxes (messenger.server.rejoin_boxes): a
            # handle only the account's devices can derive, and bytes sealed
            # under their secret. No account, no group, no time.
            """CREATE TABLE rejoin_boxes (
                handle {blob} PRIMARY KEY,
                box {blob} NOT NULL
            ){without_rowid}""",
        ),
    ),
    Migration(
        21,
        "rejoin boxes expire",
        (
            # When an unrefreshed box may go (messenger.server.rejoin_boxes):
            # rounded up to a week, so it does not tell when a box was written.
            # NULL for the boxes from before, which the next sweep sets.
            "ALTER TABLE rejoin_boxes ADD COLUMN expires_at BIGINT",
            "CREATE INDEX rejoin_boxes_expiry ON rejoin_boxes (expires_at)",
        ),
    ),
    Migration(
        22,
        "queues with keys of their own",
        (
            # A queue's own Ed25519 key and the SHA-256 of its kill secret
            # (messenger.server.queue_links): once set, the client's row no
            # longer holds its queue; the client proves it on each request,
            # and its account's devices name it with the kill secret to
            # remove the device. NULL until the client gives them.
            "ALTER TABLE queues ADD COLUMN auth_key {blob}",
            "ALTER TABLE queues ADD COLUMN kill_hash {blob}",
            "CREATE UNIQUE INDEX queues_kill_hash ON queues (kill_hash)",
        ),
    ),
    Migration(
        23,
        "contact queues",
        (
            # The client's contact queue (messenger.server.contact_queues),
            # the keyed queue its KeyPackages name: its ID sealed under a key
            # from the server secret and bound to the client ID, as queue_box
            # is, so a copy of the database without the key file shows no
            # link. NULL until the client asks for one. The contact queue has
            # no kill hash: it goes with its client's row.
            "ALTER TABLE clients ADD COLUMN contact_box {blob}",
            # A contact queue's key must be one no queue has: looked up by key.
            # Not unique: keys given before this migration were never checked.
            "CREATE INDEX queues_auth_key ON queues (auth_key)",
        ),
    ),
    Migration(
        24,
        "contact tokens",
        (
            # The account's contact token sealed under a key from its handle
            # (messenger.api.contact_token), which the server does not store:
            # handed to whoever looks the handle up. NULL: none (no handle, or
            # one set by an app from before). docs/metadata.md §1.
            "ALTER TABLE accounts ADD COLUMN handle_contact_box {blob}",
            # 1: the client's contact queue has a kill hash and no row names it
            # (contact_box is NULL); a device that removes this client names the
            # queue with its kill secret (messenger.server.contact_queues).
            "ALTER TABLE clients ADD COLUMN contact_killable INTEGER NOT NULL DEFAULT 0",
        ),
    ),
)


#: The schema version this server needs.
LATEST_VERSION: Final = MIGRATIONS[-1].version


async def _lock(tx: Tx) -> None:
    if tx.dialect == "postgresql":
        await tx.fetchone("SELECT pg_advisory_xact_lock(?)", _PG_LOCK_ID)


async def schema_version(tx: Tx) -> int:
    """The highest applied migration (0 on an empty database)."""
    row = await tx.fetchone("SELECT MAX(version) FROM schema_migrations")
    return int(row[0]) if row is not None and row[0] is not None else 0


async def migrate(db: Database, now_ms: int) -> int:
    """Bring the schema to :data:`LATEST_VERSION`; the version reached.

    Each migration runs in its own transaction. Concurrent callers (several
    processes starting on one PostgreSQL) take turns on an advisory lock.
    A database newer than this server is a :class:`StorageError`.
    """

    async def ensure_table(tx: Tx) -> None:
        await _lock(tx)
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        )

    async def pending(tx: Tx) -> Migration | None:
        applied = await schema_version(tx)
        return next((m for m in MIGRATIONS if m.version > applied), None)

    async def step(tx: Tx) -> tuple[int, int]:
        await _lock(tx)
        applied = await schema_version(tx)
        if applied > LATEST_VERSION:
            raise StorageError(
                f"the database schema (version {applied}) is newer than this server "
                f"(version {LATEST_VERSION})"
            )
        for migration in MIGRATIONS:
            if migration.version > applied:
                for statement in migration.sql(tx.dialect):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    migration.version,
                    migration.name,
                    now_ms,
                )
                return applied, migration.version
        return applied, applied

    await db.transaction(ensure_table)
    while True:
        upcoming = await db.transaction(pending)
        run = db.without_foreign_keys if upcoming and upcoming.rebuilds_tables else db.transaction
        before, after = await run(step)
        if after == before:
            return after
