"""Delivery addresses: queue IDs sealed by the server for the leaves that name them.

A leaf names its member's queue in the ``delivery_queue`` extension
(:mod:`messenger.api.delivery_address`), and the leaf is read by others:
whoever claims the KeyPackage, every member of the group, an external
joiner reading the GroupInfo. So the server hands each client addresses
instead of its queue ID (``GET /v1/queue/address``): the queue ID sealed
with AES-256-GCM under a key of its own derived from the secret key file
(:class:`~.server_keys.ServerKeys`), with a fresh nonce each time, so that
two addresses of one queue share no value and none can be matched with the
server's rows. Nothing is stored: the server opens an address when a commit
names the new epoch's members (:meth:`QueueAddresses.resolve`), checks that
an uploaded KeyPackage carries an address of its uploader's queue, and
hands out a claimed KeyPackage's address as the queue its Welcome goes to.

A leaf from before addresses carries the plain queue ID, which
:meth:`QueueAddresses.resolve` takes as it is.
"""

from __future__ import annotations

from messenger.api.delivery_address import SEALED_ADDRESS_BYTES
from messenger.api.fields import ID_BYTES, Ident, b64decode, b64encode

from .at_rest import SealedColumn
from .storage import StorageError

__all__ = ["QueueAddresses"]


class QueueAddresses:
    """Issue and open delivery addresses."""

    __slots__ = ("_sealed",)

    def __init__(self, key: bytes) -> None:
        self._sealed = SealedColumn(key, "delivery address")

    def issue(self, queue_id: str) -> str:
        """A fresh address of ``queue_id`` (a different value on every call)."""
        raw = b64decode(queue_id)
        if len(raw) != ID_BYTES:
            raise ValueError("not a queue ID")
        return b64encode(self._sealed.seal(b"", raw))

    def resolve(self, address: str) -> str | None:
        """The queue ``address`` names: the queue of a sealed address this server
        issued, or a plain queue ID as it is; None if it is neither."""
        if len(address) == Ident.LENGTH:
            try:
                return address if len(b64decode(address)) == ID_BYTES else None
            except ValueError:
                return None
        try:
            sealed = b64decode(address)
        except ValueError:
            return None
        if len(sealed) != SEALED_ADDRESS_BYTES:
            return None
        try:
            return b64encode(self._sealed.open(b"", sealed))
        except StorageError:
            return None
