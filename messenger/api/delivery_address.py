"""Delivery addresses: how a leaf names its member's queue without showing it.

A member's leaf carries its delivery address in the ``delivery_queue``
extension (0xF002, a private-use LeafNode extension, RFC 9420 §13.1,
§17.3). A committer reads the addresses of the new epoch's leaves and sends
them as the group's member set (``CommitRequest.members``); the server maps
each to a queue.

The address is not the queue ID: it is the ID sealed by the server under a
key of its own (AES-256-GCM with a fresh nonce each time the server hands
one out, ``GET /v1/queue/address``). So the users who read a leaf -- whoever
claims the KeyPackage, the group's members, an external joiner reading the
GroupInfo -- learn no queue ID: nothing they could match with the server's
rows (a leaked database, say), and two addresses of one queue share no
value. Only the server opens them (docs/metadata.md §1).

A leaf made before addresses carries the plain queue ID (an ID of
:data:`~messenger.api.fields.ID_BYTES` bytes); the server takes both forms.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DELIVERY_QUEUE_EXTENSION",
    "SEALED_ADDRESS_BYTES",
    "SEALED_ADDRESS_LENGTH",
]

#: The LeafNode extension that carries a member's delivery address.
DELIVERY_QUEUE_EXTENSION: Final = 0xF002

#: A sealed address: a version byte, a 12-byte nonce, the 16-byte queue ID
#: and a 16-byte tag.
SEALED_ADDRESS_BYTES: Final = 45

#: Its length in unpadded base64url.
SEALED_ADDRESS_LENGTH: Final = (SEALED_ADDRESS_BYTES * 4 + 2) // 3
