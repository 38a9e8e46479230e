"""The new device's side of a link (docs/devices.md §2, "The exchange").

:class:`Joining` runs on a profile without an account: it reads the
invitation, posts its offer (a fresh signature key and its proof of
possession, RFC 9420 §5.1.2 key), waits for the user of the existing device
to approve, checks the answer (the server's credential of its key; the
account key's certificate), writes its identity in one transaction with
its ``pending_links`` record, uploads enough KeyPackages for every group
(RFC 9420 §10) and posts *ready*. The existing device then adds it to every
group; the Welcomes (RFC 9420 §12.4.3.1) are processed by the ordinary
inbound pipeline. The history, if any, is received, its digest checked,
and imported once the Welcomes made the conversations it belongs to
(:mod:`.history`).

Messages to the new device can only be posted by the creator (signed), so
any message that does not open ends the link (:mod:`.channel`).

Crash safety (:func:`~..store.pending_links.recover_new_device`, run when
the profile opens): an
identity written but never announced as ready is discarded, so the profile
starts empty again (the creator removes the client it registered); one
that was announced is kept, and its Welcomes wait in its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from messenger.api.credential import decode_credential
from messenger.api.models import MAX_KEY_PACKAGES_PER_UPLOAD
from messenger.api.signing import device_certificate_tbs, possession_message

from ..errors import (
    ClientError,
    DeviceReplacedError,
    LinkCancelledError,
    LinkError,
    LinkExpiredError,
    LinkFailedError,
    NetworkError,
    ProtocolError,
    ServerRejectedError,
)
from ..store.identity import Identity
from ..store.pending_links import LinkRole, LinkState, PendingLink
from ..store.store import Store
from . import payloads as p
from .channel import LinkChannel
from .code import LinkCode
from .history import import_history
from .models import LinkProgress, LinkStage

if TYPE_CHECKING:
    from messenger.mls.ciphersuite import RandomSource

    from ..net.http import Transport
    from ..session import Session
    from ..store.async_store import AsyncStore

__all__ = ["Joining"]

_log = logging.getLogger(__name__)

_POLL_S: Final = 25
#: KeyPackages uploaded beyond one per group (groups made meanwhile, retries).
_SPARE_KEY_PACKAGES: Final = 5
#: How long the new device waits for its Welcomes before it gives up waiting
#: (it is linked by then; late Welcomes are processed as they come).
_WELCOME_WAIT_S: Final = 600.0


@dataclass(frozen=True, slots=True)
class _Received:
    groups: tuple[bytes, ...]
    history: bytes | None


class Joining:
    """One run of the new device's side; :meth:`run` does it all."""

    def __init__(
        self,
        code: LinkCode,
        *,
        device_name: str,
        store: AsyncStore,
        transport: Transport,
        random: RandomSource,
        clock: Callable[[], float],
        attach: Callable[[Identity], Session],
        sync: Callable[[], Awaitable[None]],
        progress: Callable[[LinkProgress], None] | None = None,
    ) -> None:
        if code.server_url is None:
            raise LinkFailedError("a link code without its server")
        self._code = code
        self._name = device_name
        self._store = store
        self._transport = transport
        self._random = random
        self._clock = clock
        self._attach = attach
        self._sync = sync
        self._report = progress or (lambda _: None)
        self._channel = LinkChannel(code.secret, creator=False, random=random)
        self._after = 0
        self._inbox: deque[bytes] = deque()
        self._expires_at: int | None = None

    @property
    def link_id(self) -> bytes:
        return self._channel.link_id

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- the mailbox ------------------------------------------------------------------

    async def _post(self, payload: p.Offer | p.Ready | p.Done) -> None:
        sealed = self._channel.seal(p.encode(payload))
        try:
            await self._transport.post_link(self.link_id, sealed, signed=False)
        except ServerRejectedError as exc:
            if exc.code == "not_found":
                raise LinkExpiredError("the link mailbox is gone") from None
            raise

    async def _messages(self) -> list[bytes]:
        """The next batch of messages from the creator (long poll)."""
        while True:
            if self._expires_at is not None and self._expires_at <= self._now_ms():
                raise LinkExpiredError("the link expired")
            try:
                wait = _POLL_S
                if self._expires_at is not None:
                    wait = max(1, min(wait, (self._expires_at - self._now_ms()) // 1000 + 1))
                batch = await self._transport.fetch_link(
                    self.link_id, self._after, signed=False, wait=wait
                )
            except ServerRejectedError as exc:
                if exc.code == "not_found":
                    raise LinkExpiredError(
                        "the link mailbox is gone (expired or unknown)"
                    ) from None
                raise
            self._expires_at = batch.expires_at
            fresh = [message for message in batch.messages if message.seq > self._after]
            if fresh:
                if any(b.seq <= a.seq for a, b in itertools.pairwise(fresh)):
                    raise LinkFailedError("the link's messages are out of order")
                self._after = fresh[-1].seq
                return [message.sealed for message in fresh]

    async def _next(self) -> p.Payload:
        """The next message from the creator, opened in order; a refusal ends the link."""
        while not self._inbox:
            self._inbox.extend(await self._messages())
        payload = p.decode(self._channel.open(self._inbox.popleft()))
        if isinstance(payload, p.Refusal):
            # Tell the creator the refusal arrived, so it can close the mailbox.
            with contextlib.suppress(ClientError):
                await self._post(p.Done())
            if payload.reason == "declined":
                raise LinkCancelledError(
                    "the link was declined",
                    user_message="Linking was declined on your other device.",
                )
            raise LinkCancelledError("the link was cancelled on the other device")
        return payload

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> Identity:
        """Link this profile to the account; its identity once every group is joined."""
        self._report(LinkProgress(LinkStage.WAITING_FOR_DEVICE))
        invitation = await self._next()
        if not isinstance(invitation, p.Invitation):
            raise LinkFailedError("the link did not start with an invitation")
        from messenger.mls.ciphersuite import get_cipher_suite

        from ..identity import CIPHER_SUITE, CredentialVerifier

        suite = get_cipher_suite(CIPHER_SUITE)
        private, public = suite.generate_signature_key_pair(self._random)
        context = invitation.account_id.encode("ascii")
        proof = Ed25519PrivateKey.from_private_bytes(private).sign(
            possession_message(context, public)
        )
        await self._post(p.Offer(public, proof, self._name))
        self._report(LinkProgress(LinkStage.WAITING_FOR_APPROVAL))
        answer = await self._next()
        if not isinstance(answer, p.Answer):
            raise LinkFailedError(f"a {type(answer).__name__} instead of the answer")
        self._report(LinkProgress(LinkStage.REGISTERING))
        info = await self._transport.server_info()
        if not hmac.compare_digest(info.server_key, answer.server_key):
            raise LinkFailedError("the answer names another server key than the server's")
        credential = decode_credential(answer.credential)
        from messenger.mls.credentials import Credential

        if (
            credential is None
            or credential.signature_key != public
            or credential.account_id != invitation.account_id
            or credential.client_id != answer.client_id
            or not CredentialVerifier(answer.server_key)(
                Credential.basic(answer.credential), public
            )
        ):
            raise ProtocolError("the credential in the answer does not verify")
        _check_account_key(answer, public)
        identity = Identity(
            server_url=self._transport.server_url,
            account_id=invitation.account_id,
            client_id=answer.client_id,
            queue_id=answer.queue_id,
            cipher_suite=CIPHER_SUITE,
            signature_private_key=private,
            signature_public_key=public,
            credential=answer.credential,
            created_at=self._now_ms(),
            handle=answer.handle,
            display_name=answer.display_name,
            server_key=answer.server_key,
            account_private_key=answer.account_private_key,
            account_public_key=answer.account_public_key,
            certified_at=answer.certified_at,
            device_certificate=answer.device_certificate,
        )
        record = PendingLink(
            self.link_id, LinkRole.NEW, LinkState.ANSWERED, answer.client_id, self._now_ms()
        )
        await self._store.transaction(lambda s: _write_identity(s, identity, answer, record))
        session = self._attach(identity)
        from ..sync.key_packages import KeyPackagePool

        wanted = max(1, min(answer.groups + _SPARE_KEY_PACKAGES, MAX_KEY_PACKAGES_PER_UPLOAD))
        try:
            await KeyPackagePool(session, target=wanted, low_water=wanted).replenish()
        except DeviceReplacedError:
            # The creator removed the client again: the link was stopped there.
            raise LinkCancelledError("the client was removed during the link") from None
        await self._post(p.Ready())
        link_id = self.link_id
        await self._store.transaction(lambda s: s.pending_links.set_state(link_id, LinkState.READY))

        try:
            received = await self._receive(answer.history)
            await self._post(p.Done())
        except LinkCancelledError:
            # Refused before the Adds were queued: the creator removes the client,
            # so this identity is as good as never ready (the caller discards it).
            await self._store.transaction(
                lambda s: s.pending_links.set_state(link_id, LinkState.ANSWERED)
            )
            raise
        except (LinkError, NetworkError) as exc:
            # Past *ready* this device is linked: the creator queues its Adds and the
            # Welcomes arrive in its queue whatever became of the rest of the link.
            _log.warning("the link ended early after ready: %s", type(exc).__name__)
            received = _Received((), None)
        await self._join(received)
        await self._store.transaction(lambda s: s.pending_links.delete(link_id))
        self._report(LinkProgress(LinkStage.DONE, 1.0))
        return identity

    async def _receive(self, history: bool) -> _Received:
        """The groups being joined, and the history (None if none or if it does not check)."""
        added = await self._next()
        if not isinstance(added, p.Added):
            raise LinkFailedError(f"a {type(added).__name__} instead of the groups")
        if not history or added.history_bytes == 0:
            return _Received(added.groups, None)
        self._report(LinkProgress(LinkStage.TRANSFERRING_HISTORY, 0.0))
        chunks: list[bytes] = []
        size = 0
        digest = hashlib.sha256()
        while True:
            payload = await self._next()
            if isinstance(payload, bytes):
                size += len(payload)
                if size > added.history_bytes:
                    raise LinkFailedError("more history than announced")
                chunks.append(payload)
                digest.update(payload)
                self._report(
                    LinkProgress(LinkStage.TRANSFERRING_HISTORY, size / added.history_bytes)
                )
                continue
            if not isinstance(payload, p.HistoryEnd):
                raise LinkFailedError(f"a {type(payload).__name__} within the history")
            if (
                payload.chunks != len(chunks)
                or payload.size != size
                or size != added.history_bytes
                or not hmac.compare_digest(payload.sha256, digest.digest())
            ):
                # The digest does not match: nothing of it is imported (RFC-free
                # rule of docs/devices.md §2 step 7); the device is linked anyway.
                _log.warning("the history did not check; it is not imported")
                return _Received(added.groups, None)
            return _Received(added.groups, b"".join(chunks))

    async def _join(self, received: _Received) -> None:
        """Until every group is joined (its Welcome processed), then import the history."""
        wanted = set(received.groups)
        total = max(1, len(wanted))
        self._report(LinkProgress(LinkStage.JOINING_CONVERSATIONS, 0.0))
        deadline = time.monotonic() + _WELCOME_WAIT_S
        delay = 0.02
        while True:
            await self._sync()
            joined = await self._store.run(_joined, wanted)
            self._report(LinkProgress(LinkStage.JOINING_CONVERSATIONS, len(joined) / total))
            if joined == wanted:
                break
            if time.monotonic() >= deadline:
                _log.warning("%d group(s) not joined yet; they join later", len(wanted - joined))
                break
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)
        if received.history is not None:
            history = received.history
            self._report(LinkProgress(LinkStage.TRANSFERRING_HISTORY, 1.0))
            try:
                await self._store.run(import_history, history, wanted)
            except ClientError as exc:
                _log.warning("the history could not be imported: %s", exc)


def _joined(store: Store, groups: set[bytes]) -> set[bytes]:
    rows = store.db.query("SELECT group_id FROM mls_groups")
    return {bytes(row[0]) for row in rows} & groups


def _check_account_key(answer: p.Answer, signature_key: bytes) -> None:
    """The account key in the answer is a pair, and it certified this device's key."""
    if answer.account_private_key is None:
        return
    assert answer.account_public_key is not None and answer.device_certificate is not None
    assert answer.certified_at is not None
    private = Ed25519PrivateKey.from_private_bytes(answer.account_private_key)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    derived = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if not hmac.compare_digest(derived, answer.account_public_key):
        raise LinkFailedError("the account key in the answer is not a key pair")
    tbs = device_certificate_tbs(answer.account_public_key, signature_key, answer.certified_at)
    try:
        Ed25519PublicKey.from_public_bytes(answer.account_public_key).verify(
            answer.device_certificate, tbs
        )
    except InvalidSignature:
        raise LinkFailedError("the device certificate in the answer does not verify") from None


def _write_identity(
    store: Store, identity: Identity, answer: p.Answer, record: PendingLink
) -> None:
    """This device's identity, its account key and certificate, and the link record."""
    if store.identity.get() is not None:
        raise LinkFailedError("this profile has an account already")
    store.identity.save(identity)
    if answer.devices_group is not None:
        store.devices.set_group_id(answer.devices_group)
    store.pending_links.put(record)
