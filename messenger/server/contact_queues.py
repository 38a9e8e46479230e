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

**No row names it** (server migration 24, docs/metadata.md §1). The app
asks with a ``kill_hash``: SHA-256 of the contact queue's kill secret,
which every device of the account derives from the account key. The server
stores the kill hash beside the queue (``queues.kill_hash``, as for a
client's queue) and sets ``clients.contact_killable``, and keeps no link:
the app's KeyPackage uploads show the queue with ``contact_proof`` (the
contact key's signature over the same statement,
:func:`~messenger.api.signing.contact_queue_possession`), and a device that
removes the client names the queue with its kill secret (:meth:`ContactQueues.of_removed`).
With the KeyPackages sealed under the account's contact token
(:mod:`.key_packages`), a copy of the database with the key file joins the
contact queue to no client or account.

**Apps from before** ask without a kill hash: ``clients.contact_box``
(server migration 23) then holds the contact queue's ID sealed under a key
from the server secret and bound to the client ID (:mod:`.at_rest`), as
``clients.queue_box`` holds a client's queue, which the operator can open.
Asked again with the same key and a kill hash (the updated app does it
once), the server gives the queue the kill hash and drops the box.

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
from .storage import Database, Tx, UniqueViolation

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

    async def of_client(self, tx: Tx, client_id: str) -> str | None:
        """``client_id``'s contact queue from its sealed ``contact_box`` (None: no such
        client, or none: it has no contact queue, or no row names it)."""
        row = await tx.fetchone("SELECT contact_box FROM clients WHERE client_id = ?", client_id)
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

    async def killable_of_account(self, tx: Tx, account_id: str) -> set[str]:
        """The clients of ``account_id`` whose contact queue no row names (it has a
        kill hash, ``contact_killable``): a claim finds it in the leaf's address."""
        rows = await tx.fetchall(
            "SELECT client_id FROM clients WHERE account_id = ? AND contact_killable = 1",
            account_id,
        )
        return {str(r[0]) for r in rows}

    async def of_removed(
        self, tx: Tx, client_id: str, queue_id: str, contact_kill: bytes | None
    ) -> str | None:
        """The contact queue of ``client_id``, which one of its account's devices
        removes (None: it has none); its row is locked until commit.

        The queue its sealed ``contact_box`` names, or, once no row names it
        (``contact_killable``), the queue whose kill hash is SHA-256 of
        ``contact_kill`` (:meth:`~.queue_links.QueueLinks.killed`):
        ``invalid_field`` without one, or if it names no queue, or the
        client's queue ``queue_id``. Raised before anything changes.
        """
        row = await tx.fetchone(
            "SELECT contact_box, contact_killable FROM clients WHERE client_id = ?"  # noqa: S608
            + tx.for_update,
            client_id,
        )
        if row is None:
            return None
        if not int(row[1]):
            return self.queue(client_id, row[0])
        if contact_kill is None:
            raise ApiError.invalid_field(
                "contact_kill", "this device's contact queue has a kill hash: send its kill"
            )
        contact = await self._queue_links.killed(tx, contact_kill)
        if contact is None or contact == queue_id:
            raise ApiError.invalid_field("contact_kill", "names no contact queue")
        return contact

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
        client. Then, in one transaction, with the client's row locked:

        * a client whose sealed ``contact_box`` names a queue (an app from
          before, or asking again without a kill hash) gets it again if the
          queue's key is ``req.auth_key``, else ``key_in_use``; with
          ``req.kill_hash`` the queue takes it (one another queue has is
          ``key_in_use``) and the box goes: ``contact_killable`` is set, and no
          row names the queue any more (docs/metadata.md §1);
        * a ``contact_killable`` client gets the queue whose key is
          ``req.auth_key`` (a retry), else ``key_in_use`` (also if
          ``req.kill_hash`` is not that queue's);
        * otherwise a key, or a kill hash, that any queue has already is
          ``key_in_use``, and the client takes a spare queue
          (:meth:`~.queue_links.QueueLinks.take_spare`) and gives it the key;
          with ``req.kill_hash`` the queue keeps it and the client's row is
          marked ``contact_killable``, without, the row keeps the queue sealed
          in ``contact_box`` (an app from before).

        The client's stored KeyPackages stay until it uploads new ones naming
        the contact queue (:meth:`~.key_packages.KeyPackages.upload`), so a
        claim meanwhile finds the old ones. A client removed meanwhile gets
        ``device_removed``. Every refusal changes nothing.
        """
        client_id = principal.client_id
        possession = contact_queue_possession(client_id, req.auth_key)
        if not verify_ed25519(req.auth_key, req.proof, possession):
            raise ApiError(
                ErrorCode.PROOF_INVALID, "the proof does not verify with the contact queue key"
            )
        kill_hash = req.kill_hash

        async def op(tx: Tx) -> str:
            row = await tx.fetchone(
                "SELECT contact_box, contact_killable FROM clients WHERE client_id = ?"  # noqa: S608
                + tx.for_update,
                client_id,
            )
            if row is None:  # removed since the request was authenticated
                raise device_removed()
            current = self.queue(client_id, row[0])
            if current is not None:
                key = await tx.fetchone(
                    "SELECT auth_key FROM queues WHERE queue_id = ?" + tx.for_update,  # noqa: S608
                    current,
                )
                if (
                    key is None
                    or key[0] is None
                    or not hmac.compare_digest(bytes(key[0]), req.auth_key)
                ):
                    raise ApiError(
                        ErrorCode.KEY_IN_USE, "this client has a contact queue with another key"
                    )
                if kill_hash is not None:  # an app from before, updated: the link goes
                    await self._set_kill_hash(tx, current, kill_hash)
                    await tx.execute(
                        "UPDATE clients SET contact_box = NULL, contact_killable = 1 "
                        "WHERE client_id = ?",
                        client_id,
                    )
                return current
            if int(row[1]):
                found = await tx.fetchone(
                    "SELECT queue_id, kill_hash FROM queues WHERE auth_key = ?", req.auth_key
                )
                if found is None or (
                    kill_hash is not None
                    and (found[1] is None or not hmac.compare_digest(bytes(found[1]), kill_hash))
                ):
                    raise ApiError(
                        ErrorCode.KEY_IN_USE, "this client has a contact queue with another key"
                    )
                return str(found[0])
            if await tx.fetchone("SELECT 1 FROM queues WHERE auth_key = ?", req.auth_key):
                raise ApiError(ErrorCode.KEY_IN_USE, "another queue has this key")
            if kill_hash is not None and await tx.fetchone(
                "SELECT 1 FROM queues WHERE kill_hash = ?", kill_hash
            ):
                raise ApiError(ErrorCode.KEY_IN_USE, "another queue has this kill hash")
            queue_id = await self._queue_links.take_spare(tx)
            await tx.execute(
                "UPDATE queues SET auth_key = ? WHERE queue_id = ?", req.auth_key, queue_id
            )
            if kill_hash is not None:
                await self._set_kill_hash(tx, queue_id, kill_hash)
                await tx.execute(
                    "UPDATE clients SET contact_killable = 1 WHERE client_id = ?", client_id
                )
            else:
                await tx.execute(
                    "UPDATE clients SET contact_box = ? WHERE client_id = ?",
                    self.seal(client_id, queue_id),
                    client_id,
                )
            return queue_id

        return ContactQueueResponse(await db.transaction(op))

    @staticmethod
    async def _set_kill_hash(tx: Tx, queue_id: str, kill_hash: bytes) -> None:
        """Give the contact queue ``queue_id`` its kill hash; ``key_in_use`` if another
        queue has it (the index is unique: a kill secret names one queue)."""
        taken = await tx.fetchone(
            "SELECT 1 FROM queues WHERE kill_hash = ? AND queue_id <> ?", kill_hash, queue_id
        )
        if taken is not None:
            raise ApiError(ErrorCode.KEY_IN_USE, "another queue has this kill hash")
        try:
            await tx.execute(
                "UPDATE queues SET kill_hash = ? WHERE queue_id = ?", kill_hash, queue_id
            )
        except UniqueViolation:  # taken meanwhile (PostgreSQL)
            raise ApiError(ErrorCode.KEY_IN_USE, "another queue has this kill hash") from None
