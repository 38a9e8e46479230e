"""Signing requests as :mod:`messenger.api.signing` describes.

Every authenticated request carries the client ID, a timestamp (Unix ms), a
fresh random nonce and an Ed25519 signature over
:func:`~messenger.api.signing.canonical_request` (method, path and query,
client ID, timestamp, nonce, SHA-256 of the body). The signature key is
the one the server certified in the client's credential, which is also its
MLS signature key.

A copy that took its client over (a restore, :mod:`messenger.client.takeover`)
also sends its device token (:data:`~messenger.api.signing.HEADER_DEVICE_TOKEN`)
with every request, once :attr:`Signer.device_token` is set. A client whose
queue has a key of its own (:mod:`messenger.client.queue_keys`) proves its
queue with it (:meth:`Signer.set_queue_key`) on the requests whose answer
needs the queue (:func:`~messenger.api.routes.proves_queue`), and, once
the server has that key, reads and acknowledges its queue with **queue
requests** signed by it alone, which name no client
(:meth:`Signer.queue_headers`, docs/metadata.md §1). Its contact queue
(:mod:`messenger.client.contact_queue`) is read the same way, with a key of
its own (:class:`QueueSigner`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api.fields import b64encode
from messenger.api.routes import proves_queue
from messenger.api.signing import (
    DEVICE_TOKEN_BYTES,
    HEADER_CLIENT,
    HEADER_DEVICE_TOKEN,
    HEADER_NONCE,
    HEADER_QUEUE,
    HEADER_QUEUE_SIGNATURE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_BYTES,
    canonical_request,
    queue_join_message,
    queue_leave_message,
    queue_proof_message,
    queue_request,
)

__all__ = ["QueueSigner", "Signer"]


class QueueSigner:
    """Signs for one queue with its own key: queue requests, which name no
    client, and proofs that the queue joins a group by a commit."""

    __slots__ = ("_clock", "_key", "_random", "queue_id")

    def __init__(
        self,
        queue_id: str,
        private_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.queue_id = queue_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self._clock = clock
        self._random = random

    def sign(self, message: bytes) -> bytes:
        """The queue key's Ed25519 signature over ``message``."""
        return self._key.sign(message)

    @property
    def public_key(self) -> bytes:
        """The queue key's raw Ed25519 public key."""
        return self._key.public_key().public_bytes_raw()

    def headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The headers of a queue request for ``method target`` with ``body``: the
        queue ID, a timestamp, a nonce and the queue key's signature over
        :func:`~messenger.api.signing.queue_request`; no client ID, no device
        token."""
        timestamp = int(self._clock() * 1000)
        nonce = b64encode(self._random(NONCE_BYTES))
        message = queue_request(method, target, self.queue_id, timestamp, nonce, body)
        return {
            HEADER_QUEUE: self.queue_id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_NONCE: nonce,
            HEADER_QUEUE_SIGNATURE: b64encode(self.sign(message)),
        }

    def join_proof(self, group_id: bytes, epoch: int, commit: bytes) -> bytes:
        """The proof that this queue joins ``group_id`` by ``commit`` (made in
        ``epoch``): ``CommitRequest.join_proof`` (docs/metadata.md §1)."""
        return self.sign(queue_join_message(group_id, epoch, commit))

    def leave_proof(self, group_id: bytes, epoch: int, commit: bytes) -> bytes:
        """The proof that this queue's owner moves off it in ``group_id`` by
        ``commit``: ``CommitRequest.leave_proof`` (docs/metadata.md §1)."""
        return self.sign(queue_leave_message(group_id, epoch, commit))

    def __repr__(self) -> str:  # never show the key
        return "QueueSigner(...)"


class Signer:
    """Signs requests for one client."""

    def __init__(
        self,
        client_id: str,
        private_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
        device_token: bytes | None = None,
        queue_key: tuple[str, bytes] | None = None,
        queue_key_given: bool = False,
    ) -> None:
        self.client_id = client_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self._clock = clock
        self._random = random
        self._device_token: bytes | None = None
        self.device_token = device_token
        self._queue: QueueSigner | None = None
        #: Whether the server has the queue key (then queue requests work).
        self.queue_key_given = False
        if queue_key is not None:
            self.set_queue_key(*queue_key)
            self.queue_key_given = queue_key_given

    def set_queue_key(self, queue_id: str, private_key: bytes) -> None:
        """Prove ``queue_id`` with ``private_key`` from now on (on the routes that
        need the queue)."""
        self._queue = QueueSigner(queue_id, private_key, clock=self._clock, random=self._random)

    @property
    def device_token(self) -> bytes | None:
        """This copy's device token, sent with every request once set."""
        return self._device_token

    @device_token.setter
    def device_token(self, token: bytes | None) -> None:
        if token is not None and len(token) != DEVICE_TOKEN_BYTES:
            raise ValueError(f"a device token is {DEVICE_TOKEN_BYTES} bytes")
        self._device_token = token

    @property
    def signs_queue_requests(self) -> bool:
        """Whether queue requests can be signed (:meth:`queue_headers`): the queue
        has its key and the server has been given it."""
        return self._queue is not None and self.queue_key_given

    def queue_headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The headers of a queue request for ``method target`` with ``body``: the
        queue ID, a timestamp, a nonce and the queue key's signature over
        :func:`~messenger.api.signing.queue_request`; no client ID, no device
        token."""
        if self._queue is None:
            raise RuntimeError("a queue request needs the queue's key")
        return self._queue.headers(method, target, body)

    @property
    def queue(self) -> QueueSigner | None:
        """This client's queue and its key, once it has one."""
        return self._queue

    def __repr__(self) -> str:  # never show the key
        return f"Signer(client_id={self.client_id!r})"

    def headers(
        self, method: str, target: str, body: bytes, *, prove_queue: bool = True
    ) -> dict[str, str]:
        """The authentication headers for ``method target`` with ``body``; without
        ``prove_queue``, no queue proof even on a route that takes one (a
        KeyPackage upload naming the contact queue, docs/metadata.md §1)."""
        timestamp = int(self._clock() * 1000)
        nonce = b64encode(self._random(NONCE_BYTES))
        message = canonical_request(method, target, self.client_id, timestamp, nonce, body)
        headers = {
            HEADER_CLIENT: self.client_id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64encode(self._key.sign(message)),
        }
        if self._device_token is not None:
            headers[HEADER_DEVICE_TOKEN] = b64encode(self._device_token)
        if self._queue is not None and prove_queue and proves_queue(method, target):
            # Only where the server needs the queue (``Route.proves_queue``), so
            # that the live server does not see it on every signed request.
            queue = self._queue
            headers[HEADER_QUEUE] = queue.queue_id
            headers[HEADER_QUEUE_SIGNATURE] = b64encode(
                queue.sign(queue_proof_message(queue.queue_id, message))
            )
        return headers
