"""The account's rejoin secret and its rejoin boxes (docs/metadata.md §2, docs/devices.md §5).

The server seals each group's stored GroupInfo under a data key that only
the send tokens of the group's epochs since its last removal unwrap (a send
token is ``MLS-Exporter("messenger send token", group_id, 32)``, RFC 9420
§8.5; :mod:`.sealed_sending`). A device restoring a backup is not a member
of the current epoch, so it needs such a token from somewhere: the token of
the epoch its backup is at (if no one was removed since), or the account's
**rejoin box** of the group, which the account's devices keep fresh on the
server.

* The **rejoin secret** is derived from the account key, which every device
  of the account (and every backup) holds:
  ``HKDF-SHA256(ikm=account private key, salt=None, info="messenger rejoin
  secret v1", 32)``. The server never sees it.
* A box is stored under a **handle**, ``HMAC-SHA256(secret, "messenger
  rejoin handle v1" ‖ 0 ‖ group_id)``: the server cannot tell which group a
  handle is for, and handles of one account do not look alike.
* A **box** is ``nonce ‖ AES-256-GCM(key, nonce, epoch ‖ token, aad=handle)``
  with ``key = HKDF-SHA256(ikm=secret, salt=None, info="messenger rejoin box
  v1" ‖ 0 ‖ group_id, 32)``: 68 bytes, bound to its group and handle.

**When a box is due** (:func:`box_due`): a group with state (not left) whose
box was never uploaded, or holds a token from before the latest commit that
removed a leaf (that commit made the server draw a fresh data key, so the
old token opens nothing), or is :data:`REFRESH_EPOCHS` epochs old (the
server keeps at least 256 epochs' wraps), or was last written
:data:`REFRESH_AGE_MS` (60 days) ago or at a time not known (the server
deletes a box not written for 180 days, so that boxes of accounts no one
uses, or an attacker's, do not stay forever). A group from before (client
migration 12) counts its next epoch as a removal: the commit that makes it
is the one that moves the group's state under its members' keys on the
server, which wraps the new data key under that commit's epoch and the
new one only. The marks live beside the group's
state (:class:`~.store.groups.RejoinMarks`); removals are recorded by the
one owner of transitions (:class:`~.epochs.GroupEpochs`).

**When boxes are uploaded** (:class:`RejoinBoxUploader`): not right after a
commit, since the live server would see every member account upload right
after a removal and learn the group's accounts by the timing. Everything
due goes together, after a random delay (:class:`UploadPolicy`, 1 to 10
minutes, from :mod:`secrets`) counted from the first box that became due,
and once at start; a running app also looks every :data:`CHECK_SECONDS`
(6 hours) for boxes that became due by age. Before a box is replaced, the
one stored is read: if another device of the account put a token of the same
epoch or a later one (this device is behind, or restoring), it is kept, and
its epoch recorded; its bytes are written back as they are, so that the
server keeps it as long as a fresh one.
Failures, and the server's refusals past its limits (``rate_limited``
for too many new boxes an hour, ``no_space``), are retried after another
delay; nothing of a token or box is logged. The boxes of groups left are
deleted (best effort) in the same rounds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from messenger.api.models import REJOIN_HANDLE_BYTES, SEND_TOKEN_BYTES

from .errors import (
    ClientError,
    DeviceReplacedError,
    RateLimitedError,
    ServerRejectedError,
    ServerUnavailableError,
)
from .sealed_sending import send_token
from .wake import wait_event

if TYPE_CHECKING:
    from .session import Session
    from .store.groups import RejoinMarks

__all__ = [
    "BOX_BYTES",
    "CHECK_SECONDS",
    "DEFAULT_UPLOAD_POLICY",
    "REFRESH_AGE_MS",
    "REFRESH_EPOCHS",
    "RejoinBoxUploader",
    "UploadPolicy",
    "UploadResult",
    "box_due",
    "box_token",
    "handle",
    "open_box",
    "rejoin_secret",
    "seal_box",
]

_log = logging.getLogger(__name__)

_SECRET_INFO: Final = b"messenger rejoin secret v1"
_HANDLE_LABEL: Final = b"messenger rejoin handle v1\x00"
_BOX_LABEL: Final = b"messenger rejoin box v1\x00"
_SECRET_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_EPOCH_BYTES: Final = 8
_TAG_BYTES: Final = 16
#: The size of every box: nonce, epoch, token, tag.
BOX_BYTES: Final = _NONCE_BYTES + _EPOCH_BYTES + SEND_TOKEN_BYTES + _TAG_BYTES
#: A box this many epochs old is uploaded again (the server keeps at least 256).
REFRESH_EPOCHS: Final = 64
#: A box written this long ago is written again (the server keeps one 180 days).
REFRESH_AGE_MS: Final = 60 * 24 * 3600 * 1000
#: How often a running app looks for boxes due by age.
CHECK_SECONDS: Final = 6 * 3600.0
_RESOLUTION: Final = 1_000_000


# -- the secret, the handle and the box -------------------------------------------------


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def rejoin_secret(account_private_key: bytes) -> bytes:
    """The account's rejoin secret, from its raw Ed25519 private key (every device has it)."""
    return _hkdf(account_private_key, _SECRET_INFO)


def handle(secret: bytes, group_id: bytes) -> bytes:
    """The name of the account's box of ``group_id`` on the server."""
    digest = hmac.new(secret, _HANDLE_LABEL + group_id, hashlib.sha256).digest()
    assert len(digest) == REJOIN_HANDLE_BYTES
    return digest


def _box_key(secret: bytes, group_id: bytes) -> AESGCM:
    return AESGCM(_hkdf(secret, _BOX_LABEL + group_id))


def seal_box(secret: bytes, group_id: bytes, epoch: int, token: bytes) -> bytes:
    """The box holding ``token``, the send token of ``group_id``'s ``epoch``."""
    if len(token) != SEND_TOKEN_BYTES:
        raise ValueError(f"a send token is {SEND_TOKEN_BYTES} bytes")
    if not 0 <= epoch < 1 << 64:
        raise ValueError("an epoch is a 64-bit unsigned number")
    nonce = os.urandom(_NONCE_BYTES)
    plain = epoch.to_bytes(_EPOCH_BYTES, "big") + token
    return nonce + _box_key(secret, group_id).encrypt(nonce, plain, handle(secret, group_id))


def open_box(secret: bytes, group_id: bytes, box: bytes) -> tuple[int, bytes] | None:
    """The (epoch, token) in ``box``; None if it is not this account's box of
    ``group_id``, or was changed (never raises on hostile bytes)."""
    if len(box) != BOX_BYTES:
        return None
    nonce, sealed = box[:_NONCE_BYTES], box[_NONCE_BYTES:]
    try:
        plain = _box_key(secret, group_id).decrypt(nonce, sealed, handle(secret, group_id))
    except InvalidTag:
        return None
    if len(plain) != _EPOCH_BYTES + SEND_TOKEN_BYTES:  # pragma: no cover - the tag binds it
        return None
    return int.from_bytes(plain[:_EPOCH_BYTES], "big"), plain[_EPOCH_BYTES:]


def box_due(marks: RejoinMarks, now_ms: int | None = None) -> bool:
    """Whether the group's box is to be uploaded (module docstring); by its age too
    if ``now_ms`` is given."""
    if marks.box_epoch is None:
        return True
    if marks.removal_epoch is not None and marks.box_epoch < marks.removal_epoch <= marks.epoch:
        return True
    if now_ms is not None and (marks.box_at is None or now_ms - marks.box_at >= REFRESH_AGE_MS):
        return True
    return marks.epoch - marks.box_epoch >= REFRESH_EPOCHS


def _account_secret(session: Session) -> bytes | None:
    """The account's rejoin secret; None for an account without an account key."""
    private = session.account.identity.account_private_key
    return None if private is None else rejoin_secret(private)


async def box_token(session: Session, group_id: bytes) -> bytes | None:
    """The send token in the account's box of ``group_id`` (to rejoin it, docs/devices.md §5).

    None if the account has no account key, the server has no box, or the
    box does not open. Network failures propagate (the caller retries);
    another refusal counts as no box.
    """
    secret = _account_secret(session)
    if secret is None:
        return None
    try:
        box = await session.transport.get_rejoin_box(handle(secret, group_id))
    except ServerRejectedError as exc:
        _log.info("the rejoin box could not be read: %s", exc.code)
        return None
    if box is None:
        return None
    opened = open_box(secret, group_id, box)
    if opened is None:
        _log.warning("a rejoin box on the server does not open; ignored")
        return None
    return opened[1]


# -- uploading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """How long after a box becomes due the due boxes go up: uniform in
    ``[min_delay, max_delay]`` seconds (also the wait before a retry)."""

    min_delay: float = 60.0
    max_delay: float = 600.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError("0 <= min_delay <= max_delay")

    def delay(self) -> float:
        """A delay drawn uniformly from the policy's range (from :mod:`secrets`)."""
        span = self.max_delay - self.min_delay
        return self.min_delay + span * secrets.randbelow(_RESOLUTION + 1) / _RESOLUTION


#: The app's policy: 1 to 10 minutes.
DEFAULT_UPLOAD_POLICY: Final = UploadPolicy()


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What one round did: boxes uploaded, boxes deleted, how many failed, and the
    due boxes left as they were (another device of the account had put a token of
    the same epoch or a later one)."""

    uploaded: int = 0
    deleted: int = 0
    failed: int = 0
    kept: int = 0


_UPLOADED: Final = "uploaded"
_KEPT: Final = "kept"
_FAILED: Final = "failed"


class _Offline(Exception):
    """The server cannot be reached now: the round stops, to be tried again later."""


class RejoinBoxUploader:
    """Keeps the account's rejoin boxes of this device's groups fresh (module docstring).

    :meth:`upload_due` does one round now; :meth:`run` does one at start,
    then one a random delay after the session's ``rejoin_signal`` is set
    (a box may have become due, or a group was left), and retries failed
    rounds after another delay.
    """

    def __init__(self, session: Session, policy: UploadPolicy = DEFAULT_UPLOAD_POLICY) -> None:
        self._s = session
        self._policy = policy
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Upload at start, then after a random delay whenever something became due.

        Returns if this device was replaced or removed (nothing to keep up).
        """
        signal = self._s.rejoin_signal
        try:
            retry = (await self.upload_due()).failed > 0
            while True:
                if not retry:
                    # Woken by a box that became due, or to look for boxes due by age.
                    await wait_event(signal, CHECK_SECONDS)
                await asyncio.sleep(self._policy.delay())
                # Cleared only now: what became due during the delay goes in this round.
                signal.clear()
                retry = (await self.upload_due()).failed > 0
        except DeviceReplacedError:
            _log.info("this device was replaced or removed: rejoin boxes are no longer kept")

    async def upload_due(self) -> UploadResult:
        """Delete the boxes of groups left, then upload every box due, now.

        Failures are logged (without tokens) and counted; the boxes stay due.
        DeviceReplacedError propagates: this device can no longer do it.
        """
        secret = _account_secret(self._s)
        if secret is None:
            return UploadResult()
        async with self._lock:
            deleted = uploaded = kept = failed = 0
            try:
                for group_id in await self._s.store.run(lambda s: s.groups.rejoin_box_deletions()):
                    if await self._delete(secret, group_id):
                        deleted += 1
                    else:
                        failed += 1
                marks = await self._s.store.run(lambda s: s.groups.rejoin_marks())
                now_ms = self._s.now_ms()
                for mark in marks:
                    if not box_due(mark, now_ms):
                        continue
                    done = await self._upload(secret, mark.group_id)
                    uploaded += done == _UPLOADED
                    kept += done == _KEPT
                    failed += done == _FAILED
            except _Offline:
                failed += 1
            result = UploadResult(uploaded, deleted, failed, kept)
            if uploaded or deleted or failed or kept:
                _log.info("rejoin boxes: %s", result)
            return result

    async def _upload(self, secret: bytes, group_id: bytes) -> str | None:
        """Upload the box of ``group_id``'s current epoch: :data:`_UPLOADED`, :data:`_KEPT`
        (the box holds that epoch or a later one already), :data:`_FAILED`, or None
        (no state to upload from)."""
        epochs = self._s.epochs
        async with epochs.lock(group_id):
            try:
                group = await epochs.get(group_id)
            except Exception as exc:  # a state that does not load: nothing to upload from
                _log.warning("a group's state did not load for its box: %s", type(exc).__name__)
                return None
            if group is None or not group.active:
                return None
            epoch = group.epoch
            token = await self._s.mls(send_token, group)
        name = handle(secret, group_id)
        outcome = _UPLOADED
        try:
            # Another device of the account may be further on (this one is catching
            # up, or restoring): a newer box is kept, not replaced by an older token.
            stored = await self._s.transport.get_rejoin_box(name)
            opened = None if stored is None else open_box(secret, group_id, stored)
            if stored is not None and opened is not None and opened[0] >= epoch:
                # Written back as it is: the server keeps it as long as a fresh one.
                epoch, outcome, box = opened[0], _KEPT, stored
            else:
                box = seal_box(secret, group_id, epoch, token)
            await self._s.transport.put_rejoin_box(name, box)
        except DeviceReplacedError:
            raise
        except (ServerUnavailableError, RateLimitedError) as exc:
            _log.info("a rejoin box was not uploaded (%s); retrying later", type(exc).__name__)
            raise _Offline from None
        except ClientError as exc:
            _log.warning("a rejoin box was refused (%s); retrying later", _reason(exc))
            return _FAILED
        at = self._s.now_ms()
        await self._s.store.transaction(lambda s: s.groups.record_rejoin_box(group_id, epoch, at))
        return outcome

    async def _delete(self, secret: bytes, group_id: bytes) -> bool:
        """Delete the box of a group left; whether nothing is left to do for it."""
        try:
            await self._s.transport.delete_rejoin_box(handle(secret, group_id))
        except DeviceReplacedError:
            raise
        except (ServerUnavailableError, RateLimitedError) as exc:
            _log.info("a rejoin box was not deleted (%s); retrying later", type(exc).__name__)
            raise _Offline from None
        except ServerRejectedError as exc:  # refused for good: retrying will not help
            _log.warning("deleting a rejoin box was refused: %s", exc.code)
        except ClientError as exc:
            _log.warning("a rejoin box was not deleted (%s); retrying later", _reason(exc))
            return False
        await self._s.store.transaction(lambda s: s.groups.rejoin_box_deleted(group_id))
        return True


def _reason(exc: ClientError) -> str:
    """What to log of a failure: its API code or its kind (never a token)."""
    return exc.code if isinstance(exc, ServerRejectedError) else type(exc).__name__
