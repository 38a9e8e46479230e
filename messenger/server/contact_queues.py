"""Contact queues: the keyed queue a client's KeyPackages name (docs/metadata.md §1, §5).

A stored KeyPackage names its account (the leaf's credential) and, through
its delivery address (:mod:`.queue_addresses`), a queue. If that were the
queue the client reads all its groups from, the operator, who holds the key
file and so opens both, would join the account to that queue from what the
server stores to hand out. So each client gets a second queue, its
**contact queue** (``PUT /v1/queue/contact``):

* it is a queue like any other with a key of its own (:mod:`.queue_links`):
  a spare, taken at random from the pool as a new client's queue is, and
  read, acknowledged and pushed by queue requests signed by its key alone
  (:mod:`.authentication`);
* the client's KeyPackages name its address (:mod:`.key_packages`), so a
  claim hands it out and a Welcome, and the group's first messages, arrive
  there; the first upload naming it drops the client's KeyPackages that name
  another queue, in its transaction;
* right after joining, the new member commits a self-update that adds its
  own queue with a proof by that queue's key over the commit and drops the
  contact queue (:meth:`~.delivery.DeliveryService.commit`, ``join_queue``).

``clients.contact_box`` (server migration 23) holds the contact queue's ID
sealed under a key from the server secret and bound to the client ID
(:mod:`.at_rest`), as ``clients.queue_box`` holds a client's queue: a copy
of the database without the key file shows no link. The contact queue has
no kill hash: it goes with its client's row when one of the account's
devices removes the client (:mod:`.devices`).

A client has one contact queue, and its key never changes: asking again
with the same key answers the same queue (a retry), so the pool of spares
is drawn on at most once per client and needs no budget of its own.
"""

from __future__ import annotations

import hmac

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import ContactQueueRequest, ContactQueueResponse
from messenger.api.signing import contact_queue_possession

from .at_rest import SealedColumn
from .authentication import Principal, verify_ed25519
from .devices import device_removed
from .queue_links import QueueLinks
from .storage import Database, Tx

__all__ = ["ContactQueues"]


class ContactQueues:
    """The sealed client ↔ contact queue link, and the route that makes it."""

    __slots__ = ("_column", "_queue_links")

    def __init__(self, key: bytes, queue_links: QueueLinks) -> None:
        self._column = SealedColumn(key, "clients.contact_box")
        self._queue_links = queue_links

    def seal(self, client_id: str, queue_id: str) -> bytes:
        """The ``contact_box`` of ``client_id``'s row."""
        return self._column.seal(client_id.encode("ascii"), queue_id.encode("ascii"))

    def queue(self, client_id: str, box: object) -> str | None:
        """The contact queue of a ``clients`` row's ``contact_box`` (None: it has none)."""
        if isinstance(box, bytes | memoryview):
            return self._column.open(client_id.encode("ascii"), bytes(box)).decode("ascii")
        return None

    async def of_client(self, tx: Tx, client_id: str, *, lock: bool = False) -> str | None:
        """``client_id``'s contact queue (None: no such client, or it has none);
        with ``lock``, its row is locked until commit (``FOR UPDATE``)."""
        row = await tx.fetchone(
            "SELECT contact_box FROM clients WHERE client_id = ?"  # noqa: S608
            + (tx.for_update if lock else ""),
            client_id,
        )
        return None if row is None else self.queue(client_id, row[0])

    async def of_account(self, tx: Tx, account_id: str) -> dict[str, str]:
        """``{client ID: contact queue}`` of the clients of ``account_id`` that have one."""
        rows = await tx.fetchall(
            "SELECT client_id, contact_box FROM clients "
            "WHERE account_id = ? AND contact_box IS NOT NULL",
            account_id,
        )
        found = {str(c): self.queue(str(c), box) for c, box in rows}
        return {c: q for c, q in found.items() if q is not None}

    async def give(
        self,
        db: Database,
        principal: Principal,
        req: ContactQueueRequest,
    ) -> ContactQueueResponse:
        """The signing client's contact queue, made now if it has none
        (``PUT /v1/queue/contact``).

        ``proof_invalid`` (nothing changes) unless ``req.proof`` is the
        signature of ``req.auth_key`` over
        :func:`~messenger.api.signing.contact_queue_possession` for this
        client. In one transaction, with the client's row locked: a client
        that has a contact queue gets it again if the queue's key is
        ``req.auth_key`` (a retry), else ``key_in_use``; otherwise a key that
        any queue has already is ``key_in_use``, and the client takes a spare
        queue (:meth:`~.queue_links.QueueLinks.take_spare`), gives it the key
        and keeps it sealed in ``contact_box``. The client's stored KeyPackages
        stay until it uploads new ones naming the contact queue
        (:meth:`~.key_packages.KeyPackages.upload`), so a claim meanwhile finds
        the old ones. A client removed meanwhile gets ``device_removed``.
        """
        client_id = principal.client_id
        possession = contact_queue_possession(client_id, req.auth_key)
        if not verify_ed25519(req.auth_key, req.proof, possession):
            raise ApiError(
                ErrorCode.PROOF_INVALID, "the proof does not verify with the contact queue key"
            )

        async def op(tx: Tx) -> str:
            row = await tx.fetchone(
                "SELECT contact_box FROM clients WHERE client_id = ?" + tx.for_update,  # noqa: S608
                client_id,
            )
            if row is None:  # removed since the request was authenticated
                raise device_removed()
            current = self.queue(client_id, row[0])
            if current is not None:
                key = await tx.fetchone("SELECT auth_key FROM queues WHERE queue_id = ?", current)
                if (
                    key is not None
                    and key[0] is not None
                    and hmac.compare_digest(bytes(key[0]), req.auth_key)
                ):
                    return current
                raise ApiError(
                    ErrorCode.KEY_IN_USE, "this client has a contact queue with another key"
                )
            if await tx.fetchone("SELECT 1 FROM queues WHERE auth_key = ?", req.auth_key):
                raise ApiError(ErrorCode.KEY_IN_USE, "another queue has this key")
            queue_id = await self._queue_links.take_spare(tx)
            await tx.execute(
                "UPDATE queues SET auth_key = ? WHERE queue_id = ?", req.auth_key, queue_id
            )
            await tx.execute(
                "UPDATE clients SET contact_box = ? WHERE client_id = ?",
                self.seal(client_id, queue_id),
                client_id,
            )
            return queue_id

        return ContactQueueResponse(await db.transaction(op))
