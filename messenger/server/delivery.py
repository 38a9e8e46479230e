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
* Each group message goes to the queue of **every** member, the sender's
  included, and is stored once (``payloads``) with one entry per queue.
  No sender is stored, and since the sender's own queue gets the message
  too, the set of recipients does not reveal it either. A client recognises
  its own messages when they come back (it knows what it sent).
* Messages are opaque; the server reads only their framing header
  (:mod:`.mls_frames`).
* A send or commit may carry an idempotency key. The answer is kept under a
  digest of (client, key) for the retention window, in the same transaction
  as the delivery: a retry after a lost answer (a crash, a dropped
  connection) gets that answer again and is not delivered a second time.

Queues: entries have consecutive sequence numbers per queue. A client
fetches after a cursor and acks up to a sequence number, which deletes.
Entries older than ``retention_seconds`` or beyond ``max_queue_length`` are
dropped by :meth:`Delivery.sweep`; the client sees the gap in the sequence
numbers and can rejoin through the stored GroupInfo (external join).

All messages of a group are ordered the same way in every member's queue:
each transaction that adds to a group takes its row lock first, then locks
the member queues in ID order (no deadlocks between groups).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import (
    CommitRequest,
    CommitResponse,
    CreateGroupRequest,
    CreateGroupResponse,
    GroupInfoRequest,
    GroupInfoResponse,
    QueueMessage,
    SendRequest,
    SendResponse,
)

from .authentication import Principal
from .logs import log_event
from .metrics import Metrics
from .mls_frames import FrameKind, check_welcome, parse_group_info, parse_group_message
from .push import CHANNEL, Delivery, Hub, notification_payloads
from .storage import Database, Tx

__all__ = ["Delivery", "DeliveryService", "SweepResult"]

_log = logging.getLogger("messenger.server.delivery")

# SQL here is built only from constant text, "?" placeholders and the
# constant locking clauses of Tx; values always travel as parameters.
_CHUNK = 500


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[object], size: int = _CHUNK) -> list[Sequence[object]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one retention sweep removed."""

    expired: int
    overflow: int
    payloads: int
    nonces: int
    challenges: int
    idempotency_keys: int = 0


_IDEMPOTENCY_PREFIX = b"messenger-idempotency-v1\n"


def _idempotency_hash(client_id: str, key: bytes) -> bytes:
    """The stored form of an idempotency key: it does not name the client."""
    return hashlib.sha256(_IDEMPOTENCY_PREFIX + client_id.encode() + b"\n" + key).digest()


def _stale(current: int) -> ApiError:
    return ApiError(
        ErrorCode.STALE_EPOCH,
        f"the group is at epoch {current}",
        {"current_epoch": current},
    )


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
    ) -> None:
        self._db = db
        self._hub = hub
        self._metrics = metrics
        self._clock = clock
        self._retention_ms = retention_seconds * 1000
        self._max_queue_length = max_queue_length

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- inside transactions ----------------------------------------------------

    async def _group_epoch(self, tx: Tx, group_id: bytes) -> int:
        """The group's epoch, with its row locked until commit."""
        sql = "SELECT epoch FROM mls_groups WHERE group_id = ?" + tx.for_update  # noqa: S608
        row = await tx.fetchone(sql, group_id)
        if row is None:
            raise ApiError(ErrorCode.UNKNOWN_GROUP, "no such group")
        return int(row[0])

    @staticmethod
    async def _members(tx: Tx, group_id: bytes) -> list[str]:
        rows = await tx.fetchall(
            "SELECT queue_id FROM group_members WHERE group_id = ? ORDER BY queue_id", group_id
        )
        return [str(r[0]) for r in rows]

    async def _enqueue(
        self, tx: Tx, queue_ids: Sequence[str], data: bytes, now_ms: int
    ) -> list[Delivery]:
        """Store ``data`` once and append it to every queue in ``queue_ids``."""
        if not queue_ids:
            return []
        ordered = sorted(queue_ids)
        seqs: dict[str, int] = {}
        for chunk in _chunks(ordered):
            rows = await tx.fetchall(
                f"SELECT queue_id, next_seq FROM queues WHERE queue_id IN "  # noqa: S608
                f"({_placeholders(len(chunk))}) ORDER BY queue_id" + tx.for_update,
                *chunk,
            )
            for queue_id, next_seq in rows:
                seqs[str(queue_id)] = int(next_seq)
            await tx.execute(
                f"UPDATE queues SET next_seq = next_seq + 1 WHERE queue_id IN "  # noqa: S608
                f"({_placeholders(len(chunk))})",
                *chunk,
            )
        missing = [q for q in ordered if q not in seqs]
        if missing:
            raise ApiError(
                ErrorCode.UNKNOWN_QUEUE, "a recipient queue does not exist", {"queue": missing[0]}
            )
        row = await tx.fetchone("INSERT INTO payloads (data) VALUES (?) RETURNING payload_id", data)
        assert row is not None
        payload_id = int(row[0])
        await tx.executemany(
            "INSERT INTO queue_entries (queue_id, seq, payload_id, created_at) VALUES (?, ?, ?, ?)",
            [(q, seqs[q], payload_id, now_ms) for q in ordered],
        )
        for payload in notification_payloads(self._hub.origin, ordered):
            await tx.notify(CHANNEL, payload)
        return [Delivery(q, seqs[q], data) for q in ordered]

    @staticmethod
    async def _answered(tx: Tx, key_hash: bytes | None) -> tuple[int, int] | None:
        """``(epoch, recipients)`` already given for this idempotency key, if any."""
        if key_hash is None:
            return None
        row = await tx.fetchone(
            "SELECT epoch, recipients FROM idempotency_keys WHERE key_hash = ?", key_hash
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def _remember(
        self, tx: Tx, key_hash: bytes | None, epoch: int, recipients: int, now_ms: int
    ) -> None:
        if key_hash is not None:
            await tx.execute(
                "INSERT INTO idempotency_keys (key_hash, epoch, recipients, expires_at) "
                "VALUES (?, ?, ?, ?)",
                key_hash,
                epoch,
                recipients,
                now_ms + self._retention_ms,
            )

    def _published(self, deliveries: list[Delivery]) -> None:
        self._metrics.deliveries.inc(len(deliveries))
        self._hub.publish(deliveries)

    # -- groups -------------------------------------------------------------------

    async def create_group(
        self, principal: Principal, req: CreateGroupRequest
    ) -> CreateGroupResponse:
        """Register a group at epoch 0 whose only member is the creator's queue."""
        if req.group_info is not None:
            self._check_group_info(req.group_info, req.group_id, 0)

        async def op(tx: Tx) -> None:
            created = await tx.execute(
                "INSERT INTO mls_groups (group_id, epoch, group_info, group_info_epoch) "
                "VALUES (?, 0, ?, ?) ON CONFLICT DO NOTHING",
                req.group_id,
                req.group_info,
                0 if req.group_info is not None else None,
            )
            if created == 0:
                raise ApiError(ErrorCode.GROUP_EXISTS, "a group with this ID exists")
            await tx.execute(
                "INSERT INTO group_members (group_id, queue_id) VALUES (?, ?)",
                req.group_id,
                principal.queue_id,
            )

        await self._db.transaction(op)
        return CreateGroupResponse(0)

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
        self, principal: Principal, group_id: bytes, req: CommitRequest
    ) -> CommitResponse:
        """Accept the commit for ``req.epoch`` if no other commit was accepted for it."""
        header = parse_group_message(req.commit)
        if header.kind is not FrameKind.COMMIT:
            raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "commit: expected a commit")
        if header.group_id != group_id:
            raise ApiError(ErrorCode.GROUP_MISMATCH, "the commit is for another group")
        if header.epoch != req.epoch:
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                f"the commit is for epoch {header.epoch}, the request says {req.epoch}",
            )
        new_members = set(req.members)
        welcome_to = sorted(req.welcome_to or ())
        if (req.welcome is None) != (not welcome_to):
            raise ApiError.invalid_field("welcome_to", "welcome and welcome_to go together")
        if not new_members.issuperset(welcome_to):
            raise ApiError.invalid_field("welcome_to", "every Welcome recipient must be a member")
        if req.welcome is not None:
            check_welcome(req.welcome)
        new_epoch = req.epoch + 1
        if req.group_info is not None:
            self._check_group_info(req.group_info, group_id, new_epoch)
        now = self._now_ms()
        key_hash = (
            None
            if req.idempotency_key is None
            else _idempotency_hash(principal.client_id, req.idempotency_key)
        )

        async def op(tx: Tx) -> tuple[list[Delivery], int, bool]:
            current = await self._group_epoch(tx, group_id)
            answered = await self._answered(tx, key_hash)
            if answered is not None:
                return [], answered[1], True
            old_members = await self._members(tx, group_id)
            if principal.queue_id not in old_members and not header.external_commit:
                raise ApiError(ErrorCode.NOT_A_MEMBER, "the sender is not a member of the group")
            if current != req.epoch:
                raise _stale(current)
            changed = await tx.execute(
                "UPDATE mls_groups SET epoch = ?, group_info = ?, group_info_epoch = ? "
                "WHERE group_id = ? AND epoch = ?",
                new_epoch,
                req.group_info,
                new_epoch if req.group_info is not None else None,
                group_id,
                req.epoch,
            )
            if changed != 1:  # pragma: no cover - the row lock rules this out
                raise _stale(current)
            old = set(old_members)
            added = sorted(new_members - old)
            removed = sorted(old - new_members)
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
                        {"queue": unknown},
                    )
            for chunk in _chunks(removed):
                await tx.execute(
                    f"DELETE FROM group_members WHERE group_id = ? AND queue_id IN "  # noqa: S608
                    f"({_placeholders(len(chunk))})",
                    group_id,
                    *chunk,
                )
            await tx.executemany(
                "INSERT INTO group_members (group_id, queue_id) VALUES (?, ?)",
                [(group_id, q) for q in added],
            )
            deliveries = await self._enqueue(tx, old_members, req.commit, now)
            recipients = len(deliveries)
            if req.welcome is not None:
                deliveries += await self._enqueue(tx, welcome_to, req.welcome, now)
            await self._remember(tx, key_hash, new_epoch, recipients, now)
            return deliveries, recipients, False

        try:
            deliveries, recipients, repeated = await self._db.transaction(op)
        except ApiError as exc:
            if exc.code is ErrorCode.STALE_EPOCH:
                self._metrics.commits.labels(outcome="stale").inc()
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

    async def send(self, principal: Principal, group_id: bytes, req: SendRequest) -> SendResponse:
        """Fan an application message or proposal out to every member's queue."""
        header = parse_group_message(req.message)
        if header.kind is FrameKind.COMMIT:
            raise ApiError(
                ErrorCode.WRONG_MESSAGE_TYPE, "commits go to the commits route, not messages"
            )
        if header.group_id != group_id:
            raise ApiError(ErrorCode.GROUP_MISMATCH, "the message is for another group")
        now = self._now_ms()
        key_hash = (
            None
            if req.idempotency_key is None
            else _idempotency_hash(principal.client_id, req.idempotency_key)
        )

        async def op(tx: Tx) -> tuple[list[Delivery], SendResponse | None]:
            current = await self._group_epoch(tx, group_id)
            answered = await self._answered(tx, key_hash)
            if answered is not None:
                return [], SendResponse(*answered)
            members = await self._members(tx, group_id)
            if principal.queue_id not in members:
                raise ApiError(ErrorCode.NOT_A_MEMBER, "the sender is not a member of the group")
            if header.epoch != current:
                raise _stale(current)
            deliveries = await self._enqueue(tx, members, req.message, now)
            await self._remember(tx, key_hash, header.epoch, len(deliveries), now)
            return deliveries, None

        deliveries, repeated = await self._db.transaction(op)
        if repeated is not None:
            return repeated
        self._metrics.messages.labels(kind=header.kind.value).inc()
        self._published(deliveries)
        return SendResponse(header.epoch, len(deliveries))

    async def group_info(self, principal: Principal, group_id: bytes) -> GroupInfoResponse:
        """The stored GroupInfo, for a member that rejoins externally.

        Only a client whose queue is in the group's member set gets it; any
        other client is told ``unknown_group``, as for a group that does not
        exist, so that the answer does not reveal which groups exist.
        """

        async def op(tx: Tx) -> tuple[int, bytes | None] | None:
            row = await tx.fetchone(
                "SELECT g.group_info_epoch, g.group_info FROM mls_groups g "
                "JOIN group_members gm ON gm.group_id = g.group_id "
                "WHERE g.group_id = ? AND gm.queue_id = ?",
                group_id,
                principal.queue_id,
            )
            if row is None:
                return None
            return (int(row[0]) if row[0] is not None else 0), (
                bytes(row[1]) if row[1] is not None else None
            )

        found = await self._db.read(op)
        if found is None:
            raise ApiError(ErrorCode.UNKNOWN_GROUP, "no such group")
        epoch, info = found
        if info is None:
            raise ApiError(ErrorCode.NO_GROUP_INFO, "no GroupInfo is stored for this group")
        return GroupInfoResponse(epoch, info)

    async def put_group_info(
        self, principal: Principal, group_id: bytes, req: GroupInfoRequest
    ) -> None:
        """Replace the GroupInfo of the current epoch (members only).

        A client that is not a member is told ``unknown_group``, as for a
        group that does not exist (see :meth:`group_info`).
        """
        self._check_group_info(req.group_info, group_id, req.epoch)

        async def op(tx: Tx) -> None:
            current = await self._group_epoch(tx, group_id)
            if principal.queue_id not in await self._members(tx, group_id):
                raise ApiError(ErrorCode.UNKNOWN_GROUP, "no such group")
            if req.epoch != current:
                raise _stale(current)
            await tx.execute(
                "UPDATE mls_groups SET group_info = ?, group_info_epoch = ? WHERE group_id = ?",
                req.group_info,
                req.epoch,
                group_id,
            )

        await self._db.transaction(op)

    # -- queues -------------------------------------------------------------------

    async def fetch(self, queue_id: str, after: int, limit: int) -> tuple[list[QueueMessage], bool]:
        """Up to ``limit`` messages with ``seq > after``, and whether more wait."""

        async def op(tx: Tx) -> list[QueueMessage]:
            rows = await tx.fetchall(
                "SELECT e.seq, p.data FROM queue_entries e "
                "JOIN payloads p ON p.payload_id = e.payload_id "
                "WHERE e.queue_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?",
                queue_id,
                after,
                limit + 1,
            )
            return [QueueMessage(int(seq), bytes(data)) for seq, data in rows]

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
        """Delete the queue's entries with ``seq <= up_to``; how many there were."""

        async def op(tx: Tx) -> int:
            rows = await tx.fetchall(
                "DELETE FROM queue_entries WHERE queue_id = ? AND seq <= ? RETURNING payload_id",
                queue_id,
                up_to,
            )
            payload_ids = sorted({int(r[0]) for r in rows})
            for chunk in _chunks(payload_ids):
                await tx.execute(
                    f"DELETE FROM payloads WHERE payload_id IN ({_placeholders(len(chunk))}) "  # noqa: S608
                    "AND NOT EXISTS (SELECT 1 FROM queue_entries e "
                    "WHERE e.payload_id = payloads.payload_id)",
                    *chunk,
                )
            return len(rows)

        return await self._db.transaction(op)

    # -- retention ------------------------------------------------------------------

    async def sweep(self) -> SweepResult:
        """Apply the retention limits and purge spent nonces and challenges."""
        now = self._now_ms()

        async def op(tx: Tx) -> SweepResult:
            expired = await tx.execute(
                "DELETE FROM queue_entries WHERE created_at < ?", now - self._retention_ms
            )
            overflow = await tx.execute(
                "DELETE FROM queue_entries WHERE seq < (SELECT q.next_seq FROM queues q "
                "WHERE q.queue_id = queue_entries.queue_id) - ?",
                self._max_queue_length,
            )
            payloads = await tx.execute(
                "DELETE FROM payloads WHERE NOT EXISTS (SELECT 1 FROM queue_entries e "
                "WHERE e.payload_id = payloads.payload_id)"
            )
            nonces = await tx.execute("DELETE FROM request_nonces WHERE expires_at < ?", now)
            challenges = await tx.execute("DELETE FROM used_challenges WHERE expires_at < ?", now)
            keys = await tx.execute("DELETE FROM idempotency_keys WHERE expires_at < ?", now)
            return SweepResult(expired, overflow, payloads, nonces, challenges, keys)

        result = await self._db.transaction(op)
        self._metrics.expired.inc(result.expired + result.overflow)
        if result.expired or result.overflow:
            log_event(_log, "retention sweep", expired=result.expired, overflow=result.overflow)
        return result
