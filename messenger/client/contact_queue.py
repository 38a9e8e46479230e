"""This client's contact queue: the queue its KeyPackages name (docs/metadata.md §1).

The server hands out a client's KeyPackages to whoever adds it, so it keeps
them, and a KeyPackage's leaf names its account. Had the leaf named the
queue the client reads all its groups from, the server (its operator, who
holds the key file that seals them) could join that queue to the account.
So each client has a second queue for first contact:

* the client makes an Ed25519 **contact key** (random, kept in the store's
  settings before it is sent, so a retry sends the same key) and asks the
  server for its contact queue (``PUT /v1/queue/contact``, with a signature
  by the key over the client ID and the key); the server answers the queue's
  ID, and the same queue again for the same key;
* the client's KeyPackages name an address of the contact queue
  (:meth:`~.session.Session.key_package_account`), and uploads of only such
  KeyPackages carry no proof of the client's own queue; right after the
  contact queue is made, a whole new set goes up, and the server drops the
  ones stored before that named the client's own queue in the same
  transaction, so a claim never finds none;
* a Welcome, and the group's messages until the client moved, arrive in the
  contact queue, which the inbound pipeline reads with queue requests
  signed by the contact key (:class:`~.net.signing.QueueSigner`), over
  connections of their own: a catch-up beside the queue's, then a long poll
  (:mod:`.sync.inbound`, :mod:`.sync.listener`);
* right after joining a group from the contact queue, the client commits a
  self-update whose leaf names its own queue (the ``move`` intent,
  :mod:`.sync.leaf_addresses`); the request carries the own queue's key's
  signature over that commit (``join_proof``), which lets it add a queue
  nobody claimed, and the contact key's (``leave_proof``), so that the
  contact queue leaves the group's member set without being taken for a
  member's removal (the members' rejoin boxes keep opening the state).

So what the server stores ties the account to the contact queue only. The
live server sees each move (the contact queue out, a queue in, with one
commit), as it would see any member's queue when it joins.

And no stored row ties them at all for an account with an account key
(docs/metadata.md §1, :mod:`.contact_tokens`): the request carries the
SHA-256 of the contact queue's **kill secret**
(:func:`~.queue_keys.contact_kill`), so the server keeps no sealed link
from the client to the queue (a device that removes this one names the
queue with the secret); a contact queue made before is asked for once
more, with the same key and the kill hash, and a whole new set of
KeyPackages then goes up. KeyPackage uploads that name the contact queue
carry ``contact_proof``, the contact key's signature over the client and
the key, which is how the server knows the queue is the client's; and
the leaves carry the account's contact token, under which the server
seals them.

The contact queue needs the client's own queue to have its key
(:mod:`.queue_keys`): the move is proved with it. A server from before
contact queues (``not_found``, ``method_not_allowed``) is asked again at
the next start; KeyPackages then name the client's own queue, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from messenger.api.models import ContactQueueRequest
from messenger.api.signing import contact_queue_possession

from .errors import ClientError, ServerRejectedError
from .net.signing import QueueSigner
from .store.settings import CONTACT_CURSOR, CONTACT_KEY_PACKAGES_OWED, CONTACT_KILL_HASH_GIVEN

if TYPE_CHECKING:
    from .session import Session
    from .store.async_store import AsyncStore
    from .store.store import Store
    from .sync.key_packages import KeyPackagePool

__all__ = ["ensure_contact_queue", "forget_contact_queue", "set_up_queues"]

_log = logging.getLogger(__name__)

#: What a server from before contact queues answers to ``PUT /v1/queue/contact``.
_NOT_THERE: Final = frozenset({"not_found", "method_not_allowed"})

_locks: weakref.WeakKeyDictionary[AsyncStore, asyncio.Lock] = weakref.WeakKeyDictionary()
_not_there: weakref.WeakSet[AsyncStore] = weakref.WeakSet()


async def set_up_queues(session: Session, pool: KeyPackagePool | None) -> None:
    """At each connection: give the client's queue its key (:mod:`.queue_keys`),
    then get the contact queue. The KeyPackage ``pool`` then uploads at once:
    a whole new set naming the contact queue if it was made now or its set is
    still owed (the server drops the others as they arrive), or, if only the
    key was given now, what the server dropped then (those it could no longer
    route), so that no claim misses this device meanwhile."""
    from .queue_keys import give_queue_key  # it imports the session's modules too

    given = await give_queue_key(session)
    await _give_handle_box(session)
    if pool is None:
        await ensure_contact_queue(session)
        return
    # The pool's lock is held from the contact queue's making to its new set's
    # upload: any other top-up waits for both, and finds the new set. A set that
    # could not go up now is owed (a setting), and the pool's next top-up sends it.
    async with pool.lock:
        made = await ensure_contact_queue(session)
        if given or made or await pool.owed():
            try:
                await pool.replenish_locked()
            except ClientError as exc:
                _log.info("KeyPackages not replenished after the queues' set-up (%s)", exc)


async def _give_handle_box(session: Session) -> None:
    """The handle's contact box, once (:func:`~.contact_tokens.give_handle_box`);
    a failure is logged, and the next connection tries again."""
    from .contact_tokens import give_handle_box

    try:
        await give_handle_box(session)
    except ClientError as exc:
        _log.info("the handle's contact box was not given (%s)", type(exc).__name__)


async def ensure_contact_queue(session: Session) -> bool:
    """Give this client its contact queue if it has none yet; whether it got one now.

    Once the client has it, :attr:`~.session.Session.contact` is set and this
    session's address of the client's own queue is known (a ``move`` needs it,
    and a group's lock is never held across a network call). The server
    drops the KeyPackages that named the client's own queue when new ones
    arrive: the caller uploads a new set (:func:`set_up_queues`).

    Idempotent and safe from several tasks. Network failures propagate (the
    caller retries); a server from before contact queues is asked again at
    the next start.
    """
    store = session.store
    lock = _locks.setdefault(store, asyncio.Lock())
    async with lock:
        signer = session.transport.signer
        if signer is None or not signer.signs_queue_requests or store in _not_there:
            return False
        private, queue_id = await store.run(lambda s: s.settings.contact_queue())
        kill_hash = _kill_hash(session)
        if private is not None and queue_id is not None:
            if kill_hash is not None and not await store.run(_kill_hash_given):
                queue_id = await _give_kill_hash(session, private, queue_id, kill_hash)
            if session.contact is None or session.contact.queue_id != queue_id:
                session.contact = _signer(session, queue_id, private)
            await session.leaf_account()
            return False
        if private is None:
            private = Ed25519PrivateKey.generate().private_bytes_raw()
            chosen = private
            await store.transaction(lambda s: s.settings.set_contact_queue(chosen, None))
        try:
            queue_id = await session.transport.contact_queue(_request(session, private, kill_hash))
        except ServerRejectedError as exc:
            if exc.code not in _NOT_THERE:
                raise
            _not_there.add(store)
            _log.info("the server does not make contact queues yet")
            return False
        made, kept = queue_id, private

        def keep(s: Store) -> None:
            s.settings.set_contact_queue(kept, made)
            s.settings.delete(CONTACT_CURSOR)  # a new queue: nothing of it read yet
            # Its KeyPackages are owed until a whole new set is up (the pool clears it).
            s.settings.set(CONTACT_KEY_PACKAGES_OWED, True)
            if kill_hash is not None:
                s.settings.set(CONTACT_KILL_HASH_GIVEN, True)

        await store.transaction(keep)
        session.contact = _signer(session, queue_id, private)
        await session.leaf_account()
        _log.info("this device has a contact queue now")
        return True


def _kill_hash(session: Session) -> bytes | None:
    """SHA-256 of this client's contact queue kill secret (None without an account
    key: the server then keeps its sealed link, docs/metadata.md §1)."""
    from .queue_keys import contact_kill_of

    secret = contact_kill_of(session, session.account.client_id)
    return None if secret is None else hashlib.sha256(secret).digest()


def _kill_hash_given(store: Store) -> bool:
    return store.settings.get(CONTACT_KILL_HASH_GIVEN) is True


def _request(session: Session, private: bytes, kill_hash: bytes | None) -> ContactQueueRequest:
    """``PUT /v1/queue/contact`` for the contact key ``private``: its public half,
    its signature over the client and the key, and the kill hash."""
    signer = session.transport.signer
    assert signer is not None
    key = Ed25519PrivateKey.from_private_bytes(private)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    proof = key.sign(contact_queue_possession(signer.client_id, public))
    return ContactQueueRequest(public, proof, kill_hash)


async def _give_kill_hash(session: Session, private: bytes, queue_id: str, kill_hash: bytes) -> str:
    """A contact queue made before kill hashes: ask for it again with the same key
    and the kill hash, so that the server drops the sealed link it kept
    (``clients.contact_box``) and keeps no row naming the queue. Its KeyPackages
    are then owed: a whole new set, whose leaves carry the contact token,
    replaces the ones the key file alone opens (docs/metadata.md §1). The
    queue's ID as the server answers it (the same one)."""
    try:
        answered = await session.transport.contact_queue(_request(session, private, kill_hash))
    except ServerRejectedError as exc:
        if exc.code not in _NOT_THERE:
            raise
        return queue_id

    def keep(s: Store) -> None:
        s.settings.set_contact_queue(private, answered)
        if answered != queue_id:  # not expected: a queue of its own, read from its start
            s.settings.delete(CONTACT_CURSOR)
        s.settings.set(CONTACT_KILL_HASH_GIVEN, True)
        s.settings.set(CONTACT_KEY_PACKAGES_OWED, True)

    await session.store.transaction(keep)
    _log.info("the server keeps no link to this device's contact queue now")
    return answered


async def forget_contact_queue(session: Session) -> None:
    """The server does not know the contact queue's key (``auth_invalid``): it was
    restored from a backup made before the queue was. Forget the queue (keep the
    key) and its cursor, so that the next set-up asks for one again
    (:func:`set_up_queues`); the restored server's KeyPackages name a queue
    it knows. The caller forgets any cursor it keeps in memory too."""
    store = session.store
    async with _locks.setdefault(store, asyncio.Lock()):
        private, _queue_id = await store.run(lambda s: s.settings.contact_queue())

        def forget(s: Store) -> None:
            if private is not None:
                s.settings.set_contact_queue(private, None)
            # The next queue counts from an origin of its own (server migration 18).
            s.settings.delete(CONTACT_CURSOR)

        await store.transaction(forget)
        session.contact = None
    _log.warning("the server no longer knows this device's contact queue; asking again")


def _signer(session: Session, queue_id: str, private: bytes) -> QueueSigner:
    return QueueSigner(queue_id, private, clock=session.clock)
