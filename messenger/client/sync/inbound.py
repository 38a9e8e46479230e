"""The inbound pipeline: decode, route, process, persist, then ack -- a batch at a time.

Each message of this client's queue (docs/server.md, "Queues") goes
through, in queue order:

1. **decode** the ``MLSMessage`` (RFC 9420 §6); bytes that do not decode
   are skipped;
2. **route**: a Welcome finds the KeyPackage it was made for (RFC 9420
   §12.4.3.1); a group message finds its group. The server echoes this
   client's own messages back (docs/threat-model.md): they are recognised
   by their hash (:mod:`..store.sent_messages`) -- an echo whose outbox
   item is still there proves the server accepted it. A message for an
   epoch not reached yet, or for a group not joined yet, is kept
   (:mod:`..store.pending_inbound`, within its limits: anyone who can
   reach the queue can send such messages) and offered again after the next
   commit or Welcome of that group; a handshake of a past epoch is stale and
   skipped. A Welcome for a group ID this client already has -- joined,
   left or removed from -- is dropped (RFC 9420 §12.4.3.1): a known group
   moves on only by its commits, processed in order;
3. **MLS process** (:meth:`Group.process`): an application message, a
   proposal, or a staged commit;
4. **persist** what the message changes in one store transaction: the
   secret-tree records it consumed, the timeline (:mod:`.effects`) and the
   queue cursor; a commit goes to the owner of transitions
   (:class:`~..epochs.GroupEpochs`: stage, persist, merge);
5. publish the events; the caller then **acks** the server up to the cursor.

**The contact queue.** A client with a contact queue (:mod:`..contact_queue`)
gets its Welcomes there, and a new group's messages until it moved to its
own queue. The pipeline reads it the same way, with a cursor of its own
(:data:`~..store.settings.CONTACT_CURSOR`), its own acks and queue requests
signed by the contact key: a catch-up of it comes after the queue's
(:meth:`InboundPipeline.catch_up`), and the listener long-polls it
(:meth:`InboundPipeline.follow_contact`). Both go through one lock, one page
at a time. A group joined from the contact queue gets a ``move`` commit
queued in the join's transaction (:func:`.leaf_addresses.queue_move`), or,
when members added with it come before it, noted to wait its turn
(:mod:`.move_turns`), which comes with their moves (looked at after each
commit) or at a deadline.
The two queues are not ordered with each other, so:

* a group's messages reach the client's own queue only after its move,
  which it makes once it has read everything of the group before it;
  messages of a group not joined yet are kept and offered again after the
  join, as always;
* a Welcome to the group that continues a reinitialised one (RFC 9420
  §11.2) may be read before the ReInit commit, which the client's own
  queue holds: it is left in the contact queue (its cursor stays before
  it) and read again once the queue has moved on
  (:data:`~..suite_upgrade.NOT_REINITIALISED`), for
  :data:`CONTACT_WAIT_MAX_S` at most: anyone who claims a KeyPackage can
  send such a Welcome, and one whose ReInit never comes must not stop the
  contact queue for good (docs/threat-model.md, attack 33).

**Batches.** A page of the queue (a push batch, or a catch-up page) is cut
into runs: a run of application messages (the common case: a burst, a
catch-up) is decoded and decrypted in one call to the MLS thread, under the
locks of its groups (taken in group-ID order), and persisted in **one**
transaction with one cursor move, and its events go out as one batch
(built in that transaction, with the views the UI needs). Anything else --
a commit, a proposal, a Welcome -- ends the run and is processed alone.
The caller acks once per page.

A crash at any point leaves the store consistent with some prefix of the
queue; what was not acked is fetched again and skipped by the cursor. If a
run's transaction fails, its groups are dropped from memory (the store
still has their state before the run) and the run is processed again when
delivered again. Messages that fail MLS validation are the sender's fault
(RFC 9420 §6.3: they change nothing) and are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from messenger.api.errors import ErrorCode
from messenger.api.models import MAX_FETCH, FetchResponse, QueueMessage
from messenger.mls.content import ContentType, PrivateMessage, PublicMessage
from messenger.mls.errors import InvalidMessageError, MLSError
from messenger.mls.events import ApplicationMessage, ProposalReceived, StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint
from messenger.mls.key_package_bundle import KeyPackageBundle
from messenger.mls.messages import MLSMessage, message_digest
from messenger.mls.welcome import Welcome

from ..acks import DEFAULT_ACK_POLICY, AckPolicy, AckScheduler
from ..contact_queue import forget_contact_queue
from ..content import Content, decode_content
from ..devices.group import commit_admissible, is_devices_info, welcome_admissible
from ..errors import AuthError, ContentDecodeError
from ..events import DevicesChanged, Event
from ..group_restart import NOT_THERE_YET, join_branch, mark_stuck
from ..groups import (
    GROUP_CONFIG,
    GroupMember,
    SuccessorWelcome,
    WelcomeHeader,
    group_members,
    member_at,
    open_welcome,
)
from ..identity import Account, MemberIdentity, member_identity, same_client
from ..models import with_views
from ..session import Session
from ..store.conversations import Conversation
from ..store.key_packages import KeyPackageSecret
from ..store.pending_inbound import (
    DEFAULT_PENDING_LIMITS,
    PendingAdmission,
    PendingInbound,
    PendingLimits,
)
from ..store.settings import CONTACT_CURSOR
from ..store.store import Store
from ..suite_upgrade import NOT_REINITIALISED, join_successor, reinit_acceptable
from .effects import Actor, apply_content, apply_sent
from .move_turns import MoveTurns, movers_before, wait_turn

__all__ = ["CURSOR_KEY", "InboundPipeline"]

_log = logging.getLogger(__name__)

#: The settings key of the last processed queue sequence number.
CURSOR_KEY: Final = "sync.cursor"
#: Hashes of sent messages whose echo never came are forgotten after this.
SENT_HASH_TTL_MS: Final = 7 * 86_400_000
#: Refused pending messages are logged at most this often (a flood must not fill the log).
DROP_LOG_INTERVAL_S: Final = 60.0
#: Messages fetched per page when catching up: a page is one batch (one MLS-thread
#: call, one transaction, one ack). Larger pages gain little, and a page of 500
#: stalls the loop of a server in the same process (as in bench_event_loop.py) past
#: 20 ms; a page larger than ``net.http.PARSE_OFF_LOOP_BYTES`` is parsed in a thread.
CATCH_UP_PAGE: Final = min(200, MAX_FETCH)
#: Queue messages larger than this in all are decoded in the MLS thread, not on the
#: loop: a Welcome to a 1,000-member group (~470 KB) takes about 4 ms to decode.
DECODE_OFF_LOOP_BYTES: Final = 64 * 1024
#: More queue messages than this are decoded in the MLS thread, whatever their size.
DECODE_OFF_LOOP_COUNT: Final = 8
#: How long one long poll of the contact queue waits for a message (seconds).
CONTACT_POLL_S: Final = 25
#: How long a Welcome left in the contact queue waits for the queue to move on
#: before it is tried again (seconds).
CONTACT_RETRY_S: Final = 5.0
#: How long, at most, such a Welcome holds up the contact queue (seconds): its
#: ReInit is in the queue before it, read within moments, so a Welcome whose
#: ReInit has not come by then never will (a member's made-up one) and is skipped,
#: and the Welcomes after it are read.
CONTACT_WAIT_MAX_S: Final = 30.0
#: The most groups remembered as not worth waiting for (then forgotten at once).
_GAVE_UP_KEPT: Final = 256
#: Why a message was not kept for later, for the log (no content, no IDs).
_REFUSED: Final = {
    PendingAdmission.GROUP_FULL: "its group has the most messages kept that a group may have",
    PendingAdmission.UNKNOWN_FULL: "groups not joined have the most messages kept they may have",
    PendingAdmission.TOTAL_FULL: "the most messages that may wait are waiting",
}


class _NotYet(Exception):
    """A contact queue's message that must wait for the queue (module docstring)."""


def _cursor_key(contact: bool) -> str:
    return CONTACT_CURSOR if contact else CURSOR_KEY


def _known_group(store: Store, group_id: bytes) -> bool:
    """Whether this client has, or had, the group: its state or its conversation."""
    return store.groups.get(group_id) is not None or (
        store.conversations.by_group(group_id) is not None
    )


def _group_of(message: MLSMessage) -> bytes | None:
    """The group a group message is for (None for anything else, e.g. a Welcome)."""
    body = message.body
    if isinstance(body, PrivateMessage):
        return body.group_id
    if isinstance(body, PublicMessage):
        return body.content.group_id
    return None


def _decode_many(data: Sequence[bytes]) -> list[MLSMessage | InvalidMessageError]:
    """Queue messages decoded, or why not (in the MLS thread for large pages)."""
    found: list[MLSMessage | InvalidMessageError] = []
    for item in data:
        try:
            found.append(MLSMessage.from_bytes(item))
        except InvalidMessageError as exc:
            found.append(exc)
    return found


def _application_of(message: MLSMessage | InvalidMessageError) -> PrivateMessage | None:
    """The PrivateMessage of an application message (a run's member), else None."""
    if isinstance(message, MLSMessage):
        body = message.body
        if isinstance(body, PrivateMessage) and body.content_type == ContentType.APPLICATION:
            return body
    return None


def _join(
    data: bytes, bundle: KeyPackageBundle, account: Account, signer: int, now: int
) -> tuple[Group, list[GroupMember], GroupMember | None, GroupCheckpoint]:
    """Join from a Welcome: the group, its members, the adder, its state (in the MLS thread)."""
    group = Group.join_from_welcome(
        data,
        bundle,
        config=GROUP_CONFIG,
        identity=account.verifier,
        successor=same_client,
        now=now,
    )
    return group, group_members(group), member_at(group, signer), group.checkpoint()


@dataclass(slots=True)
class _Arrival:
    """One application message of a run, and what routing and MLS made of it."""

    seq: int
    data: bytes
    group_id: bytes
    epoch: int
    digest: bytes
    route: str = "decrypt"
    """``echo``, ``pend``, ``skip`` or ``decrypt``."""
    sender: MemberIdentity | None = None
    content: Content | None = None
    epoch_decrypted: int = 0


def _decrypt_run(
    groups: dict[bytes, Group], arrivals: Sequence[_Arrival], now: int
) -> tuple[dict[bytes, GroupCheckpoint], set[bytes]]:
    """Decrypt a run's messages (in the MLS thread): each group's checkpoint after them,
    and the groups a message failed in (dropped from memory after the run)."""
    failed: set[bytes] = set()
    touched: list[bytes] = []
    for arrival in arrivals:
        if arrival.route != "decrypt":
            continue
        group = groups[arrival.group_id]
        try:
            event = group.process(arrival.data, now=now)
        except MLSError as exc:  # the peer's fault, or a message this state cannot take
            _log.info("skipped a queue message: MLS refused the message: %s", exc)
            failed.add(arrival.group_id)
            arrival.route = "skip"
            continue
        if arrival.group_id not in touched:
            touched.append(arrival.group_id)
        if not isinstance(event, ApplicationMessage):  # cannot be: the type is in the header
            arrival.route = "skip"
            continue
        arrival.sender = member_identity(event.sender.credential)
        arrival.epoch_decrypted = event.epoch
        try:
            content = decode_content(event.data)
        except ContentDecodeError as exc:
            _log.info("undecodable message content: %s", exc)
            continue
        if isinstance(content, Content):  # a future kind is skipped
            arrival.content = content
    return {gid: groups[gid].checkpoint() for gid in touched}, failed


def _wake_for_devices(session: Session, events: Sequence[Event]) -> None:
    """Sync records that changed the devices may have queued commits (a device
    signed out, docs/devices.md §5): wake the outbox sender."""
    if any(isinstance(e, DevicesChanged) for e in events):
        session.outbox_queued()


class InboundPipeline:
    """Processes this client's queue, in order, exactly once each."""

    def __init__(
        self,
        session: Session,
        *,
        key_package_used: Callable[[], None] = lambda: None,
        pending_limits: PendingLimits = DEFAULT_PENDING_LIMITS,
        ack_policy: AckPolicy = DEFAULT_ACK_POLICY,
    ) -> None:
        self._s = session
        #: Acks go out in bursts at random times (docs/metadata.md §4).
        self.acks = AckScheduler(lambda cursor: session.transport.ack(cursor), ack_policy)
        #: The contact queue's acks, in bursts of their own.
        self.contact_acks = AckScheduler(self._ack_contact, ack_policy)
        self._epochs = session.epochs
        self._limits = pending_limits
        self._key_package_used = key_package_used
        #: The cursors of the queue (False) and of the contact queue (True).
        self._cursors: dict[bool, int] = {}
        #: Whether the page being processed is the contact queue's (under the lock).
        self._contact = False
        #: Set whenever a page of the queue (not the contact queue) was processed.
        self._queue_moved = asyncio.Event()
        #: The contact queue's message that waits for the queue, and since when
        #: (session clock, seconds): at most :data:`CONTACT_WAIT_MAX_S`.
        self._waiting: tuple[int, float] | None = None
        #: The groups, at their epoch then, whose awaited commit did not come
        #: in time: later Welcomes waiting on them are skipped at once.
        self._gave_up: set[tuple[bytes, int]] = set()
        self._queue_lock = asyncio.Lock()
        self._retrying: set[bytes] = set()
        #: The moves off the contact queue that wait their turn (:mod:`.move_turns`).
        self.move_turns = MoveTurns(session)
        self._dropped: dict[PendingAdmission, int] = {}
        self._dropped_logged_at = float("-inf")
        account = session.account
        self._me = Actor(account.account_id, account.client_id, session.new_uid)

    # -- the cursor -------------------------------------------------------------------

    async def cursor(self, *, contact: bool = False) -> int:
        """The last sequence number processed of the queue (or the contact queue)."""
        if contact not in self._cursors:
            key = _cursor_key(contact)
            self._cursors[contact] = await self._s.store.run(lambda s: s.settings.get_int(key, 0))
        return self._cursors[contact]

    def _finish(self, store: Store, seq: int | None, pending: PendingInbound | None) -> None:
        """Inside the transaction: move the cursor past ``seq`` or drop ``pending``."""
        key = _cursor_key(self._contact)
        if pending is not None:
            store.pending_inbound.remove(pending.id)
        elif seq is not None and seq > store.settings.get_int(key, 0):
            store.settings.set(key, seq)

    def _advanced(self, seq: int | None, pending: PendingInbound | None) -> None:
        """After the transaction: remember the cursor."""
        if pending is None and seq is not None and self._contact in self._cursors:
            self._cursors[self._contact] = max(self._cursors[self._contact], seq)

    async def _ack_contact(self, cursor: int) -> None:
        contact = self._s.contact
        if contact is not None:
            await self._s.transport.ack(cursor, queue=contact)

    async def close_acks(self) -> None:
        """Send the acks still waiting, of both queues (bounded by the caller)."""
        await self.acks.close()
        await self.contact_acks.close()

    # -- entry points ---------------------------------------------------------------------

    async def process(self, messages: Sequence[QueueMessage], *, contact: bool = False) -> int:
        """Process a page from the queue, or the ``contact`` queue (already processed
        ones are skipped); that queue's cursor.

        Runs of application messages go through as batches (one MLS-thread
        call, one transaction); anything else alone, in queue order.
        """
        async with self._queue_lock:
            self._contact = contact
            try:
                return await self._process_page(messages)
            except _NotYet:  # the rest of the contact queue's page waits with it
                return await self.cursor(contact=True)
            finally:
                self._contact = False
                if not contact and messages:
                    self._queue_moved.set()

    async def _process_page(self, messages: Sequence[QueueMessage]) -> int:
        """:meth:`process`, the lock held and :attr:`_contact` set."""
        cursor = await self.cursor(contact=self._contact)
        fresh = [m for m in messages if m.seq > cursor]
        if not fresh:
            return cursor
        decoded = await self._decode_page([m.data for m in fresh])
        run: list[_Arrival] = []
        for message, found in zip(fresh, decoded, strict=True):
            body = _application_of(found)
            if body is not None:
                digest = message_digest(message.data)
                run.append(_Arrival(message.seq, message.data, body.group_id, body.epoch, digest))
                continue
            if run:
                await self._process_run(run)
                run = []
            await self._process_one(message.seq, message.data, found)
        if run:
            await self._process_run(run)
        return await self.cursor(contact=self._contact)

    async def _decode_page(self, data: list[bytes]) -> list[MLSMessage | InvalidMessageError]:
        if len(data) > DECODE_OFF_LOOP_COUNT or sum(map(len, data)) > DECODE_OFF_LOOP_BYTES:
            return await self._s.mls(_decode_many, data)
        return _decode_many(data)

    async def _process_one(
        self, seq: int, data: bytes, decoded: MLSMessage | InvalidMessageError
    ) -> None:
        """One queue message (queue lock held), under its group's lock."""
        if isinstance(decoded, InvalidMessageError):
            await self._skip(seq, None, f"undecodable message: {decoded}")
            return
        group_id = _group_of(decoded)
        if group_id is None:  # a Welcome takes its new group's lock itself
            await self.process_locked(seq, data, decoded=decoded)
            return
        async with self._s.group_lock(group_id):
            await self.process_locked(seq, data, decoded=decoded)

    async def _decode(self, data: bytes) -> MLSMessage:
        """A queue message decoded; a large one (a Welcome to a big group) in the MLS thread."""
        if len(data) > DECODE_OFF_LOOP_BYTES:
            return await self._s.mls(MLSMessage.from_bytes, data)
        return MLSMessage.from_bytes(data)

    async def catch_up(self) -> int:
        """Fetch and process everything after the cursors, the queue's first (a
        Welcome in the contact queue may follow a ReInit in the queue); the
        queue's cursor.

        The next page is fetched while this one is processed, so the
        network's round trips overlap the work. Acks go to :attr:`acks` (and
        :attr:`contact_acks`), which send them in bursts.
        """
        cursor = await self._catch_up(contact=False)
        if self._s.contact is not None:
            try:
                await self._catch_up(contact=True)
            except AuthError as exc:  # a server restored from a backup made before it
                if exc.code != ErrorCode.AUTH_INVALID.value:
                    raise
                await self._forget_contact()
        return cursor

    async def follow_contact(self) -> None:
        """Long-poll the contact queue and process what comes, until cancelled;
        returns without a contact queue, or once the server no longer knows it
        (:func:`~..contact_queue.forget_contact_queue`)."""
        while (contact := self._s.contact) is not None:
            try:
                page = await self._s.transport.fetch(
                    await self.cursor(contact=True),
                    limit=CATCH_UP_PAGE,
                    wait=CONTACT_POLL_S,
                    queue=contact,
                )
            except AuthError as exc:
                if exc.code != ErrorCode.AUTH_INVALID.value:
                    raise
                await self._forget_contact()
                return
            before = await self.cursor(contact=True)
            cursor = await self.process(page.messages, contact=True)
            if page.messages:
                self.contact_acks.processed(cursor, len(page.messages))
            if page.messages and page.messages[-1].seq > cursor == before:
                # A Welcome waits for its ReInit (module docstring): read again
                # once the queue has moved on, or after a while.
                self._queue_moved.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue_moved.wait(), CONTACT_RETRY_S)

    async def _forget_contact(self) -> None:
        """The server does not know the contact queue: forget it, and its cursor."""
        async with self._queue_lock:
            await forget_contact_queue(self._s)
            self._cursors.pop(True, None)

    async def _catch_up(self, *, contact: bool) -> int:
        """:meth:`catch_up` of one queue."""
        transport = self._s.transport
        queue = self._s.contact if contact else None
        acks = self.contact_acks if contact else self.acks

        async def fetch(after: int) -> FetchResponse:
            return await transport.fetch(after, limit=CATCH_UP_PAGE, queue=queue)

        page = await fetch(await self.cursor(contact=contact))
        ahead: asyncio.Task[FetchResponse] | None = None
        try:
            while True:
                if page.more and page.messages:
                    ahead = asyncio.create_task(fetch(page.messages[-1].seq))
                cursor = await self.process(page.messages, contact=contact)
                if page.messages:
                    acks.processed(cursor, len(page.messages))
                if ahead is None or (page.messages and page.messages[-1].seq > cursor):
                    return cursor  # (a Welcome left for later stops the catch-up)
                page, ahead = await ahead, None
        finally:
            if ahead is not None:  # after a failure: stop it, retrieve its outcome
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead

    # -- a run of application messages ---------------------------------------------------

    async def _process_run(self, run: list[_Arrival]) -> None:
        """Decrypt and persist a run of application messages as one batch (queue lock held)."""
        group_ids = sorted({a.group_id for a in run})
        async with contextlib.AsyncExitStack() as stack:
            for group_id in group_ids:  # in one order, so two runs never wait for each other
                await stack.enter_async_context(self._s.group_lock(group_id))
            await self._process_run_locked(run, group_ids)

    async def _process_run_locked(self, run: list[_Arrival], group_ids: list[bytes]) -> None:
        digests = [a.digest for a in run]

        def read(store: Store) -> tuple[set[bytes], set[bytes]]:
            sent = store.sent_messages.contained(digests)
            left = set()
            for group_id in group_ids:
                conversation = store.conversations.by_group(group_id)
                if conversation is not None and conversation.left_at is not None:
                    left.add(group_id)
            return sent, left

        sent, left = await self._s.store.run(read)
        groups: dict[bytes, Group] = {}
        for group_id in group_ids:
            group = await self._epochs.get(group_id)
            if group is not None:
                groups[group_id] = group
        for arrival in run:
            group = groups.get(arrival.group_id)
            if arrival.digest in sent:
                arrival.route = "echo"
            elif group is None:
                arrival.route = "skip" if arrival.group_id in left else "pend"
            elif arrival.epoch > group.epoch:
                arrival.route = "pend"
            elif group.removed:
                arrival.route = "skip"
        decrypting = any(a.route == "decrypt" for a in run)
        checkpoints: dict[bytes, GroupCheckpoint] = {}
        failed: set[bytes] = set()
        try:
            if decrypting:
                checkpoints, failed = await self._s.mls(_decrypt_run, groups, run, self._s.now_s())
            # A run of this client's own echoes only holds no secret and nothing
            # another client sent: if a power cut lost it after the ack, the outbox
            # would resend and be answered from the idempotency keys.
            own = not checkpoints and all(a.route in ("echo", "skip") for a in run)
            write = self._s.store.local_transaction if own else self._s.store.transaction
            events, admitted = await write(self._write_run, run, checkpoints)
        except BaseException:  # the store still has the groups' state before the run
            for group_id in groups:
                self._epochs.evict(group_id)
            raise
        for group_id in failed:
            self._epochs.evict(group_id)
        self._advanced(run[-1].seq, None)
        self._s.events.publish(*events)
        _wake_for_devices(self._s, events)
        refused = [a for a in admitted if a is not PendingAdmission.KEPT]
        for reason in refused:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if refused:
            self._log_drops()

    def _write_run(
        self, store: Store, run: list[_Arrival], checkpoints: dict[bytes, GroupCheckpoint]
    ) -> tuple[list[Event], list[PendingAdmission]]:
        """The run's one transaction (in the store's thread)."""
        now = self._s.now_ms()
        for group_id, checkpoint in checkpoints.items():
            store.groups.save(group_id, checkpoint.epoch, checkpoint, now=now)
        echoes = [a.digest for a in run if a.route == "echo"]
        events: list[Event] = []
        if echoes:
            items = store.outbox.by_message_hashes(echoes)
            events += apply_sent(store, [item.id for item in items.values()])
            store.sent_messages.remove_many(echoes)
        conversations: dict[bytes, Conversation | None] = {}
        blocked: dict[str, bool] = {}
        admitted: list[PendingAdmission] = []
        for arrival in run:
            if arrival.route == "pend":
                admitted.append(
                    store.pending_inbound.admit(
                        arrival.group_id,
                        arrival.epoch,
                        arrival.seq,
                        arrival.data,
                        now=now,
                        limits=self._limits,
                    )
                )
                continue
            sender, content = arrival.sender, arrival.content
            if arrival.route != "decrypt" or sender is None or content is None:
                continue
            if arrival.group_id not in conversations:
                conversations[arrival.group_id] = store.conversations.by_group(arrival.group_id)
            conversation = conversations[arrival.group_id]
            if conversation is None:
                continue
            if sender.account_id not in blocked:
                blocked[sender.account_id] = store.contacts.is_blocked(sender.account_id)
            if blocked[sender.account_id]:
                continue  # a blocked contact's messages are dropped (the group state moved on)
            events += apply_content(
                store,
                conversation,
                sender,
                content,
                me=self._me,
                seq=arrival.seq,
                epoch=arrival.epoch_decrypted,
                now=now,
            )
        self._finish(store, run[-1].seq, None)
        return with_views(store, events, self._me.account_id, now=now), admitted

    # -- one message at a time ------------------------------------------------------------

    async def process_locked(
        self,
        seq: int | None,
        data: bytes,
        pending: PendingInbound | None = None,
        *,
        decoded: MLSMessage | None = None,
    ) -> bool:
        """Process one message (the caller holds its group's lock); whether it was consumed."""
        if decoded is None:
            try:
                decoded = await self._decode(data)
            except InvalidMessageError as exc:
                await self._skip(seq, pending, f"undecodable message: {exc}")
                return True
        body = decoded.body
        if isinstance(body, Welcome):
            if pending is not None:  # never kept (only group messages are): do not lock again
                await self._skip(seq, pending, "a Welcome among the kept messages")
                return True
            await self._welcome(seq, data, body)
            return True
        if isinstance(body, PrivateMessage):
            group_id, epoch, content_type = body.group_id, body.epoch, body.content_type
        elif isinstance(body, PublicMessage):
            group_id, epoch = body.content.group_id, body.content.epoch
            content_type = body.content.content_type
        else:
            await self._skip(seq, pending, f"a {type(body).__name__} in the queue")
            return True
        application = content_type == ContentType.APPLICATION
        digest = message_digest(data)
        if await self._s.store.run(lambda s: s.sent_messages.contains(digest)):
            await self._own_echo(seq, digest, pending)
            return True
        group = await self._epochs.get(group_id)
        if group is None or epoch > group.epoch:
            if group is None and await self._left(group_id):
                await self._skip(seq, pending, "a message for a conversation left")
                return True
            if pending is None:
                await self._pend(seq, group_id, epoch, data)
            return False
        if (epoch < group.epoch and not application) or group.removed:
            await self._skip(seq, pending, "a handshake message of a past epoch")
            return True
        try:
            event = await self._s.mls(group.process, data, now=self._s.now_s())
        except MLSError as exc:  # the peer's fault, or a message this state cannot take
            self._epochs.evict(group_id)
            await self._skip(seq, pending, f"MLS refused the message: {exc}")
            if content_type == ContentType.COMMIT and epoch == group.epoch:
                # The server accepted it as the epoch's commit: its group is
                # now where this state cannot follow (:mod:`..group_restart`).
                await mark_stuck(self._s, group_id)
            return True
        except BaseException:  # cancelled: the state may have moved on, unsaved
            self._epochs.evict(group_id)
            raise
        try:
            if isinstance(event, ApplicationMessage):
                await self._application(seq, pending, group, event)
            elif isinstance(event, ProposalReceived):
                await self._proposal(seq, pending, group, event)
            else:
                await self._commit(seq, pending, group, event)
        except BaseException:
            self._epochs.evict(group_id)  # the store has the state before this message
            raise
        return True

    async def prune(self) -> None:
        """Forget old sent-message hashes and messages that waited too long."""
        now = self._s.now_ms()

        def write(store: Store) -> None:
            store.sent_messages.delete_older_than(now - SENT_HASH_TTL_MS)
            store.pending_inbound.delete_expired(now=now, limits=self._limits)

        await self._s.store.transaction(write)
        self._log_drops(force=True)

    def _log_drops(self, *, force: bool = False) -> None:
        """Log the refused messages counted so far: at once, then once a minute at most."""
        now = self._s.clock()
        if not self._dropped or (not force and now - self._dropped_logged_at < DROP_LOG_INTERVAL_S):
            return
        for reason, count in self._dropped.items():
            _log.warning(
                "dropped %d message(s) that cannot be processed yet: %s", count, _REFUSED[reason]
            )
        self._dropped.clear()
        self._dropped_logged_at = now

    async def retry_pending_locked(self, group_id: bytes) -> None:
        """Offer the group's kept messages again, until none moves on (its lock held).

        A commit among them retries the rest itself; the outer loop then
        just reads what is left.
        """
        if group_id in self._retrying:
            return
        self._retrying.add(group_id)
        try:
            progress = True
            while progress:
                progress = False
                rows = await self._s.store.run(lambda s: s.pending_inbound.for_group(group_id))
                for row in rows:
                    if await self.process_locked(row.seq, row.data, row):
                        progress = True
                        break
        finally:
            self._retrying.discard(group_id)

    # -- routing outcomes -------------------------------------------------------------------

    async def _left(self, group_id: bytes) -> bool:
        conversation = await self._s.store.run(lambda s: s.conversations.by_group(group_id))
        return conversation is not None and conversation.left_at is not None

    async def _skip(self, seq: int | None, pending: PendingInbound | None, why: str) -> None:
        _log.info("skipped a queue message: %s", why)
        await self._s.store.transaction(lambda s: self._finish(s, seq, pending))
        self._advanced(seq, pending)

    async def _pend(self, seq: int | None, group_id: bytes, epoch: int, data: bytes) -> None:
        """Keep a message for later if the limits allow; either way, move past it."""
        now = self._s.now_ms()
        limits = self._limits

        def write(store: Store) -> PendingAdmission:
            admitted = store.pending_inbound.admit(
                group_id, epoch, seq or 0, data, now=now, limits=limits
            )
            self._finish(store, seq, None)
            return admitted

        admitted = await self._s.store.transaction(write)
        self._advanced(seq, None)
        if admitted is not PendingAdmission.KEPT:
            self._dropped[admitted] = self._dropped.get(admitted, 0) + 1
            self._log_drops()

    async def _own_echo(
        self, seq: int | None, digest: bytes, pending: PendingInbound | None
    ) -> None:
        """This client's own message came back: the server has it (its group's lock held)."""
        item = await self._s.store.run(lambda s: s.outbox.by_message_hash(digest))

        def finish(store: Store) -> None:
            store.sent_messages.remove(digest)
            self._finish(store, seq, pending)

        moved = False
        if item is None:
            await self._s.store.transaction(finish)
        else:
            moved = await self._epochs.accept(item, finish=finish)
        self._advanced(seq, pending)
        if moved and item is not None and item.group_id is not None:
            await self.retry_pending_locked(item.group_id)

    async def _application(
        self,
        seq: int | None,
        pending: PendingInbound | None,
        group: Group,
        event: ApplicationMessage,
    ) -> None:
        # Only the sender's ratchets changed: a checkpoint of a record or two.
        group_id, epoch, state = group.group_id, group.epoch, await self._s.mls(group.checkpoint)
        sender = member_identity(event.sender.credential)
        try:
            content = decode_content(event.data)
        except ContentDecodeError as exc:
            _log.info("undecodable message content: %s", exc)
            content = None
        now = self._s.now_ms()

        def write(store: Store) -> list[Event]:
            store.groups.save(group_id, epoch, state, now=now)
            events: list[Event] = []
            conversation = store.conversations.by_group(group_id)
            if (
                conversation is not None
                and sender is not None
                and isinstance(content, Content)
                # A blocked contact's messages are dropped (the group state still moves on).
                and not store.contacts.is_blocked(sender.account_id)
            ):
                events = apply_content(
                    store,
                    conversation,
                    sender,
                    content,
                    me=self._me,
                    seq=seq,
                    epoch=event.epoch,
                    now=now,
                )
            self._finish(store, seq, pending)
            return with_views(store, events, self._me.account_id, now=now)

        events = await self._s.store.transaction(write)
        self._advanced(seq, pending)
        self._s.events.publish(*events)
        _wake_for_devices(self._s, events)

    async def _proposal(
        self,
        seq: int | None,
        pending: PendingInbound | None,
        group: Group,
        event: ProposalReceived,
    ) -> None:
        """A proposal: the owner of transitions keeps it and queues a commit of it."""
        await self._epochs.proposal_received(
            group, event, finish=lambda store: self._finish(store, seq, pending)
        )
        self._advanced(seq, pending)

    async def _commit(
        self, seq: int | None, pending: PendingInbound | None, group: Group, staged: StagedCommit
    ) -> None:
        """A commit of another member: the owner of transitions persists and merges it.

        A commit that would let another account's client into the devices
        group is refused (docs/devices.md §3): nothing of it is applied.
        """
        if not await self._devices_commit_admissible(group, staged):
            self._epochs.evict(group.group_id)  # the staged commit is dropped with it
            await self._skip(seq, pending, "a commit letting a stranger into the devices group")
            return
        if staged.reinit is not None and not reinit_acceptable(staged.reinit, group.extensions):
            self._epochs.evict(group.group_id)  # RFC 9420 §12.1.5; docs/pq-suites.md
            await self._skip(seq, pending, "a ReInit to a cipher suite this client does not use")
            return
        await self._epochs.commit_received(
            group, staged, finish=lambda store: self._finish(store, seq, pending)
        )
        self._advanced(seq, pending)
        if not staged.self_removed:
            await self.move_turns.after_commit(group)
            await self.retry_pending_locked(group.group_id)

    async def _devices_commit_admissible(self, group: Group, staged: StagedCommit) -> bool:
        group_id = group.group_id
        if await self._s.store.run(lambda s: s.devices.group_id()) != group_id:
            return True
        return await self._s.mls(commit_admissible, group, staged, self._me.account_id)

    async def _welcome(self, seq: int | None, data: bytes, welcome: Welcome) -> None:
        """Join a new group from a Welcome (RFC 9420 §12.4.3.1).

        The group ID must be new to this client: a Welcome for a group it
        has -- or left, or was removed from -- is dropped at any epoch,
        before anything is joined. Otherwise a removed member, who knows the
        group ID, could make a group of her own with that ID, add this client
        with a KeyPackage she claimed, and have her state replace the real
        group's (she would then read what this client sends to it).
        """
        store = self._s.store
        pending = None
        refs = [entry.new_member for entry in welcome.secrets]

        def find(s: Store) -> KeyPackageSecret | None:
            for ref in refs:
                found = s.key_packages.get(ref)
                if found is not None:
                    return found
            return None

        secret = await store.run(find)
        if secret is None:
            await self._skip(seq, pending, "a Welcome for no KeyPackage of ours")
            return
        bundle = await self._s.mls(KeyPackageBundle.from_bytes, secret.bundle)
        try:
            header = await self._s.mls(open_welcome, welcome, bundle)
        except MLSError as exc:
            await self._skip(seq, pending, f"a Welcome that does not open: {exc}")
            return
        if isinstance(header, SuccessorWelcome):  # RFC 9420 §11.2 (ReInit) or §11.3 (branch)
            moving, now = self._contact, self._s.now_ms()
            join = join_branch if header.branch else join_successor
            joined = await join(
                self._s, data, secret, bundle, header, finish=lambda s: self._finish(s, seq, None)
            )
            if isinstance(joined, str):
                if joined in (NOT_REINITIALISED, NOT_THERE_YET):
                    old = await self._epochs.get(header.resumes)
                    if old is not None and self._may_wait(seq, (header.resumes, old.epoch)):
                        raise _NotYet  # the commit it follows is in the queue, not read yet
                await self._skip(seq, pending, joined)
                return
            self._advanced(seq, pending)
            self._key_package_used()
            async with self._s.group_lock(joined):
                if moving:  # known once joined; a crash before this keeps the contact queue
                    await self._successor_move(joined, now)
                await self.retry_pending_locked(joined)
            return
        async with self._s.group_lock(header.group_id):
            await self._join_locked(seq, data, secret, bundle, header)

    def _may_wait(self, seq: int | None, waits_on: tuple[bytes, int]) -> bool:
        """Whether the contact queue's message ``seq`` may wait for the queue
        (again): for :data:`CONTACT_WAIT_MAX_S` from the first time it did, and
        not at all if one waited that long already for the same group at the
        epoch it is at (``waits_on``): its commit did not come then either, so
        more made-up Welcomes naming it cost nothing."""
        if not self._contact or seq is None or waits_on in self._gave_up:
            return False
        now = self._s.clock()
        if self._waiting is None or self._waiting[0] != seq:
            self._waiting = (seq, now)
        if now - self._waiting[1] < CONTACT_WAIT_MAX_S:
            return True
        self._waiting = None
        if len(self._gave_up) >= _GAVE_UP_KEPT:
            self._gave_up.clear()
        self._gave_up.add(waits_on)
        _log.warning("a Welcome waited too long for the commit it follows; skipped")
        return False

    async def _successor_move(self, group_id: bytes, now: int) -> None:
        """The move off the contact queue in a reinitialised group's successor,
        joined from it (its lock held): in turn with the members re-added with
        this client (:mod:`.move_turns`). A new group's creator, who added
        everyone, is its first leaf (RFC 9420 §11)."""
        group = await self._epochs.get(group_id)
        before = () if group is None else movers_before(group, 0)
        if await self._s.store.transaction(lambda s: wait_turn(s, group_id, before, now)):
            self._s.outbox_queued(group_id)
        else:
            self.move_turns.noted(group_id)

    async def _join_locked(
        self,
        seq: int | None,
        data: bytes,
        secret: KeyPackageSecret,
        bundle: KeyPackageBundle,
        header: WelcomeHeader,
    ) -> None:
        """Join the group a Welcome opened to, unless it is known (its lock held)."""
        store = self._s.store
        pending = None
        if await store.run(lambda s: _known_group(s, header.group_id)):
            await self._drop_welcome(seq, pending, secret)
            return
        try:
            group, members, adder, state = await self._s.mls(
                _join, data, bundle, self._s.account, header.signer, self._s.now_s()
            )
        except MLSError as exc:
            await self._skip(seq, pending, f"a Welcome that does not open: {exc}")
            return
        group_id = group.group_id
        if group_id != header.group_id:  # the same bytes, verified this time
            await self._skip(seq, pending, "a Welcome that changed while it was opened")
            return
        # The devices group holds only this account's devices (docs/devices.md §3).
        recorded = await store.run(lambda s: s.devices.group_id())
        if not welcome_admissible(
            group,
            self._me.account_id,
            recorded=recorded,
            devices_info=is_devices_info(group.extensions),
        ):
            await self._drop_welcome(seq, pending, secret)
            return
        ref, one_time = secret.ref, not secret.last_resort
        # Joined from the contact queue: move the leaf to this client's own
        # queue, after the members added with it that come before it (:mod:`.move_turns`).
        moving, now = self._contact, self._s.now_ms()
        before = movers_before(group, header.signer) if moving else ()
        queued = False

        def finish(store: Store) -> None:
            nonlocal queued
            if one_time:
                store.key_packages.delete(ref)
            self._finish(store, seq, pending)
            if moving:
                queued = wait_turn(store, group_id, before, now)

        adder_identity = None if adder is None else adder.identity
        if not await self._epochs.joined(group, members, adder_identity, state, finish=finish):
            await self._drop_welcome(seq, pending, secret)
            return
        self._advanced(seq, pending)
        if queued:
            self._s.outbox_queued(group_id)
        elif moving:
            self.move_turns.noted(group_id)
        self._key_package_used()
        await self.retry_pending_locked(group_id)

    async def _drop_welcome(
        self, seq: int | None, pending: PendingInbound | None, secret: KeyPackageSecret
    ) -> None:
        """A Welcome for a group this client has: drop it; its KeyPackage is spent.

        A one-time KeyPackage was claimed from the server for it, so nobody
        else can use it: its private keys are deleted (RFC 9420 §16.8) and
        the pool tops up. A last-resort one stays: others may claim it too.
        """
        _log.warning("dropped a Welcome for a group this client already has or had")
        ref, one_time = secret.ref, not secret.last_resort

        def write(store: Store) -> None:
            if one_time:
                store.key_packages.delete(ref)
            self._finish(store, seq, pending)

        await self._s.store.transaction(write)
        self._advanced(seq, pending)
        if one_time:
            self._key_package_used()
