"""The existing device's side of a link (docs/devices.md §2, "The exchange").

:func:`start_link` opens the mailbox and posts the invitation;
:class:`DeviceLink` then waits for the new device's offer, and on the
user's approval certifies the new key with the account key, registers the
client (``POST /v1/clients``), answers, waits for *ready*, and queues --
durably, in one transaction with the link's record -- an Add of the new
device in every group of the account (RFC 9420 §12.1.1; the Welcomes reach
its queue, §12.4.3.1). The history snapshot (:mod:`.history`) follows if
asked for.

Messages to the creator are posted unsigned, so anyone who knows the
mailbox's name could post there: a message that does not open under the
link key is ignored (at most 16 can be posted), never acted on. The new
device's messages are opened strictly in order (:mod:`.channel`).

Crash safety: the registered client is recorded (``pending_links``,
state ``registered``) before the answer is posted; :func:`recover_links`,
run at start, removes such a client from the server. Once the Adds are
queued the record says ``adding`` and is only forgotten.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from messenger.api import models as m
from messenger.api.credential import encode_credential
from messenger.api.signing import device_certificate_tbs, possession_message

from ..contact_tokens import own_token
from ..errors import (
    ClientError,
    LinkCancelledError,
    LinkExpiredError,
    LinkFailedError,
    NoKeyPackageError,
    ServerRejectedError,
    UntrustedKeyError,
)
from ..identity import CIPHER_SUITE
from ..queue_keys import contact_kill_of, queue_kill_of
from ..store.outbox import OutboxKind
from ..store.pending_links import LinkRole, LinkState, PendingLink
from ..store.store import Store
from . import payloads as p
from .channel import OVERHEAD, LinkChannel
from .code import LinkCode, new_link_code
from .history import export_history
from .models import LinkOffer, LinkProgress, LinkStage

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["DeviceLink", "recover_links", "start_link"]

_log = logging.getLogger(__name__)

#: Long-poll wait of one fetch, in seconds.
_POLL_S: Final = 25
#: Plaintext bytes of one history chunk (the sealed message stays within the limit).
CHUNK_BYTES: Final = m.MAX_LINK_MESSAGE_BYTES - OVERHEAD - 1
#: How long to wait for the new device once it has everything it needs.
_DONE_WAIT_S: Final = 120.0
#: How long a refusal waits for the new device to read it.
_REFUSAL_WAIT_S: Final = 5.0


def _expired() -> LinkExpiredError:
    return LinkExpiredError("the link mailbox is gone (expired, closed or unknown)")


def _account_key(store: Store) -> tuple[bytes, bytes] | None:
    """The account key pair, if the account has one (docs/devices.md §1)."""
    identity = store.identity.get()
    if identity is None or identity.account_private_key is None:
        return None
    assert identity.account_public_key is not None
    return identity.account_private_key, identity.account_public_key


def _device_name(store: Store, client_id: str) -> str | None:
    device = store.devices.get(client_id)
    return None if device is None else device.name


def _groups(store: Store) -> list[bytes]:
    """The groups the new device joins: every active conversation's, and the devices group."""
    rows = store.db.query(
        "SELECT c.group_id FROM conversations c JOIN mls_groups g ON g.group_id = c.group_id "
        "WHERE c.left_at IS NULL "
        "UNION SELECT d.group_id FROM devices_group d JOIN mls_groups g ON g.group_id = d.group_id"
    )
    return sorted(bytes(row[0]) for row in rows)


async def start_link(session: Session) -> DeviceLink:
    """Open a link mailbox and post the invitation; the link to show and follow."""
    identity = session.account.identity
    code = new_link_code(identity.server_url)
    channel = LinkChannel(code.secret, creator=True, random=session.random)
    try:
        created = await session.transport.create_link(channel.link_id)
    except ServerRejectedError as exc:
        if exc.code == "limit_exceeded":
            raise LinkFailedError(
                "another link is open",
                user_message="Another device is being linked already; finish or cancel that first.",
            ) from None
        raise
    name = await session.store.run(lambda s: _device_name(s, identity.client_id))
    link = DeviceLink(session, code, channel, created.expires_at)
    await link._post(p.encode(p.Invitation(identity.account_id, identity.display_name, name)))
    return link


#: The links each session runs: not what a crash cut short, whatever
#: :func:`recover_links` finds pending while they run.
_running: weakref.WeakKeyDictionary[Session, set[bytes]] = weakref.WeakKeyDictionary()


class DeviceLink:
    """The existing device's side of one link (see the module docstring)."""

    def __init__(
        self, session: Session, code: LinkCode, channel: LinkChannel, expires_at: int
    ) -> None:
        _running.setdefault(session, set()).add(channel.link_id)
        self._s = session
        self.code = code
        self.expires_at = expires_at
        self._channel = channel
        self._after = 0
        self._offer: p.Offer | None = None
        self._client_id: str | None = None
        self._finished = False
        self._cancelled = False
        self._uncertain = False
        self._task: asyncio.Task[object] | None = None

    def __repr__(self) -> str:
        return f"DeviceLink(expires_at={self.expires_at})"

    @property
    def link_id(self) -> bytes:
        return self._channel.link_id

    # -- the mailbox ------------------------------------------------------------------

    async def _post(self, plaintext: bytes) -> None:
        sealed = self._channel.seal(plaintext)
        # Until the server confirms, the index may or may not be taken there: a
        # later message could not be opened after a lost one (strict order).
        self._uncertain = True
        try:
            await self._s.transport.post_link(self.link_id, sealed, signed=True)
        except ServerRejectedError as exc:
            if exc.code == "not_found":
                raise _expired() from None
            raise
        self._uncertain = False

    async def _next(self, deadline: float | None = None) -> p.Payload:
        """The next message from the new device that opens; foreign ones are ignored."""
        while True:
            if self.expires_at <= self._s.now_ms():
                raise _expired()
            # Not past the expiry: an expired mailbox answers not_found at once.
            wait = max(1, min(_POLL_S, (self.expires_at - self._s.now_ms()) // 1000 + 1))
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LinkFailedError("the new device did not answer in time")
                wait = max(1, min(wait, int(left)))
            try:
                batch = await self._s.transport.fetch_link(
                    self.link_id, self._after, signed=True, wait=wait
                )
            except ServerRejectedError as exc:
                if exc.code == "not_found":
                    raise _expired() from None
                raise
            self.expires_at = batch.expires_at
            for message in batch.messages:
                if message.seq <= self._after:
                    continue  # the server repeated itself: never open a message twice
                self._after = message.seq
                try:
                    plaintext = self._channel.open(message.sealed)
                except LinkFailedError:
                    _log.warning("ignored a link message that does not open")
                    continue
                payload = p.decode(plaintext)
                if isinstance(payload, bytes):
                    raise LinkFailedError("a history chunk from the new device")
                return payload

    # -- the steps ------------------------------------------------------------------------

    async def wait_offer(self) -> LinkOffer:
        """The new device's offer (LinkExpiredError when the code expires unused)."""
        self._check_open()
        self._task = asyncio.current_task()
        try:
            while self._offer is None:
                payload = await self._next()
                if not isinstance(payload, p.Offer):
                    raise LinkFailedError(f"a {type(payload).__name__} instead of an offer")
                context = self._s.account.account_id.encode("ascii")
                try:
                    Ed25519PublicKey.from_public_bytes(payload.signature_key).verify(
                        payload.proof, possession_message(context, payload.signature_key)
                    )
                except (InvalidSignature, ValueError):
                    raise LinkFailedError(
                        "the offer's proof of possession does not verify"
                    ) from None
                self._offer = payload
            return LinkOffer(self._offer.device_name)
        except asyncio.CancelledError:
            raise self._cancellation() from None
        except ClientError:
            await self._abandon()  # the code may be known to someone else: close it
            raise
        finally:
            self._task = None

    async def approve(
        self,
        *,
        history: bool = True,
        progress: Callable[[LinkProgress], None] | None = None,
    ) -> None:
        """Link the device that made the offer (the user's click); returns once it has all.

        Registers the client, answers, queues the Adds (durably), sends the
        history if asked for, and waits for the new device to confirm. The
        Adds are committed by the outbox: the client should be started
        (:meth:`~messenger.client.MessengerClient.start`), or flushed.
        """
        self._check_open()
        if self._offer is None:
            raise LinkFailedError("approve before an offer")
        self._task = asyncio.current_task()
        report = progress or (lambda _: None)
        try:
            await self._approve(self._offer, history, report)
        except asyncio.CancelledError:
            raise self._cancellation() from None
        except ClientError:
            await self._abandon()
            raise
        finally:
            self._task = None

    async def _approve(
        self, offer: p.Offer, history: bool, report: Callable[[LinkProgress], None]
    ) -> None:
        session = self._s
        store = session.store
        account = session.account
        identity = account.identity
        report(LinkProgress(LinkStage.REGISTERING))
        keys = await store.run(_account_key)
        certified_at = session.now_ms()
        certificate = None
        if keys is not None:
            private, public = keys
            tbs = device_certificate_tbs(public, offer.signature_key, certified_at)
            certificate = Ed25519PrivateKey.from_private_bytes(private).sign(tbs)
        response = await session.transport.add_client(
            m.AddClientRequest(
                signature_key=offer.signature_key,
                proof=offer.proof,
                certified_at=certified_at if certificate is not None else None,
                device_certificate=certificate,
            )
        )
        from messenger.mls.credentials import Credential

        credential = encode_credential(response.credential)
        if (
            response.credential.signature_key != offer.signature_key
            or response.credential.account_id != account.account_id
            or response.credential.client_id != response.client_id
            or not account.verifier(Credential.basic(credential), offer.signature_key)
        ):
            raise UntrustedKeyError("the server's credential for the new device does not verify")
        self._client_id = response.client_id
        now = session.now_ms()
        record = PendingLink(
            self.link_id, LinkRole.CREATOR, LinkState.REGISTERED, response.client_id, now
        )
        await store.transaction(lambda s: s.pending_links.put(record))

        def read(s: Store) -> tuple[list[bytes], bytes | None]:
            return _groups(s), s.devices.group_id()

        groups, devices_group = await store.run(read)
        snapshot = await store.run(export_history) if history else b""
        if len(snapshot) > m.MAX_LINK_BYTES - (1 << 20):
            _log.warning("the history is too large for a link; it is not sent")
            snapshot = b""
        answer = p.Answer(
            client_id=response.client_id,
            queue_id=response.queue_id,
            credential=credential,
            account_private_key=None if keys is None else keys[0],
            account_public_key=None if keys is None else keys[1],
            certified_at=certified_at if keys is not None else None,
            device_certificate=certificate,
            server_key=identity.server_key or b"",
            devices_group=devices_group,
            handle=identity.handle,
            display_name=identity.display_name,
            history=bool(snapshot),
            groups=len(groups),
        )
        await self._post(p.encode(answer))
        ready = await self._next(time.monotonic() + m.LINK_IDLE_SECONDS)
        if not isinstance(ready, p.Ready):
            raise LinkFailedError(f"a {type(ready).__name__} instead of ready")

        report(LinkProgress(LinkStage.JOINING_CONVERSATIONS, 0.0))
        key_packages = []
        joinable = []
        for index, group_id in enumerate(groups):
            # In the group's cipher suite (RFC 9420 §12.1.1; docs/pq-suites.md). A new
            # device whose app lacks a group's suite is not added to that group.
            key_package = await self._claim(response.client_id, await self._suite(group_id))
            if key_package is not None:
                key_packages.append(key_package)
                joinable.append(group_id)
            report(LinkProgress(LinkStage.JOINING_CONVERSATIONS, (index + 1) / len(groups)))
        if len(joinable) < len(groups):
            _log.warning(
                "the new device cannot join %d conversations in their cipher suite",
                len(groups) - len(joinable),
            )
        groups = joinable
        from ..sync.intents import one_add_each

        now = session.now_ms()
        intents = one_add_each(key_packages, session.transport.claim_tokens)

        def queue(s: Store) -> None:
            for group_id, intent in zip(groups, intents, strict=True):
                s.outbox.enqueue(OutboxKind.COMMIT, b"", now=now, group_id=group_id, intent=intent)
            s.pending_links.set_state(self.link_id, LinkState.ADDING)

        await store.transaction(queue)
        session.outbox_queued()
        await self._post(p.encode(p.Added(tuple(groups), len(snapshot))))

        if snapshot:
            report(LinkProgress(LinkStage.TRANSFERRING_HISTORY, 0.0))
            chunks = 0
            for start in range(0, len(snapshot), CHUNK_BYTES):
                await self._post(p.encode_chunk(snapshot[start : start + CHUNK_BYTES]))
                chunks += 1
                done = min(len(snapshot), start + CHUNK_BYTES) / len(snapshot)
                report(LinkProgress(LinkStage.TRANSFERRING_HISTORY, done))
            digest = hashlib.sha256(snapshot).digest()
            await self._post(p.encode(p.HistoryEnd(chunks, len(snapshot), digest)))
        finished = await self._next(time.monotonic() + _DONE_WAIT_S)
        if not isinstance(finished, p.Done):
            raise LinkFailedError(f"a {type(finished).__name__} instead of done")
        self._finished = True
        await store.run(lambda s: s.pending_links.delete(self.link_id))
        await self._close()
        report(LinkProgress(LinkStage.DONE, 1.0))

    async def _suite(self, group_id: bytes) -> int:
        """The cipher suite of one of this device's groups (suite 1 if it has no state)."""
        session = self._s
        async with session.group_lock(group_id):
            group = await session.groups.get(group_id)
        return CIPHER_SUITE if group is None else group.suite.suite_id

    async def _claim(self, client_id: str, suite: int) -> bytes | None:
        """One KeyPackage of the new device in ``suite``, claimed and checked (RFC 9420
        §10.1); None if it has none in a suite other than 1 (an app without that suite)."""
        session = self._s
        from messenger.mls.errors import InvalidMessageError

        from ..groups import key_package_member

        account = session.account
        try:
            claimed = await session.transport.claim_key_packages(
                account.account_id, (suite,), contact_token=own_token(account)
            )
        except NoKeyPackageError:
            claimed = ()
        for entry in claimed:
            if entry.client_id != client_id:
                continue  # another device of this account: not the one being linked
            try:
                key_package, member = key_package_member(entry.key_package)
            except InvalidMessageError as exc:
                raise UntrustedKeyError(f"unusable KeyPackage: {exc}") from None
            leaf = key_package.leaf_node
            if (
                key_package.cipher_suite != suite
                or member.account_id != account.account_id
                or member.client_id != client_id
                or member.queue_id != entry.queue_id
                or not account.verifier(leaf.credential, leaf.signature_key)
            ):
                raise UntrustedKeyError("a KeyPackage of the new device does not verify")
            return entry.key_package
        if suite != CIPHER_SUITE:
            return None
        raise LinkFailedError("the new device has no KeyPackage on the server")

    async def decline(self) -> None:
        """Refuse the offer: the new device is told, the mailbox closed."""
        await self._refuse("declined")

    async def cancel(self) -> None:
        """Stop the link at any point; a client registered for it is removed again."""
        task, self._cancelled = self._task, True
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
        await self._refuse("cancelled")

    async def _refuse(self, reason: str) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            if self._uncertain:
                # A post was cut off: a refusal after it might not open. The
                # closed mailbox tells the new device instead.
                raise LinkFailedError("a message to the new device may be lost")
            await self._post(p.encode(p.Refusal(reason)))
            if self._offer is not None:
                # A new device is there: let it read the refusal before the mailbox
                # closes (it confirms with *done*), or give up after a moment.
                deadline = time.monotonic() + _REFUSAL_WAIT_S
                while not isinstance(await self._next(deadline), p.Done):
                    pass
        except ClientError as exc:
            _log.info("could not tell the new device the link is %s: %s", reason, exc)
        await self._abandon()

    async def _abandon(self) -> None:
        """Undo what is unfinished: the registered client (unless Adds are queued), the mailbox."""
        self._finished = True
        link_id = self.link_id
        record = await self._s.store.run(lambda s: s.pending_links.get(link_id))
        if record is not None and record.state is LinkState.REGISTERED:
            await _undo(self._s, record)
        elif record is not None:
            await self._s.store.run(lambda s: s.pending_links.delete(link_id))
        await self._close()

    async def _close(self) -> None:
        try:
            await self._s.transport.close_link(self.link_id, signed=True)
        except ClientError as exc:
            _log.info("the link mailbox could not be closed: %s", exc)

    def _check_open(self) -> None:
        if self._cancelled:
            raise LinkCancelledError("the link was cancelled")
        if self._finished:
            raise LinkFailedError("the link is over")

    def _cancellation(self) -> BaseException:
        """What a cancelled step raises: LinkCancelledError after :meth:`cancel`."""
        task = asyncio.current_task()
        if self._cancelled and task is not None:
            task.uncancel()
            return LinkCancelledError("the link was cancelled")
        return asyncio.CancelledError()


async def _undo(session: Session, record: PendingLink) -> None:
    """Remove a client registered for a link that never got to its Adds."""
    if record.client_id is not None:
        try:
            kill = queue_kill_of(session, record.client_id)
            contact_kill = contact_kill_of(session, record.client_id)
            await session.transport.remove_client(record.client_id, kill, contact_kill)
        except ServerRejectedError as exc:
            if exc.code != "not_found":
                raise
    await session.store.run(lambda s: s.pending_links.delete(record.link_id))


def _forget(store: Store, link_id: bytes) -> None:
    store.pending_links.delete(link_id)


async def recover_links(session: Session) -> int:
    """At start: undo creator links a crash cut short; how many were undone.

    A link that registered a client but never queued its Adds has that
    client removed; one whose Adds are queued is forgotten (the outbox
    delivers them).
    """
    links = await session.store.run(lambda s: s.pending_links.all(LinkRole.CREATOR))
    running = _running.get(session, set())
    undone = 0
    for record in links:
        if record.link_id in running:  # started in this session: not cut short
            continue
        # The new device waits on the mailbox: closing it tells it the link is over
        # (past *ready* it is linked all the same; before, it starts again).
        try:
            await session.transport.close_link(record.link_id, signed=True)
        except ServerRejectedError as exc:
            if exc.code != "not_found":
                raise
        if record.state is LinkState.REGISTERED:
            await _undo(session, record)
            undone += 1
        else:
            await session.store.run(_forget, record.link_id)
    return undone
