"""The byte strings that clients and the server sign, shared by both sides.

Each of these is signed with its own domain-separation prefix so that
a signature for one can never be taken for another:

* **Requests** (:func:`canonical_request`). A client signs every
  authenticated request with its Ed25519 key (RFC 8032) and sends the
  signature in :data:`HEADER_SIGNATURE` together with its client ID,
  a timestamp and a random nonce. The server refuses a request whose
  timestamp is outside its window or whose nonce it has already seen for
  that client (replay), so a captured request cannot be sent again.
* **Queue requests** (:func:`queue_request`). Reading and acknowledging a
  queue whose key is its own needs only that key: the request carries the
  queue ID, a timestamp, a nonce and the queue key's signature, and no
  client ID (docs/metadata.md §1). A client's signed request that needs
  its queue proves it with :func:`queue_proof_message`.
* **Proof of possession** (:func:`possession_message`). Registering a key
  (a new account or another device) needs a signature by that key, so no
  one can register a key that they do not hold.
* **Credentials** (:func:`credential_tbs`). The server (the Authentication
  Service of RFC 9750 §4) signs the binding of a client's signature key to
  its pseudonymous account and client IDs (and, from version 2, to the
  account's key).
* **Device certificates** (:func:`device_certificate_tbs`). The account key,
  held by the account's devices and never by the server, signs each
  device's signature key (docs/devices.md), so a device the server adds on
  its own is visibly not the account's.

All formats are ``\\n``-joined ASCII lines; binary values appear as
unpadded base64url or hex, so the canonical form is unambiguous.

The request target is signed in the form :func:`canonical_target` gives:
the path and query as sent on the wire, with every byte outside a small
printable ASCII set percent-encoded (UTF-8 for text). Client libraries
percent-encode a target before sending it, and the server reads the raw
target of the request (ASGI ``raw_path`` and ``query_string``); both then
canonicalise, so they agree on any target, ASCII or not, and the signed
line never holds a line break or a non-ASCII byte.
"""

from __future__ import annotations

import hashlib
from typing import Final

from .fields import b64encode

__all__ = [
    "DEVICE_TOKEN_BYTES",
    "HEADER_CLIENT",
    "HEADER_DEVICE_TOKEN",
    "HEADER_NONCE",
    "HEADER_QUEUE",
    "HEADER_QUEUE_SIGNATURE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "NONCE_BYTES",
    "canonical_request",
    "canonical_target",
    "contact_queue_possession",
    "credential_tbs",
    "device_certificate_tbs",
    "possession_message",
    "queue_join_message",
    "queue_key_possession",
    "queue_leave_message",
    "queue_proof_message",
    "queue_request",
]

#: The signing client's ID.
HEADER_CLIENT: Final = "X-Messenger-Client"
#: Unix time of signing in milliseconds (decimal).
HEADER_TIMESTAMP: Final = "X-Messenger-Timestamp"
#: :data:`NONCE_BYTES` random bytes, base64url; unique per client within the window.
HEADER_NONCE: Final = "X-Messenger-Nonce"
#: Ed25519 signature over :func:`canonical_request`, base64url.
HEADER_SIGNATURE: Final = "X-Messenger-Signature"

#: Length of a request nonce.
NONCE_BYTES: Final = 16

#: The signing client's queue ID, on signed requests of a client whose queue has
#: a key of its own (docs/metadata.md §1).
HEADER_QUEUE: Final = "X-Messenger-Queue"
#: The queue key's Ed25519 signature over :func:`queue_proof_message` (on a
#: client's signed request) or over :func:`queue_request` (on a **queue
#: request**, which carries no client headers: reading and acknowledging the
#: queue, docs/metadata.md §1), base64url.
HEADER_QUEUE_SIGNATURE: Final = "X-Messenger-Queue-Signature"

#: The device token, base64url, on every signed request of a client that was
#: taken over (``POST /v1/clients/takeover``); not covered by the signature.
HEADER_DEVICE_TOKEN: Final = "X-Messenger-Device-Token"  # noqa: S105 - a header name
#: Length of a device token (random bytes chosen by the client).
DEVICE_TOKEN_BYTES: Final = 32

_REQUEST_PREFIX: Final = "messenger-request-v1"
_POSSESSION_PREFIX: Final = "messenger-possession-v1"
_CREDENTIAL_PREFIX: Final = "messenger-credential-v1"
_CREDENTIAL_V2_PREFIX: Final = "messenger-credential-v2"
_DEVICE_PREFIX: Final = "messenger-device-certificate-v1"
_QUEUE_PROOF_PREFIX: Final = "messenger-queue-proof-v1"
_QUEUE_KEY_PREFIX: Final = "messenger-queue-key-v1"
_QUEUE_REQUEST_PREFIX: Final = "messenger-queue-request-v1"
_CONTACT_QUEUE_PREFIX: Final = "messenger-contact-queue-v1"
_QUEUE_JOIN_PREFIX: Final = "messenger-queue-join-v1"
_QUEUE_LEAVE_PREFIX: Final = "messenger-queue-leave-v1"


#: Bytes that stand for themselves in a canonical target: RFC 3986 ``unreserved``,
#: ``sub-delims``, ``:``, ``@``, ``/``, ``?`` and ``%`` (so existing escapes are kept).
_TARGET_SAFE: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"
)


def canonical_target(target: str | bytes) -> str:
    """The form of a request target (path, ``?``, query) that is signed.

    Text is taken as UTF-8. Every byte outside RFC 3986's unreserved and
    sub-delimiter characters and ``:@/?%`` is written as ``%XX`` (upper-case
    hex); escapes already present are kept as they are, so the function is
    idempotent, and a target and the percent-encoded form that an HTTP
    library sends for it give the same result. An empty query (a trailing
    ``?``) is dropped, as servers do not report it.
    """
    raw = target.encode("utf-8", "surrogateescape") if isinstance(target, str) else target
    if raw.endswith(b"?") and raw.count(b"?") == 1:
        raw = raw[:-1]
    if all(byte in _TARGET_SAFE for byte in raw):
        return raw.decode("ascii")
    return "".join(chr(byte) if byte in _TARGET_SAFE else f"%{byte:02X}" for byte in raw)


def canonical_request(
    method: str,
    target: str | bytes,
    client_id: str,
    timestamp_ms: int,
    nonce: str,
    body: bytes,
) -> bytes:
    """What a client signs for one request.

    ``target`` is the path, plus ``?`` and the query string when there is
    one (``/v1/queue/messages?after=3``), as text or as the raw bytes of the
    request line; it is signed as :func:`canonical_target` gives it. The
    body is covered by its SHA-256, so any change to method, target, body,
    timestamp or nonce makes the signature fail.
    """
    lines = (
        _REQUEST_PREFIX,
        _ascii_line(method.upper()),
        canonical_target(target),
        _ascii_line(client_id),
        str(timestamp_ms),
        _ascii_line(nonce),
        hashlib.sha256(body).hexdigest(),
    )
    return "\n".join(lines).encode("ascii")


def _ascii_line(value: str) -> str:
    """``value`` as one ASCII line: unchanged when it is printable ASCII (all
    well-formed values are), else percent-encoded, so that no input can add a
    line or make the encoding fail."""
    if value.isascii() and value.isprintable():
        return value
    return canonical_target(value.replace("%", "%25"))


def possession_message(context: bytes, signature_key: bytes) -> bytes:
    """What a new key signs to prove that its holder registers it.

    ``context`` ties the proof to one use: the registration challenge, or
    the account ID when a client is added to an account.
    """
    return "\n".join((_POSSESSION_PREFIX, b64encode(context), b64encode(signature_key))).encode(
        "ascii"
    )


def credential_tbs(
    account_id: str,
    client_id: str,
    signature_key: bytes,
    issued_at: int,
    account_key: bytes | None = None,
) -> bytes:
    """What the server signs to issue a credential.

    Version 1 (no ``account_key``) binds the client's key to its IDs; version
    2 also names the account's key, so the server vouches for one account key
    per account ID (docs/devices.md).
    """
    if account_key is None:
        lines: tuple[str, ...] = (
            _CREDENTIAL_PREFIX,
            account_id,
            client_id,
            b64encode(signature_key),
            str(issued_at),
        )
    else:
        lines = (
            _CREDENTIAL_V2_PREFIX,
            account_id,
            client_id,
            b64encode(signature_key),
            str(issued_at),
            b64encode(account_key),
        )
    return "\n".join(lines).encode("ascii")


def device_certificate_tbs(account_key: bytes, signature_key: bytes, certified_at: int) -> bytes:
    """What an account key signs to certify one of its devices (docs/devices.md).

    The certificate names the device only by its signature key: the server
    assigns the client ID after the certificate is made, and the account ID
    is bound to ``account_key`` by the server's credential.
    """
    lines = (_DEVICE_PREFIX, b64encode(account_key), b64encode(signature_key), str(certified_at))
    return "\n".join(lines).encode("ascii")


def queue_proof_message(queue_id: str, request: bytes) -> bytes:
    """What a queue key signs to prove, on one signed request, that the client
    reads ``queue_id``: the queue ID and the request's :func:`canonical_request`
    (so the proof is as fresh as the request, and used once with its nonce)."""
    return "\n".join((_QUEUE_PROOF_PREFIX, _ascii_line(queue_id), "")).encode("ascii") + request


def queue_key_possession(queue_id: str, kill_hash: bytes) -> bytes:
    """What a queue key signs when it is given to ``queue_id`` (``PUT /v1/queue/key``)."""
    lines = (_QUEUE_KEY_PREFIX, _ascii_line(queue_id), b64encode(kill_hash))
    return "\n".join(lines).encode("ascii")


def contact_queue_possession(client_id: str, auth_key: bytes) -> bytes:
    """What a contact queue's key signs when the client asks for the queue
    (``PUT /v1/queue/contact``): the client and the key, so that the proof
    stands for no other client (docs/metadata.md §1, "Contact queues")."""
    lines = (_CONTACT_QUEUE_PREFIX, _ascii_line(client_id), b64encode(auth_key))
    return "\n".join(lines).encode("ascii")


def queue_join_message(group_id: bytes, epoch: int, commit: bytes) -> bytes:
    """What a queue's key signs to join its queue to a group with one commit
    (``CommitRequest.join_proof``): the group, the epoch the commit was made in
    and the commit's SHA-256, so that the proof stands for that commit alone
    (docs/metadata.md §1, "Contact queues")."""
    return _commit_statement(_QUEUE_JOIN_PREFIX, group_id, epoch, commit)


def queue_leave_message(group_id: bytes, epoch: int, commit: bytes) -> bytes:
    """What the key of the queue a member moves off signs (``CommitRequest.leave_proof``):
    as :func:`queue_join_message`, under a prefix of its own, so that neither
    proof stands for the other."""
    return _commit_statement(_QUEUE_LEAVE_PREFIX, group_id, epoch, commit)


def _commit_statement(prefix: str, group_id: bytes, epoch: int, commit: bytes) -> bytes:
    lines = (prefix, b64encode(group_id), str(epoch), hashlib.sha256(commit).hexdigest())
    return "\n".join(lines).encode("ascii")


def queue_request(
    method: str,
    target: str | bytes,
    queue_id: str,
    timestamp_ms: int,
    nonce: str,
    body: bytes,
) -> bytes:
    """What a queue key signs for a **queue request**: a request that names no
    client, only the queue it reads (docs/metadata.md §1).

    The lines of :func:`canonical_request` with the queue ID in place of the
    client ID, under a prefix of their own, so that neither a client's
    signature nor a queue proof can stand for it.
    """
    lines = (
        _QUEUE_REQUEST_PREFIX,
        _ascii_line(method.upper()),
        canonical_target(target),
        _ascii_line(queue_id),
        str(timestamp_ms),
        _ascii_line(nonce),
        hashlib.sha256(body).hexdigest(),
    )
    return "\n".join(lines).encode("ascii")
