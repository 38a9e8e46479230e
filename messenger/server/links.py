"""Link mailboxes: how a new device joins its account (docs/devices.md §2).

An existing device (the *creator*) opens a mailbox named by a ``link_id``
that both devices derive from a one-time secret the server never sees.
Every message in it is sealed with a key derived from the same secret, so
the server relays bytes it cannot read, forge or reorder unnoticed. Two
directions:

* **to the new device** (direction 0): posted by the creator (signed), read
  by anyone holding the ID (unsigned, long poll with ``wait``);
* **to the creator** (direction 1): posted unsigned (at most
  :data:`~messenger.api.models.MAX_LINK_MESSAGES_TO_CREATOR` messages of at
  most :data:`~messenger.api.models.MAX_LINK_OFFER_BYTES`), read by the
  creator (signed).

An unknown, expired or closed mailbox, and a signed request by anyone but
its creator, all get the same ``404 not_found`` (:func:`no_such_link`): a
stranger learns nothing about someone else's link. A mailbox closes
:data:`~messenger.api.models.LINK_IDLE_SECONDS` after its creator's last
request to it and at most :data:`~messenger.api.models.LINK_MAX_SECONDS`
after it was opened; expired mailboxes are deleted by the retention sweep
(:meth:`Links.sweep`), and are treated as gone before that.

Stored (docs/threat-model.md): the link ID, the creator's client ID (for
authorisation; the row goes when the mailbox closes or expires, and with
the creator's client), the two expiries, byte and message counters, and
the sealed messages with their direction and sequence number. No address,
no time of creation beyond what the expiries imply.

Long polls wait on the :class:`~.push.Hub` under a key derived from the
link ID and direction (:func:`wake_key`); a post wakes them in this process
and, through the queue channel's ``NOTIFY``, in every other process on the
same PostgreSQL (the key is a hash, so the notification does not carry the
link ID).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import (
    LINK_IDLE_SECONDS,
    LINK_MAX_SECONDS,
    MAX_LINK_BYTES,
    MAX_LINK_FETCH,
    MAX_LINK_MESSAGES_TO_CREATOR,
    MAX_LINK_OFFER_BYTES,
    CreateLinkResponse,
    LinkMessage,
    LinkMessages,
    LinkPostResponse,
)

from .authentication import Principal
from .devices import check_not_removed
from .logs import log_event
from .push import CHANNEL, Hub
from .storage import Database, Tx, UniqueViolation

__all__ = [
    "MAX_LINK_FETCH_BYTES",
    "OPTIONALLY_SIGNED",
    "OPTIONALLY_SIGNED_ROUTES",
    "TO_CREATOR",
    "TO_NEW_DEVICE",
    "Links",
    "no_such_link",
    "wake_key",
]

_log = logging.getLogger("messenger.server.links")

#: Direction of a message: posted by the creator, for the new device.
TO_NEW_DEVICE: Final = 0
#: Direction of a message: posted unsigned by the new device, for the creator.
TO_CREATOR: Final = 1

#: A fetch stops adding messages once this many sealed bytes are in it (it
#: always returns at least one message when there is one).
MAX_LINK_FETCH_BYTES: Final = 8 << 20

_WAKE_LABEL: Final = b"messenger-link-wake-v1\n"

#: The link routes answered unsigned but authenticated when the request is
#: signed (``(method, path)``): the signature says which direction of the
#: mailbox a request is for, and only the creator may sign one.
OPTIONALLY_SIGNED: Final = frozenset(
    {("POST", r.LINK_MESSAGES), ("GET", r.LINK_MESSAGES), ("DELETE", r.LINK)}
)
#: Every route answered unsigned and authenticated when signed: the link
#: mailbox's, and commits (sealed unless external, docs/metadata.md §3).
OPTIONALLY_SIGNED_ROUTES: Final = OPTIONALLY_SIGNED | {("POST", r.GROUP_COMMITS)}


def wake_key(link_id: bytes, direction: int) -> str:
    """The :class:`~.push.Hub` key of one direction of a mailbox.

    A hash, so that a cross-process ``NOTIFY`` does not carry the link ID;
    ``link:`` keeps it apart from queue IDs (base64url, never a colon).
    """
    digest = hashlib.sha256(_WAKE_LABEL + link_id + bytes((direction,))).hexdigest()[:32]
    return f"link:{digest}"


def no_such_link() -> ApiError:
    """The one answer for an unknown, expired or closed link and a foreign signer."""
    return ApiError(ErrorCode.NOT_FOUND, "no such link")


@dataclass(frozen=True, slots=True)
class _Link:
    creator_id: str
    expires_at: int
    max_expires_at: int
    total_bytes: int
    to_creator: int


_SELECT_LINK: Final = (
    "SELECT creator_id, expires_at, max_expires_at, total_bytes, to_creator_count "
    "FROM links WHERE link_id = ?"
)


class Links:
    """The link mailboxes of this server."""

    def __init__(self, db: Database, hub: Hub, clock: Callable[[], float]) -> None:
        self._db = db
        self._hub = hub
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _open_link(self, tx: Tx, link_id: bytes, now: int, *, lock: bool) -> _Link | None:
        """The link if it is open (exists and has not expired)."""
        row = await tx.fetchone(_SELECT_LINK + (tx.for_update if lock else ""), link_id)
        if row is None or int(row[1]) <= now:
            return None
        return _Link(str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))

    @staticmethod
    def _authorise(link: _Link | None, principal: Principal | None) -> _Link:
        """The link, if the request may use it; ``not_found`` otherwise.

        Unsigned requests may use any open link (they hold its ID); a signed
        one only its creator's.
        """
        if link is None:
            raise no_such_link()
        if principal is not None and principal.client_id != link.creator_id:
            raise no_such_link()
        return link

    @staticmethod
    async def _touch(tx: Tx, link_id: bytes, link: _Link, now: int) -> int:
        """The creator used the link: push its idle expiry; the new expiry."""
        expires_at = min(link.max_expires_at, now + LINK_IDLE_SECONDS * 1000)
        if expires_at != link.expires_at:
            await tx.execute(
                "UPDATE links SET expires_at = ? WHERE link_id = ?", expires_at, link_id
            )
        return expires_at

    # -- operations -----------------------------------------------------------------

    async def create(self, principal: Principal, link_id: bytes) -> CreateLinkResponse:
        """Open a mailbox named ``link_id`` for ``principal``'s account."""
        now = self._now_ms()
        max_expires_at = now + LINK_MAX_SECONDS * 1000
        expires_at = min(max_expires_at, now + LINK_IDLE_SECONDS * 1000)

        async def op(tx: Tx) -> None:
            # The account's row serialises link creation per account (PostgreSQL).
            await tx.fetchone(
                "SELECT 1 FROM accounts WHERE account_id = ?" + tx.for_update,  # noqa: S608
                principal.account_id,
            )
            await check_not_removed(tx, principal.client_id)
            await self._delete_where(tx, "l.link_id = ? AND l.expires_at <= ?", link_id, now)
            await self._delete_where(
                tx,
                "l.expires_at <= ? AND l.creator_id IN "
                "(SELECT client_id FROM clients WHERE account_id = ?)",
                now,
                principal.account_id,
            )
            if await tx.fetchone("SELECT 1 FROM links WHERE link_id = ?", link_id):
                raise ApiError(ErrorCode.KEY_IN_USE, "this link ID is in use")
            if await tx.fetchone(
                "SELECT 1 FROM links l JOIN clients c ON c.client_id = l.creator_id "
                "WHERE c.account_id = ?",
                principal.account_id,
            ):
                raise ApiError(
                    ErrorCode.LIMIT_EXCEEDED, "the account already has an open link; close it first"
                )
            try:
                await tx.execute(
                    "INSERT INTO links (link_id, creator_id, expires_at, max_expires_at, "
                    "total_bytes, to_creator_count, next_seq_new, next_seq_creator) "
                    "VALUES (?, ?, ?, ?, 0, 0, 1, 1)",
                    link_id,
                    principal.client_id,
                    expires_at,
                    max_expires_at,
                )
            except UniqueViolation:
                raise ApiError(ErrorCode.KEY_IN_USE, "this link ID is in use") from None

        await self._db.transaction(op)
        log_event(_log, "link opened")
        return CreateLinkResponse(expires_at)

    async def post(
        self, principal: Principal | None, link_id: bytes, sealed: bytes
    ) -> LinkPostResponse:
        """Store one sealed message: signed by the creator (to the new device) or unsigned."""
        direction = TO_NEW_DEVICE if principal is not None else TO_CREATOR
        if direction == TO_CREATOR and len(sealed) > MAX_LINK_OFFER_BYTES:
            raise ApiError(
                ErrorCode.LIMIT_EXCEEDED,
                f"a message to the link's creator may have at most {MAX_LINK_OFFER_BYTES} bytes",
            )
        now = self._now_ms()
        seq_column = "next_seq_new" if direction == TO_NEW_DEVICE else "next_seq_creator"

        async def op(tx: Tx) -> int:
            link = self._authorise(await self._open_link(tx, link_id, now, lock=True), principal)
            if direction == TO_CREATOR and link.to_creator >= MAX_LINK_MESSAGES_TO_CREATOR:
                raise ApiError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"at most {MAX_LINK_MESSAGES_TO_CREATOR} messages go to the link's creator",
                )
            if link.total_bytes + len(sealed) > MAX_LINK_BYTES:
                raise ApiError(
                    ErrorCode.LIMIT_EXCEEDED, f"a link holds at most {MAX_LINK_BYTES} bytes"
                )
            row = await tx.fetchone(
                f"UPDATE links SET {seq_column} = {seq_column} + 1, "  # noqa: S608
                "total_bytes = total_bytes + ?, to_creator_count = to_creator_count + ? "
                f"WHERE link_id = ? RETURNING {seq_column} - 1",
                len(sealed),
                1 if direction == TO_CREATOR else 0,
                link_id,
            )
            assert row is not None
            seq = int(row[0])
            await tx.execute(
                "INSERT INTO link_messages (link_id, direction, seq, sealed) VALUES (?, ?, ?, ?)",
                link_id,
                direction,
                seq,
                sealed,
            )
            if principal is not None:
                await self._touch(tx, link_id, link, now)
            await tx.notify(CHANNEL, f"{self._hub.origin} {wake_key(link_id, direction)}")
            return seq

        seq = await self._db.transaction(op)
        self._hub.wake_queue(wake_key(link_id, direction))
        return LinkPostResponse(seq)

    async def _fetch_once(
        self, principal: Principal | None, link_id: bytes, direction: int, after: int
    ) -> LinkMessages:
        now = self._now_ms()

        async def op(tx: Tx) -> LinkMessages:
            link = self._authorise(
                await self._open_link(tx, link_id, now, lock=principal is not None), principal
            )
            expires_at = link.expires_at
            if principal is not None:
                expires_at = await self._touch(tx, link_id, link, now)
            rows = await tx.fetchall(
                "SELECT seq, sealed FROM link_messages WHERE link_id = ? AND direction = ? "
                "AND seq > ? ORDER BY seq LIMIT ?",
                link_id,
                direction,
                after,
                MAX_LINK_FETCH,
            )
            messages: list[LinkMessage] = []
            size = 0
            for row in rows:
                sealed = bytes(row[1])
                if messages and size + len(sealed) > MAX_LINK_FETCH_BYTES:
                    break
                size += len(sealed)
                messages.append(LinkMessage(int(row[0]), sealed))
            return LinkMessages(tuple(messages), expires_at)

        # The creator's read moves the idle expiry: a write; an unsigned one is a read.
        if principal is not None:
            return await self._db.transaction(op)
        return await self._db.read(op)

    async def fetch(
        self, principal: Principal | None, link_id: bytes, after: int, wait_seconds: float
    ) -> LinkMessages:
        """Messages for the requester after ``after`` (long poll with ``wait_seconds``).

        Signed by the creator: the messages to the creator; unsigned: those
        to the new device.
        """
        direction = TO_CREATOR if principal is not None else TO_NEW_DEVICE
        sub = self._hub.subscribe(wake_key(link_id, direction))
        try:
            result = await self._fetch_once(principal, link_id, direction, after)
            if result.messages or wait_seconds <= 0:
                return result
            if await sub.wait(wait_seconds):
                return await self._fetch_once(principal, link_id, direction, after)
            return result
        finally:
            self._hub.unsubscribe(sub)

    async def close(self, principal: Principal | None, link_id: bytes) -> None:
        """Close a mailbox: its creator (signed), or anyone unsigned who holds its ID."""
        now = self._now_ms()

        async def op(tx: Tx) -> None:
            self._authorise(await self._open_link(tx, link_id, now, lock=True), principal)
            await self._delete_where(tx, "l.link_id = ?", link_id)
            keys = ",".join(wake_key(link_id, d) for d in (TO_NEW_DEVICE, TO_CREATOR))
            await tx.notify(CHANNEL, f"{self._hub.origin} {keys}")

        await self._db.transaction(op)
        self._wake(link_id)
        log_event(_log, "link closed")

    def _wake(self, link_id: bytes) -> None:
        """Wake the long polls of both directions (they then find the link gone)."""
        for direction in (TO_NEW_DEVICE, TO_CREATOR):
            self._hub.wake_queue(wake_key(link_id, direction))

    @staticmethod
    async def _delete_where(tx: Tx, condition: str, *args: object) -> list[bytes]:
        """Delete the links matching ``condition`` (on ``links l``) and their messages."""
        rows = await tx.fetchall(
            f"SELECT l.link_id FROM links l WHERE {condition}",  # noqa: S608
            *args,
        )
        link_ids = [bytes(r[0]) for r in rows]
        for link_id in link_ids:
            await tx.execute("DELETE FROM link_messages WHERE link_id = ?", link_id)
            await tx.execute("DELETE FROM links WHERE link_id = ?", link_id)
        return link_ids

    async def delete_of_client(self, tx: Tx, client_id: str) -> list[bytes]:
        """Delete the links a client created (it is being removed), in ``tx``."""
        return await self._delete_where(tx, "l.creator_id = ?", client_id)

    async def sweep(self) -> int:
        """Delete expired mailboxes and their messages; how many."""
        now = self._now_ms()

        async def op(tx: Tx) -> list[bytes]:
            return await self._delete_where(tx, "l.expires_at <= ?", now)

        gone = await self._db.transaction(op)
        for link_id in gone:
            self._wake(link_id)
        if gone:
            log_event(_log, "links expired", count=len(gone))
        return len(gone)
