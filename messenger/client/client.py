"""The client facade: everything the UI (and the command line) may ask for.

:class:`MessengerClient` owns one profile: its encrypted store, its account
on a server, and the background work that keeps it in sync (the push
listener, the outbox sender, KeyPackage replenishment). The UI calls its
coroutines and refreshes from the events of :meth:`MessengerClient.events`
(architecture guide, conventions 6 and 7); it never sees MLS, SQL or HTTP.

Every change the user makes is written locally first (the message shows at
once, ``pending``) together with an outbox item, in one transaction, and
is delivered by the sender, in order, whenever the server can be reached
(:mod:`.sync.outbox`). Membership changes and renames are commits built
when their turn comes; they take effect when the server has accepted them
(a :class:`~.events.ConversationUpdated` event).

Errors are :class:`~.errors.ClientError` subclasses, each with a
``user_message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import io
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from . import machinery
from .acks import DEFAULT_ACK_POLICY, AckPolicy
from .addresses import check_handle, invite_link, parse_address, same_server, server_host
from .attachments.files import (
    attachment_file,
    clear_open_dir,
    remove_attachment_files,
    save_decrypted,
)
from .disappearing import ExpiryTimer, sweep_now, valid_timer
from .errors import (
    AccountExistsError,
    AttachmentError,
    AttachmentNotDownloadedError,
    AttachmentTooLargeError,
    AttachmentUnavailableError,
    ClientClosedError,
    ClientError,
    ContactNotFoundError,
    ConversationLeftError,
    ConversationNotFoundError,
    DeviceReplacedError,
    ForeignServerError,
    InvalidTimerError,
    MessageNotFoundError,
    MessageTooLongError,
    NetworkError,
    NoAccountError,
    NoKeyPackageError,
    NotAllowedError,
    ProtocolError,
    SafetyNumberUnavailableError,
    ServerRejectedError,
    UnknownAccountError,
    UntrustedKeyError,
    WrongPassphraseError,
)
from .events import (
    AccountUpdated,
    ContactUpdated,
    ConversationUpdated,
    DevicesChanged,
    Event,
    EventBus,
    MessageReceived,
    MessagesExpired,
    MessageUpdated,
    PreferencesChanged,
    Subscription,
)
from .group_commit import GroupCommit, Memo
from .heap import settle
from .models import (
    AUTO_DOWNLOAD_KEY,
    READ_RECEIPTS_KEY,
    TYPING_INDICATORS_KEY,
    AccountInfo,
    ConversationView,
    MemberView,
    MessageView,
    Preferences,
    SafetyNumberView,
    conversation_view,
    message_views,
    preferences,
    with_views,
)
from .net.backoff import Backoff
from .net.timeouts import DEFAULT_TIMEOUT
from .profiles import Profile, Profiles
from .safety_number import safety_number
from .store.async_store import AsyncStore
from .store.attachments import Attachment, TransferState
from .store.contacts import Contact
from .store.conversations import Conversation, ConversationKind
from .store.identity import Identity
from .store.kdf import DEFAULT_SCRYPT, ScryptParams
from .store.key_wrap import read_key_wrap, unwrap_key
from .store.keychain import Keychain
from .store.messages import Message, MessageKind, Note, NoteKind
from .store.outbox import OutboxKind
from .store.pending_inbound import DEFAULT_PENDING_LIMITS, PendingLimits
from .store.search import SearchHit
from .store.settings import HANDLE_CONTACT_BOX, INSECURE_HTTP_ALLOWED
from .store.store import Store
from .wake import wait_event

if TYPE_CHECKING:
    # The sync machinery (MLS, HTTP, the pipelines) is imported where it is
    # used, once the session is built (:mod:`.machinery`): reading the store
    # -- the desktop app's first window -- does not load it.
    import httpx

    from messenger.mls.ciphersuite import RandomSource
    from messenger.mls.group import Group

    from .attachments.transfers import TransferQueue
    from .backup import BackupInfo
    from .content import Body, Reply, Text
    from .devices.records import Record as SyncRecord
    from .devices.views import DeviceView
    from .groups import ConversationInfo
    from .identity import Account
    from .linking.code import LinkCode
    from .linking.existing import DeviceLink
    from .linking.models import LinkProgress
    from .rejoin_boxes import RejoinBoxUploader
    from .session import Session
    from .sync.inbound import InboundPipeline
    from .sync.intents import Intent
    from .sync.key_packages import KeyPackagePool
    from .sync.listener import PushListener
    from .sync.outbox import OutboxSender, SendHook

__all__ = ["ClientOptions", "MessengerClient"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often KeyPackages are checked even without a Welcome.
_REPLENISH_INTERVAL: Final = 1800.0
_MAX_NAME_LENGTH: Final = 100
#: The most each step of :meth:`MessengerClient.close` waits.
_CLOSE_STEP_S: Final = 5.0
#: The settings key of the server's largest file, as it last said.
_BLOB_LIMIT_KEY: Final = "server.max_blob_bytes"
#: How long signing this device out waits to tell the other devices.
_SIGN_OUT_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client talks to the world; the defaults suit the app.

    ``clock`` and ``random`` are injected like in the MLS core;
    ``http_transport`` replaces httpx's network transport (tests);
    ``timeout`` bounds each request; ``backoff`` paces reconnects and resends;
    ``pending_limits`` bounds the messages kept until they can be processed;
    ``before_send`` and ``after_send`` are test hooks of the outbox, awaited
    just before a request goes out and once the server has accepted it.
    """

    clock: Callable[[], float] = time.time
    random: RandomSource = os.urandom
    http_transport: httpx.AsyncBaseTransport | None = None
    timeout: float = DEFAULT_TIMEOUT
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, maximum=30.0))
    pending_limits: PendingLimits = DEFAULT_PENDING_LIMITS
    #: When the queue is acked: in bursts at random times (docs/metadata.md §4).
    ack_policy: AckPolicy = DEFAULT_ACK_POLICY
    before_send: SendHook | None = None
    after_send: SendHook | None = None
    #: Allow plain ``http://`` to a server that is not this computer (the user's
    #: explicit choice; by default only loopback may be reached without TLS).
    allow_insecure_http: bool = False
    #: Accept group members whose credential carries no valid device
    #: certificate (docs/devices.md §1): off, they are refused as unverified
    #: devices (:data:`~messenger.client.identity.ACCEPT_UNCERTIFIED_DEVICES`).
    accept_uncertified_devices: bool = False
    #: The MLS cipher suites this client keeps KeyPackages in and makes groups
    #: in, most wanted first (None: :data:`~messenger.client.identity.GROUP_SUITES`,
    #: the hybrid post-quantum suite, then suite 1; docs/pq-suites.md). ``(1,)``
    #: behaves like a client from before post-quantum suites.
    cipher_suites: tuple[int, ...] | None = None


class MessengerClient:
    """One profile's messenger. Make one with :meth:`create` or :meth:`open`."""

    def __init__(self, store: AsyncStore, options: ClientOptions | None = None) -> None:
        options = options or ClientOptions()
        self._store = store
        self._clock = options.clock
        self._random = options.random
        self._http_transport = options.http_transport
        self._allow_insecure_http = options.allow_insecure_http
        self._timeout = options.timeout
        self._backoff = options.backoff
        self._pending_limits = options.pending_limits
        self._ack_policy = options.ack_policy
        self._send_hooks = (options.before_send, options.after_send)
        self._events = EventBus()
        self._identity: Identity | None = None
        self._session: Session | None = None
        self._pipeline: InboundPipeline | None = None
        self._sender: OutboxSender | None = None
        self._listener: PushListener | None = None
        self._pool: KeyPackagePool | None = None
        self._rejoin_boxes: RejoinBoxUploader | None = None
        self._replenish = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._group_commit = GroupCommit(store)
        self._closed = False
        self._accept_uncertified = options.accept_uncertified_devices
        self._suites = options.cipher_suites
        self._pinned: dict[str, bytes] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._transfers: TransferQueue | None = None
        self._blob_limit: int | None = None
        self._expiry = ExpiryTimer(store, self._events, self._clock)

    # -- opening and closing ------------------------------------------------------------

    @classmethod
    async def create(
        cls,
        profile: str,
        passphrase: str,
        *,
        data_dir: Path | None = None,
        keychain: Keychain | None = None,
        kdf: ScryptParams = DEFAULT_SCRYPT,
        options: ClientOptions | None = None,
    ) -> MessengerClient:
        """A new profile with an empty store protected by ``passphrase`` (no account yet)."""
        made = Profiles(data_dir).create(profile)
        try:
            store = await AsyncStore.create(made, passphrase, keychain=keychain, kdf=kdf)
        except BaseException:
            Profiles(data_dir).delete(made.name)
            raise
        return await cls._ready(store, options or ClientOptions())

    @classmethod
    async def open(
        cls,
        profile: str | Profile,
        passphrase: str | None = None,
        *,
        data_dir: Path | None = None,
        keychain: Keychain | None = None,
        options: ClientOptions | None = None,
    ) -> MessengerClient:
        """Unlock an existing profile (from the keyring, or with ``passphrase``)."""
        found = profile if isinstance(profile, Profile) else Profiles(data_dir).get(profile)
        store = await AsyncStore.open(found, passphrase=passphrase, keychain=keychain)
        return await cls._ready(store, options or ClientOptions())

    @classmethod
    async def _ready(cls, store: AsyncStore, options: ClientOptions) -> MessengerClient:
        try:
            client = cls(store, options)

            def read(s: Store) -> tuple[Identity | None, bool, dict[str, bytes]]:
                return (
                    s.identity.get(),
                    s.settings.get(INSECURE_HTTP_ALLOWED) is True,
                    s.contacts.pinned_keys(),
                )

            from .store.pending_links import recover_new_device

            await store.run(recover_new_device)  # a link a crash cut short (devices.md §2)
            clear_open_dir(store.profile.path)  # files a crash left decrypted for the viewer
            # Disappearing messages that expired while closed go before anything is read.
            await store.run(sweep_now, client._now_ms())
            identity, insecure_http_chosen, client._pinned = await store.run(read)
            client._allow_insecure_http = client._allow_insecure_http or insecure_http_chosen
            # The session (MLS, HTTP) is built on first use (_require), not
            # here: reading the store does not need it (issue 10's cold start).
            client._identity = identity
        except BaseException:
            await store.close()
            raise
        return client

    def _attach(self, identity: Identity) -> None:
        """Set up the session of an account (importing the sync machinery)."""
        machinery.load()
        from .groups import GroupCache
        from .identity import Account, PinnedKeys
        from .net.http import Transport
        from .net.signing import Signer
        from .session import Session
        from .sync.inbound import InboundPipeline
        from .sync.key_packages import KeyPackagePool
        from .sync.listener import PushListener
        from .sync.outbox import OutboxSender

        self._identity = identity
        signer = Signer(
            identity.client_id,
            identity.signature_private_key,
            clock=self._clock,
            device_token=identity.device_token,
            queue_key=None
            if identity.queue_key is None
            else (identity.queue_id, identity.queue_key),
            queue_key_given=identity.queue_key_given,
        )
        pins = PinnedKeys(self._pinned, on_changed=self._on_account_key_changed())
        account = Account.load(
            identity, signer, accept_uncertified=self._accept_uncertified, pins=pins
        )
        transport = Transport(
            identity.server_url,
            signer=signer,
            timeout=self._timeout,
            transport=self._http_transport,
            allow_insecure_http=self._allow_insecure_http,
        )
        session = Session(
            store=self._store,
            transport=transport,
            account=account,
            groups=GroupCache(self._store, account),
            events=self._events,
            clock=self._clock,
            random=self._random,
        )
        pipeline = InboundPipeline(
            session,
            key_package_used=self._replenish.set,
            pending_limits=self._pending_limits,
            ack_policy=self._ack_policy,
        )
        before_send, after_send = self._send_hooks
        sender = OutboxSender(
            session,
            pipeline,
            backoff=self._backoff,
            before_send=before_send,
            after_send=after_send,
            reclaim=self._reclaim,
        )
        self._session = session
        self._pipeline = pipeline
        self._sender = sender
        pool = KeyPackagePool(session, suites=self._suites)
        self._pool = pool
        self._listener = PushListener(
            session,
            pipeline,
            backoff=self._backoff,
            on_online=sender.wake,
            pool=pool,
        )
        from .rejoin_boxes import RejoinBoxUploader

        self._rejoin_boxes = RejoinBoxUploader(session)
        from .attachments.transfers import TransferQueue

        self._transfers = TransferQueue(
            session, self.profile.path, backoff=self._backoff, catch_up=pipeline.catch_up
        )

    def _on_account_key_changed(self) -> Callable[[str, bytes], None]:
        """What the verifier calls (in any thread) when it refused a credential
        with another account key than the pinned one: record it for the UI."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # attached outside the event loop: nothing to record on
            return lambda account_id, offered: None

        async def record(account_id: str, offered: bytes) -> None:
            now = self._now_ms()
            try:
                changed = await self._store.run(
                    lambda s: s.contacts.account_key_changed(account_id, offered, at=now)
                )
            except (ClientError, RuntimeError):  # closed meanwhile: the refusal stands
                return
            if changed:
                self._events.publish(ContactUpdated(account_id))

        def spawn(account_id: str, offered: bytes) -> None:
            if self._closed:
                return
            task = loop.create_task(record(account_id, offered))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        def changed(account_id: str, offered: bytes) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to record
                loop.call_soon_threadsafe(spawn, account_id, offered)

        return changed

    @property
    def profile(self) -> Profile:
        return self._store.profile

    @property
    def has_account(self) -> bool:
        return self._identity is not None

    @property
    def key_in_keyring(self) -> bool:
        """Whether the OS keyring holds the store key (else each start needs the passphrase)."""
        return self._store.key_in_keyring

    async def remember_key(self) -> bool:
        """Put the store's key into the OS keyring (again); whether the keyring took it."""
        return await self._store.run(lambda s: s.remember_key())

    async def check_passphrase(self, passphrase: str) -> bool:
        """Whether ``passphrase`` is this profile's recovery passphrase (the app lock).

        The check unwraps the recovery file's key (scrypt) in a worker
        thread; nothing is changed.
        """
        path = self._store.profile.key_wrap_path

        def check() -> bool:
            try:
                unwrap_key(read_key_wrap(path), passphrase)
            except WrongPassphraseError:
                return False
            return True

        return await asyncio.to_thread(check)

    async def change_passphrase(self, old: str, new: str) -> None:
        """Replace the recovery passphrase (WrongPassphraseError, WeakPassphraseError)."""
        await self._store.run(lambda s: s.change_passphrase(old, new))

    def _require(self) -> Session:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._session is None:
            if self._identity is None:
                raise NoAccountError("this profile has no account")
            self._attach(self._identity)
            assert self._session is not None
        return self._session

    def _reader(self) -> Identity:
        """This account's identity, for reading the store: unlike :meth:`_require`,
        without building the session (the sync machinery is not loaded for it)."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._session is not None:
            return self._session.account.identity
        if self._identity is None:
            raise NoAccountError("this profile has no account")
        return self._identity

    def _now_ms(self) -> int:
        """The clock in Unix milliseconds (as :meth:`Session.now_ms`)."""
        return int(self._clock() * 1000)

    async def start(self) -> None:
        """Start syncing in the background: push listener, outbox, KeyPackages.

        Returns at once: the sync machinery (MLS, HTTP) is imported in a
        worker thread first (:mod:`.machinery`), so that a window showing
        the store's contents keeps running meanwhile.
        """
        self._reader()
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._start_tasks(), name="start")]

    async def _start_tasks(self) -> None:
        # The store alone: deadlines pass offline too (disappearing.py).
        expiry = self._expiry.run
        self._tasks.append(asyncio.create_task(self._supervise("expiry", expiry), name="expiry"))
        await machinery.load_off_loop()
        session = self._require()
        assert self._listener is not None and self._sender is not None
        assert self._rejoin_boxes is not None and self._pipeline is not None
        listener, sender, boxes = self._listener, self._sender, self._rejoin_boxes
        turns = self._pipeline.move_turns
        # Before anything is sent: a restored copy becomes a new device, an
        # account from before account keys gets its key (restore_device.py).
        await self._prepare_device(session)
        await self._recover_links(session)
        await self._start_devices()
        settle()  # what is loaded by now is long-lived: out of full collections (heap.py)
        self._tasks += [
            asyncio.create_task(self._supervise("listener", listener.run), name="listener"),
            asyncio.create_task(self._supervise("outbox", sender.run), name="outbox"),
            asyncio.create_task(self._supervise("maintenance", self._maintain)),
            # The account's rejoin boxes, at start and at random times (rejoin_boxes.py).
            asyncio.create_task(self._supervise("rejoin boxes", boxes.run), name="rejoin boxes"),
            # Moves off the contact queue, each in its turn (sync/move_turns.py).
            asyncio.create_task(self._supervise("move turns", turns.run), name="move turns"),
        ]
        if self._transfers is not None:  # attachments (docs/attachments.md §4)
            transfers = self._transfers.run
            self._tasks.append(
                asyncio.create_task(self._supervise("transfers", transfers), name="transfers")
            )

    async def _prepare_device(self, session: Session) -> None:
        """:func:`~.restore_device.prepare_device`, retried with backoff while offline."""
        from .restore_device import prepare_device

        failures = 0
        while True:
            try:
                await prepare_device(session)
                return
            except DeviceReplacedError:
                return  # the listener reports it, and stops
            except ServerRejectedError as exc:  # the listener retries it, and reports it
                _log.warning("preparing this device was refused: %s", exc.code)
                return
            except NetworkError as exc:
                _log.info("preparing this device failed: %s", exc)
                await asyncio.sleep(self._backoff.delay(failures))
                failures += 1
            except ClientError as exc:  # the listener retries it, and reports it
                _log.warning("preparing this device failed: %s", type(exc).__name__)
                return

    async def _recover_links(self, session: Session) -> None:
        """Undo links a crash cut short (docs/devices.md §2); retried on the next start."""
        from .linking.existing import recover_links

        try:
            await recover_links(session)
        except ClientError as exc:
            _log.info("undoing an unfinished link failed: %s", type(exc).__name__)

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop; restart it after an unexpected failure."""
        failures = 0
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("the %s task failed; restarting", name)
                await asyncio.sleep(self._backoff.delay(failures))
                failures += 1

    async def _maintain(self) -> None:
        """Replenish KeyPackages and prune old hashes, now and then; once, move old
        leaves to a delivery address and give them the contact token
        (:mod:`.sync.leaf_addresses`); make this
        device's leaf fresh in each group where it is a week old
        (:mod:`.sync.leaf_rotation`)."""
        from .sync.leaf_addresses import queue_readdressing, queue_token_updates
        from .sync.leaf_rotation import queue_leaf_rotations

        assert self._pool is not None
        failures = 0
        assert self._pipeline is not None
        while True:
            try:
                await self._pipeline.prune()
                await self._pool.replenish()
                session = self._require()
                await session.leaf_account()  # the session's delivery address, once
                await queue_readdressing(session)
                await queue_token_updates(session)  # once: the leaves carry the contact token
                await queue_leaf_rotations(session)
                await self._announce_device()  # at most hourly (docs/devices.md §3)
                failures = 0
                timeout = _REPLENISH_INTERVAL
            except DeviceReplacedError:
                return  # a restored copy took this device over: nothing to keep up
            except ClientError as exc:
                _log.info("KeyPackage replenishment failed: %s", exc)
                timeout = self._backoff.delay(failures)
                failures += 1
            self._replenish.clear()
            await wait_event(self._replenish, timeout)

    async def close(self) -> None:
        """Stop syncing, end the event streams, close the store."""
        if self._closed:
            return
        self._closed = True
        # Each step is bounded (_CLOSE_STEP_S), so that closing -- the app's
        # quit, a test's teardown -- cannot hang on a task that ignores its
        # cancellation or a connection that does not answer.
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            done, stuck = await asyncio.wait(tasks, timeout=_CLOSE_STEP_S)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: it was logged where it happened
            if stuck:
                _log.error("%d background task(s) did not stop on close", len(stuck))
        self._events.close()
        if self._pipeline is not None:  # what was read is deleted from the server
            await self._bounded_close("the last acks", self._pipeline.close_acks())
        if self._session is not None:
            self._session.close()
            await self._bounded_close("the network transport", self._session.transport.aclose())
        await self._bounded_close("the store", self._store.close())
        clear_open_dir(self.profile.path)  # files decrypted for the viewer (attachments.md §4)

    async def _bounded_close(self, what: str, closing: Awaitable[None]) -> None:
        """Await ``closing`` for at most _CLOSE_STEP_S; after that, go on without it."""
        try:
            await asyncio.wait_for(closing, _CLOSE_STEP_S)
        except TimeoutError:
            _log.error("closing %s took longer than %.0f s; abandoned", what, _CLOSE_STEP_S)

    async def __aenter__(self) -> MessengerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def events(self) -> Subscription:
        """A stream of events from now on (``async for event in client.events()``)."""
        return self._events.subscribe()

    # -- backups --------------------------------------------------------------------------

    async def backup(
        self,
        destination: Path,
        passphrase: str,
        *,
        kdf: ScryptParams = DEFAULT_SCRYPT,
        progress: Callable[[float], None] | None = None,
    ) -> BackupInfo:
        """Write this whole profile to ``destination``, encrypted under ``passphrase``.

        Restore it with :func:`~messenger.client.backup.restore_backup`.
        ``progress`` is called on the event loop with the fraction done, 1.0 last.
        """
        if self._closed:
            raise ClientClosedError("the client is closed")
        from .backup import export_backup

        report = _on_loop(progress)
        return await self._store.run(
            lambda s: export_backup(s, destination, passphrase, kdf=kdf, progress=report)
        )

    # -- sync on demand -----------------------------------------------------------------

    async def wait_online(self, timeout: float | None = None) -> None:
        """Until the push listener is connected and caught up (TimeoutError)."""
        self._require()
        assert self._listener is not None
        await asyncio.wait_for(self._listener.wait_online(), timeout)

    async def sync(self) -> None:
        """Fetch and process everything waiting on the server, now."""
        session = self._require()
        assert self._pipeline is not None
        from .contact_queue import set_up_queues
        from .restore_device import prepare_device

        # A restored copy becomes a new device before it reads the queue.
        await prepare_device(session)
        await set_up_queues(session, self._pool)
        await self._pipeline.catch_up()

    async def flush(self, timeout: float | None = None) -> None:
        """Until every queued send was accepted (TimeoutError after ``timeout``).

        Without :meth:`start`, this sends itself, retrying with backoff. A
        move off the contact queue that waits its turn is queued at once
        (:mod:`.sync.move_turns`): everything goes.
        """
        self._require()
        assert self._sender is not None and self._pipeline is not None
        sender = self._sender
        await self._pipeline.move_turns.take(everything=True)
        if self._tasks:
            await asyncio.wait_for(sender.wait_idle(), timeout)
            return

        async def drain() -> None:
            failures = 0
            while not await sender.flush_once():
                await asyncio.sleep(self._backoff.delay(failures))
                failures += 1
                await self._store.run(_make_due, int(self._clock() * 1000))

        await asyncio.wait_for(drain(), timeout)

    # -- the account ------------------------------------------------------------------------

    async def create_account(
        self,
        server_url: str,
        handle: str | None = None,
        *,
        invite_code: str | None = None,
        progress: Callable[[float], None] | None = None,
        allow_insecure_http: bool = False,
    ) -> AccountInfo:
        """Register an anonymous account on ``server_url`` (solving its proof of work).

        ``invite_code``: the server's invite, needed where sign-up is by invite.
        ``allow_insecure_http``: the user's explicit choice to reach a server
        that is not this computer over plain ``http://`` (a local network);
        it is stored with the account and honoured on every later connection.
        ``progress`` is called on the event loop with an *estimate* of the
        fraction done, never decreasing and below 1.0 until the account is
        ready, then 1.0 (the proof of work has no exact total).
        """
        report = _Monotonic(progress)
        report(0.0)
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._identity is not None:
            raise AccountExistsError("this profile already has an account")
        handle = check_handle(handle) if handle else None
        machinery.load()
        from .identity import (
            CIPHER_SUITE,
            encode_credential,
            issued_credential_verifies,
            register_account,
        )
        from .net.http import Transport

        insecure_http = self._allow_insecure_http or allow_insecure_http
        transport = Transport(
            server_url,
            timeout=self._timeout,
            transport=self._http_transport,
            allow_insecure_http=insecure_http,
        )
        try:
            registration = await register_account(
                transport,
                self._random,
                handle=handle,
                invite_code=invite_code,
                progress=lambda fraction: report(_POW_SHARE * fraction),
                now_ms=self._now_ms,
            )
        finally:
            await transport.aclose()
        response = registration.response
        credential = encode_credential(response.credential)
        server_key = registration.server_info.server_key
        # A server from before account keys answers version 1: the account is
        # then certified on start (certify_this_device), if the server learns how.
        certified = response.credential.account_key is not None
        key = registration.account_key
        if response.credential.account_id != response.account_id or not (
            issued_credential_verifies(
                response.credential,
                server_key,
                registration.signature_public_key,
                key.public if certified else None,
            )
        ):
            raise ProtocolError("the server issued a credential that does not verify")
        identity = Identity(
            server_url=transport.server_url,
            account_id=response.account_id,
            client_id=response.client_id,
            queue_id=response.queue_id,
            cipher_suite=CIPHER_SUITE,
            signature_private_key=registration.signature_private_key,
            signature_public_key=registration.signature_public_key,
            credential=credential,
            created_at=int(self._clock() * 1000),
            handle=handle,
            server_key=server_key,
            account_private_key=key.private if certified else None,
            account_public_key=key.public if certified else None,
            certified_at=registration.certified_at if certified else None,
            device_certificate=registration.device_certificate if certified else None,
        )

        def save(s: Store) -> None:
            s.identity.save(identity)
            if allow_insecure_http:
                s.settings.set(INSECURE_HTTP_ALLOWED, True)
            if registration.contact_box_given and handle is not None:
                s.settings.set(HANDLE_CONTACT_BOX, handle)  # given with the handle

        await self._store.run(save)
        self._allow_insecure_http = insecure_http
        self._attach(identity)
        assert self._pool is not None
        await self._pool.replenish()
        if not registration.contact_box_given:
            await self._give_handle_box()  # a server from before took the handle alone
        await self._ensure_devices_group()
        info = await self.account()
        assert info is not None
        report(1.0)
        return info

    async def _give_handle_box(self) -> None:
        """The handle's contact box, right after sign-up (the registration sets the
        handle without it), so that a lookup gives the token at once; a failure
        is logged, and the next connection gives it (:mod:`.contact_tokens`)."""
        from .contact_tokens import give_handle_box

        try:
            await give_handle_box(self._require())
        except ClientError as exc:
            _log.info("the handle's contact box was not given yet (%s)", type(exc).__name__)

    async def account(self) -> AccountInfo | None:
        """This profile's account (None before :meth:`create_account`)."""
        if self._session is not None:
            identity = self._session.account.identity
        elif self._identity is not None:
            identity = self._identity
        else:
            return None
        address = (
            f"{identity.handle}@{server_host(identity.server_url)}" if identity.handle else None
        )
        return AccountInfo(
            server_url=identity.server_url,
            account_id=identity.account_id,
            client_id=identity.client_id,
            handle=identity.handle,
            address=address,
            invite_link=invite_link(
                identity.server_url, identity.account_id, identity.handle, _own_token(identity)
            ),
            display_name=identity.display_name,
        )

    async def set_display_name(self, name: str | None) -> None:
        """How this user wants to be called; announced to groups joined from now on."""
        session = self._require()
        value = " ".join(name.split())[:64] if name else None
        await self._store.run(lambda s: s.identity.set_display_name(value or None))
        identity = await self._store.run(lambda s: s.identity.get())
        assert identity is not None
        session.account = session.account.with_identity(identity)
        self._events.publish(AccountUpdated(identity.display_name))

    # -- linking devices (docs/devices.md §2) ---------------------------------------------

    async def start_link(self) -> DeviceLink:
        """Open a link for a new device of this account: show its code, then follow it.

        The :class:`~.linking.existing.DeviceLink` waits for the new
        device's offer; the user approves or declines it there.
        """
        session = self._require()
        from .linking.existing import recover_links, start_link

        await recover_links(session)  # a link a crash left behind is undone first
        return await start_link(session)

    async def link_account(
        self,
        code: LinkCode,
        *,
        device_name: str,
        progress: Callable[[LinkProgress], None] | None = None,
    ) -> AccountInfo:
        """Make this profile (without an account) a new device of the account that
        showed ``code``; returns once it is in every group it is added to.

        ``progress`` is called on the event loop. LinkCodeError, LinkExpiredError,
        LinkCancelledError (declined or cancelled on the other device),
        LinkFailedError; after any of them the profile has no account.
        """
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._identity is not None:
            raise AccountExistsError("this profile already has an account")
        from .errors import LinkCodeError

        if code.server_url is None:
            raise LinkCodeError(
                "a link code without its server", user_message="Enter the server to link on."
            )
        name = " ".join(device_name.split())[:64]
        if not name:
            raise LinkCodeError("no device name", user_message="Give this device a name.")
        machinery.load()
        from .linking.joining import Joining
        from .net.http import Transport
        from .store.pending_links import recover_new_device

        transport = Transport(
            code.server_url,
            timeout=self._timeout,
            transport=self._http_transport,
            allow_insecure_http=self._allow_insecure_http,
        )

        def attach(identity: Identity) -> Session:
            self._attach(identity)
            assert self._session is not None
            return self._session

        try:
            joining = Joining(
                code,
                device_name=name,
                store=self._store,
                transport=transport,
                random=self._random,
                clock=self._clock,
                attach=attach,
                sync=self.sync,
                progress=progress,
            )
            await joining.run()
        except BaseException:
            if await self._store.run(recover_new_device):
                await self._detach()
            raise
        finally:
            await transport.aclose()
        try:  # the name it offered, for the account's device list (devices group)
            await self.rename_device(name)
        except ClientError as exc:
            _log.info("the new device's name is not set yet: %s", type(exc).__name__)
        info = await self.account()
        assert info is not None
        return info

    async def _detach(self) -> None:
        """Drop the session of an identity that was discarded (a link undone)."""
        session, self._session = self._session, None
        self._identity = None
        self._pipeline = self._sender = self._listener = self._pool = None
        self._transfers = None
        if session is not None:
            session.close()
            await self._bounded_close("the network transport", session.transport.aclose())

    # -- contacts ---------------------------------------------------------------------------

    async def add_contact(
        self, address: str, *, display_name: str | None = None, check: bool = False
    ) -> Contact:
        """Add a contact by ``handle@server``, a bare handle, or an invite link.

        With ``check``, an invite link's account must exist on the server
        (UnknownAccountError otherwise): a link with a handle is checked by
        looking the handle up, which costs the contact nothing; a link
        without one by claiming a KeyPackage, which uses up one of theirs.
        """
        session = self._require()
        parsed = parse_address(address)
        server_url = session.account.identity.server_url
        if parsed.server is not None and not same_server(parsed.server, server_url):
            raise ForeignServerError(f"{parsed.server} is not {server_url}")
        from .contact_tokens import look_up_handle

        account_id = parsed.account_id
        if account_id is None:
            assert parsed.handle is not None
            # The handle's contact box gives the account's token (docs/metadata.md §1).
            account_id = await look_up_handle(session, parsed.handle)
        elif check and account_id != session.account.account_id:
            await _check_account(session, account_id, parsed.handle, parsed.token)
        if account_id == session.account.account_id:
            raise NotAllowedError("that is this account", user_message="That is your own account.")
        now = session.now_ms()
        handle = parsed.handle
        token = parsed.token

        def add(s: Store) -> Contact:
            if token is not None:  # the link's: what claims of the account present
                s.contact_tokens.set(account_id, token, now=now)
            return s.contacts.upsert(account_id, now=now, handle=handle, display_name=display_name)

        contact = await self._store.transaction(add)
        session.events.publish(ContactUpdated(account_id))
        return contact

    async def contacts(self, *, include_blocked: bool = False) -> list[Contact]:
        """Contacts by name; blocked ones only with ``include_blocked``."""
        return await self._store.run(lambda s: s.contacts.all(include_blocked=include_blocked))

    async def contact(self, account_id: str) -> Contact:
        found = await self._store.run(lambda s: s.contacts.get(account_id))
        if found is None:
            raise ContactNotFoundError(f"no contact {account_id}")
        return found

    async def find_contact(self, name: str) -> Contact:
        """A contact by handle, ``handle@server``, display name or account id."""
        key = name.strip()
        handle = key.partition("@")[0].lower()

        def find(s: Store) -> Contact | None:
            for contact in s.contacts.all():
                if key in (contact.account_id, contact.display_name) or contact.handle == handle:
                    return contact
            return None

        found = await self._store.run(find)
        if found is None:
            raise ContactNotFoundError(f"no contact {name!r}")
        return found

    async def safety_number(self, account_id: str) -> SafetyNumberView:
        """The safety number with a contact: over both account keys (version 2,
        docs/devices.md §1), or, for a side without one, over the device keys
        seen in MLS groups (version 1)."""
        session = self._require()
        me = session.account
        from .safety_number import AccountSide, Side

        def read(s: Store) -> tuple[Contact | None, list[bytes]]:
            return s.contacts.get(account_id), [
                c.signature_key for c in s.contacts.clients(account_id)
            ]

        contact, keys = await self._store.run(read)
        if contact is None:
            raise ContactNotFoundError(f"no contact {account_id}")
        theirs: Side
        if contact.account_key is not None:
            theirs = AccountSide(account_id, contact.account_key)
        elif keys:
            theirs = (account_id, keys)
        else:
            raise SafetyNumberUnavailableError(f"no keys of {account_id} seen yet")
        mine: Side = (
            AccountSide(me.account_id, me.account_key)
            if me.account_key is not None
            else (me.account_id, [me.identity.signature_public_key])
        )
        number = await asyncio.to_thread(safety_number, mine, theirs)
        verified = contact.verified_fingerprint == number.fingerprint
        changed = contact.verified_fingerprint is not None and not verified
        return SafetyNumberView(account_id, number, verified, changed)

    async def mark_verified(self, account_id: str) -> SafetyNumberView:
        """Record that the user compared the current safety number with the contact."""
        view = await self.safety_number(account_id)
        now = self._require().now_ms()
        fingerprint = view.number.fingerprint
        from .devices.records import ContactVerified

        def write(s: Store) -> None:
            s.contacts.set_verified(account_id, fingerprint, at=now)
            self._queue_sync(s, [ContactVerified(account_id, fingerprint)])  # docs/devices.md §3

        await self._store.transaction(write)
        self._wake()
        self._events.publish(ContactUpdated(account_id))
        return SafetyNumberView(account_id, view.number, True, False)

    async def accept_account_key(self, account_id: str) -> SafetyNumberView:
        """The user's explicit acceptance of a contact's new account key (docs/devices.md §1).

        After :attr:`Contact.account_key_changed_at` showed that a credential
        with another account key was refused: pins that key, clears
        "verified" (the safety number is a new one, to compare again) and
        returns the new number. NotAllowedError if no other key was seen.
        """
        session = self._require()
        now = session.now_ms()

        def accept(s: Store) -> bytes | None:
            offered = s.contacts.offered_account_key(account_id)
            if offered is not None:
                s.contacts.replace_account_key(account_id, offered, now=now)
            return offered

        offered = await self._store.run(accept)
        if offered is None:
            raise NotAllowedError(
                "no other account key was seen",
                user_message="This contact's keys have not changed.",
            )
        session.account.verifier.pins.replace(account_id, offered)
        self._events.publish(ContactUpdated(account_id))
        return await self.safety_number(account_id)

    # -- conversations ------------------------------------------------------------------------

    async def _claim(
        self, account_ids: Sequence[str], suites: Sequence[int] | None = None
    ) -> list[bytes]:
        """Claim and check one KeyPackage per client of each account, each account's
        all in one of ``suites`` (the first all its clients provide; default: suite 1;
        docs/pq-suites.md)."""
        session = self._require()
        from messenger.mls.errors import InvalidMessageError

        from .groups import key_package_member
        from .identity import CIPHER_SUITE

        suites = (CIPHER_SUITE,) if suites is None else tuple(suites)
        verifier = session.account.verifier
        found: list[bytes] = []
        seen_keys: dict[str, bytes] = {}
        from .contact_tokens import claim_key_packages

        for account_id in account_ids:
            # With the account's contact token (docs/metadata.md §1).
            claimed = await claim_key_packages(session, account_id, tuple(suites))
            if not claimed:
                raise NoKeyPackageError("no_key_package", f"no KeyPackage for {account_id}")
            answered: set[int] = set()
            for entry in claimed:
                try:
                    key_package, member = key_package_member(entry.key_package)
                except InvalidMessageError as exc:
                    raise UntrustedKeyError(f"unusable KeyPackage: {exc}") from None
                leaf = key_package.leaf_node
                answered.add(int(key_package.cipher_suite))
                if (
                    member.account_id != account_id
                    or member.client_id != entry.client_id
                    or member.queue_id != entry.queue_id
                    or key_package.cipher_suite not in suites
                    or len(answered) > 1
                ):
                    raise UntrustedKeyError(f"a KeyPackage of {account_id} does not verify")
                await self._check_pinned(account_id, member.account_key)
                if not verifier(leaf.credential, leaf.signature_key):
                    raise UntrustedKeyError(f"a KeyPackage of {account_id} does not verify")
                if member.account_key is not None:
                    seen_keys[account_id] = member.account_key
                found.append(entry.key_package)
        mine = session.account.account_id
        now = session.now_ms()

        def pin(s: Store) -> None:
            for account_id, key in seen_keys.items():
                if account_id != mine:
                    s.contacts.pin_account_key(account_id, key, now=now)

        await self._store.run(pin)
        return found

    async def _check_pinned(self, account_id: str, account_key: bytes | None) -> None:
        """UntrustedKeyError if ``account_key`` is not the one pinned for the
        account (docs/devices.md §1: a server's "ghost" account key), recording
        the change for the UI."""
        session = self._require()
        pinned = session.account.verifier.pins.get(account_id)
        if pinned is None or (account_key is not None and hmac.compare_digest(pinned, account_key)):
            return
        if account_id != session.account.account_id and account_key is not None:
            now = session.now_ms()
            offered = account_key
            await self._store.run(
                lambda s: s.contacts.account_key_changed(account_id, offered, at=now)
            )
            self._events.publish(ContactUpdated(account_id))
        raise UntrustedKeyError(
            f"a KeyPackage of {account_id} names another account key than the pinned one",
            user_message=(
                "This contact's keys are not the ones this app knows, so nothing was sent "
                "to them. Their safety number changed: compare it with them before you "
                "go on."
            ),
        )

    async def _new_group(
        self,
        info: ConversationInfo,
        key_packages: list[bytes],
        peer: str | None,
        suite: int | None = None,
    ) -> Conversation:
        session = self._require()
        from messenger.api import models as m
        from messenger.api.sealed import token_digest

        from .sealed_sending import send_token
        from .sync.effects import Actor, system_note
        from .sync.intents import Intent

        me = await session.leaf_account()
        now = session.now_ms()
        actor = Actor(me.account_id, me.client_id, session.new_uid)
        group, state, group_info = await session.mls(
            _create_group, me, session.random, info, session.now_s(), suite
        )
        group_id = group.group_id
        async with session.group_lock(group_id):
            # The GroupInfo of epoch 0, so another device of this account can join by
            # external commit even before the first commit (docs/devices.md §5).
            # Epoch 0's send token and its digest: the server seals the group's state
            # under keys from it (docs/metadata.md §2) and checks sends against it (§3).
            token = await session.mls(send_token, group)
            create = m.CreateGroupRequest(
                group_id, group_info, token_digest(token), send_token=token
            ).dumps()
            claims = session.transport.claim_tokens.take(key_packages)
            add = Intent("add", key_packages=tuple(key_packages), claims=claims).dumps()
            profile = session.profile_content()

            def write(s: Store) -> tuple[Conversation, list[Event]]:
                conversation = s.conversations.create(
                    group_id, info.kind, now=now, title=info.name, peer_account_id=peer
                )
                s.conversations.add_member(conversation.id, me.account_id, joined_at=now)
                if peer is not None and s.contacts.get(peer) is None:
                    s.contacts.upsert(peer, now=now)
                s.groups.save(group_id, group.epoch, state, now=now)
                s.outbox.enqueue(
                    OutboxKind.CREATE_GROUP,
                    create,
                    now=now,
                    group_id=group_id,
                    intent=Intent("create").dumps(),
                )
                if key_packages:
                    s.outbox.enqueue(OutboxKind.COMMIT, b"", now=now, group_id=group_id, intent=add)
                    if profile is not None:
                        s.outbox.enqueue(
                            OutboxKind.MESSAGE, b"", now=now, group_id=group_id, content=profile
                        )
                events: list[Event] = [ConversationUpdated(conversation.id)]
                if info.kind is ConversationKind.DEVICES:  # never listed (docs/devices.md §3)
                    from .devices.group import devices_group_made

                    events = devices_group_made(
                        s,
                        group_id,
                        client_id=me.client_id,
                        signature_key=me.identity.signature_public_key,
                        now=now,
                    )
                if info.kind is ConversationKind.GROUP:
                    events.append(
                        system_note(
                            s,
                            conversation,
                            Note(NoteKind.CREATED, name=info.name),
                            me=actor,
                            by=None,
                            now=now,
                            epoch=0,
                        )
                    )
                return conversation, with_views(s, events, me.account_id, now=now)

            conversation, events = await self._store.transaction(write)
            session.groups.put(group)
        self._events.publish(*events)
        self._wake()
        session.rejoin_boxes_changed()  # a new group: its box is due (rejoin_boxes.py)
        return conversation

    async def _publish(self, *events: Event) -> None:
        """Publish events about this user's own changes, with their views."""
        me, now = self._require().account.account_id, self._require().now_ms()
        self._events.publish(*await self._store.run(lambda s: with_views(s, events, me, now=now)))

    def _wake(self, group_id: bytes | None = None) -> None:
        if self._sender is not None:
            self._sender.wake(group_id)

    async def create_conversation(self, account_id: str) -> Conversation:
        """The one-to-one conversation with ``account_id`` (made if there is none)."""
        session = self._require()
        if account_id == session.account.account_id:
            raise NotAllowedError("a conversation with oneself", user_message="That is you.")
        existing = await self._store.run(lambda s: s.conversations.direct_with(account_id))
        if existing is not None:
            return existing
        await self._refuse_blocked([account_id])
        suite, key_packages = await self._claim_for_new_group([account_id])
        from .groups import ConversationInfo

        return await self._new_group(
            ConversationInfo(ConversationKind.DIRECT), key_packages, account_id, suite
        )

    async def create_group(self, name: str, members: Sequence[str] = ()) -> Conversation:
        """A new group named ``name`` with ``members`` (account ids) added."""
        session = self._require()
        name = _check_name(name)
        others = sorted(set(members) - {session.account.account_id})
        await self._refuse_blocked(others)
        suite, key_packages = await self._claim_for_new_group(others)
        from .groups import ConversationInfo

        return await self._new_group(
            ConversationInfo(ConversationKind.GROUP, name), key_packages, None, suite
        )

    async def _claim_for_new_group(self, account_ids: Sequence[str]) -> tuple[int, list[bytes]]:
        """The suite of a new group and the KeyPackages that add ``account_ids`` and this
        account's other devices (every device is a member of every group of the
        account, docs/devices.md §4): the hybrid post-quantum suite if all of them
        provide it, else suite 1 (:mod:`.suite_choice`, docs/pq-suites.md)."""
        session = self._require()
        me = session.account
        from .devices.sync import other_devices
        from .groups import key_package_member, key_package_suite
        from .suite_choice import claim_in_one_suite

        devices = set(await self._store.run(lambda s: other_devices(s, me.client_id)))

        async def claim(account_id: str, suites: Sequence[int]) -> tuple[int, list[bytes]]:
            if account_id != me.account_id:
                found = await self._claim([account_id], suites)
                return key_package_suite(found[0]), found
            try:
                claimed = await self._claim([me.account_id], suites)
            except NoKeyPackageError:
                return suites[0], []  # none left: the device is added when it is back
            mine = [kp for kp in claimed if key_package_member(kp)[1].client_id in devices]
            return (key_package_suite(mine[0]) if mine else suites[0]), mine

        accounts = ([me.account_id] if devices else []) + list(account_ids)
        suite, found = await claim_in_one_suite(claim, accounts, suites=self._suites)
        return suite, [kp for account in accounts for kp in found[account]]

    async def _conversation(self, conversation_id: int, *, active: bool = True) -> Conversation:
        found = await self._store.run(lambda s: s.conversations.get(conversation_id))
        if found is None or found.kind is ConversationKind.DEVICES:  # never one to use
            raise ConversationNotFoundError(f"no conversation {conversation_id}")
        if active and found.left_at is not None:
            raise ConversationLeftError(f"conversation {conversation_id} was left")
        return found

    async def _group_conversation(self, conversation_id: int) -> Conversation:
        conversation = await self._conversation(conversation_id)
        if conversation.kind is not ConversationKind.GROUP:
            raise NotAllowedError(
                "not a group",
                user_message="Members can only be changed in a group, not a one-to-one chat.",
            )
        return conversation

    async def _enqueue(
        self,
        conversation: Conversation,
        kind: OutboxKind,
        intent: Intent,
        *,
        content: bytes | None = None,
        local: Callable[[Store], T] | None = None,
    ) -> T | None:
        """Queue a send for the conversation's group, with its local effect, atomically."""
        session = self._require()
        now = session.now_ms()

        def write(s: Store) -> T | None:
            result = local(s) if local is not None else None
            message_id = result.id if isinstance(result, Message) else None
            s.outbox.enqueue(
                kind,
                b"",
                now=now,
                group_id=conversation.group_id,
                message_id=message_id,
                intent=None if intent.op == "send" else intent.dumps(),
                content=content,
            )
            return result

        # Nothing encrypted or sent yet: a message need not wait for the disk (see
        # local_transaction); a commit's intent may hold KeyPackages claimed from the
        # server, which a power cut must not lose.
        if kind is OutboxKind.COMMIT:
            result = await self._store.transaction(write)
        else:
            result = await self._store.local_transaction(write)
        self._wake(conversation.group_id)
        return result

    async def add_members(self, conversation_id: int, account_ids: Sequence[str]) -> None:
        """Add accounts to a group (takes effect once the server accepts the commit)."""
        conversation = await self._group_conversation(conversation_id)
        await self._refuse_blocked(account_ids)
        key_packages = await self._claim_in_group_suite(
            conversation.group_id, sorted(set(account_ids))
        )
        from .sync.intents import Intent

        claims = self._require().transport.claim_tokens.take(key_packages)
        await self._enqueue(
            conversation,
            OutboxKind.COMMIT,
            Intent("add", key_packages=tuple(key_packages), claims=claims),
        )

    async def _group_suite(self, group_id: bytes) -> int:
        """The cipher suite of one of this device's groups (RFC 9420 §8.1)."""
        session = self._require()
        async with session.group_lock(group_id):
            group = await session.groups.get(group_id)
        if group is None:
            raise ConversationLeftError("no group state: the conversation was left")
        return group.suite.suite_id

    async def _reclaim(
        self, group_id: bytes, account_ids: Sequence[str]
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """Fresh KeyPackages, and their claims' tokens, to add ``account_ids`` to a group.

        For an ``add`` whose claim evidence the server no longer has (it
        expired, or the server's schema changed since the claim): the
        outbox claims again rather than dropping the add.
        """
        key_packages = await self._claim_in_group_suite(group_id, account_ids)
        claims = self._require().transport.claim_tokens.take(key_packages)
        return tuple(key_packages), claims

    async def _claim_in_group_suite(
        self, group_id: bytes, account_ids: Sequence[str]
    ) -> list[bytes]:
        """KeyPackages that add ``account_ids`` to the conversation's group: in its
        suite only (RFC 9420 §12.1.1); SuiteNotSupportedError, naming the account,
        if one of them has none in it (an app without that suite)."""
        session = self._require()
        suite = await self._group_suite(group_id)
        from .identity import CIPHER_SUITE
        from .suite_choice import SuiteNotSupportedError
        from .sync.effects import display_name

        found: list[bytes] = []
        for account_id in account_ids:
            try:
                found += await self._claim([account_id], (suite,))
            except NoKeyPackageError:
                if suite == CIPHER_SUITE:
                    raise
                who = await self._store.run(display_name, account_id, session.account.account_id)
                raise SuiteNotSupportedError(
                    f"{account_id} has no KeyPackage in suite 0x{suite:04X}", who=who
                ) from None
        return found

    async def remove_member(self, conversation_id: int, account_id: str) -> None:
        """Remove an account from a group (to leave, use :meth:`leave`)."""
        session = self._require()
        conversation = await self._group_conversation(conversation_id)
        if account_id == session.account.account_id:
            raise NotAllowedError("removing oneself", user_message="Use “leave” to leave a group.")
        from .sync.intents import Intent

        await self._enqueue(
            conversation, OutboxKind.COMMIT, Intent("remove", accounts=(account_id,))
        )

    async def rename(self, conversation_id: int, name: str) -> None:
        """Rename a group (a GroupContextExtensions commit)."""
        conversation = await self._group_conversation(conversation_id)
        self._require()
        from .sync.intents import Intent

        await self._enqueue(
            conversation, OutboxKind.COMMIT, Intent("rename", name=_check_name(name))
        )

    async def leave(self, conversation_id: int) -> None:
        """Leave a conversation (a proposal to remove oneself, committed by another member)."""
        conversation = await self._conversation(conversation_id)
        self._require()
        from .sync.intents import Intent

        await self._enqueue(conversation, OutboxKind.MESSAGE, Intent("leave"))

    async def members(self, conversation_id: int) -> list[MemberView]:
        session = self._require()
        await self._conversation(conversation_id, active=False)
        me = session.account.account_id
        from .sync.effects import display_name

        def read(s: Store) -> list[MemberView]:
            return [
                MemberView(x.account_id, display_name(s, x.account_id, me), x.account_id == me)
                for x in s.conversations.members(conversation_id)
            ]

        return await self._store.run(read)

    async def group_epoch(self, conversation_id: int) -> int | None:
        """The MLS epoch of the conversation's group (None once left); for diagnostics."""
        conversation = await self._conversation(conversation_id, active=False)
        return await self._store.run(lambda s: s.groups.epoch(conversation.group_id))

    async def cipher_suite(self, conversation_id: int) -> str | None:
        """The name of the conversation's MLS cipher suite (RFC 9420 §17.1, or a
        post-quantum one of docs/pq-suites.md); None once this device left it."""
        session = self._require()
        conversation = await self._conversation(conversation_id, active=False)
        group = await session.groups.get(conversation.group_id)
        return None if group is None else group.suite.name

    async def upgrade_encryption(self, conversation_id: int) -> None:
        """Move the conversation to the hybrid post-quantum cipher suite (docs/pq-suites.md).

        A ReInit (RFC 9420 §11.2, §12.1.5) ends its MLS group and a new group
        in the new suite continues it with every member: same conversation,
        history kept (:mod:`.suite_upgrade`). SuiteNotSupportedError, naming
        the member, if one's app cannot join it (nothing changes then);
        NotAllowedError if the conversation uses that suite already.
        """
        session = self._require()
        conversation = await self._conversation(conversation_id)
        from .suite_upgrade import upgrade_group

        events = await upgrade_group(session, conversation, self._claim)
        await self._publish(*events)
        self._wake()

    async def restart_conversation(
        self, conversation_id: int, *, leave_out: Sequence[str] = ()
    ) -> None:
        """Start again a conversation whose group cannot go on (``view.stuck``).

        A member's commit that nobody else can process, or a wrong send
        token, leaves a group where the others cannot follow. This makes a
        new group branched from the members' last shared epoch (RFC 9420
        §11.3) with every other member (but the accounts in ``leave_out``,
        and any with no KeyPackage left): same conversation, history kept,
        what waited to be sent goes there (:mod:`.group_restart`).
        NotAllowedError if the group works.
        """
        session = self._require()
        conversation = await self._conversation(conversation_id)
        from .group_restart import restart_group

        events = await restart_group(session, conversation, self._claim, leave_out=leave_out)
        await self._publish(*events)
        self._wake()

    # -- disappearing messages (docs/attachments.md §7) ------------------------------------

    async def set_disappearing_timer(self, conversation_id: int, seconds: int) -> None:
        """Set the conversation's disappearing-message timer for every member (0: off).

        A GroupContextExtensions commit (RFC 9420 §12.1.7), like a rename:
        it takes effect, with a note in every member's timeline, once the
        server accepts it. Any member may change it. InvalidTimerError
        unless 0 or 10 seconds to 1 year.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not valid_timer(seconds):
            raise InvalidTimerError(f"a timer of {seconds!r} seconds")
        conversation = await self._conversation(conversation_id)
        self._require()
        from .sync.intents import Intent

        intent = Intent(
            "set_timer",
            seconds=seconds,
            name=conversation.title,
            kind=conversation.kind.value,
        )
        await self._enqueue(conversation, OutboxKind.COMMIT, intent)

    # -- messages --------------------------------------------------------------------------

    async def _send(
        self,
        conversation_id: int,
        body: Body,
        local: Callable[[Store, bytes, int], T] | None = None,
    ) -> T | None:
        session = self._require()
        conversation = await self._conversation(conversation_id)
        if conversation.peer_account_id is not None:
            await self._refuse_blocked([conversation.peer_account_id])
        uid, now = session.new_uid(), session.now_ms()
        from .content import Content, encode_content
        from .sync.intents import Intent

        data = encode_content(Content(uid, now, body))
        return await self._enqueue(
            conversation,
            OutboxKind.MESSAGE,
            Intent("send"),
            content=data,
            local=None if local is None else (lambda s: local(s, uid, now)),
        )

    async def _send_new(
        self, conversation_id: int, body: Text | Reply, kind: MessageKind, reply_to: bytes | None
    ) -> Message:
        """Store a new own message and queue it, in one transaction that also
        checks the conversation and builds the event's views (one store round trip)."""
        session = self._require()
        me = session.account
        uid, now = session.new_uid(), session.now_ms()
        from .content import Content, encode_content

        def write(s: Store, memo: Memo) -> tuple[Message, list[Event], bytes]:
            # The other writes of the batch are new own messages too (group_commit.py):
            # they move only the activity time, kept in the memo below.
            key = ("conversation view", conversation_id)
            chat: ConversationView | None = memo.get(key)
            conversation = None if chat is None else chat.conversation
            if conversation is None:
                conversation = s.conversations.get(conversation_id)
                if conversation is None:
                    raise ConversationNotFoundError(f"no conversation {conversation_id}")
                if conversation.left_at is not None:
                    raise ConversationLeftError(f"conversation {conversation_id} was left")
                peer = conversation.peer_account_id
                if peer is not None and s.contacts.is_blocked(peer):
                    raise NotAllowedError(
                        "a blocked contact", user_message="Unblock this contact first."
                    )
            # The group's disappearing timer of this moment (docs/attachments.md §7).
            timer = conversation.disappearing_seconds
            data = encode_content(Content(uid, now, body, expires_after=timer))
            message = s.messages.add(
                conversation_id,
                uid=uid,
                sender_account_id=me.account_id,
                sender_client_id=me.client_id,
                outgoing=True,
                body=body.body,
                sent_at=now,
                received_at=now,
                kind=kind,
                reply_to_uid=reply_to,
                expires_after=timer,
                expires_at=now + timer * 1000 if timer else None,
                # Within a burst (the memo's view): only if the activity time moves on.
                touch=chat is None or conversation.last_activity_at < now,
            )
            s.outbox.enqueue(
                OutboxKind.MESSAGE,
                b"",
                now=now,
                group_id=conversation.group_id,
                message_id=message.id,
                content=data,
            )
            # The views of a new own message are known without reading it back.
            reply_target = (
                None if reply_to is None else s.messages.by_uid(conversation_id, reply_to)
            )
            view = MessageView(message, "You", (), reply_target)
            # As messages.add left it: its activity time moved on; not blocked (checked).
            after = dataclasses.replace(
                conversation, last_activity_at=max(conversation.last_activity_at, now)
            )
            # Own messages change neither the members, names, unread count nor
            # settings: the other new messages of this transaction reuse the view.
            if chat is None:
                chat = conversation_view(s, after, me.account_id, now=now, blocked=False)
            else:
                chat = dataclasses.replace(chat, conversation=after, muted=after.muted_at(now))
            memo[key] = chat
            event = MessageReceived(conversation_id, message.id, view=view, conversation=chat)
            return message, [event], conversation.group_id

        # Nothing encrypted or sent yet: no need to wait for the disk (see local_transaction);
        # the new messages of one tick share that transaction (group_commit.py).
        message, events, group_id = await self._group_commit.write(write)
        self._wake(group_id)
        self._events.publish(*events)
        return message

    async def send_text(self, conversation_id: int, text: str) -> Message:
        """Send a text message; it is stored at once as ``pending``."""
        self._require()
        from .content import Text

        return await self._send_new(conversation_id, Text(text), MessageKind.TEXT, None)

    async def _message(self, conversation_id: int, message_id: int) -> Message:
        found = await self._store.run(lambda s: s.messages.get(message_id))
        if found is None or found.conversation_id != conversation_id:
            raise MessageNotFoundError(f"no message {message_id} in {conversation_id}")
        return found

    async def reply(self, conversation_id: int, message_id: int, text: str) -> Message:
        """Reply to a message of the conversation."""
        target = await self._message(conversation_id, message_id)
        if target.kind is MessageKind.SYSTEM:
            raise NotAllowedError("reply to a system note")
        self._require()
        from .content import Reply

        return await self._send_new(
            conversation_id, Reply(target.uid, text), MessageKind.REPLY, target.uid
        )

    async def _own_message(self, conversation_id: int, message_id: int) -> Message:
        target = await self._message(conversation_id, message_id)
        if not target.outgoing or target.kind is MessageKind.SYSTEM or target.deleted:
            raise NotAllowedError(
                "not an own message", user_message="You can only change your own messages."
            )
        return target

    async def edit(self, conversation_id: int, message_id: int, text: str) -> None:
        """Replace the text of one of this account's messages, for everyone."""
        me = self._require().account.account_id
        target = await self._own_message(conversation_id, message_id)

        def local(s: Store, uid: bytes, now: int) -> None:
            s.messages.edit(conversation_id, target.uid, editor_account_id=me, body=text, at=now)

        from .content import Edit

        await self._send(conversation_id, Edit(target.uid, text), local)
        await self._publish(MessageUpdated(conversation_id, message_id))

    async def delete(self, conversation_id: int, message_id: int) -> None:
        """Delete one of this account's messages for everyone."""
        me = self._require().account.account_id
        target = await self._own_message(conversation_id, message_id)

        def local(s: Store, uid: bytes, now: int) -> None:
            s.messages.delete_for_everyone(conversation_id, target.uid, by_account_id=me, at=now)
            if target.kind is MessageKind.FILE:  # its key, thumbnail and file go with it
                from .sync.effects import drop_attachment

                drop_attachment(s, target.id)

        if target.kind is MessageKind.FILE and self._transfers is not None:
            await self._transfers.cancel(message_id)  # an upload still under way
        from .content import Delete

        await self._send(conversation_id, Delete(target.uid), local)
        await self._publish(MessageUpdated(conversation_id, message_id))

    async def react(
        self, conversation_id: int, message_id: int, emoji: str, *, remove: bool = False
    ) -> None:
        """Put (or take back) a reaction on a message."""
        me = self._require().account.account_id
        from .content import MAX_EMOJI_LENGTH, Reaction

        target = await self._message(conversation_id, message_id)
        if target.kind is MessageKind.SYSTEM or target.deleted:
            raise NotAllowedError("react to a system note or deleted message")
        if not 0 < len(emoji) <= MAX_EMOJI_LENGTH:
            raise NotAllowedError("bad reaction", user_message="A reaction is one emoji.")

        def local(s: Store, uid: bytes, now: int) -> None:
            if remove:
                s.reactions.remove(target.id, me, emoji)
            else:
                s.reactions.add(target.id, me, emoji, at=now)

        await self._send(conversation_id, Reaction(target.uid, emoji, remove), local)
        await self._publish(MessageUpdated(conversation_id, message_id))

    async def mark_read(self, conversation_id: int, message_id: int | None = None) -> bool:
        """Mark the conversation read up to ``message_id`` (default: all); a read receipt.

        Whether the marker moved. The receipt is sent only where read
        receipts are on (:meth:`preferences`, per conversation) and the chat
        is not with a blocked contact.
        """
        session = self._require()
        me = session.account.account_id
        await self._conversation(conversation_id)

        def target(s: Store) -> Message | None:
            page = s.messages.latest(
                conversation_id, 200, before_id=None if message_id is None else message_id + 1
            )
            for message in reversed(page):
                if message.kind is not MessageKind.SYSTEM and not message.outgoing:
                    return message
            return None

        last = await self._store.run(target)
        if last is None:
            return False
        now = session.now_ms()
        from .devices.records import ConversationRead

        def write(s: Store) -> bool:
            if not s.read_markers.mark_read(conversation_id, me, last.id, at=now):
                return False
            s.messages.start_countdown(conversation_id, last.id, now=now)  # disappearing ones
            group_id = self._conversation_group(s, conversation_id)
            self._queue_sync(s, [ConversationRead(group_id, last.uid)])  # docs/devices.md §3
            return True

        moved = await self._store.transaction(write)
        if moved:
            self._wake()
            view = await self._sends(conversation_id)
            if view.read_receipts and not view.blocked:
                from .content import ReadReceipt

                await self._send(conversation_id, ReadReceipt(last.uid))
            await self._publish(ConversationUpdated(conversation_id))
        return moved

    async def typing(self, conversation_id: int, active: bool = True) -> None:
        """Tell the other members that this user is (or stopped) typing.

        Nothing is sent where typing notices are off or the chat is blocked.
        """
        view = await self._sends(conversation_id)
        if view.typing_indicators and not view.blocked:
            from .content import Typing

            await self._send(conversation_id, Typing(active))

    # -- reading ----------------------------------------------------------------------------

    async def conversations(self, *, archived: bool = False) -> list[ConversationView]:
        """Conversations, most recently active first (the archived ones with ``archived``)."""
        me, now = self._reader().account_id, self._now_ms()

        def read(s: Store) -> list[ConversationView]:
            unread, prefs = s.read_markers.unread_counts(me), preferences(s)
            stuck = s.groups.stuck_groups()
            return [
                conversation_view(
                    s,
                    c,
                    me,
                    now=now,
                    unread=unread.get(c.id, 0),
                    prefs=prefs,
                    stuck=c.group_id in stuck,
                )
                for c in s.conversations.all(archived=archived)
            ]

        return await self._store.run(read)

    async def conversation(self, conversation_id: int) -> ConversationView:
        me = self._reader().account_id
        conversation = await self._conversation(conversation_id, active=False)
        now = self._now_ms()
        return await self._store.run(lambda s: conversation_view(s, conversation, me, now=now))

    async def messages(
        self,
        conversation_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[MessageView]:
        """A page of the timeline, oldest first.

        The newest ``limit`` messages (before message ``before``, if given),
        or with ``after`` the ``limit`` messages right after that message.
        To open the timeline at a message (a search hit), ask for
        ``before=hit_id + 1``, then page both ways.
        """
        if before is not None and after is not None:
            raise ValueError("a page is before a message or after one, not both")
        me = self._reader().account_id
        await self._conversation(conversation_id, active=False)

        def read(s: Store) -> list[MessageView]:
            if limit <= 0:
                return []
            if after is not None:
                page = s.messages.after(conversation_id, after, limit)
            else:
                page = s.messages.latest(conversation_id, limit, before_id=before)
            return message_views(s, page, me)

        return await self._store.run(read)

    async def message(self, message_id: int) -> MessageView:
        me = self._reader().account_id

        def read(s: Store) -> list[MessageView]:
            found = s.messages.get(message_id)
            return [] if found is None else message_views(s, [found], me)

        views = await self._store.run(read)
        if not views:
            raise MessageNotFoundError(f"no message {message_id}")
        return views[0]

    async def search(
        self, query: str, *, limit: int = 50, conversation_id: int | None = None
    ) -> list[SearchHit]:
        """Messages matching every word of ``query``, newest first."""
        self._reader()
        return await self._store.run(
            lambda s: s.messages.search(query, limit, conversation_id=conversation_id)
        )

    # == attachments (docs/attachments.md §4) ====================================================
    # Files and images: sending (encrypted here, uploaded in the background), downloading,
    # cancelling and retrying transfers, and reading a file that is on this device.

    async def _max_blob_bytes(self) -> int:
        """The server's largest file: asked once per session, and remembered for
        when the server cannot be reached (the file is then sent when it can)."""
        session = self._require()
        if self._blob_limit is not None:
            return self._blob_limit
        try:
            info = await session.transport.server_info()
        except NetworkError:
            known = await self._store.run(lambda s: s.settings.get_int(_BLOB_LIMIT_KEY, -1))
            if known < 0:
                raise
            return known
        if info.max_blob_bytes is None:
            raise AttachmentError(
                "the server has no blob store", user_message="This server does not accept files."
            )
        limit = self._blob_limit = info.max_blob_bytes
        await self._store.run(lambda s: s.settings.set(_BLOB_LIMIT_KEY, limit))
        return limit

    async def send_file(
        self,
        conversation_id: int,
        source: Path | bytes,
        *,
        name: str | None = None,
        caption: str | None = None,
    ) -> Message:
        """Send a file (a path, or the bytes of a pasted image) with an optional caption.

        The file is checked against the server's limit (AttachmentTooLargeError,
        before anything is uploaded), encrypted into the profile (in a worker
        thread) and stored at once as a pending ``file`` message whose
        attachment is ``uploading``; the upload runs in the background, then
        the message is sent. Images get a thumbnail; an image that cannot be
        decoded safely is sent as a plain file.
        """
        session = self._require()
        conversation = await self._conversation(conversation_id)
        if conversation.peer_account_id is not None:
            await self._refuse_blocked([conversation.peer_account_id])
        from .attachments import media
        from .content import ATTACHMENT_ACCESS_SIZE, MAX_TEXT_BYTES

        text = caption or None
        if text is not None and len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise MessageTooLongError(f"a caption of {len(text.encode('utf-8'))} bytes")
        if isinstance(source, Path):
            try:
                size = source.stat().st_size
            except OSError:
                raise AttachmentError(
                    "the file cannot be read", user_message="This file cannot be read."
                ) from None
            shown = media.display_name(name or source.name)
        else:
            source = bytes(source)
            size = len(source)
            shown = media.display_name(name or media.pasted_name(source[:64]))
        limit = await self._max_blob_bytes()
        if size > limit:
            raise AttachmentTooLargeError(
                f"a file of {size} bytes, the server takes {limit}",
                user_message=(
                    f"This file is too large to send: this server takes files of up to "
                    f"{limit / 1e6:.0f} MB."
                ),
            )
        from .attachments.preparing import prepare_file

        prepared = await asyncio.to_thread(prepare_file, self.profile.path, source, shown)
        if prepared.encrypted.size > limit:  # the file grew while it was read
            remove_attachment_files(self.profile.path, [prepared.local_file])
            raise AttachmentTooLargeError(f"a file of {prepared.encrypted.size} bytes")
        me = session.account
        uid, now = session.new_uid(), session.now_ms()
        access = self._random(ATTACHMENT_ACCESS_SIZE)

        def write(s: Store) -> tuple[Message, list[Event]]:
            found = s.conversations.get(conversation_id)
            if found is None or found.kind is ConversationKind.DEVICES:
                raise ConversationNotFoundError(f"no conversation {conversation_id}")
            if found.left_at is not None:
                raise ConversationLeftError(f"conversation {conversation_id} was left")
            timer = found.disappearing_seconds
            message = s.messages.add(
                conversation_id,
                uid=uid,
                sender_account_id=me.account_id,
                sender_client_id=me.client_id,
                outgoing=True,
                body=text,
                sent_at=now,
                received_at=now,
                kind=MessageKind.FILE,
                expires_after=timer,
                expires_at=now + timer * 1000 if timer else None,
            )
            encrypted = prepared.encrypted
            s.attachments.add(
                message.id,
                blob_id=b"",
                access=access,
                key=encrypted.key,
                digest=encrypted.digest,
                size=encrypted.size,
                media_type=prepared.media_type,
                name=shown,
                width=prepared.width,
                height=prepared.height,
                thumbnail=prepared.thumbnail,
                state=TransferState.UPLOADING,
                local_file=prepared.local_file,
                now=now,
            )
            event = MessageReceived(conversation_id, message.id)
            return message, with_views(s, [event], me.account_id, now=now)

        try:
            message, events = await self._store.transaction(write)
        except BaseException:
            remove_attachment_files(self.profile.path, [prepared.local_file])
            raise
        self._wake_transfers()
        self._events.publish(*events)
        return message

    def _wake_transfers(self) -> None:
        if self._transfers is not None:
            self._transfers.wake()

    async def _attachment(self, message_id: int) -> tuple[Message, Attachment]:
        """A file message and its attachment (MessageNotFoundError: none)."""
        self._reader()

        def read(s: Store) -> tuple[Message | None, Attachment | None]:
            return s.messages.get(message_id), s.attachments.get(message_id)

        message, attachment = await self._store.run(read)
        if message is None or attachment is None:
            raise MessageNotFoundError(f"no file message {message_id}")
        return message, attachment

    async def _set_transfer(
        self,
        message_id: int,
        state: TransferState,
        expect: Sequence[TransferState],
    ) -> bool:
        """Queue a transfer again, due now; whether the row was in one of ``expect``."""
        now = self._now_ms()

        def write(s: Store) -> list[Event]:
            row = s.attachments.update(
                message_id,
                now=now,
                state=state,
                clear_error=True,
                next_attempt_at=now,
                reset_attempts=True,
                expect=expect,
            )
            message = s.messages.get(message_id)
            if row is None or message is None:
                return []
            event = MessageUpdated(message.conversation_id, message_id)
            return with_views(s, [event], self._reader().account_id, now=now)

        events = await self._store.transaction(write)
        self._events.publish(*events)
        self._wake_transfers()
        return bool(events)

    async def download(self, message_id: int) -> None:
        """Download a received file now (it is queued; follow it by its events).

        Nothing to do if it is downloaded or on its way;
        AttachmentUnavailableError if the server no longer has it.
        """
        _, attachment = await self._attachment(message_id)
        self._require()
        if attachment.state is TransferState.GONE:
            raise AttachmentUnavailableError(f"message {message_id}: gone")
        if attachment.state in (TransferState.AVAILABLE, TransferState.FAILED):
            await self._set_transfer(
                message_id,
                TransferState.DOWNLOADING,
                (TransferState.AVAILABLE, TransferState.FAILED),
            )

    async def retry_transfer(self, message_id: int) -> None:
        """Try a failed (or waiting) upload or download again, now."""
        _, attachment = await self._attachment(message_id)
        self._require()
        again = {
            TransferState.UPLOAD_FAILED: TransferState.UPLOADING,
            TransferState.UPLOADING: TransferState.UPLOADING,
            TransferState.FAILED: TransferState.DOWNLOADING,
            TransferState.DOWNLOADING: TransferState.DOWNLOADING,
        }.get(attachment.state)
        if again is None:
            raise NotAllowedError(
                f"no transfer to retry ({attachment.state})",
                user_message="There is nothing to try again for this file.",
            )
        if attachment.state is again and self._transfers and self._transfers.running(message_id):
            return  # on its way
        await self._set_transfer(message_id, again, (attachment.state,))

    async def cancel_transfer(self, message_id: int) -> None:
        """Stop an upload (the message is deleted, and the server's blob) or a
        download (the file goes back to ``available``)."""
        message, attachment = await self._attachment(message_id)
        session = self._require()
        if attachment.state not in (
            TransferState.UPLOADING,
            TransferState.UPLOAD_FAILED,
            TransferState.DOWNLOADING,
        ):
            raise NotAllowedError(
                f"no transfer to cancel ({attachment.state})",
                user_message="This file is not being sent or downloaded.",
            )
        if self._transfers is not None:
            await self._transfers.cancel(message_id)
        now = self._now_ms()
        cid = message.conversation_id
        upload = attachment.state is not TransferState.DOWNLOADING

        def write(s: Store) -> tuple[Attachment | None, list[Event]]:
            if upload:
                row = s.attachments.get(message_id)
                if row is None or row.state not in (
                    TransferState.UPLOADING,
                    TransferState.UPLOAD_FAILED,
                ):
                    return None, []  # sent meanwhile: it is a message like any other now
                s.attachments.remove(message_id)
                s.messages.remove(message_id)
                return row, [MessagesExpired(cid, (message_id,)), ConversationUpdated(cid)]
            row = s.attachments.update(
                message_id,
                now=now,
                state=TransferState.AVAILABLE,
                done=0,
                clear_error=True,
                clear_local_file=True,
                expect=(TransferState.DOWNLOADING,),
            )
            if row is None:
                return None, []
            events = [MessageUpdated(cid, message_id)]
            return attachment, with_views(s, events, session.account.account_id, now=now)

        removed, events = await self._store.transaction(write)
        if removed is None:
            raise NotAllowedError(
                "the transfer ended meanwhile",
                user_message="This file was sent or downloaded already.",
            )
        if removed.local_file is not None:
            remove_attachment_files(self.profile.path, [removed.local_file])
        self._events.publish(*events)
        if upload and removed.blob_id:
            try:
                await session.transport.delete_blob(removed.blob_id)
            except ClientError as exc:  # the server deletes unfinished uploads after a day
                _log.info("withdrawing a cancelled upload failed: %s", type(exc).__name__)

    async def _readable(self, message_id: int) -> Attachment:
        """The attachment of a file that is on this device (AttachmentNotDownloadedError)."""
        _, attachment = await self._attachment(message_id)
        if attachment.state not in (TransferState.SENT, TransferState.DOWNLOADED) or (
            attachment.local_file is None
        ):
            raise AttachmentNotDownloadedError(f"message {message_id}: {attachment.state}")
        if not await asyncio.to_thread(self._blob_path(attachment).is_file):
            # Its file is gone (a restored backup holds no files): download it again.
            now, state = self._now_ms(), attachment.state
            await self._store.run(
                lambda s: s.attachments.update(
                    message_id,
                    now=now,
                    state=TransferState.AVAILABLE,
                    done=0,
                    clear_local_file=True,
                    expect=(state,),
                )
            )
            raise AttachmentNotDownloadedError(f"message {message_id}: its file is missing")
        return attachment

    async def save_attachment(self, message_id: int, destination: Path) -> Path:
        """Decrypt a file that is on this device to ``destination`` (the user's choice).

        Written to a temporary file beside it, then renamed: ``destination``
        is either the whole file or untouched. AttachmentNotDownloadedError
        if the file is not here; AttachmentCorruptError if its copy here is damaged.
        """
        attachment = await self._readable(message_id)
        blob = self._blob_path(attachment)
        try:
            await asyncio.to_thread(
                save_decrypted, blob, attachment.key, attachment.size, destination
            )
        except OSError as exc:
            raise AttachmentError(
                f"saving failed: {exc.strerror}",
                user_message="The file could not be saved there. Choose another place.",
            ) from None
        return destination

    async def open_attachment(self, message_id: int) -> Path:
        """Decrypt a file for the system viewer into a private temporary directory
        (0700, emptied when the client closes and on the next start); its path."""
        attachment = await self._readable(message_id)
        blob = self._blob_path(attachment)
        from .attachments.files import open_dir
        from .attachments.media import safe_file_name

        def decrypt() -> Path:
            folder = open_dir(self.profile.path) / secrets.token_hex(8)
            folder.mkdir(mode=0o700)
            destination = folder / safe_file_name(attachment.name)
            save_decrypted(blob, attachment.key, attachment.size, destination)
            return destination

        try:
            return await asyncio.to_thread(decrypt)
        except OSError as exc:
            raise _unreadable(exc) from None

    async def attachment_bytes(self, message_id: int, *, max_bytes: int = 50 << 20) -> bytes:
        """The content of a file that is on this device (an inline image), up to ``max_bytes``."""
        attachment = await self._readable(message_id)
        if attachment.size > max_bytes:
            raise AttachmentTooLargeError(
                f"{attachment.size} bytes, at most {max_bytes} asked",
                user_message="This file is too large to show here; open or save it instead.",
            )
        blob = self._blob_path(attachment)

        def decrypt() -> bytes:
            from .attachments.crypto import decrypt_to

            out = io.BytesIO()
            decrypt_to(blob, attachment.key, attachment.size, out)
            return out.getvalue()

        try:
            return await asyncio.to_thread(decrypt)
        except OSError as exc:
            raise _unreadable(exc) from None

    def _blob_path(self, attachment: Attachment) -> Path:
        assert attachment.local_file is not None
        return attachment_file(self.profile.path, attachment.local_file)

    async def set_auto_download_bytes(self, n: int) -> Preferences:
        """Download received files of up to ``n`` bytes at once (0: none, all on demand)."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise NotAllowedError(
                f"an auto-download limit of {n!r}", user_message="Choose a size of 0 or more."
            )

        def write(s: Store) -> Preferences:
            s.settings.set(AUTO_DOWNLOAD_KEY, n)
            return preferences(s)

        prefs = await self._store.transaction(write)
        self._events.publish(PreferencesChanged(prefs.read_receipts, prefs.typing_indicators))
        return prefs

    # == the user's choices: names, mute, archive, block, receipts, typing, drafts ==========
    # (issue 9 item 6; each change publishes an event so that a view refreshes by itself)

    async def own_display_name(self) -> str | None:
        """The name this user chose (None: the handle is shown)."""
        return self._reader().display_name

    async def rename_contact(self, account_id: str, name: str | None) -> Contact:
        """Call a contact ``name`` on this device (None: their own name or handle again)."""
        session = self._require()
        value = " ".join(name.split())[:_MAX_NAME_LENGTH] if name else None
        now = session.now_ms()

        from .devices.records import ContactName

        def write(s: Store) -> tuple[Contact | None, list[int]]:
            if not s.contacts.set_display_name(account_id, value or None, now=now):
                return None, []
            self._queue_sync(s, [ContactName(account_id, value or None)])  # docs/devices.md §3
            return s.contacts.get(account_id), s.conversations.with_member(account_id)

        contact, conversations = await self._store.transaction(write)
        if contact is None:
            raise ContactNotFoundError(f"no contact {account_id}")
        self._wake()
        await self._publish_contact(account_id, conversations)
        return contact

    async def block(self, account_id: str) -> Contact:
        """Block an account: its messages are dropped, and nothing is sent to it one-to-one.

        A blocked contact is not offered by :meth:`contacts` and cannot be
        put in a new conversation; a one-to-one chat with it stays in the
        list, shown as blocked (:attr:`ConversationView.blocked`).
        """
        return await self._set_blocked(account_id, True)

    async def unblock(self, account_id: str) -> Contact:
        return await self._set_blocked(account_id, False)

    async def _set_blocked(self, account_id: str, blocked: bool) -> Contact:
        session = self._require()
        if account_id == session.account.account_id:
            raise NotAllowedError("blocking oneself", user_message="That is your own account.")
        now = session.now_ms()

        from .devices.records import ContactBlocked

        def write(s: Store) -> tuple[Contact, list[int]]:
            if s.contacts.get(account_id) is None:
                s.contacts.upsert(account_id, now=now)
            s.contacts.set_blocked(account_id, blocked, now=now)
            self._queue_sync(s, [ContactBlocked(account_id, blocked)])  # docs/devices.md §3
            contact = s.contacts.get(account_id)
            assert contact is not None
            return contact, s.conversations.with_member(account_id)

        contact, conversations = await self._store.transaction(write)
        self._wake()
        await self._publish_contact(account_id, conversations)
        return contact

    async def _publish_contact(self, account_id: str, conversations: Sequence[int]) -> None:
        await self._publish(
            ContactUpdated(account_id), *(ConversationUpdated(c) for c in conversations)
        )

    async def _refuse_blocked(self, account_ids: Sequence[str]) -> None:
        def blocked(s: Store) -> list[str]:
            return [a for a in account_ids if s.contacts.is_blocked(a)]

        if await self._store.run(blocked):
            raise NotAllowedError("a blocked contact", user_message="Unblock this contact first.")

    async def _change_conversation(
        self,
        conversation_id: int,
        change: Callable[[Store], object],
        sync: Callable[[Conversation], SyncRecord] | None = None,
    ) -> ConversationView:
        """Apply ``change``, publish ConversationUpdated, and return the new view.

        ``sync``: the record that tells this account's other devices.
        """
        session = self._require()
        await self._conversation(conversation_id, active=False)
        me, now = session.account.account_id, session.now_ms()

        def write(s: Store) -> ConversationView:
            change(s)
            found = s.conversations.get(conversation_id)
            assert found is not None
            if sync is not None:
                self._queue_sync(s, [sync(found)])  # docs/devices.md §3
            return conversation_view(s, found, me, now=now)

        view = await self._store.transaction(write)
        if sync is not None:
            self._wake()
        self._events.publish(ConversationUpdated(conversation_id, view))
        return view

    async def mute(self, conversation_id: int, until: int | None = None) -> ConversationView:
        """Mute a conversation until ``until`` (Unix ms), or until :meth:`unmute`."""
        if until is not None and until <= self._require().now_ms():
            raise NotAllowedError("mute until the past", user_message="Pick a time to come.")
        return await self._change_conversation(
            conversation_id,
            lambda s: s.conversations.set_muted(conversation_id, True, until=until),
            _muted_record,
        )

    async def unmute(self, conversation_id: int) -> ConversationView:
        return await self._change_conversation(
            conversation_id,
            lambda s: s.conversations.set_muted(conversation_id, False),
            _muted_record,
        )

    async def archive(self, conversation_id: int) -> ConversationView:
        """Move a conversation to the archive (``conversations(archived=True)``)."""
        return await self._change_conversation(
            conversation_id,
            lambda s: s.conversations.set_archived(conversation_id, True),
            _archived_record,
        )

    async def unarchive(self, conversation_id: int) -> ConversationView:
        return await self._change_conversation(
            conversation_id,
            lambda s: s.conversations.set_archived(conversation_id, False),
            _archived_record,
        )

    async def preferences(self) -> Preferences:
        """The global choices: read receipts, typing notices."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        return await self._store.run(preferences)

    async def _set_preference(self, key: str, enabled: bool) -> Preferences:
        if self._closed:
            raise ClientClosedError("the client is closed")

        from .devices.records import Setting
        from .devices.sync import SETTING_KEYS

        names = {v: k for k, v in SETTING_KEYS.items()}

        def write(s: Store) -> Preferences:
            s.settings.set(key, enabled)
            if key in names:
                self._queue_sync(s, [Setting(names[key], enabled)])  # docs/devices.md §3
            return preferences(s)

        prefs = await self._store.transaction(write)
        self._wake()
        self._events.publish(PreferencesChanged(prefs.read_receipts, prefs.typing_indicators))
        return prefs

    async def set_read_receipts(self, enabled: bool) -> Preferences:
        """Send read receipts (in every conversation that does not choose otherwise)."""
        return await self._set_preference(READ_RECEIPTS_KEY, enabled)

    async def set_typing_indicators(self, enabled: bool) -> Preferences:
        """Send typing notices (in every conversation that does not choose otherwise)."""
        return await self._set_preference(TYPING_INDICATORS_KEY, enabled)

    async def set_conversation_read_receipts(
        self, conversation_id: int, enabled: bool | None
    ) -> ConversationView:
        """Send read receipts in this conversation or not (None: as :meth:`preferences`)."""
        return await self._change_conversation(
            conversation_id,
            lambda s: s.conversations.set_read_receipts(conversation_id, enabled),
        )

    async def set_conversation_typing_indicators(
        self, conversation_id: int, enabled: bool | None
    ) -> ConversationView:
        """Send typing notices in this conversation or not (None: as :meth:`preferences`)."""
        return await self._change_conversation(
            conversation_id,
            lambda s: s.conversations.set_typing_indicators(conversation_id, enabled),
        )

    async def _sends(self, conversation_id: int) -> ConversationView:
        """The conversation's view, for what may be sent in it."""
        session = self._require()
        conversation = await self._conversation(conversation_id)
        me = session.account.account_id
        return await self._store.run(lambda s: conversation_view(s, conversation, me))

    async def set_draft(self, conversation_id: int, text: str | None) -> None:
        """Keep ``text`` as the conversation's draft, across restarts (None or "": none).

        ConversationUpdated is published when the draft changes.
        """
        session = self._require()
        await self._conversation(conversation_id, active=False)
        now = session.now_ms()
        value = text or None

        from .content import MAX_TEXT_BYTES
        from .devices.records import ConversationDraft

        def write(s: Store) -> bool:
            found = s.conversations.get(conversation_id)
            if found is None or found.draft == value:
                return False
            changed = s.conversations.set_draft(conversation_id, value, at=now)
            if changed and (value is None or len(value.encode("utf-8")) <= MAX_TEXT_BYTES):
                self._queue_sync(s, [ConversationDraft(found.group_id, value)])
            return changed

        if await self._store.transaction(write):
            self._wake()
            await self._publish(ConversationUpdated(conversation_id))

    async def draft(self, conversation_id: int) -> str | None:
        """The conversation's draft (None if it has none)."""
        return (await self._conversation(conversation_id, active=False)).draft

    async def unread_count(self, conversation_id: int | None = None) -> int:
        """Unread messages in a conversation; without one, the total for a badge.

        The total leaves out archived and muted conversations.
        """
        me, now = self._reader().account_id, self._now_ms()
        if conversation_id is not None:
            await self._conversation(conversation_id, active=False)
            return await self._store.run(lambda s: s.read_markers.unread_count(conversation_id, me))

        def total(s: Store) -> int:
            counts = s.read_markers.unread_counts(me)
            return sum(
                counts.get(c.id, 0)
                for c in s.conversations.all(archived=False)
                if not c.muted_at(now)
            )

        return await self._store.run(total)

    # == this account's devices (docs/devices.md §3-§5) ===========================================
    # The devices group, sync records to the other devices, the device list, removing one.

    async def devices_group_id(self) -> bytes | None:
        """The MLS group ID of this account's devices group (None: none yet).

        A newly linked device records the ID it was told (the linking answer)
        with :meth:`~.store.devices.DeviceRepository.set_group_id`, in the
        transaction that writes its identity; its Welcome then joins it.
        """
        self._reader()
        return await self._store.run(lambda s: s.devices.group_id())

    async def _start_devices(self) -> None:
        """On start: the devices group (made if missing), and this device's last-seen."""
        try:
            await self._ensure_devices_group()
            await self._announce_device()
        except ClientError as exc:  # the store or MLS failed: the next start tries again
            _log.warning("setting up the devices group failed: %s", type(exc).__name__)

    @staticmethod
    def _conversation_group(s: Store, conversation_id: int) -> bytes:
        found = s.conversations.get(conversation_id)
        if found is None:
            raise ConversationNotFoundError(f"no conversation {conversation_id}")
        return found.group_id

    async def _ensure_devices_group(self) -> None:
        """Make the devices group if this account has none recorded (its first
        device at sign-up; an account from before devices groups on start)."""
        if await self._store.run(lambda s: s.devices.group_id()) is not None:
            return
        from .groups import ConversationInfo

        await self._new_group(ConversationInfo(ConversationKind.DEVICES), [], None)

    def _queue_sync(self, s: Store, records: Sequence[SyncRecord]) -> None:
        """Inside a transaction: send this device's changes to the account's other
        devices (:func:`.devices.sync.queue_records`; call :meth:`_wake` after)."""
        identity = self._session.account.identity if self._session is not None else self._identity
        if identity is None:
            return
        from .content import UID_SIZE
        from .devices.sync import queue_records

        queue_records(
            s,
            records,
            client_id=identity.client_id,
            new_uid=lambda: self._random(UID_SIZE),
            now=self._now_ms(),
        )

    async def _announce_device(self, *, force: bool = False) -> None:
        """Tell the other devices this one's name and that it is alive (at most hourly)."""
        identity = self._reader()
        now = self._now_ms()
        from .devices.group import DEVICE_SEEN_INTERVAL_MS
        from .devices.records import DeviceInfo

        def write(s: Store) -> bool:
            me = s.devices.get(identity.client_id)
            if me is None or not me.active:
                return False
            entry = s.sync_clock.get("device", identity.client_id)
            if not force and entry is not None and now - entry.updated_at < DEVICE_SEEN_INTERVAL_MS:
                return False
            s.devices.set_last_seen(identity.client_id, now)
            self._queue_sync(s, [DeviceInfo(identity.client_id, me.name, now)])
            return True

        if await self._store.transaction(write):
            self._wake()

    async def devices(self) -> list[DeviceView]:
        """This account's devices, this one first: from the devices group's
        members and their device records (never from the server)."""
        session = self._require()
        from .devices.views import certified_devices, device_views

        me = session.account
        group_id = await self._store.run(lambda s: s.devices.group_id())
        certified: dict[str, bool] = {}
        if group_id is not None:
            async with session.group_lock(group_id):
                group = await session.epochs.get(group_id)
                if group is not None:
                    account_key = me.identity.account_public_key
                    certified = await session.mls(certified_devices, group, account_key)
        rows = await self._store.run(lambda s: s.devices.all())
        return device_views(rows, certified, me.client_id)

    async def device_name(self) -> str | None:
        """This device's name in the device list."""
        client_id = self._reader().client_id
        found = await self._store.run(lambda s: s.devices.get(client_id))
        return None if found is None else found.name

    async def rename_device(self, name: str) -> None:
        """Call this device ``name`` (1 to 64 characters) on every device of the account."""
        identity = self._reader()
        from .devices.records import MAX_DEVICE_NAME_LENGTH, DeviceInfo

        value = " ".join(name.split())
        if not 0 < len(value) <= MAX_DEVICE_NAME_LENGTH:
            raise NotAllowedError(
                "bad device name",
                user_message=f"A device name has 1 to {MAX_DEVICE_NAME_LENGTH} characters.",
            )
        now = self._now_ms()

        def write(s: Store) -> bool:
            if s.devices.get(identity.client_id) is None:
                return False
            s.devices.set_name(identity.client_id, value)
            s.devices.set_last_seen(identity.client_id, now)
            self._queue_sync(s, [DeviceInfo(identity.client_id, value, now)])
            return True

        if not await self._store.transaction(write):
            raise NotAllowedError(
                "no devices group yet", user_message="This device is not set up yet; try again."
            )
        self._wake()
        self._events.publish(DevicesChanged())

    async def remove_device(self, client_id: str) -> None:
        """Remove a device from this account: the server revokes it, and every
        group of the account gets a commit removing it (docs/devices.md §5).

        ``client_id`` may be this device (signing out) while others remain; it
        then tells them, revokes itself and stops; its store stays readable.
        NotAllowedError for the account's last device or an unknown one.
        """
        session = self._require()
        from .devices.removal import remove_device

        signed_out = await remove_device(
            session, client_id, flush=lambda: self.flush(_SIGN_OUT_TIMEOUT_S)
        )
        if signed_out:
            self._events.publish(DevicesChanged())
            # The server answers this device ``device_removed`` from now on: the
            # listener reports ConnectionState.REMOVED and the outbox stops.
            self._wake()


# -- helpers run on the store thread ----------------------------------------------------------


def _create_group(
    account: Account, random: RandomSource, info: ConversationInfo, now: int, suite: int | None
) -> tuple[Group, bytes, bytes]:
    """A new group in ``suite`` (default: suite 1) with only this client in it, its
    state and its GroupInfo (MLS thread)."""
    from messenger.mls.group import Group

    from .groups import GROUP_CONFIG, group_extensions, new_key_package
    from .identity import CIPHER_SUITE, same_client

    bundle = new_key_package(account, random, now=now, suite=suite or CIPHER_SUITE)
    group = Group.create(
        bundle,
        random,
        group_id=random(32),
        extensions=group_extensions(info),
        config=GROUP_CONFIG,
        identity=account.verifier,
        successor=same_client,
    )
    return group, group.to_bytes(), group.group_info()


def _own_token(identity: Identity) -> bytes | None:
    """The account's contact token, for its invite link (None: no account key)."""
    if identity.account_private_key is None:
        return None
    from .contact_tokens import contact_token

    return contact_token(identity.account_private_key)


async def _check_account(
    session: Session, account_id: str, handle: str | None, token: bytes | None
) -> None:
    """UnknownAccountError unless ``account_id`` (with ``handle``, if given) is on the
    server; a claim (no handle) presents the link's contact ``token``
    (ContactTokenError if the account's KeyPackages need another)."""
    from .contact_tokens import look_up_handle

    transport = session.transport
    try:
        found = (
            await look_up_handle(session, handle)
            if handle is not None
            else (
                account_id
                if await transport.claim_key_packages(account_id, contact_token=token)
                else None
            )
        )
    except ServerRejectedError as exc:  # no such account, or not even an account ID
        if exc.code not in ("unknown_account", "invalid_field"):
            raise
        found = None
    if found != account_id:
        raise UnknownAccountError(
            "unknown_account",
            f"invite link names {account_id}, the server has {found}",
            user_message="This invite link does not match any account on its server.",
        )


def _muted_record(conversation: Conversation) -> SyncRecord:
    from .devices.records import ConversationMuted

    until = conversation.muted_until if conversation.muted else None
    return ConversationMuted(conversation.group_id, conversation.muted, until)


def _archived_record(conversation: Conversation) -> SyncRecord:
    from .devices.records import ConversationArchived

    return ConversationArchived(conversation.group_id, conversation.archived)


def _unreadable(exc: OSError) -> AttachmentError:
    """A file on this device that could not be read or decrypted into place."""
    return AttachmentError(
        f"reading an attachment failed: {exc.strerror}",
        user_message="This file could not be read on this device.",
    )


def _make_due(store: Store, now: int) -> None:
    store.outbox.make_due(now=now)


def _check_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > _MAX_NAME_LENGTH:
        raise NotAllowedError(
            "bad group name", user_message="A group name has 1 to 100 characters."
        )
    return value


#: The share of :meth:`MessengerClient.create_account`'s progress given to
#: the proof of work (the rest: the credential check and the first KeyPackages).
_POW_SHARE: Final = 0.95


class _Monotonic:
    """A progress callback that never goes back and reports 1.0 only when told."""

    __slots__ = ("_callback", "_last")

    def __init__(self, callback: Callable[[float], None] | None) -> None:
        self._callback = callback
        self._last = -1.0

    def __call__(self, fraction: float) -> None:
        if self._callback is None or fraction <= self._last:
            return
        self._last = fraction
        self._callback(fraction)


def _on_loop(callback: Callable[[float], None] | None) -> Callable[[float], None] | None:
    """``callback`` called on the running event loop from any thread (None stays None)."""
    if callback is None:
        return None
    loop = asyncio.get_running_loop()
    target = _Monotonic(callback)

    def marshal(fraction: float) -> None:
        loop.call_soon_threadsafe(target, fraction)

    return marshal
