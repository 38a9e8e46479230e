"""Which queue is a client's: known to the running server, not to a copy of its database.

The server needs a client's queue while it handles that client's signed
requests (fetching and acking it, claims that hand out its address, removing
a device, letting a device of a member's account read the GroupInfo,
docs/devices.md §5). It does not need a row that a thief of the database can
join. So (docs/metadata.md §1):

* ``clients.queue_box`` holds the queue ID sealed under a key from the
  server secret, bound to the client ID (:mod:`.at_rest`); there is no
  plain queue column in ``clients`` and no foreign key from a client to a
  queue.
* A new client does not get a queue made in its own transaction, which a
  rowid or PostgreSQL's physical row order would pair with its ``clients``
  row (and with its first KeyPackages): it takes one at random from a pool
  of spare queues, made :data:`SPARE_BATCH` at a time, in random order,
  whenever fewer than :data:`SPARE_LOW` are left (``spare_queues``). A
  client's queue is any of the spares of its moment, made before it.
* Each queue counts from a random origin (:mod:`.queue_numbers`), so the
  spares of one batch do not count in step.

Rows from before (``clients.legacy_queue_id``, server migration 11) are
sealed by :meth:`QueueLinks.adopt_legacy` when the server starts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import QueueKeyRequest
from messenger.api.signing import queue_key_possession

from .at_rest import SealedColumn
from .ids import new_id
from .queue_numbers import seq_origin
from .storage import Database, StorageError, Tx

if TYPE_CHECKING:
    from .authentication import Principal

__all__ = ["SPARE_BATCH", "SPARE_LOW", "QueueLinks"]

#: Below this many spare queues, a registration makes a new batch.
SPARE_LOW: Final = 16
#: How many spare queues are made at once.
SPARE_BATCH: Final = 32
_TRIES: Final = 8
#: Rows sealed per statement when the server adopts rows from before.
_BATCH: Final = 500


class QueueLinks:
    """The sealed client ↔ queue link and the pool of spare queues."""

    __slots__ = ("_column",)

    def __init__(self, key: bytes) -> None:
        self._column = SealedColumn(key, "clients.queue_box")

    def seal(self, client_id: str, queue_id: str) -> bytes:
        """The ``queue_box`` of ``client_id``'s row."""
        return self._column.seal(client_id.encode("ascii"), queue_id.encode("ascii"))

    def queue(self, client_id: str, box: object, legacy: object) -> str | None:
        """The queue of a ``clients`` row, from its sealed box (or a row not yet
        adopted); None once the queue has a key of its own (:meth:`give_key`)."""
        if isinstance(box, bytes | memoryview):
            return self._column.open(client_id.encode("ascii"), bytes(box)).decode("ascii")
        if legacy is not None:
            return str(legacy)
        return None

    async def give_key(
        self,
        db: Database,
        principal: Principal,
        req: QueueKeyRequest,
        *,
        also: Callable[[Tx], Awaitable[object]] | None = None,
    ) -> None:
        """Give the principal's queue its own key and kill hash, and unlink it from
        the client (``PUT /v1/queue/key``).

        From then on no row joins the client to its queue: the client proves
        its queue on each request (:mod:`.authentication`), and its account's
        devices name the queue with its kill secret to remove the device
        (:mod:`.devices`). The queue is the one the client's row names, or,
        once unlinked, the one the request proves. ``proof_invalid`` unless the
        key signed :func:`~messenger.api.signing.queue_key_possession`. Giving
        the same key again changes nothing (a retry); another key is
        ``key_in_use``: a queue's key never changes. ``also`` runs in the same
        transaction (the KeyPackages that name no address go, :mod:`.key_packages`).
        """
        from .authentication import verify_ed25519  # it imports this module

        queue_id = principal.queue_id
        possession = queue_key_possession(queue_id, req.kill_hash)
        if not verify_ed25519(req.auth_key, req.proof, possession):
            raise ApiError(ErrorCode.PROOF_INVALID, "the proof does not verify with the queue key")

        async def op(tx: Tx) -> None:
            await self._give_key(tx, principal.client_id, queue_id, req.auth_key, req.kill_hash)
            if also is not None:
                await also(tx)

        await db.transaction(op)

    async def _give_key(
        self, tx: Tx, client_id: str, queue_id: str, auth_key: bytes, kill_hash: bytes
    ) -> None:
        row = await tx.fetchone(
            "SELECT auth_key FROM queues WHERE queue_id = ?" + tx.for_update,  # noqa: S608
            queue_id,
        )
        if row is None:
            raise StorageError("a client's queue is gone")
        if row[0] is None:
            await tx.execute(
                "UPDATE queues SET auth_key = ?, kill_hash = ? WHERE queue_id = ?",
                auth_key,
                kill_hash,
                queue_id,
            )
        elif not hmac.compare_digest(bytes(row[0]), auth_key):
            raise ApiError(ErrorCode.KEY_IN_USE, "this queue has a key of its own already")
        await tx.execute(
            "UPDATE clients SET queue_box = NULL, legacy_queue_id = NULL WHERE client_id = ?",
            client_id,
        )

    async def killed(self, tx: Tx, kill_secret: bytes) -> str | None:
        """The queue whose kill hash is SHA-256 of ``kill_secret`` (None: no such queue)."""
        row = await tx.fetchone(
            "SELECT queue_id FROM queues WHERE kill_hash = ?", hashlib.sha256(kill_secret).digest()
        )
        return None if row is None else str(row[0])

    async def of_client(self, tx: Tx, client_id: str) -> tuple[str, str | None] | None:
        """``(account ID, queue ID)`` of ``client_id``, or None if there is no such client
        (the queue None once it has a key of its own)."""
        row = await tx.fetchone(
            "SELECT account_id, queue_box, legacy_queue_id FROM clients WHERE client_id = ?",
            client_id,
        )
        if row is None:
            return None
        return str(row[0]), self.queue(client_id, row[1], row[2])

    async def of_account(self, tx: Tx, account_id: str) -> list[tuple[str, str | None]]:
        """``(client ID, queue ID)`` of every client of ``account_id``, by client ID
        (the queue None for those whose queue has a key of its own)."""
        rows = await tx.fetchall(
            "SELECT client_id, queue_box, legacy_queue_id FROM clients "
            "WHERE account_id = ? ORDER BY client_id",
            account_id,
        )
        return [(str(c), self.queue(str(c), box, legacy)) for c, box, legacy in rows]

    async def take_spare(self, tx: Tx) -> str:
        """A spare queue, taken at random from the pool (refilled first if low)."""
        for _ in range(_TRIES):
            spares = [str(r[0]) for r in await tx.fetchall("SELECT queue_id FROM spare_queues")]
            if len(spares) < SPARE_LOW:
                made = [new_id() for _ in range(SPARE_BATCH)]
                # Random IDs in a random order: neither the rowids nor the
                # physical order of the batch say which one a client takes.
                await tx.executemany(
                    "INSERT INTO queues (queue_id, next_seq) VALUES (?, ?)",
                    [(q, seq_origin()) for q in made],
                )
                await tx.executemany(
                    "INSERT INTO spare_queues (queue_id) VALUES (?)", [(q,) for q in made]
                )
                spares += made
            chosen = secrets.choice(spares)
            # Another process may have taken it since (PostgreSQL): then try again.
            if await tx.execute("DELETE FROM spare_queues WHERE queue_id = ?", chosen) == 1:
                return chosen
        raise StorageError("no spare queue could be taken")  # pragma: no cover - contention

    async def adopt_legacy(self, tx: Tx) -> int:
        """Seal the queue of every row from before migration 11; how many were sealed.

        In batches (a sealed row no longer matches), so that memory stays
        bounded however many clients there are.
        """
        sealed = 0
        while True:
            rows = await tx.fetchall(
                "SELECT client_id, legacy_queue_id FROM clients "
                "WHERE queue_box IS NULL AND legacy_queue_id IS NOT NULL LIMIT ?",
                _BATCH,
            )
            if not rows:
                return sealed
            await tx.executemany(
                "UPDATE clients SET queue_box = ?, legacy_queue_id = NULL WHERE client_id = ?",
                [(self.seal(str(c), str(q)), str(c)) for c, q in rows],
            )
            sealed += len(rows)
