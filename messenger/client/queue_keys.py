"""This client's queue key and its account's kill secrets (docs/metadata.md §1).

The server used to join each client to its queue with a row (sealed under
its key file, so a copy of the database did not show it, but the operator
could open it). Now each queue gets a key of its own, and the server keeps
no such row:

* the client makes an Ed25519 **queue key** (random, kept in the store's
  settings, so a backup carries it) and gives its public half to the server
  once (``PUT /v1/queue/key``, with a signature by it over the queue ID and
  the kill hash); the server then forgets which client reads the queue;
* from then on every signed request carries a **queue proof**: the queue ID
  and the queue key's signature over the request's canonical form
  (:func:`~messenger.api.signing.queue_proof_message`, sent by
  :class:`~.net.signing.Signer`), so the server learns the queue of a
  request only from the request;
* and the queue is read, acknowledged and pushed over **queue requests**,
  signed by the queue key alone and naming no client
  (:func:`~messenger.api.signing.queue_request`), on connections of their
  own (:class:`~.net.http.Transport`);
* to remove a device, another device of the account names its queue with
  its **kill secret**, ``HKDF-SHA256(ikm=account private key, salt=None,
  info="messenger queue kill v1" ‖ 0 ‖ client ID, 32)``, which every device
  of the account can derive and the server cannot: it keeps only the
  secret's SHA-256 beside the queue. The client's contact queue
  (:mod:`.contact_queue`) has a kill secret of its own, the same with
  ``"messenger contact queue kill v1"`` (:func:`contact_kill`).

The key is given by the push listener at each connection, after the
device is prepared (a restored copy registers as a new device first), and
by an explicit sync: never in the way of an app that starts offline.

An account without an account key (from before docs/devices.md) keeps the
old link: no device could name its queue for a removal. A server from
before queue keys (``not_found`` or ``method_not_allowed``) is asked again
at the next start; the proof headers are nothing to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from messenger.api.models import QUEUE_KILL_BYTES, QueueKeyRequest
from messenger.api.signing import queue_key_possession

from .errors import ClientError, ServerRejectedError

if TYPE_CHECKING:
    from .session import Session
    from .store.async_store import AsyncStore

__all__ = ["contact_kill", "contact_kill_of", "give_queue_key", "queue_kill", "queue_kill_of"]

_log = logging.getLogger(__name__)

_KILL_INFO: Final = b"messenger queue kill v1\x00"
_CONTACT_KILL_INFO: Final = b"messenger contact queue kill v1\x00"
#: What a server from before queue keys answers to ``PUT /v1/queue/key``.
_NOT_THERE: Final = frozenset({"not_found", "method_not_allowed"})

_locks: weakref.WeakKeyDictionary[AsyncStore, asyncio.Lock] = weakref.WeakKeyDictionary()
_not_there: weakref.WeakSet[AsyncStore] = weakref.WeakSet()


def queue_kill(account_private_key: bytes, client_id: str) -> bytes:
    """The kill secret of ``client_id``'s queue (module docstring)."""
    info = _KILL_INFO + client_id.encode("ascii")
    return HKDF(algorithm=hashes.SHA256(), length=QUEUE_KILL_BYTES, salt=None, info=info).derive(
        account_private_key
    )


def queue_kill_of(session: Session, client_id: str) -> bytes | None:
    """The kill secret of a device of this account (None without an account key)."""
    private = session.account.identity.account_private_key
    return None if private is None else queue_kill(private, client_id)


def contact_kill(account_private_key: bytes, client_id: str) -> bytes:
    """The kill secret of ``client_id``'s contact queue (docs/metadata.md §1): the
    server keeps its SHA-256 beside the queue, and no row that names the queue."""
    info = _CONTACT_KILL_INFO + client_id.encode("ascii")
    return HKDF(algorithm=hashes.SHA256(), length=QUEUE_KILL_BYTES, salt=None, info=info).derive(
        account_private_key
    )


def contact_kill_of(session: Session, client_id: str) -> bytes | None:
    """The contact queue's kill secret of a device of this account (None without
    an account key)."""
    private = session.account.identity.account_private_key
    return None if private is None else contact_kill(private, client_id)


async def give_queue_key(
    session: Session, *, replenish: Callable[[], Awaitable[object]] | None = None
) -> bool:
    """Give this client's queue a key of its own if it has none yet; whether it did now.

    ``replenish`` (the client's KeyPackage pool) runs once the key is given: the
    server then drops the KeyPackages whose leaf names no delivery address.

    Idempotent and safe from several tasks. The key is stored before it is
    given, and signs every request from then on, so a retry after a crash or
    a lost answer gives the same key again. Network failures propagate (the
    caller retries); a server from before queue keys is asked again at the
    next start.
    """
    store = session.store
    lock = _locks.setdefault(store, asyncio.Lock())
    async with lock:
        identity = session.account.identity
        if identity.account_private_key is None or store in _not_there:
            return False
        signer = session.transport.signer
        if signer is None:  # pragma: no cover - a session always has a signer
            raise RuntimeError("a session without a signer")
        private, given = await store.run(lambda s: s.settings.queue_key())
        if given and signer.signs_queue_requests:
            return False
        # Given, but the server refused a queue request as signed by a key it
        # does not know (restored from a backup made before it had the key,
        # :class:`~.net.http.Transport`): the same key is given again.
        if private is None:
            private = Ed25519PrivateKey.generate().private_bytes_raw()
            chosen = private
            await store.transaction(lambda s: s.settings.set_queue_key(chosen, given=False))
        queue_id = identity.queue_id
        signer.set_queue_key(queue_id, private)
        key = Ed25519PrivateKey.from_private_bytes(private)
        kill_hash = hashlib.sha256(queue_kill(identity.account_private_key, identity.client_id))
        digest = kill_hash.digest()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        proof = key.sign(queue_key_possession(queue_id, digest))
        try:
            await session.transport.give_queue_key(QueueKeyRequest(public, digest, proof))
        except ServerRejectedError as exc:
            if exc.code not in _NOT_THERE:
                raise
            _not_there.add(store)
            _log.info("the server does not take queue keys yet")
            return False
        done = private
        await store.transaction(lambda s: s.settings.set_queue_key(done, given=True))
        signer.queue_key_given = True
        _log.info("this device's queue has a key of its own now")
        # The server dropped the KeyPackages that named no delivery address (no
        # row could find their queue any more): upload new ones now, not at the
        # next maintenance, so that nobody's claim misses this device meanwhile.
        if replenish is not None:
            try:
                await replenish()
            except ClientError as exc:
                _log.info("KeyPackages not replenished after the queue key (%s)", exc)
        return True
