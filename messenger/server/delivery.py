"""The Delivery Service: queues, fan-out, commit ordering (RFC 9750 §5.2).

The server is *strongly consistent* (RFC 9750 §5.2.1): it accepts exactly
one commit per epoch of a group, and refuses a commit or message for any
other epoch with ``stale_epoch`` (409, ``details.current_epoch``), from which
the client recovers by fetching and applying the winning commit, then
retrying. The check and the epoch increment happen in one transaction that
holds the group's row (``SELECT … FOR UPDATE``, and a conditional
``UPDATE … WHERE epoch = ?``), so the rule holds across server processes.

What the server keeps, and what it does not (RFC 9750 §8, docs/threat-model.md):

* A group is its MLS group ID, its epoch, its latest GroupInfo and its
  member set as **queue IDs**, which the committer supplies with each commit.
  The GroupInfo and the member set are sealed at rest (:mod:`.at_rest`,
  :mod:`.member_sets`), so a copy of the database shows no group next to a
  member queue. A group whose members send the keys has its GroupInfo,
  member set and epoch sealed under a data key that only its send tokens
  unwrap (:mod:`.state_keys`): not even the key file opens them, and every
  request that reads them brings a token (docs/metadata.md §2).
* Each group message goes to the queue of **every** member, the sender's
  included, and is stored once (``payloads``, sealed at rest: a
  PrivateMessage shows its group ID) with one entry per queue; each entry
  refers to it by a sealed reference (:mod:`.payload_refs`), so entries of
  one message in several queues share no value.
  No sender is stored, and since the sender's own queue gets the message
  too, the set of recipients does not reveal it either. A client recognises
  its own messages when they come back (it knows what it sent).
* Messages are opaque; the server reads only their framing header
  (:mod:`.mls_frames`). Every stored message is its padded envelope
  (:mod:`messenger.api.padding`, docs/metadata.md §4): the database shows
  bucket sizes only.
* Sends are **sealed** (docs/metadata.md §3): not signed, they prove
  membership with the epoch's send token, whose digest the creator and
  each committer register (``mls_groups.send_token_hash``), so the server
  learns that a member sent a message, not which client.
* A send or commit may carry an idempotency key. The answer is kept under a
  digest of (client, key) -- (group, key) for a sealed send -- for the
  retention window, in the same transaction as the delivery: a retry after
  a lost answer (a crash, a dropped connection) gets that answer again and
  is not delivered a second time.

Who may change the member set (docs/threat-model.md):

* Only a current member may commit, send (with the epoch's send token), or
  read or replace the GroupInfo.
  Anyone else is told ``unknown_group``, exactly as for a group that does
  not exist, before anything about the group (epoch, idempotency answers)
  is looked at, so the answers do not reveal which groups exist. For a
  group sealed under its members' keys, so is a request whose token opens
  none of the state: the server cannot read the member set to tell a
  member that is behind a removal from a stranger.
* A commit may add a queue only if the queue is among ``welcome_to`` and
  the Welcome names (``new_member``, RFC 9420 §12.4.3.1) a KeyPackage that
  the committing client claimed from that queue's client: the claim left
  :class:`~.key_packages.ClaimEvidence`, which the commit consumes.
  Otherwise ``member_not_claimed`` (403), unless the queue is the commit's
  join queue (below).
* A commit may add one queue by that queue's own proof instead: its
  ``join_queue`` (one of ``members``) with ``join_proof``, the signature by
  the queue's own key (:mod:`.queue_links`) over
  :func:`~messenger.api.signing.queue_join_message` of the group, the epoch
  and the commit, so that the proof stands for that commit alone. That is
  how a member that joined through its contact queue moves its leaf to its
  own queue right after (:mod:`.contact_queues`, docs/metadata.md §1); the
  contact queue leaves the member set as any queue does, by not being
  listed. With ``leave_queue`` and ``leave_proof`` (the left queue's own
  key's signature over ``queue_leave_message`` of the same commit) it is
  known to be the committer's own, so its going is not a removal for the
  state keys (:mod:`.state_keys`): the tokens of earlier epochs, such as
  the members' rejoin boxes hold, keep opening the state. Without them,
  or for any other queue dropped, it is one (a new data key). The two
  fields go together, and an external commit takes neither
  (``invalid_field``); a join queue that does not exist is
  ``unknown_queue``, and one without a key, or a proof that does not
  verify with its key, ``proof_invalid`` (400), before anything changes.
* An external commit (RFC 9420 §12.4.3.2) is accepted only from a client
  whose queue is already a member (a rejoin after lost state), with the
  member set unchanged and no Welcome, or from another client of a
  member's account (a restored device, docs/devices.md §5), with the member
  set grown by its queue only and shrunk by at most one queue of its own
  account; in both cases only if its signature verifies against the
  GroupContext of the GroupInfo the server holds for the current epoch and
  its UpdatePath leaf carries the requesting client's registered key and
  its current server-issued credential. The GroupInfo is given to the same
  clients.

Queues: entries have consecutive sequence numbers per queue. A client
fetches after a cursor and acks up to a sequence number, which deletes.
Unread entries are never evicted to make room: a queue that holds
``max_queue_length`` entries refuses new ones, and a send or commit that
would add to it is refused whole with ``queue_full`` (507, ``Retry-After``),
except that a commit always reaches the members it removes. Entries older
than ``retention_seconds`` are dropped by :meth:`Delivery.sweep`; the
client sees the gap in the sequence numbers and can rejoin through the
stored GroupInfo (external join). Each group (for sealed sends) and each
committing client has a budget of messages and bytes per minute towards
each recipient queue (:class:`SenderBudgets`, in memory only); past it,
``rate_limited``.

All messages of a group are ordered the same way in every member's queue:
each transaction that adds to a group takes its row lock first, then locks
the member queues in ID order (no deadlocks between groups).

Throughput: the group's row lock is held until the commit, so sends to one
group are serialised on the database's commit time. Sends to a group that
arrive while a transaction for it runs therefore wait and go together in
the next one (:meth:`DeliveryService._drain`), each with its own checks and
answer; on PostgreSQL that transaction is a few statements whatever the
number of sends (lock the group, lock the member queues, look up the
idempotency keys, then one statement that stores everything and sends the
``NOTIFY``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import math
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64encode
from messenger.api.models import (
    CommitRequest,
    CommitResponse,
    CreateGroupRequest,
    CreateGroupResponse,
    GroupInfoRequest,
    GroupInfoResponse,
    QueueMessage,
    RejoinInfoRequest,
    SendRequest,
    SendResponse,
    SendTokenRequest,
)
from messenger.api.padding import pad, unpad
from messenger.api.sealed import token_digest
from messenger.api.signing import queue_join_message, queue_leave_message

from .at_rest import SealedColumn
from .authentication import Principal, verify_ed25519
from .devices import removed_queue_hash
from .group_epochs import GroupEpochs
from .key_packages import ClaimEvidence, leaf_is_issued_to, registered_identity
from .logs import log_event
from .member_sets import MemberSets, live_queues
from .metrics import Metrics
from .mls_frames import (
    FrameKind,
    GroupMessageHeader,
    group_info_leaves,
    parse_group_info,
    parse_group_message,
    verify_external_commit,
    welcome_key_package_refs,
)
from .payload_refs import PayloadRefs
from .push import CHANNEL, Delivery, Hub, notification_payloads
from .queue_addresses import QueueAddresses
from .queue_links import QueueLinks
from .queue_numbers import seq_after_emptied
from .state_keys import (
    INFO_SEALED_BY_MEMBERS,
    SEALED_BY_MEMBERS,
    SEALED_BY_SERVER,
    GroupKeys,
    StateKeys,
)
from .storage import Database, Row, Tx

__all__ = ["Delivery", "DeliveryService", "SenderBudgets", "SweepResult"]

_log = logging.getLogger("messenger.server.delivery")

# SQL here is built only from constant text, "?" placeholders and the
# constant locking clauses of Tx; values always travel as parameters.
_CHUNK = 500

#: The whole append on PostgreSQL, in one statement (one round trip): store
#: each message once with its sealed count of holders and its hour, advance every
#: queue's ``next_seq``, add one entry per (queue, message) holding its
#: sealed payload reference, keep the idempotency answers and ``NOTIFY`` the
#: other processes (delivered at commit). The queue rows are already locked,
#: in ID order, by the caller, which therefore knows every sequence number;
#: payload IDs are drawn by the server (:mod:`.payload_refs`). Every CTE
#: runs to completion whether or not the final SELECT reads it.
#: Parameters: ``created_at``, payload IDs, messages, sealed counts, the count of
#: messages, the queue IDs, the entries' queues, sequence numbers and
#: references, ``created_at`` again, the idempotency key hashes, masked
#: answers and expiries, the channel, the NOTIFY payloads.
_PG_APPEND = """
WITH payload AS (
    INSERT INTO payloads (payload_id, data, sealed, holders_box, created_at)
    SELECT p.payload_id, p.data, 1, p.holders_box, ?::bigint
    FROM unnest(?::bigint[], ?::bytea[], ?::bytea[]) AS p (payload_id, data, holders_box)
), queue AS (
    UPDATE queues SET next_seq = next_seq + ?::bigint WHERE queue_id = ANY(?::text[])
), entry AS (
    INSERT INTO queue_entries (queue_id, seq, payload_ref, created_at)
    SELECT e.queue_id, e.seq, e.payload_ref, ?::bigint
    FROM unnest(?::text[], ?::bigint[], ?::bytea[]) AS e (queue_id, seq, payload_ref)
), answer AS (
    INSERT INTO idempotency_keys (key_hash, answer, expires_at)
    SELECT * FROM unnest(?::bytea[], ?::bytea[], ?::bigint[])
)
SELECT pg_notify(?::text, n.payload) FROM unnest(?::text[]) AS n (payload)
"""


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[object], size: int = _CHUNK) -> list[Sequence[object]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one retention sweep removed.

    ``overflow`` is always 0: unread entries are no longer evicted to keep a
    queue short (a full queue refuses new ones instead); kept for callers.
    """

    expired: int
    overflow: int
    payloads: int
    nonces: int
    challenges: int
    idempotency_keys: int = 0
    claim_evidence: int = 0


_IDEMPOTENCY_PREFIX = b"messenger-idempotency-v2\n"
_ANSWER_PREFIX = b"messenger-idempotency-answer-v2\n"
#: Stored times are rounded down to these (docs/threat-model.md): a message's
#: time only serves retention, an idempotency key's expiry only its purge.
_CREATED_AT_BUCKET_MS = 3_600_000
_IDEMPOTENCY_BUCKET_MS = 86_400_000


def _idempotency_hash(client_id: str, key: bytes) -> bytes:
    """A send's or commit's retry identity: 64 bytes, a lookup digest and an answer key.

    Both halves are SHA-256 of the client ID and the idempotency key (16 to
    64 random bytes, never stored). Only the first is stored, as
    ``idempotency_keys.key_hash``; the second masks the stored answer
    (:meth:`DeliveryService._remember`). Without the idempotency key, a row
    neither names its client nor tells its answer, even to someone holding
    the server secret.
    """
    material = client_id.encode() + b"\n" + key
    return (
        hashlib.sha256(_IDEMPOTENCY_PREFIX + material).digest()
        + hashlib.sha256(_ANSWER_PREFIX + material).digest()
    )


def _stored(message: bytes) -> bytes:
    """What the database holds of an MLS message: its padded envelope (docs/metadata.md §4)."""
    return pad(message)


def _loaded(data: bytes) -> bytes:
    """The message of a stored envelope (a row stored before padding holds it bare)."""
    return unpad(data) if data[:2] == b"\xff\x01" else data


def _group_sender(group_id: bytes) -> str:
    """The budget and idempotency identity of a sealed send: its group, not its sender."""
    return "group:" + b64encode(group_id)


def _mask(answer: bytes, answer_key: bytes) -> bytes:
    """``answer`` XOR ``answer_key`` (one key per row: a one-time pad)."""
    return bytes(a ^ k for a, k in zip(answer, answer_key, strict=False))


def _pack_answer(epoch: int, recipients: int) -> bytes:
    return epoch.to_bytes(8, "big") + recipients.to_bytes(4, "big")


def _unpack_answer(answer: bytes) -> tuple[int, int]:
    return int.from_bytes(answer[:8], "big"), int.from_bytes(answer[8:12], "big")


def _round_down(ms: int, bucket_ms: int, retention_ms: int) -> int:
    """``ms`` rounded down to ``bucket_ms`` (at most a 24th of the retention)."""
    size = max(1, min(bucket_ms, retention_ms // 24))
    return ms - ms % size


def _stale(current: int) -> ApiError:
    return ApiError(
        ErrorCode.STALE_EPOCH,
        f"the group is at epoch {current}",
        {"current_epoch": current},
    )


#: The most messages one coalesced send transaction stores (:meth:`DeliveryService._drain`).
_MAX_COALESCED = 256


@dataclass(slots=True)
class _SendUnit:
    """One send request (one message or a batch) waiting for its group's transaction."""

    #: The request's send token (docs/metadata.md §3), which opens the group's
    #: state if its members' keys seal it (:mod:`.state_keys`), and its digest.
    token: bytes
    token_digest: bytes
    items: Sequence[SendRequest]
    headers: list[GroupMessageHeader]
    #: :func:`_idempotency_hash` of each item's key, if it has one.
    key_hashes: list[bytes | None]
    future: asyncio.Future[list[SendResponse]]
    #: The sender budget it holds in the running transaction, for a refund.
    taken: Reservation | None = None


#: A send's fate in its transaction: per item, the earlier answer to repeat
#: (``None``: stored now), or the refusal of the whole send.
_Outcome = list[SendResponse | None] | ApiError


@dataclass(frozen=True, slots=True)
class _GroupRow:
    """A group's row as its transaction read it, the state still sealed."""

    epoch_box: object
    members_box: object
    #: ``state_keys`` (None: the group is sealed under the server's key).
    state_keys: bytes | None
    sealed: object
    #: The digests of the current and the previous epoch's send tokens.
    digest: bytes | None
    previous: bytes | None


@dataclass(frozen=True, slots=True)
class _GroupState:
    """A group's state, opened for one request (:meth:`DeliveryService._unlock`)."""

    keys: GroupKeys
    epoch: int
    #: The epoch of the stored GroupInfo, if there is one.
    info_epoch: int | None
    #: Every queue the member set names, gone or not (sorted).
    listed: list[str]


_GROUP_ROW: Final = (
    "SELECT epoch_box, members_box, state_keys, group_info_sealed, send_token_hash, "
    "previous_send_token_hash FROM mls_groups WHERE group_id = ?"
)


def _unknown_group() -> ApiError:
    """The one answer for a group that does not exist *or* that the client is not in."""
    return ApiError(ErrorCode.UNKNOWN_GROUP, "no such group")


#: How long a sender is asked to wait when a recipient's queue is full.
_QUEUE_FULL_RETRY_SECONDS = 60


def _queue_full() -> ApiError:
    return ApiError(
        ErrorCode.QUEUE_FULL,
        "a recipient's queue is full; retry later",
        {"retry_after": _QUEUE_FULL_RETRY_SECONDS},
    )


@dataclass(slots=True)
class _Budget:
    messages: float
    size: float
    updated: float


#: Reserved tokens: (sender, queue) -> (messages, bytes), for a refund.
Reservation = dict[tuple[str, str], tuple[float, float]]


class SenderBudgets:
    """Token buckets per (sender, recipient queue): messages and bytes a minute.

    The sender is a committing client, or a group for sealed sends (which
    name no client, docs/metadata.md §3).

    Each bucket holds up to a minute's worth and refills continuously. A
    send takes one message and its size from the bucket of every recipient
    queue (for a commit, but the committer's own), all or nothing: if one
    bucket is short, the whole send is ``rate_limited`` with a
    ``retry_after`` hint. A message
    larger than the byte budget needs a full bucket. The buckets live in
    this process's memory only (no sender is ever written down), are
    forgotten once full, and are thread-safe (SQLite runs operations on its
    writer thread).
    """

    _PRUNE_AT = 200_000

    def __init__(
        self, messages_per_minute: int, bytes_per_minute: int, clock: Callable[[], float]
    ) -> None:
        self._max_messages = float(messages_per_minute)
        self._max_bytes = float(bytes_per_minute)
        #: A minute's worth: the most one :meth:`take` can get from a full bucket.
        self.max_messages = self._max_messages
        self.max_bytes = self._max_bytes
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Budget] = {}
        self._prune_at = self._PRUNE_AT
        self._lock = threading.Lock()

    def _refilled(self, key: tuple[str, str], now: float) -> _Budget:
        bucket = self._buckets.get(key)
        if bucket is None:
            return _Budget(self._max_messages, self._max_bytes, now)
        elapsed = max(0.0, now - bucket.updated) / 60.0
        bucket.messages = min(self._max_messages, bucket.messages + elapsed * self._max_messages)
        bucket.size = min(self._max_bytes, bucket.size + elapsed * self._max_bytes)
        bucket.updated = now
        return bucket

    def take(self, sender: str, costs: Mapping[str, tuple[int, int]]) -> Reservation:
        """Take ``costs[queue] = (messages, bytes)`` from ``sender``'s buckets, or nothing."""
        with self._lock:
            now = self._clock()
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            wait = 0.0
            plan: list[tuple[tuple[str, str], _Budget, float, float]] = []
            for queue, (count, size) in costs.items():
                key = (sender, queue)
                bucket = self._refilled(key, now)
                messages = min(float(count), self._max_messages)
                nbytes = min(float(size), self._max_bytes)
                if bucket.messages < messages:
                    wait = max(wait, (messages - bucket.messages) / self._max_messages * 60)
                if bucket.size < nbytes:
                    wait = max(wait, (nbytes - bucket.size) / self._max_bytes * 60)
                plan.append((key, bucket, messages, nbytes))
            if wait > 0:
                raise ApiError(
                    ErrorCode.RATE_LIMITED,
                    "too many messages to a recipient; retry later",
                    {"retry_after": max(1, math.ceil(wait))},
                )
            taken: Reservation = {}
            for key, bucket, messages, nbytes in plan:
                bucket.messages -= messages
                bucket.size -= nbytes
                self._buckets[key] = bucket
                taken[key] = (messages, nbytes)
            return taken

    def refund(self, taken: Reservation) -> None:
        """Give back what :meth:`take` took, for a send that was not stored."""
        with self._lock:
            for key, (messages, nbytes) in taken.items():
                bucket = self._buckets.get(key)
                if bucket is not None:
                    bucket.messages = min(self._max_messages, bucket.messages + messages)
                    bucket.size = min(self._max_bytes, bucket.size + nbytes)

    def _prune(self, now: float) -> None:
        """Forget full buckets; scan again only once the rest has doubled."""
        for key in list(self._buckets):
            bucket = self._refilled(key, now)
            if bucket.messages >= self._max_messages and bucket.size >= self._max_bytes:
                del self._buckets[key]
        self._prune_at = max(self._PRUNE_AT, 2 * len(self._buckets))


class DeliveryService:
    """Groups, queues and push."""

    def __init__(
        self,
        db: Database,
        hub: Hub,
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        retention_seconds: int,
        max_queue_length: int,
        claims: ClaimEvidence,
        credential_public_key: bytes,
        sender_messages_per_minute: int = 120,
        sender_bytes_per_minute: int = 16 << 20,
        queue_links: QueueLinks,
        addresses: QueueAddresses,
        member_sets: MemberSets,
        payload_refs: PayloadRefs,
        group_epochs: GroupEpochs,
        at_rest_key: bytes,
        removed_key: bytes | None = None,
    ) -> None:
        self._db = db
        self._queue_links = queue_links
        self._addresses = addresses
        self._member_sets = member_sets
        self._refs = payload_refs
        self._epochs = group_epochs
        self._group_infos = SealedColumn(at_rest_key, "mls_groups.group_info")
        self._state_keys = StateKeys(at_rest_key)
        self._payloads = SealedColumn(at_rest_key, "payloads.data")
        self._removed_key = removed_key
        self._hub = hub
        self._metrics = metrics
        self._clock = clock
        self._retention_ms = retention_seconds * 1000
        self._max_queue_length = max_queue_length
        self._claims = claims
        self._credential_key = Ed25519PublicKey.from_public_bytes(credential_public_key)
        self.budgets = SenderBudgets(sender_messages_per_minute, sender_bytes_per_minute, clock)
        #: Sends waiting for their group's next transaction; a key while one runs.
        self._pending: dict[bytes, list[_SendUnit]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- inside transactions ----------------------------------------------------

    @staticmethod
    async def _group_row(tx: Tx, group_id: bytes, *, lock: bool = True) -> _GroupRow | None:
        """The group's row, still sealed; with ``lock``, locked until commit (``FOR UPDATE``).

        Commits serialise on the lock: the epoch read is the current one
        until the transaction ends.
        """
        row = await tx.fetchone(_GROUP_ROW + (tx.for_update if lock else ""), group_id)
        if row is None:
            return None
        epoch_box, members_box, state_keys, sealed, digest, previous = row
        return _GroupRow(
            epoch_box,
            members_box,
            None if state_keys is None else bytes(state_keys),
            sealed,
            None if digest is None else bytes(digest),
            None if previous is None else bytes(previous),
        )

    def _unlock(self, group_id: bytes, row: _GroupRow, token: bytes | None) -> _GroupState | None:
        """The group's epochs and member set, opened with ``token`` if its members'
        keys seal them (:mod:`.state_keys`); None if ``token`` opens none of its wraps.

        A group sealed under the server's key opens whatever the token. One
        sealed under its members' keys does not open without a token of an
        epoch since its last removal: the server then cannot tell a member
        that is behind from a removed member or a stranger, and answers all
        of them ``unknown_group``.
        """
        keys = self._state_keys.unlock(group_id, row.state_keys, row.sealed, token)
        if keys is None:
            return None
        epoch, info_epoch = self._epochs.open(group_id, row.epoch_box, keys.boxes)
        listed = self._member_sets.open(group_id, row.members_box, keys.boxes)
        return _GroupState(keys, epoch, info_epoch, listed)

    async def _opened(
        self, tx: Tx, group_id: bytes, token: bytes | None, *, lock: bool = True
    ) -> _GroupState:
        """:meth:`_unlock` of the group's row (:meth:`_group_row`); ``unknown_group``
        for no such group, or one that ``token`` does not open."""
        row = await self._group_row(tx, group_id, lock=lock)
        state = None if row is None else self._unlock(group_id, row, token)
        if state is None:
            raise _unknown_group()
        return state

    async def _move_boxes(self, tx: Tx, group_id: bytes, state: _GroupState) -> None:
        """Seal a group's member set and epochs under its data key, if its row is one
        of server migration 20's that keeps them under the server's key (its row locked)."""
        if state.keys.moved:
            return
        data_key = state.keys.data_key
        await tx.execute(
            "UPDATE mls_groups SET members_box = ?, epoch_box = ?, group_info_sealed = ? "
            "WHERE group_id = ?",
            self._member_sets.seal(group_id, state.listed, data_key),
            self._epochs.seal(group_id, state.epoch, state.info_epoch, data_key),
            SEALED_BY_MEMBERS,
            group_id,
        )

    async def _enqueue(
        self,
        tx: Tx,
        queue_ids: Sequence[str],
        data: bytes,
        now_ms: int,
        *,
        may_exceed: Collection[str] = (),
    ) -> list[Delivery]:
        """Store ``data`` once and append it to every queue in ``queue_ids``."""
        return await self._enqueue_many(tx, queue_ids, (data,), now_ms, may_exceed=may_exceed)

    async def _enqueue_many(
        self,
        tx: Tx,
        queue_ids: Sequence[str],
        messages: Sequence[bytes],
        now_ms: int,
        *,
        may_exceed: Collection[str] = (),
    ) -> list[Delivery]:
        """Store each of ``messages`` once and append them, in order, to every queue.

        ``queue_full`` if a queue would hold more than ``max_queue_length``
        entries (unless it is in ``may_exceed``): nothing is evicted to make
        room, and a queue short of room for all of ``messages`` refuses them
        all. The deliveries come message by message, so each queue's are in
        sequence order.
        """
        if not queue_ids or not messages:
            return []
        queues = await self._lock_queues(tx, queue_ids, skip_missing=False)
        for queue_id, (_, held) in queues.items():
            if held + len(messages) > self._max_queue_length and queue_id not in may_exceed:
                raise _queue_full()
        return await self._append(tx, queues, messages, now_ms, ())

    async def _lock_queues(
        self, tx: Tx, queue_ids: Sequence[str], *, skip_missing: bool
    ) -> dict[str, tuple[int, int]]:
        """``{queue: (next_seq, entries held)}``, each queue row locked until commit.

        Rows are locked in queue ID order, the order every transaction uses,
        so that two transactions never wait on each other's queues. A queue's
        entries are the consecutive range from its oldest entry to
        ``next_seq - 1`` (acks and retention remove the oldest first). A
        queue that does not exist is ``unknown_queue``, or left out with
        ``skip_missing`` (a removed device's, still in a member set).
        """
        ordered = sorted(queue_ids)
        queues: dict[str, tuple[int, int]] = {}
        for chunk in _chunks(ordered):
            marks = _placeholders(len(chunk))
            if tx.dialect == "postgresql":
                # Lock first, then read the oldest entries in a statement of
                # its own: its snapshot is taken once the locks are held, so it
                # sees what the transactions that held them (appends, and acks
                # that emptied a queue and moved its numbers) committed. A
                # subquery of the locking statement would read from before.
                locked = await tx.fetchall(
                    f"SELECT queue_id, next_seq FROM queues WHERE queue_id IN ({marks}) "  # noqa: S608
                    "ORDER BY queue_id" + tx.for_update,
                    *chunk,
                )
                oldest: dict[object, object] = {
                    r[0]: r[1]
                    for r in await tx.fetchall(
                        "SELECT queue_id, MIN(seq) FROM queue_entries "  # noqa: S608
                        f"WHERE queue_id IN ({marks}) GROUP BY queue_id",
                        *chunk,
                    )
                }
                rows: list[Row] = [(q, n, oldest.get(q)) for q, n in locked]
            else:  # one writer at a time: nothing changes between the reads
                rows = await tx.fetchall(
                    "SELECT q.queue_id, q.next_seq, (SELECT MIN(e.seq) FROM queue_entries e "  # noqa: S608
                    f"WHERE e.queue_id = q.queue_id) FROM queues q WHERE q.queue_id IN ({marks}) "
                    "ORDER BY q.queue_id",
                    *chunk,
                )
            for queue_id, next_seq, first in rows:
                held = 0 if first is None else int(next_seq) - int(first)
                queues[str(queue_id)] = (int(next_seq), held)
        missing = [q for q in ordered if q not in queues]
        if missing and not skip_missing:
            # Not named: the sender need not learn a member's queue ID.
            raise ApiError(ErrorCode.UNKNOWN_QUEUE, "a recipient queue does not exist")
        return queues

    async def _lock_member_queues(self, tx: Tx, state: _GroupState) -> dict[str, tuple[int, int]]:
        """:meth:`_lock_queues` for the group's member set (``state.listed``).

        Call it with the group row locked (:meth:`_group_row`, which read
        the set): the member set changes only under that lock. Queues of
        removed devices still in the set are left out.
        """
        return await self._lock_queues(tx, state.listed, skip_missing=True)

    async def _append(
        self,
        tx: Tx,
        queues: Mapping[str, tuple[int, int]],
        messages: Sequence[bytes],
        now_ms: int,
        answers: Sequence[tuple[bytes, bytes, int]],
    ) -> list[Delivery]:
        """Append ``messages`` to every queue of ``queues`` (locked by :meth:`_lock_queues`).

        Each message is stored once in ``payloads``, held by as many
        entries as there are queues; message ``k`` gets sequence number
        ``next_seq + k`` in each queue, and each entry a sealed reference to
        it (:mod:`.payload_refs`). ``answers`` are idempotency rows
        ``(key_hash, masked answer, expires_at)`` to keep in the same
        transaction. On PostgreSQL all of it, and the ``NOTIFY`` to the other
        processes, is one statement (one round trip).
        """
        ordered = sorted(queues)
        count = len(messages)
        # Only retention reads it: the hour, not the time of the send.
        created_at = _round_down(now_ms, _CREATED_AT_BUCKET_MS, self._retention_ms)
        notifications = notification_payloads(self._hub.origin, ordered)
        # A message no queue holds is not stored.
        ids = [self._refs.new_id() for _ in messages] if ordered else []
        payloads = [
            (pid, self._sealed_payload(m), self._refs.seal_count(pid, len(ordered)))
            for pid, m in zip(ids, messages, strict=False)
        ]
        entries = [
            (q, queues[q][0] + offset, self._refs.seal(q, payload_id), created_at)
            for offset, (payload_id, _data, _count) in enumerate(payloads)
            for q in ordered
        ]
        if tx.dialect == "postgresql":
            await tx.execute(
                _PG_APPEND,
                created_at,
                [p[0] for p in payloads],
                [p[1] for p in payloads],
                [p[2] for p in payloads],
                count,
                ordered,
                created_at,
                [e[0] for e in entries],
                [e[1] for e in entries],
                [e[2] for e in entries],
                [a[0] for a in answers],
                [a[1] for a in answers],
                [a[2] for a in answers],
                CHANNEL,
                notifications,
            )
        else:
            for chunk in _chunks(ordered):
                await tx.execute(
                    f"UPDATE queues SET next_seq = next_seq + ? WHERE queue_id IN "  # noqa: S608
                    f"({_placeholders(len(chunk))})",
                    count,
                    *chunk,
                )
            await tx.executemany(
                "INSERT INTO payloads (payload_id, data, sealed, holders_box, created_at) "
                "VALUES (?, ?, 1, ?, ?)",
                [(pid, data, count_box, created_at) for pid, data, count_box in payloads],
            )
            await tx.executemany(
                "INSERT INTO queue_entries (queue_id, seq, payload_ref, created_at) "
                "VALUES (?, ?, ?, ?)",
                entries,
            )
            if answers:
                await tx.executemany(
                    "INSERT INTO idempotency_keys (key_hash, answer, expires_at) VALUES (?, ?, ?)",
                    answers,
                )
            for payload in notifications:
                await tx.notify(CHANNEL, payload)
        return [
            Delivery(q, queues[q][0] + offset, data)
            for offset, data in enumerate(messages)
            for q in ordered
        ]

    @staticmethod
    async def _answered(tx: Tx, key_hash: bytes | None) -> tuple[int, int] | None:
        """``(epoch, recipients)`` already given for this idempotency key, if any.

        ``key_hash`` is :func:`_idempotency_hash`: the lookup digest, then the
        key that unmasks the stored answer.
        """
        if key_hash is None:
            return None
        row = await tx.fetchone(
            "SELECT answer FROM idempotency_keys WHERE key_hash = ?", key_hash[:32]
        )
        if row is None:
            return None
        return _unpack_answer(_mask(bytes(row[0]), key_hash[32:]))

    def _answer_row(
        self, key_hash: bytes, epoch: int, recipients: int, now_ms: int
    ) -> tuple[bytes, bytes, int]:
        """An ``idempotency_keys`` row: the lookup digest, the masked answer, the expiry.

        The expiry is rounded down to the day, so it does not tell the time
        of the send; the key is kept between the retention window less a day
        and the retention window, as long as the messages themselves.
        """
        return (
            key_hash[:32],
            _mask(_pack_answer(epoch, recipients), key_hash[32:]),
            _round_down(now_ms + self._retention_ms, _IDEMPOTENCY_BUCKET_MS, self._retention_ms),
        )

    async def _remember(
        self, tx: Tx, key_hash: bytes | None, epoch: int, recipients: int, now_ms: int
    ) -> None:
        """Keep the answer for retries (:meth:`_answer_row`), masked, for the retention window."""
        if key_hash is not None:
            await tx.execute(
                "INSERT INTO idempotency_keys (key_hash, answer, expires_at) VALUES (?, ?, ?)",
                *self._answer_row(key_hash, epoch, recipients, now_ms),
            )

    def _published(self, deliveries: list[Delivery]) -> None:
        self._metrics.deliveries.inc(len(deliveries))
        self._hub.publish(deliveries)

    # -- groups -------------------------------------------------------------------

    async def create_group(self, queue_id: str, req: CreateGroupRequest) -> CreateGroupResponse:
        """Register a group at epoch 0 whose only member is the creator's queue,
        ``queue_id`` (a queue request's, naming no client, or a signed request's
        proof: docs/metadata.md §1).

        An ID that is taken gets ``group_exists`` (409), the same answer for
        members and non-members, carrying nothing else (no epoch, members or
        GroupInfo). Creation cannot hide that an ID is taken -- it must not
        succeed -- but only someone who already knows the ID can ask: clients
        draw group IDs of 32 random bytes, known to members, past members
        and Welcome recipients only. Every other group route answers a
        non-member exactly as for a missing group (``unknown_group``).
        """
        if req.group_info is not None:
            self._check_group_info(req.group_info, req.group_id, 0)
        token_hash = req.send_token_hash
        data_key: bytes | None = None
        state_keys: bytes | None = None
        if req.send_token is not None:
            # The group's state (GroupInfo, member set, epochs) is sealed under
            # its members' keys from the start (:mod:`.state_keys`).
            token_hash = self._checked_digest("send_token", req.send_token, token_hash)
            data_key, state_keys = self._state_keys.new(req.group_id, req.send_token)
        info = (
            None
            if req.group_info is None
            else self._sealed_info(req.group_id, req.group_info, data_key)
        )

        epoch_box = self._epochs.seal(
            req.group_id, 0, 0 if req.group_info is not None else None, data_key
        )
        members_box = self._member_sets.seal(req.group_id, [queue_id], data_key)

        async def op(tx: Tx) -> None:
            created = await tx.execute(
                "INSERT INTO mls_groups "
                "(group_id, epoch, group_info, epoch_box, members_box, send_token_hash, "
                "group_info_sealed, state_keys) VALUES (?, 0, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                req.group_id,
                info,
                epoch_box,
                members_box,
                token_hash,
                SEALED_BY_SERVER if data_key is None else SEALED_BY_MEMBERS,
                state_keys,
            )
            if created == 0:
                raise ApiError(ErrorCode.GROUP_EXISTS, "a group with this ID exists")

        await self._db.transaction(op)
        return CreateGroupResponse(0)

    @staticmethod
    def _checked_digest(name: str, token: bytes, digest: bytes | None) -> bytes:
        """The digest of the send token ``token``; ``invalid_field`` if ``digest`` is another."""
        computed = token_digest(token)
        if digest is not None and not hmac.compare_digest(computed, digest):
            raise ApiError.invalid_field(name, "its digest is not send_token_hash")
        return computed

    @staticmethod
    def _check_group_info(group_info: bytes, group_id: bytes, epoch: int) -> None:
        info_group, info_epoch = parse_group_info(group_info)
        if info_group != group_id:
            raise ApiError(ErrorCode.GROUP_MISMATCH, "the GroupInfo is for another group")
        if info_epoch != epoch:
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                f"the GroupInfo is for epoch {info_epoch}, expected {epoch}",
            )

    async def commit(
        self, principal: Principal | None, group_id: bytes, req: CommitRequest
    ) -> CommitResponse:
        """Accept the commit for ``req.epoch`` if no other commit was accepted for it.

        Only a member may commit (others get ``unknown_group``); new queues
        need claim evidence (the claim tokens in ``req.claims``) but the join
        queue, which needs its own key's proof (``req.join_proof``), and an
        external commit is verified (see the module docstring). Nothing
        changes unless the commit is accepted.

        A **sealed** commit (``principal`` is None: the request is not
        signed, docs/metadata.md §3) proves membership with the current
        epoch's send token, as a sealed send does, so the server learns that
        *a* member committed, not which; its budget and idempotency are the
        group's. A signed commit is a member's that chose to sign (the server
        then knows the committer) or an external commit, which is always
        signed: its joiner is not a member yet and must show its credential.
        """
        header = parse_group_message(req.commit)
        sealed = principal is None
        if sealed and header.external_commit:
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                "an external commit is signed by its joiner, not sealed",
            )
        if sealed and req.token is None:
            raise ApiError(
                ErrorCode.OUTDATED_CLIENT,
                "a commit is signed or carries the epoch's send token; update the app",
            )
        token_hash = None if req.token is None else token_digest(req.token)
        # The budget and idempotency identity: the group's for a sealed commit.
        sender = _group_sender(group_id) if principal is None else principal.client_id
        if header.kind is not FrameKind.COMMIT:
            raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "commit: expected a commit")
        if header.group_id != group_id:
            raise ApiError(ErrorCode.GROUP_MISMATCH, "the commit is for another group")
        if header.epoch != req.epoch:
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                f"the commit is for epoch {header.epoch}, the request says {req.epoch}",
            )
        if (req.join_queue is None) != (req.join_proof is None):
            raise ApiError.invalid_field("join_proof", "join_queue and join_proof go together")
        if (req.leave_queue is None) != (req.leave_proof is None):
            raise ApiError.invalid_field("leave_proof", "leave_queue and leave_proof go together")
        if req.leave_queue is not None and req.join_queue is None:
            raise ApiError.invalid_field(
                "leave_queue", "a queue is left only in a move (join_queue)"
            )
        if req.join_queue is not None and header.external_commit:
            raise ApiError.invalid_field(
                "join_queue", "an external commit joins by its own leaf, not by a queue's proof"
            )
        req, shown = self._opened_addresses(req)
        next_hash = req.send_token_hash
        if req.next_token is not None:
            next_hash = self._checked_digest("next_token", req.next_token, next_hash)
        new_members = set(req.members)
        welcome_to = sorted(set(req.welcome_to or ()))
        if (req.welcome is None) != (not welcome_to):
            raise ApiError.invalid_field("welcome_to", "welcome and welcome_to go together")
        if not new_members.issuperset(welcome_to):
            raise ApiError.invalid_field("welcome_to", "every Welcome recipient must be a member")
        join_queue, leave_queue = req.join_queue, req.leave_queue
        if join_queue is not None and join_queue not in new_members:
            raise ApiError.invalid_field("join_queue", "the joining queue must be a member")
        if leave_queue is not None and leave_queue in new_members:
            raise ApiError.invalid_field("leave_queue", "the queue left must not be a member")
        refs: tuple[bytes, ...] = ()
        if req.welcome is not None:
            refs = welcome_key_package_refs(req.welcome)
            if header.external_commit:
                raise ApiError.invalid_field(
                    "welcome", "an external commit adds no one, so it has no Welcome"
                )
        new_epoch = req.epoch + 1
        if req.group_info is not None:
            self._check_group_info(req.group_info, group_id, new_epoch)
        now = self._now_ms()
        key_hash = (
            None if req.idempotency_key is None else _idempotency_hash(sender, req.idempotency_key)
        )
        welcomed = set(welcome_to)
        taken: Reservation | None = None

        async def op(tx: Tx) -> tuple[list[Delivery], int, bool]:
            nonlocal taken
            if taken is not None:  # a retried transaction (PostgreSQL conflict)
                self.budgets.refund(taken)
                taken = None
            row = await self._group_row(tx, group_id)
            if row is None:
                raise _unknown_group()
            if principal is None:
                # Membership by the send token, checked before anything else
                # is looked at (a stranger's answer is a missing group's). A
                # token of the epoch before: a member whose commit lost a race.
                assert token_hash is not None
                if row.digest is None or not hmac.compare_digest(token_hash, row.digest):
                    if row.previous is None or not hmac.compare_digest(token_hash, row.previous):
                        raise _unknown_group()
                    # A member of the epoch before: its retry is answered again
                    # (the commit it retries made this epoch), else it lost a race.
                    answered = await self._answered(tx, key_hash)
                    if answered is not None:
                        return [], answered[1], True
                    raise _stale(self._epoch_after(group_id, row, req))
                state = self._unlock(group_id, row, req.token)
                if state is None:  # pragma: no cover - the digest is a wrap's token's
                    raise _unknown_group()
                members = await live_queues(tx, state.listed)
                return await applied(tx, row, state, members, set())
            # Signed: a member's (its token opens the state) or an external
            # commit (its rejoin token does). Without the state the server can
            # read neither the epoch nor the members, so a token that opens
            # nothing is answered as a stranger is.
            opener = req.rejoin_token if header.external_commit else req.token
            state = self._unlock(group_id, row, opener)
            if state is None:
                raise _unknown_group()
            old_members = await live_queues(tx, state.listed)
            own_queues: set[str] = set()
            if principal.queue_id not in old_members:
                # An external commit may come from another device of a member's
                # account (a restored or resynced device, docs/devices.md §5).
                info = await self._stored_info(tx, group_id, state)
                own_queues = await self._account_queues(tx, principal)
                own_queues |= self._leaf_queues(principal, info)
                if not header.external_commit or own_queues.isdisjoint(old_members):
                    raise _unknown_group()
            return await applied(tx, row, state, old_members, own_queues)

        async def applied(
            tx: Tx,
            row: _GroupRow,
            state: _GroupState,
            old_members: list[str],
            own_queues: set[str],
        ) -> tuple[list[Delivery], int, bool]:
            """The commit's checks and changes, once the committer is known to be allowed."""
            nonlocal taken
            answered = await self._answered(tx, key_hash)
            if answered is not None:
                return [], answered[1], True
            current = state.epoch
            if current != req.epoch:
                raise _stale(current)
            if row.state_keys is not None and req.next_token is None:
                raise ApiError(
                    ErrorCode.OUTDATED_CLIENT,
                    "this group's state is sealed under its members' keys: a commit carries "
                    "the new epoch's send token; update the app",
                )
            if join_queue is not None:
                assert req.join_proof is not None  # they go together (checked above)
                await self._check_queue_proof(
                    tx,
                    join_queue,
                    req.join_proof,
                    queue_join_message(group_id, req.epoch, req.commit),
                    shown,
                )
            moved_off: set[str] = set()
            if leave_queue is not None:
                assert req.leave_proof is not None
                if leave_queue not in state.listed:
                    raise ApiError.invalid_field("leave_queue", "not a queue of the group")
                await self._check_queue_proof(
                    tx,
                    leave_queue,
                    req.leave_proof,
                    queue_leave_message(group_id, req.epoch, req.commit),
                    shown,
                )
                # The committer's own queue, proved by its key: a move, not a removal.
                moved_off.add(leave_queue)
            old = set(old_members)
            added = sorted(new_members - old)
            removed = sorted(old - new_members)
            # The current epoch's token, proved by its digest (not an external
            # commit's): the state of a group moving to its members' keys is
            # wrapped under it too (:meth:`_next_state`).
            current_token = (
                req.token
                if req.token is not None
                and not header.external_commit
                and row.digest is not None
                and hmac.compare_digest(token_digest(req.token), row.digest)
                else None
            )
            gone = await self._removed_queues(tx, added)
            if gone:
                # Queues of devices removed from their account (devices.py): a
                # member that has not yet seen the commit removing their leaves
                # still lists them. They are not members any more; skip them.
                added = [q for q in added if q not in gone]
            if header.external_commit:
                assert principal is not None  # refused above when sealed
                await self._check_external_commit(
                    tx, principal, group_id, state, req, old, own_queues
                )
            else:
                # The join queue proved itself (_check_join): no Welcome, no claim.
                claimed = [q for q in added if q != join_queue]
                unwelcomed = [q for q in claimed if q not in welcomed]
                missing = unwelcomed or await self._claims.consume(
                    tx, req.claims or (), claimed, refs, now
                )
                if missing:
                    raise ApiError(
                        ErrorCode.MEMBER_NOT_CLAIMED,
                        "a new member's queue can be added only with a Welcome for a "
                        "KeyPackage claimed from it, and that claim's token",
                        {"queue": shown[missing[0]]},
                    )
            for chunk in _chunks(added):
                found = await tx.fetchall(
                    f"SELECT queue_id FROM queues WHERE queue_id IN ({_placeholders(len(chunk))})",  # noqa: S608
                    *chunk,
                )
                if len(found) != len(chunk):
                    known = {str(r[0]) for r in found}
                    unknown = next(str(q) for q in chunk if q not in known)
                    raise ApiError(
                        ErrorCode.UNKNOWN_QUEUE,
                        "a new member's queue does not exist",
                        {"queue": shown[unknown]},
                    )
            # The new member set. A queue of a removed device stays while the
            # committer still lists it (it has not seen the removal of its
            # leaves), and goes with the commit that removes them: that commit
            # is a removal for the state keys below, as it is for the members.
            listed = set(state.listed)
            members_now = (listed & new_members) | set(added)
            # A queue the committer moved off (leave_proof) is its own, not a
            # member's removal: the tokens of earlier epochs keep opening the state.
            dropped = not (listed - moved_off).issubset(new_members)
            data_key, keys_now = self._next_state(
                group_id,
                row.state_keys,
                state.keys.data_key,
                current_token,
                req.next_token,
                removed=dropped,
            )
            # The row is locked (_group_row), so the epoch read is still the
            # current one. The new epoch and member set are sealed under the
            # new data key, if there is one, as the GroupInfo is.
            changed = await tx.execute(
                "UPDATE mls_groups SET epoch_box = ?, group_info = ?, "
                "previous_send_token_hash = send_token_hash, send_token_hash = ?, "
                "group_info_sealed = ?, state_keys = ?, members_box = ? WHERE group_id = ?",
                self._epochs.seal(
                    group_id,
                    new_epoch,
                    new_epoch if req.group_info is not None else None,
                    data_key,
                ),
                None
                if req.group_info is None
                else self._sealed_info(group_id, req.group_info, data_key),
                next_hash,
                SEALED_BY_SERVER if data_key is None else SEALED_BY_MEMBERS,
                keys_now,
                self._member_sets.seal(group_id, members_now, data_key),
                group_id,
            )
            if changed != 1:  # pragma: no cover - the row lock rules this out
                raise _stale(current)
            costs: dict[str, tuple[int, int]] = {}
            for q in old_members:
                costs[q] = (1, len(req.commit))
            if req.welcome is not None:
                for q in welcome_to:
                    if q in gone:
                        continue
                    count, size = costs.get(q, (0, 0))
                    costs[q] = (count + 1, size + len(req.welcome))
            if principal is not None:
                costs.pop(principal.queue_id, None)
            taken = self.budgets.take(sender, costs)
            # A commit always reaches the members it removes, so that a member
            # whose queue is full can still be removed (RFC 9420 §12.4).
            deliveries = await self._enqueue(tx, old_members, req.commit, now, may_exceed=removed)
            recipients = len(deliveries)
            if req.welcome is not None:
                welcomed_now = [q for q in welcome_to if q not in gone]
                deliveries += await self._enqueue(tx, welcomed_now, req.welcome, now)
            await self._remember(tx, key_hash, new_epoch, recipients, now)
            return deliveries, recipients, False

        try:
            deliveries, recipients, repeated = await self._db.transaction(op)
        except BaseException as exc:
            if taken is not None:
                self.budgets.refund(taken)
            if isinstance(exc, ApiError):
                self._count_refusal(exc)
            raise
        if repeated:
            log_event(_log, "commit repeated", epoch=new_epoch)
            return CommitResponse(new_epoch, recipients)
        self._metrics.commits.labels(outcome="accepted").inc()
        self._metrics.messages.labels(kind="commit").inc()
        if req.welcome is not None:
            self._metrics.messages.labels(kind="welcome").inc()
        self._published(deliveries)
        log_event(_log, "commit accepted", epoch=new_epoch, recipients=recipients)
        return CommitResponse(new_epoch, recipients)

    def _epoch_after(self, group_id: bytes, row: _GroupRow, req: CommitRequest) -> int:
        """The epoch to tell a member whose sealed commit carries the previous epoch's token.

        Its token opens the state unless the commit that made this epoch
        removed someone (:mod:`.state_keys`); then the server cannot read the
        epoch, and answers the one after the commit's own: the token is the
        previous epoch's, so the group is one commit past the member's epoch,
        and the answer tells nothing the request did not say. (The client
        only checks that ``current_epoch`` is there, then catches up from its
        queue, which holds the winning commit.)
        """
        state = self._unlock(group_id, row, req.token)
        return req.epoch + 1 if state is None else state.epoch

    def _next_state(
        self,
        group_id: bytes,
        stored: bytes | None,
        data_key: bytes | None,
        current_token: bytes | None,
        next_token: bytes | None,
        *,
        removed: bool,
    ) -> tuple[bytes | None, bytes | None]:
        """The data key and state keys of the epoch a commit makes (:mod:`.state_keys`).

        Without ``next_token`` (a group still sealed under the server's key,
        by an app from before) there are none. A commit that removes a member
        draws a new data key wrapped under the new epoch's token alone: a
        removed member's tokens open nothing of what follows (RFC 9420
        §12.1.3). A commit that moves a group to its members' keys draws one
        wrapped under the current epoch's token too (``current_token``,
        checked against its digest), so that the boxes and backups of that
        epoch open it. Any other commit adds the new token's wrap, so the
        tokens of earlier epochs keep opening the state.

        A commit to a group sealed under its members' keys has opened them
        (``data_key``): without them the server could not read its epoch or
        members, and refused it. So a member who registers a next token that
        is not the epoch's makes the group unusable, as one who commits MLS
        garbage does: no member's token opens the state any more.
        """
        if next_token is None:
            return None, None
        if stored is None:
            if not removed and current_token is not None:
                data_key, first = self._state_keys.new(group_id, current_token)
                return data_key, self._state_keys.extend(group_id, first, data_key, next_token)
            return self._state_keys.new(group_id, next_token)
        assert data_key is not None  # the commit opened the state
        if removed:
            return self._state_keys.new(group_id, next_token)
        return data_key, self._state_keys.extend(group_id, stored, data_key, next_token)

    async def _check_queue_proof(
        self,
        tx: Tx,
        queue_id: str,
        proof: bytes,
        message: bytes,
        shown: Mapping[str, str],
    ) -> None:
        """:class:`ApiError` unless ``proof`` is the signature of ``queue_id``'s own
        key over ``message``: :func:`~messenger.api.signing.queue_join_message`
        (or ``queue_leave_message``) of this group, the commit's epoch and the
        commit (module docstring).

        ``unknown_queue`` if the queue does not exist (a removed device's
        included), ``proof_invalid`` if it has no key of its own or the proof
        does not verify with it: a proof made for another commit, epoch or
        group, by another queue's key, or for the other field, stands for
        nothing here.
        """
        row = await tx.fetchone("SELECT auth_key FROM queues WHERE queue_id = ?", queue_id)
        if row is None:
            raise ApiError(
                ErrorCode.UNKNOWN_QUEUE,
                "the joining or left queue does not exist",
                {"queue": shown[queue_id]},
            )
        if row[0] is None or not verify_ed25519(bytes(row[0]), proof, message):
            raise ApiError(
                ErrorCode.PROOF_INVALID,
                "a queue proof does not verify with its queue's key for this commit",
            )

    def _opened_addresses(self, req: CommitRequest) -> tuple[CommitRequest, dict[str, str]]:
        """``req`` with its members, Welcome recipients and join queue as queue IDs,
        and the address the committer gave for each queue (errors name that, not the ID).

        The committer reads the delivery addresses of the new epoch's leaves
        (:mod:`.queue_addresses`); one the server cannot open is refused
        (``invalid_field``). Two addresses of one queue count once.
        """
        shown: dict[str, str] = {}

        def opened(name: str, addresses: Sequence[str]) -> tuple[str, ...]:
            queues: dict[str, None] = {}
            for index, address in enumerate(addresses):
                queue = self._addresses.resolve(address)
                if queue is None:
                    raise ApiError.invalid_field(
                        f"{name}[{index}]", "not a delivery address of this server"
                    )
                shown.setdefault(queue, address)
                queues[queue] = None
            return tuple(queues)

        members = opened("members", req.members)
        welcome_to = None if req.welcome_to is None else opened("welcome_to", req.welcome_to)

        def one(name: str, address: str | None) -> str | None:
            if address is None:
                return None
            queue = self._addresses.resolve(address)
            if queue is None:
                raise ApiError.invalid_field(name, "not a delivery address of this server")
            shown.setdefault(queue, address)
            return queue

        replaced = dataclasses.replace(
            req,
            members=members,
            welcome_to=welcome_to,
            join_queue=one("join_queue", req.join_queue),
            leave_queue=one("leave_queue", req.leave_queue),
        )
        return replaced, shown

    def _count_refusal(self, exc: ApiError) -> None:
        if exc.code is ErrorCode.STALE_EPOCH:
            self._metrics.commits.labels(outcome="stale").inc()
        elif exc.code is ErrorCode.RATE_LIMITED:
            self._metrics.rate_limited.labels(limit="sender_queue").inc()
        elif exc.code is ErrorCode.QUEUE_FULL:
            self._metrics.rate_limited.labels(limit="queue_full").inc()

    async def _removed_queues(self, tx: Tx, queue_ids: Sequence[str]) -> set[str]:
        """Those of ``queue_ids`` that belonged to removed clients (their tombstones)."""
        if not queue_ids or self._removed_key is None:
            return set()
        digests = {removed_queue_hash(self._removed_key, q): q for q in queue_ids}
        found: set[str] = set()
        for chunk in _chunks(list(digests)):
            rows = await tx.fetchall(
                f"SELECT tombstone FROM removed_clients WHERE tombstone IN "  # noqa: S608
                f"({_placeholders(len(chunk))})",
                *chunk,
            )
            found.update(digests[bytes(r[0])] for r in rows)
        return found

    async def _account_queues(self, tx: Tx, principal: Principal) -> set[str]:
        """The queues of ``principal``'s account that rows or the request name: the
        one the request proves, and those its clients' rows still name (clients
        from before queue keys). A queue with a key of its own is named by no
        row: :meth:`_leaf_queues` finds those of a group's members."""
        rows = await self._queue_links.of_account(tx, principal.account_id)
        queues = {q for _, q in rows if q is not None}
        if principal.proven_queue is not None:
            queues.add(principal.proven_queue)
        return queues

    def _leaf_queues(self, principal: Principal, info: bytes | None) -> set[str]:
        """The queues that the leaves of ``principal``'s account in the group's
        GroupInfo ``info`` name (parsing its tree: only when needed)."""
        queues: set[str] = set()
        for account_id, delivery in () if info is None else group_info_leaves(info):
            queue = None if delivery is None else self._addresses.resolve(delivery)
            if account_id == principal.account_id and queue is not None:
                queues.add(queue)
        return queues

    async def _stored_info(self, tx: Tx, group_id: bytes, state: _GroupState) -> bytes | None:
        """The group's stored GroupInfo, opened (None if it has none)."""
        row = await tx.fetchone(
            "SELECT group_info, group_info_sealed FROM mls_groups WHERE group_id = ?", group_id
        )
        if row is None or row[0] is None:
            return None
        return self._opened_info(group_id, row[0], row[1], state.keys.data_key)

    def _sealed_info(
        self, group_id: bytes, group_info: bytes, data_key: bytes | None = None
    ) -> bytes:
        """What ``mls_groups.group_info`` holds: the padded GroupInfo, sealed at rest.

        A GroupInfo's ratchet tree names every member's account and client
        (RFC 9420 §12.4.3.3), so a copy of the database must not show it
        (:mod:`.at_rest`, docs/threat-model.md). Sealed under the group's
        data key if its members send the keys (:mod:`.state_keys`), else
        under the server's key.
        """
        sealer = self._group_infos if data_key is None else StateKeys.sealer(data_key)
        return sealer.seal(group_id, _stored(group_info))

    def _sealed_payload(self, message: bytes) -> bytes:
        """What ``payloads.data`` holds: the padded message, sealed at rest.

        A PrivateMessage shows its group ID and epoch in the clear (RFC 9420
        §6.3), so a stored message would tie the queues holding it to its
        group. Bound to the column only: the row's ID is drawn by the insert.
        """
        return self._payloads.seal(b"", _stored(message))

    def opened_payload(self, data: bytes) -> bytes:
        """The message of a ``payloads`` row (rows from before sealing hold it padded or bare).

        A sealed value starts with 0x01; a padded envelope with 0xff 0x01 and
        a bare MLSMessage with its version, 0x00 0x01 (RFC 9420 §6).
        """
        if data[:1] == b"\x01":
            return _loaded(self._payloads.open(b"", data))
        return _loaded(data)

    def _opened_info(
        self, group_id: bytes, stored: bytes | memoryview, sealed: object, data_key: bytes | None
    ) -> bytes:
        """The GroupInfo of a stored ``mls_groups`` row (rows not yet sealed hold it padded).

        ``data_key`` opens one sealed under its members' keys
        (``group_info_sealed`` 2 or 3; :mod:`.state_keys`).
        """
        data = bytes(stored)
        if sealed in (INFO_SEALED_BY_MEMBERS, SEALED_BY_MEMBERS):
            assert data_key is not None  # callers open the state first
            return _loaded(StateKeys.sealer(data_key).open(group_id, data))
        return _loaded(self._group_infos.open(group_id, data) if sealed else data)

    async def seal_legacy_payloads(self, tx: Tx) -> int:
        """Seal the messages stored before server migration 14; how many were sealed.

        In batches of 500 (a sealed row no longer matches), so memory stays
        bounded however many messages wait. A bare message (stored before
        padding) is padded first, as :meth:`_sealed_payload` stores any.
        """
        sealed = 0
        while True:
            rows = await tx.fetchall(
                "SELECT payload_id, data FROM payloads WHERE sealed = 0 LIMIT ?", 500
            )
            if not rows:
                return sealed
            await tx.executemany(
                "UPDATE payloads SET data = ?, sealed = 1 WHERE payload_id = ? AND sealed = 0",
                [
                    (self._sealed_payload(self.opened_payload(bytes(data))), int(pid))
                    for pid, data in rows
                ],
            )
            sealed += len(rows)

    async def adopt_legacy(self, tx: Tx) -> int:
        """Seal the GroupInfos stored before server migration 11; how many were sealed.

        In batches (a sealed row no longer matches): GroupInfos can be large.
        """
        sealed = 0
        while True:
            rows = await tx.fetchall(
                "SELECT group_id, group_info FROM mls_groups "
                "WHERE group_info_sealed = 0 AND group_info IS NOT NULL LIMIT ?",
                100,
            )
            if not rows:
                return sealed
            await tx.executemany(
                "UPDATE mls_groups SET group_info = ?, group_info_sealed = 1 WHERE group_id = ?",
                [
                    (self._sealed_info(bytes(g), _loaded(bytes(info)), None), bytes(g))
                    for g, info in rows
                ],
            )
            sealed += len(rows)

    async def _check_external_commit(
        self,
        tx: Tx,
        principal: Principal,
        group_id: bytes,
        state: _GroupState,
        req: CommitRequest,
        old_members: set[str],
        own_queues: set[str],
    ) -> None:
        """:class:`ApiError` unless ``req`` is a verified external join of ``principal``.

        RFC 9420 §12.4.3.2: an external commit adds only its sender and may
        remove one old leaf of the sender (a resync). ``principal`` is a
        member (a rejoin after lost state: the member set stays as it is) or
        a device of a member's account (a restored device, docs/devices.md
        §5; ``own_queues`` are its account's queues): then the member set
        grows by the requester's queue only and may lose at most one queue,
        which must be of the requester's own account. Its signature must
        verify against the GroupContext of the GroupInfo held for the current
        epoch (RFC 9420 §6.1), with the UpdatePath leaf's key, which must be
        the requesting client's registered key under the credential this
        server issued to it.
        """
        new_members = set(req.members)
        if principal.queue_id in old_members:
            if new_members != old_members:
                raise ApiError.invalid_field(
                    "members", "an external commit rejoins a member: the member set stays the same"
                )
        else:
            added = new_members - old_members
            removed = old_members - new_members
            if (
                added != {principal.queue_id}
                or len(removed) > 1
                or not removed.issubset(own_queues)
            ):
                raise ApiError.invalid_field(
                    "members",
                    "an external commit adds only its sender and removes at most one "
                    "queue of the sender's own account",
                )
        row = await tx.fetchone(
            "SELECT group_info, group_info_sealed FROM mls_groups WHERE group_id = ?", group_id
        )
        if row is None or row[0] is None or state.info_epoch != state.epoch:
            raise ApiError(
                ErrorCode.NO_GROUP_INFO,
                "an external commit needs the GroupInfo of the current epoch on the server",
            )
        info = self._opened_info(group_id, row[0], row[1], state.keys.data_key)
        leaf = verify_external_commit(req.commit, info)
        registered = await registered_identity(tx, principal.client_id)
        if not leaf_is_issued_to(self._credential_key, principal, registered, leaf):
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                "the external commit's leaf does not carry this client's key and credential",
            )
        if (
            leaf.delivery is not None
            and self._addresses.resolve(leaf.delivery) != principal.queue_id
        ):
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                "the external commit's leaf names a delivery address of another queue",
            )

    @staticmethod
    def _send_header(message: bytes, group_id: bytes) -> GroupMessageHeader:
        """The framing header of a message for the send routes (no commits, this group)."""
        header = parse_group_message(message)
        if header.kind is FrameKind.COMMIT:
            raise ApiError(
                ErrorCode.WRONG_MESSAGE_TYPE, "commits go to the commits route, not messages"
            )
        if header.group_id != group_id:
            raise ApiError(ErrorCode.GROUP_MISMATCH, "the message is for another group")
        return header

    async def send(self, group_id: bytes, req: SendRequest) -> SendResponse:
        """Fan an application message or proposal out to every member's queue.

        The send is sealed (docs/metadata.md §3): it carries the epoch's
        send token, not a signature, so the server learns that *a* member
        sent it, not which. A token that is not the current epoch's gets
        ``unknown_group``, as for a group that does not exist; the send is
        refused whole if a recipient's queue is full or the group's budget
        towards a recipient is spent.
        """
        (response,) = await self.send_batch(group_id, (req,))
        return response

    async def send_batch(self, group_id: bytes, items: Sequence[SendRequest]) -> list[SendResponse]:
        """:meth:`send` for each of ``items``, in order, in one transaction: all or none.

        Every rule of a single send holds for each item: the framing checks
        (``wrong_message_type``, ``group_mismatch``, ``invalid_message``), the
        members-only rule (a request without the current epoch's send token
        gets ``unknown_group`` before anything else about the group is looked
        at; every item carries the same token), the epoch (``stale_epoch``),
        each recipient queue's room (``queue_full``: room for every new
        message) and the group's budget, counted per message. An item whose
        idempotency key was already answered gets that answer again and is
        not stored (nor counted); the others are stored in order. If any
        check fails, nothing is stored and no budget is spent.

        Sends to one group that arrive while a transaction for that group is
        running are stored together in the next one (:meth:`_drain`): the
        group's row lock and the queues' locks are held once per transaction,
        not once per send, while each request keeps its own checks and its
        own answer (one request refused does not refuse the others).
        """
        tokens = {item.token for item in items}
        if None in tokens:
            raise ApiError(
                ErrorCode.OUTDATED_CLIENT,
                "this app is too old for the server: sends need the epoch's token; update the app",
            )
        if len(tokens) != 1:
            raise ApiError.invalid_field("messages", "every item carries the same send token")
        (token,) = tokens
        assert token is not None
        headers = [self._send_header(item.message, group_id) for item in items]
        self._check_batch_budget(items)
        sender = _group_sender(group_id)
        unit = _SendUnit(
            token,
            token_digest(token),
            items,
            headers,
            [
                None
                if item.idempotency_key is None
                else _idempotency_hash(sender, item.idempotency_key)
                for item in items
            ],
            asyncio.get_running_loop().create_future(),
        )
        pending = self._pending.get(group_id)
        if pending is not None:
            pending.append(unit)
        else:
            self._pending[group_id] = [unit]
            task = asyncio.create_task(self._drain(group_id), name="delivery-send")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return await unit.future

    async def _drain(self, group_id: bytes) -> None:
        """Store the pending sends to ``group_id``, one transaction at a time, until none is left.

        Each transaction takes the sends waiting when it starts (up to
        :data:`_MAX_COALESCED` messages), in arrival order, so a client that
        awaits each send before the next has them stored in its order.
        """
        try:
            while True:
                pending = self._pending[group_id]
                if not pending:
                    return
                count = 0
                taken = 0
                while taken < len(pending) and (
                    taken == 0 or count + len(pending[taken].items) <= _MAX_COALESCED
                ):
                    count += len(pending[taken].items)
                    taken += 1
                units = [u for u in pending[:taken] if not u.future.done()]
                del pending[:taken]
                if units:
                    await self._send_units(group_id, units)
        finally:
            for unit in self._pending.pop(group_id, ()):
                unit.future.cancel()

    async def _send_units(self, group_id: bytes, units: Sequence[_SendUnit]) -> None:
        """Store ``units`` (sends to ``group_id``) in one transaction; answer each one."""
        now = self._now_ms()

        async def op(tx: Tx) -> tuple[list[Delivery], list[_Outcome], int]:
            for unit in units:
                if unit.taken is not None:  # a retried transaction (PostgreSQL conflict)
                    self.budgets.refund(unit.taken)
                    unit.taken = None
            row = await self._group_row(tx, group_id)
            if row is None:
                raise _unknown_group()
            digest = row.digest
            # The state opens with the token of a send that proves membership
            # (its digest is the epoch's); if none does, each send is refused
            # as a stranger's, and the member set stays sealed.
            token = next(
                (
                    u.token
                    for u in units
                    if digest is not None and hmac.compare_digest(u.token_digest, digest)
                ),
                None,
            )
            state = None if token is None else self._unlock(group_id, row, token)
            if state is None:
                raise _unknown_group()
            await self._move_boxes(tx, group_id, state)
            current = state.epoch
            queues = await self._lock_member_queues(tx, state)
            stored = await self._stored_answers(
                tx, [k[:32] for u in units for k in u.key_hashes if k is not None]
            )
            recipients = len(queues)
            fresh: dict[bytes, tuple[int, int]] = {}
            messages: list[bytes] = []
            rows: list[tuple[bytes, bytes, int]] = []
            outcomes: list[_Outcome] = []
            for unit in units:
                outcome = self._admit(
                    unit, group_id, current, digest, queues, len(messages), stored, fresh
                )
                outcomes.append(outcome)
                if isinstance(outcome, ApiError):
                    continue
                for item, key_hash, answer in zip(
                    unit.items, unit.key_hashes, outcome, strict=True
                ):
                    if answer is None:
                        messages.append(item.message)
                        if key_hash is not None:
                            rows.append(self._answer_row(key_hash, current, recipients, now))
            deliveries = await self._append(tx, queues, messages, now, rows) if messages else []
            return deliveries, outcomes, recipients

        try:
            deliveries, outcomes, recipients = await self._db.transaction(op)
        except BaseException as exc:
            for unit in units:
                if unit.taken is not None:
                    self.budgets.refund(unit.taken)
                if isinstance(exc, ApiError):
                    self._count_refusal(exc)
                if not unit.future.done():
                    if isinstance(exc, ApiError):
                        unit.future.set_exception(ApiError(exc.code, exc.message, exc.details))
                    elif isinstance(exc, Exception):
                        unit.future.set_exception(exc)
                    else:
                        unit.future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        self._published(deliveries)
        for unit, outcome in zip(units, outcomes, strict=True):
            if isinstance(outcome, ApiError):
                self._count_refusal(outcome)
                if not unit.future.done():
                    unit.future.set_exception(outcome)
                continue
            results: list[SendResponse] = []
            for header, answer in zip(unit.headers, outcome, strict=True):
                if answer is not None:
                    results.append(answer)
                else:
                    self._metrics.messages.labels(kind=header.kind.value).inc()
                    results.append(SendResponse(header.epoch, recipients))
            if not unit.future.done():
                unit.future.set_result(results)

    def _admit(
        self,
        unit: _SendUnit,
        group_id: bytes,
        current: int,
        digest: bytes | None,
        queues: Mapping[str, tuple[int, int]],
        before: int,
        stored: Mapping[bytes, bytes],
        fresh: dict[bytes, tuple[int, int]],
    ) -> _Outcome:
        """The checks of one send in a coalesced transaction: its answers, or its refusal.

        ``before`` messages of earlier sends in this transaction already take
        room in every queue; ``fresh`` holds the idempotency answers given
        earlier in this transaction (a retry racing its original). The order
        of the checks is that of a lone send: membership (the send token),
        idempotency, epoch, the group's budget, the queues' room.
        """
        if digest is None or not hmac.compare_digest(unit.token_digest, digest):
            return _unknown_group()
        recipients = len(queues)
        mine: dict[bytes, tuple[int, int]] = {}
        answers: list[SendResponse | None] = []
        for header, key_hash in zip(unit.headers, unit.key_hashes, strict=True):
            answered: tuple[int, int] | None = None
            if key_hash is not None:
                digest = key_hash[:32]
                answered = fresh.get(digest, mine.get(digest))
                if answered is None and digest in stored:
                    answered = _unpack_answer(_mask(stored[digest], key_hash[32:]))
                if answered is None:
                    mine[digest] = (current, recipients)
            if answered is None and header.epoch != current:
                return _stale(current)
            answers.append(None if answered is None else SendResponse(*answered))
        new = [item.message for item, a in zip(unit.items, answers, strict=True) if a is None]
        if not new:
            return answers
        try:
            size = sum(len(m) for m in new)
            unit.taken = self.budgets.take(
                _group_sender(group_id), {q: (len(new), size) for q in queues}
            )
        except ApiError as exc:
            return exc
        if any(held + before + len(new) > self._max_queue_length for _, held in queues.values()):
            self.budgets.refund(unit.taken)
            unit.taken = None
            return _queue_full()
        fresh.update(mine)
        return answers

    @staticmethod
    async def _stored_answers(tx: Tx, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """``{key digest: masked answer}`` of the idempotency keys already answered."""
        if not digests:
            return {}
        if tx.dialect == "postgresql":
            rows = await tx.fetchall(
                "SELECT key_hash, answer FROM idempotency_keys WHERE key_hash = ANY(?::bytea[])",
                list(digests),
            )
        else:
            rows = []
            for chunk in _chunks(digests):
                rows += await tx.fetchall(
                    "SELECT key_hash, answer FROM idempotency_keys "  # noqa: S608
                    f"WHERE key_hash IN ({_placeholders(len(chunk))})",
                    *chunk,
                )
        return {bytes(k): bytes(a) for k, a in rows}

    def _check_batch_budget(self, items: Sequence[SendRequest]) -> None:
        """``limit_exceeded`` for a batch that no full budget could take: split it.

        A single message larger than the byte budget still goes with a full
        bucket (:class:`SenderBudgets`); a batch may not use that to pass
        more than a minute's worth of messages or bytes at once.
        """
        if len(items) <= 1:
            return
        if len(items) > self.budgets.max_messages or (
            sum(len(item.message) for item in items) > self.budgets.max_bytes
        ):
            raise ApiError(
                ErrorCode.LIMIT_EXCEEDED,
                "the batch holds more than a minute's budget towards a recipient; "
                "send it in smaller batches",
                {
                    "max_items": int(self.budgets.max_messages),
                    "max_bytes": int(self.budgets.max_bytes),
                },
            )

    async def group_info(self, principal: Principal, group_id: bytes) -> GroupInfoResponse:
        """The stored GroupInfo, for a member that rejoins externally.

        Only a client whose queue is in the group's member set gets it; any
        other client is told ``unknown_group``, as for a group that does not
        exist, so that the answer does not reveal which groups exist. A
        group sealed under its members' keys is read with a token
        (:meth:`rejoin_info`): without one the server cannot read its member
        set, and answers ``unknown_group`` too.
        """
        return await self._read_group_info(principal, group_id, None)

    async def rejoin_info(
        self, principal: Principal, group_id: bytes, req: RejoinInfoRequest
    ) -> GroupInfoResponse:
        """The stored GroupInfo, opened with the send token of an epoch since the
        last removal (:mod:`.state_keys`); as :meth:`group_info` otherwise.

        A token that opens nothing is ``unknown_group``, as for a stranger: the
        server cannot read the member set without it.
        """
        return await self._read_group_info(principal, group_id, req.token)

    async def _read_group_info(
        self, principal: Principal, group_id: bytes, token: bytes | None
    ) -> GroupInfoResponse:
        async def op(tx: Tx) -> tuple[int, bytes | None]:
            state = await self._opened(tx, group_id, token, lock=False)
            info = await self._stored_info(tx, group_id, state)
            # A member, or a device of a member's account (docs/devices.md §5).
            members = await live_queues(tx, state.listed)
            if (await self._account_queues(tx, principal)).isdisjoint(members) and (
                self._leaf_queues(principal, info).isdisjoint(members)
            ):
                raise _unknown_group()
            if info is None:
                return 0, None
            return 0 if state.info_epoch is None else state.info_epoch, info

        epoch, info = await self._db.read(op)
        if info is None:
            raise ApiError(ErrorCode.NO_GROUP_INFO, "no GroupInfo is stored for this group")
        return GroupInfoResponse(epoch, info)

    async def put_group_info(
        self, principal: Principal, group_id: bytes, req: GroupInfoRequest
    ) -> None:
        """Replace the GroupInfo of the current epoch (members only).

        A client that is not a member is told ``unknown_group``, as for a
        group that does not exist (see :meth:`group_info`). A group sealed
        under its members' keys needs a token that opens them (``token``),
        else the answer is the same: the server cannot read its members.
        """
        self._check_group_info(req.group_info, group_id, req.epoch)

        async def op(tx: Tx) -> None:
            state = await self._opened(tx, group_id, req.token)
            if principal.queue_id not in await live_queues(tx, state.listed):
                raise _unknown_group()
            if req.epoch != state.epoch:
                raise _stale(state.epoch)
            data_key = state.keys.data_key
            # The member set is sealed again with the epochs: a row from
            # before moves to the data key here too (:meth:`_move_boxes`).
            await tx.execute(
                "UPDATE mls_groups SET group_info = ?, epoch_box = ?, members_box = ?, "
                "group_info_sealed = ? WHERE group_id = ?",
                self._sealed_info(group_id, req.group_info, data_key),
                self._epochs.seal(group_id, state.epoch, req.epoch, data_key),
                self._member_sets.seal(group_id, state.listed, data_key),
                SEALED_BY_SERVER if data_key is None else SEALED_BY_MEMBERS,
                group_id,
            )

        await self._db.transaction(op)

    async def register_send_token(
        self, principal: Principal, group_id: bytes, req: SendTokenRequest
    ) -> None:
        """Set the current epoch's send-token digest of a group that has none (members only).

        For groups made before sealed sending (docs/metadata.md §3): a
        commit sets the digest for its epoch, so this is needed at most once
        per epoch. A digest already set is never replaced (``key_in_use``),
        so one member cannot lock the others out by registering another;
        the next commit sets a fresh one. Non-members get ``unknown_group``,
        and so does everyone for a group sealed under its members' keys:
        the request carries no token, so the server cannot read its members
        (and such a group always has its digest).
        """

        async def op(tx: Tx) -> None:
            row = await self._group_row(tx, group_id)
            state = (
                None
                if row is None or row.state_keys is not None
                else self._unlock(group_id, row, None)
            )
            if state is None or principal.queue_id not in await live_queues(tx, state.listed):
                raise _unknown_group()
            assert row is not None
            if req.epoch != state.epoch:
                raise _stale(state.epoch)
            if row.digest is not None:
                if hmac.compare_digest(row.digest, req.send_token_hash):
                    return
                raise ApiError(
                    ErrorCode.KEY_IN_USE, "this epoch's send token is registered already"
                )
            await tx.execute(  # the row is locked: still this epoch
                "UPDATE mls_groups SET send_token_hash = ? WHERE group_id = ?",
                req.send_token_hash,
                group_id,
            )

        await self._db.transaction(op)

    # -- queues -------------------------------------------------------------------

    async def fetch(self, queue_id: str, after: int, limit: int) -> tuple[list[QueueMessage], bool]:
        """Up to ``limit`` messages with ``seq > after``, and whether more wait."""

        async def op(tx: Tx) -> list[QueueMessage]:
            entries = await tx.fetchall(
                "SELECT seq, payload_ref FROM queue_entries "
                "WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                queue_id,
                after,
                limit + 1,
            )
            refs = [(int(seq), self._refs.open(queue_id, ref)) for seq, ref in entries]
            ids = sorted({payload_id for _seq, payload_id in refs})
            data: dict[int, bytes] = {}
            for chunk in _chunks(ids):
                rows = await tx.fetchall(
                    "SELECT payload_id, data FROM payloads "  # noqa: S608
                    f"WHERE payload_id IN ({_placeholders(len(chunk))})",
                    *chunk,
                )
                data.update((int(pid), bytes(d)) for pid, d in rows)
            # An entry whose payload retention just dropped is skipped (as a
            # JOIN would): it expired with it.
            return [
                QueueMessage(seq, self.opened_payload(data[pid]))
                for seq, pid in refs
                if pid in data
            ]

        messages = await self._db.read(op)
        return messages[:limit], len(messages) > limit

    async def fetch_wait(
        self, queue_id: str, after: int, limit: int, wait_seconds: float
    ) -> tuple[list[QueueMessage], bool]:
        """:meth:`fetch`, waiting up to ``wait_seconds`` for a message (long poll)."""
        sub = self._hub.subscribe(queue_id)
        try:
            messages, more = await self.fetch(queue_id, after, limit)
            if messages or wait_seconds <= 0:
                return messages, more
            if await sub.wait(wait_seconds):
                return await self.fetch(queue_id, after, limit)
            return [], False
        finally:
            self._hub.unsubscribe(sub)

    async def ack(self, queue_id: str, up_to: int) -> int:
        """Delete the queue's entries with ``seq <= up_to``; how many there were.

        An ack that empties the queue moves its next number ahead by a
        random step (:func:`.queue_numbers.seq_after_emptied`), so that two
        copies of the database do not show how many messages it got in
        between. The queue row is locked first, as appends lock it, so no
        message lands between the emptying and the move.
        """

        async def op(tx: Tx) -> int:
            row = await tx.fetchone(
                "SELECT next_seq FROM queues WHERE queue_id = ?" + tx.for_update,  # noqa: S608
                queue_id,
            )
            rows = await tx.fetchall(
                "DELETE FROM queue_entries WHERE queue_id = ? AND seq <= ? RETURNING payload_ref",
                queue_id,
                up_to,
            )
            await self._refs.release(tx, queue_id, (r[0] for r in rows))
            # Entries are numbered below next_seq: acking up to next_seq - 1
            # leaves none. An ack that deleted nothing moves nothing.
            if rows and row is not None and up_to >= int(row[0]) - 1:
                await tx.execute(
                    "UPDATE queues SET next_seq = ? WHERE queue_id = ?",
                    seq_after_emptied(int(row[0])),
                    queue_id,
                )
            return len(rows)

        return await self._db.transaction(op)

    # -- retention ------------------------------------------------------------------

    async def sweep(self) -> SweepResult:
        """Apply the retention limit and purge spent nonces, challenges and claim evidence.

        Only entries older than ``retention_seconds`` are dropped: a queue's
        length is held by refusing new entries (``queue_full``), never by
        evicting unread ones.
        """
        now = self._now_ms()

        async def op(tx: Tx) -> SweepResult:
            cutoff = now - self._retention_ms
            expired = await tx.execute("DELETE FROM queue_entries WHERE created_at < ?", cutoff)
            # A payload carries the hour of its entries (payload_refs): both
            # expire together.
            payloads = await tx.execute("DELETE FROM payloads WHERE created_at < ?", cutoff)
            nonces = await tx.execute("DELETE FROM request_nonces WHERE expires_at < ?", now)
            challenges = await tx.execute("DELETE FROM used_challenges WHERE expires_at < ?", now)
            keys = await tx.execute("DELETE FROM idempotency_keys WHERE expires_at < ?", now)
            evidence = await tx.execute("DELETE FROM claim_evidence WHERE expires_at <= ?", now)
            return SweepResult(expired, 0, payloads, nonces, challenges, keys, evidence)

        result = await self._db.transaction(op)
        self._metrics.expired.inc(result.expired + result.overflow)
        if result.expired or result.overflow:
            log_event(_log, "retention sweep", expired=result.expired, overflow=result.overflow)
        return result
