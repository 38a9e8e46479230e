"""The outbox sender: delivers queued sends in order, in batches, until the server accepts.

Every send is first an outbox row (:mod:`..store.outbox`), written in the
same transaction as its local effect (the message row, the reaction...).
The items of one group (one conversation) form a *lane*: a lane's items go
out in order -- a later message waits for the earlier one -- while lanes
progress side by side, each in a task of its own, so that a conversation
whose sends keep failing, or whose commit waits for the server's answer,
never delays another conversation's.

**Each item is an explicit state machine** (:class:`SendState`, moves
allowed by :data:`TRANSITIONS`; any other move is a bug and raises
:class:`OutboxStateError`)::

    QUEUED ──build──> BUILT ──send──> IN_FLIGHT ──ok──> ACCEPTED
      │  └─proposals pending─> NEEDS_COMMIT ─commit them─> QUEUED
      │                                   IN_FLIGHT ──stale_epoch──> STALE ─catch up─> QUEUED
      ├─moot─> DROPPED                    IN_FLIGHT ──unreachable, 5xx──> BACKOFF
      └─group reinitialised─> MOVED       IN_FLIGHT ──refused──> FAILED

**Batches.** A lane's head and the application messages right behind it
(up to :data:`BATCH_SIZE`) go together: they are

1. **built** in the group's current epoch in one call to the MLS thread
   (RFC 9420 §6.3: each consumes a generation of this member's ratchet,
   §9.1), and the requests, the group's checkpoint (the ratchet records it
   consumed) and the sent messages' hashes are persisted in **one**
   transaction before anything is sent; items built for this epoch by an
   attempt whose answer was lost are sent again as they were;
2. **sent** with their idempotency keys in one request to the server's
   batch route (all or nothing, in order: the server orders a group's
   messages as it stores them), so that a retry after a lost answer or a
   crash is answered by the server without a second delivery
   (docs/server.md, "Retries");
3. **applied** when accepted -- the items dropped and their messages marked
   sent in one transaction (:func:`.effects.apply_sent`).

A commit, a leave proposal and a new group go alone. The first message
of an idle lane goes at once; after a batch the lane waits :data:`GATHER_S`
before looking again, so that a burst goes out in a few large batches. A commit is built
under its group's lock, with the state once accepted, and sent **without
any lock**: incoming messages of its conversation and all other
conversations go on while it waits. The :class:`StagedCommit` is kept by
the owner of transitions (:class:`~..epochs.GroupEpochs`), which merges it
when the server accepts (or when its echo arrives first). On ``stale_epoch``
the sender catches up (the queue holds the winning commit) and builds
again for the new epoch (RFC 9750 §5.2). If catching up does not move the
group, it never will (the server's group went where this client cannot
follow): the item fails for good. An application message cannot be
encrypted while proposals are pending (RFC 9420 §12.4): they are committed
first.

A transient failure (unreachable, 5xx, rate limited) backs off per item --
exponential with a cap, jitter from :mod:`secrets` -- and the lane waits; a
refusal (a typed permanent error: not a member, unknown group, out of step)
gives the items up, marks their messages failed, tells the UI
(:class:`~..events.OperationFailed`), and the lane goes on.

Test hooks: ``before_send`` and ``after_send`` (:data:`SendHook`, given to
the constructor) are awaited just before built requests go out and just
after the server accepted them (before they are applied), so that a test
can stop the sender there -- e.g. pause for good and kill the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from messenger.api import models as m
from messenger.api.errors import ApiError
from messenger.api.sealed import token_digest
from messenger.mls.ciphersuite import RandomSource
from messenger.mls.errors import InvalidMessageError, UsageError
from messenger.mls.events import StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint
from messenger.mls.messages import message_digest

from ..contact_tokens import own_token
from ..epochs import membership_after, queues_of
from ..errors import (
    DeviceReplacedError,
    GroupExistsError,
    RateLimitedError,
    ServerRejectedError,
    StaleEpochError,
)
from ..events import Event, MessageStatusChanged, OperationFailed
from ..group_restart import mark_stuck
from ..groups import group_members, key_package_member
from ..leave_notices import leave_notice
from ..models import with_views
from ..net.backoff import Backoff
from ..sealed_sending import next_send_token, send_token, send_token_hash
from ..session import Session
from ..store.messages import MessageStatus
from ..store.outbox import OutboxItem, OutboxKind
from ..store.store import Store
from ..wake import wait_event
from .effects import apply_sent
from .inbound import InboundPipeline
from .intents import Intent, build_commit
from .leaf_addresses import leaf_address, queue_rotate, readdressed_extensions, with_token

__all__ = [
    "BATCH_SIZE",
    "GATHER_S",
    "TRANSITIONS",
    "OutboxSender",
    "OutboxStateError",
    "SendHook",
    "SendState",
]

_log = logging.getLogger(__name__)

#: A test hook awaited at a point of a send (see the module docstring).
SendHook = Callable[[], Awaitable[None]]
#: Claim again for ``(group ID, account IDs)``: fresh KeyPackages and their claims' tokens.
Reclaim = Callable[[bytes, Sequence[str]], Awaitable[tuple[tuple[bytes, ...], tuple[bytes, ...]]]]
#: Stale answers in a row before an attempt counts as failed.
_MAX_STALE: Final = 5
#: The most application messages of one group built, persisted and sent together
#: (what the server's batch route takes).
BATCH_SIZE: Final = m.MAX_SEND_BATCH_ITEMS
#: After a batch of messages, how long a lane waits before looking for the next: a
#: burst then goes out in fewer, larger batches (each costs a request, a signature and
#: an fsynced transaction). The first message of an idle lane goes at once.
GATHER_S: Final = 0.01
#: Content bytes of one batch at most: its messages, encrypted and padded, must stay
#: under the batch route's cap.
_BATCH_CONTENT_BYTES: Final = m.MAX_SEND_BATCH_BYTES // 2


class SendState(enum.Enum):
    """Where one outbox item is in its attempt (see :data:`TRANSITIONS`)."""

    QUEUED = "queued"
    """In the store; not built for the group's current epoch."""
    BUILT = "built"
    """Its request is persisted with the group state it advanced."""
    IN_FLIGHT = "in_flight"
    """Sent; waiting for the server's answer."""
    ACCEPTED = "accepted"
    """The server has it; applied and removed from the store."""
    STALE = "stale"
    """Refused for its epoch: catch up, then build again."""
    NEEDS_COMMIT = "needs_commit"
    """Proposals are pending in the group: they are committed first (RFC 9420 §12.4)."""
    BACKOFF = "backoff"
    """A transient failure: the item (and its lane) waits for its next attempt."""
    FAILED = "failed"
    """Refused for good: removed, its message marked failed, the UI told."""
    DROPPED = "dropped"
    """Nothing left to do (applied meanwhile, or moot): removed."""
    MOVED = "moved"
    """Its conversation continues in another group (a ReInit): it waits in that lane."""


_S = SendState
#: Every allowed move of an item's state; anything else is a bug (:class:`OutboxStateError`).
TRANSITIONS: Final[dict[SendState, frozenset[SendState]]] = {
    _S.QUEUED: frozenset({_S.BUILT, _S.NEEDS_COMMIT, _S.DROPPED, _S.FAILED, _S.BACKOFF, _S.MOVED}),
    _S.BUILT: frozenset({_S.IN_FLIGHT, _S.BACKOFF}),
    _S.IN_FLIGHT: frozenset({_S.ACCEPTED, _S.STALE, _S.BACKOFF, _S.FAILED, _S.DROPPED}),
    _S.STALE: frozenset({_S.QUEUED, _S.FAILED}),
    _S.NEEDS_COMMIT: frozenset({_S.QUEUED, _S.BACKOFF}),
    _S.ACCEPTED: frozenset(),
    _S.BACKOFF: frozenset(),
    _S.FAILED: frozenset(),
    _S.DROPPED: frozenset(),
    _S.MOVED: frozenset(),
}


class OutboxStateError(RuntimeError):
    """An outbox item was moved along a transition the table does not allow (a bug)."""


@dataclasses.dataclass(slots=True)
class _Send:
    """One outbox item during an attempt: the item as last stored, and its state."""

    item: OutboxItem
    state: SendState = SendState.QUEUED
    error: Exception | None = None

    def to(self, state: SendState, error: Exception | None = None) -> None:
        if state not in TRANSITIONS[self.state]:
            raise OutboxStateError(f"an outbox item cannot go from {self.state} to {state}")
        self.state = state
        if error is not None:
            self.error = error


def _secure_fraction() -> float:
    """A uniform float in [0, 1) from the OS's CSPRNG, for backoff jitter."""
    return secrets.randbits(53) / (1 << 53)


@dataclasses.dataclass(frozen=True, slots=True)
class _BuiltCommit:
    """A commit built in the MLS thread, with what the request needs."""

    message: bytes
    welcome: bytes | None
    group_info: bytes | None
    state: GroupCheckpoint
    new_state: bytes
    staged: StagedCommit
    queues: tuple[str, ...]
    welcome_to: tuple[str, ...]
    #: The new epoch's send token (docs/metadata.md §2, §3); None if the commit
    #: removes this member.
    next_token: bytes | None
    #: The current epoch's send token: the commit is sealed (docs/metadata.md §3).
    token: bytes
    #: The address this client's leaf moved to from another queue (``move``):
    #: the request proves that queue (``join_queue``, ``join_proof``).
    moved_to: str | None = None
    #: The address it moved from (the contact queue's: ``leave_queue``).
    moved_from: str | None = None


def _make_commit(
    group: Group,
    intent: Intent,
    random: RandomSource,
    now: int,
    address: str | None = None,
    token: bytes | None = None,
) -> _BuiltCommit | None:
    """Build the commit of ``intent`` and the queue sets (in the MLS thread).

    The members of the new epoch are read from the staged commit
    (:func:`~..epochs.membership_after`), not from a state loaded again.
    With this client's delivery ``address``, a leaf that still names the
    queue ID gets the address, and a ``move`` gives it the address whatever
    it named; with the account's contact ``token``, a leaf that lacks it
    gets it (:mod:`.leaf_addresses`).
    """
    move = intent.op == "move"
    named = leaf_address(group)
    readdressed = readdressed_extensions(group, address, move=move)
    extensions, capabilities = with_token(group, readdressed, token)
    result = build_commit(
        group,
        intent,
        random,
        now=now,
        leaf_extensions=extensions,
        capabilities=capabilities,
    )
    if result is None:
        return None
    staged = result.staged
    before = {(x.account_id, x.client_id) for x in group_members(group)}
    members = membership_after(group, staged)
    welcome_to = queues_of([x for x in members if (x.account_id, x.client_id) not in before])
    return _BuiltCommit(
        result.message,
        result.welcome,
        result.group_info,
        group.checkpoint(),
        group.to_bytes(staged),
        staged,
        tuple(queues_of(members)),
        tuple(welcome_to),
        next_send_token(group, staged),
        send_token(group),
        address if move and readdressed is not None else None,
        named if move and readdressed is not None else None,
    )


def _encrypt_many(
    group: Group, contents: Sequence[bytes], random: RandomSource
) -> tuple[list[bytes], GroupCheckpoint, bytes]:
    """Application messages, the state after them and the epoch's send token (MLS thread).

    The checkpoint holds only this member's changed ratchet, not the group.
    """
    data = [group.encrypt(content, random) for content in contents]
    return data, group.checkpoint(), send_token(group)


def _propose_leave(
    group: Group, random: RandomSource
) -> tuple[list[bytes], GroupCheckpoint, bytes]:
    """A proposal to remove this member, the state after it and the send token (MLS thread).

    It carries this member's leave notice (:mod:`..leave_notices`).
    """
    data = group.propose_remove(group.leaf_index, random, authenticated_data=leave_notice(group))
    return [data], group.checkpoint(), send_token(group)


class _OutOfStepError(ServerRejectedError):
    """The server's epoch is not ours, and catching up does not change that.

    Nothing this client can send to the group will be accepted again: a
    permanent failure of the item, until the conversation is started again
    (:mod:`..group_restart`).
    """

    default_user_message = (
        "This conversation cannot go on, so the message could not be sent."
        " Start it again with the button above the messages."
    )


def _answer_state(exc: Exception) -> SendState:
    """Where an item goes after the server's (or the network's) error."""
    if isinstance(exc, StaleEpochError):
        return SendState.STALE
    if isinstance(exc, ServerRejectedError | InvalidMessageError | UsageError):
        return SendState.FAILED
    return SendState.BACKOFF  # unreachable, 5xx, rate limited, or anything unexpected


class _RotatingError(Exception):
    """The commit that brings a fresh send token backs off; the sends wait behind it."""


class _MovingError(Exception):
    """The group was reinitialised (RFC 9420 §11.2) and its successor is not joined yet.

    The items wait: joining the new group moves them to its lane
    (:meth:`~..store.outbox.OutboxRepository.move_lane`).
    """


class _TokenOutcome(enum.Enum):
    """What :meth:`Outbox._register_send_token` did, when the items are sent again."""

    #: This epoch's token is registered (or a commit brought a fresh one): done once.
    REGISTERED = enum.auto()
    #: Caught up, the group is at a later epoch: the items are built again for it.
    MOVED_ON = enum.auto()


class _NoAddressError(Exception):
    """A ``move`` waits for this session's address of the client's queue, which
    the contact queue's set-up asks for (:mod:`..contact_queue`): a group lock
    is never held across a network call."""


def _is_unknown_group(exc: Exception) -> bool:
    return isinstance(exc, ServerRejectedError) and exc.code == "unknown_group"


def _is_unclaimed(exc: Exception) -> bool:
    return isinstance(exc, ServerRejectedError) and exc.code == "member_not_claimed"


def _sealed(payload: bytes | None) -> bool:
    """Whether a built send carries a send token (one built before sealed sending does not)."""
    if payload is None:
        return False
    try:
        return m.SendRequest.loads(payload).token is not None
    except ApiError:
        return False


def _sealed_commit(payload: bytes) -> bool:
    """Whether a built commit carries a send token (one built before sealed commits
    does not: it is sent again as it was, signed, for its idempotent answer)."""
    try:
        return m.CommitRequest.loads(payload).token is not None
    except ApiError:
        return False


def _is_leave(item: OutboxItem) -> bool:
    return item.kind is OutboxKind.MESSAGE and Intent.loads(item.intent).op == "leave"


def _batch(items: Sequence[OutboxItem]) -> list[OutboxItem]:
    """The lane's head and the application messages right behind it, sent together."""
    head = items[0]
    if head.kind is not OutboxKind.MESSAGE or _is_leave(head):
        return [head]
    batch = [head]
    size = len(head.content or b"")
    for item in items[1:]:
        size += len(item.content or b"") + 256
        if item.kind is not OutboxKind.MESSAGE or _is_leave(item) or size > _BATCH_CONTENT_BYTES:
            break
        batch.append(item)
    return batch


class OutboxSender:
    """Sends the outbox: each lane (group) in order, in batches, lanes independently."""

    def __init__(
        self,
        session: Session,
        pipeline: InboundPipeline,
        *,
        backoff: Backoff | None = None,
        before_send: SendHook | None = None,
        after_send: SendHook | None = None,
        reclaim: Reclaim | None = None,
    ) -> None:
        self._s = session
        self._reclaim = reclaim
        self._epochs = session.epochs
        self._before_send = before_send
        self._after_send = after_send
        self._pipeline = pipeline
        chosen = backoff or Backoff(base=0.5, maximum=30.0)
        # Retries of different clients must not fall into step, and their
        # timing should tell an observer nothing: jitter from the CSPRNG.
        self._backoff = dataclasses.replace(chosen, random=_secure_fraction)
        self._wake = session.outbox_signal
        self._lanes: dict[bytes | None, asyncio.Task[None]] = {}
        #: Set when the server says a restored copy took this device over.
        self._replaced: DeviceReplacedError | None = None

    def wake(self, group_id: bytes | None = None) -> None:
        """Look at the outbox now (a new item of ``group_id``'s, or the network is back)."""
        self._s.outbox_queued(group_id)

    def _busy(self, lane: bytes) -> bool:
        running = self._lanes.get(lane)
        return running is not None and not running.done()

    async def run(self) -> None:
        """Send forever: whenever woken, and when the next retry is due.

        An item queued in a lane that is running needs no look at the
        outbox: the lane reads its next items itself (a burst of sends then
        costs no store query each).
        """
        due: int | None = None
        try:
            while self._replaced is None:
                hints = self._s.outbox_hints
                self._s.outbox_hints = set()
                self._wake.clear()
                if not hints or not all(self._busy(lane) for lane in hints):
                    due = await self._start_lanes()
                timeout = None if due is None else max(0.0, (due - self._s.now_ms()) / 1000)
                await wait_event(self._wake, timeout)
        finally:
            await self._stop_lanes()

    async def flush_once(self) -> bool:
        """Send every due item, lanes side by side; whether the outbox is now empty."""
        try:
            while True:
                await self._start_lanes()
                running = [task for task in self._lanes.values() if not task.done()]
                if not running:
                    break
                await asyncio.wait(running)
        except asyncio.CancelledError:
            await self._stop_lanes()
            raise
        if self._replaced is not None:
            raise self._replaced
        return bool(await self._s.store.run(lambda s: s.outbox.count() == 0))

    # -- lanes ------------------------------------------------------------------------------

    async def _start_lanes(self) -> int | None:
        """Start a task for each idle lane whose head is due; when the next idle one is due."""
        heads = await self._s.store.run(lambda s: s.outbox.lane_heads())
        now = self._s.now_ms()
        next_due: int | None = None
        for lane, due in heads:
            if self._replaced is not None:
                break
            running = self._lanes.get(lane)
            if running is not None and not running.done():
                continue
            if due <= now:
                task = asyncio.create_task(self._run_lane(lane), name="outbox lane")
                self._lanes[lane] = task
                task.add_done_callback(functools.partial(self._lane_done, lane))
            elif next_due is None or due < next_due:
                next_due = due
        return next_due

    def _lane_done(self, lane: bytes | None, task: asyncio.Task[None]) -> None:
        if self._lanes.get(lane) is task:
            del self._lanes[lane]
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("an outbox lane failed", exc_info=exc)
        self.wake()  # the lane may have new items, or a new due time

    async def _stop_lanes(self) -> None:
        tasks = list(self._lanes.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._lanes.clear()

    async def _run_lane(self, lane: bytes | None) -> None:
        """Send a lane's items in order, a batch at a time, while they are due.

        The lane stops at a transient failure (its head then waits for its
        next attempt); a refusal fails the items concerned and it goes on.
        """
        gather = False
        while True:
            if gather:  # a batch just went out: let the burst behind it gather a moment
                await asyncio.sleep(GATHER_S)
            items = await self._s.store.run(lambda s: s.outbox.lane(lane, BATCH_SIZE))
            if not items or items[0].next_attempt_at > self._s.now_ms():
                return
            batch = _batch(items)
            gather = batch[0].kind is OutboxKind.MESSAGE and len(batch) < BATCH_SIZE
            try:
                if batch[0].kind is OutboxKind.CREATE_GROUP:
                    going = await self._create_group(batch[0])
                elif batch[0].kind is OutboxKind.COMMIT:
                    going = await self._commit(batch[0])
                else:
                    going = await self._messages(batch)
            except Exception as exc:  # a bug, or the store failing: retry later, not at once
                _log.exception("sending an outbox item failed")
                await self._retry_later(batch[0], exc)
                return
            if not going:
                return

    # -- a group's new group request --------------------------------------------------------

    async def _create_group(self, item: OutboxItem) -> bool:
        send = _Send(item)
        send.to(SendState.BUILT)  # built when the group was made
        send.to(SendState.IN_FLIGHT)
        try:
            with contextlib.suppress(GroupExistsError):  # an earlier attempt got through
                await self._s.transport.create_group(item.payload)
        except Exception as exc:
            send.to(_answer_state(exc), exc)
            return await self._failed([send], exc)
        send.to(SendState.ACCEPTED)
        await self._accepted([send])
        return True

    # -- application messages and proposals, in batches -------------------------------------

    async def _messages(self, batch: list[OutboxItem]) -> bool:
        """Build, persist, send and apply one group's batch; whether the lane goes on."""
        group_id = batch[0].group_id
        assert group_id is not None
        sends = [_Send(item) for item in batch]
        registered = False
        for _ in range(_MAX_STALE):
            async with self._epochs.lock(group_id):
                await self._build_messages(group_id, sends)
            sends = [s for s in sends if s.state is not SendState.MOVED]
            if not sends:
                return True  # moved to the lane of the group the conversation continues in
            if any(s.state in (SendState.FAILED, SendState.BACKOFF) for s in sends):
                return await self._failed(sends, sends[0].error)
            await self._drop([s for s in sends if s.state is SendState.DROPPED])
            sends = [s for s in sends if s.state is not SendState.DROPPED]
            if any(s.state is SendState.NEEDS_COMMIT for s in sends):
                commit = await self._commit_item_for(group_id)
                if not await self._commit(commit):
                    return False  # the commit backs off; this batch waits behind it
                sends = [_Send(s.item) for s in sends]
                continue
            ready = [s for s in sends if s.state is SendState.BUILT]
            if not ready:
                return True
            await self._hook(self._before_send)
            for send in ready:
                send.to(SendState.IN_FLIGHT)
            accepted, error = await self._post(group_id, ready)
            if accepted:
                await self._hook(self._after_send)
                for send in accepted:
                    send.to(SendState.ACCEPTED)
                await self._accepted(accepted)
            if error is None:
                return True
            rest = ready[len(accepted) :]
            if not registered and _is_unknown_group(error):
                # A group from before sealed sending has no send token yet, or
                # the group moved on: register ours (once), or catch up and
                # build again (RFC 9420 §8.5) -- as often as it moves on
                # (several new members' moves in a row, docs/metadata.md §1),
                # within the bound on stale attempts.
                outcome = await self._register_send_token(group_id, rest[0].item.epoch)
                if not isinstance(outcome, Exception):
                    registered = outcome is _TokenOutcome.REGISTERED
                    sends = [_Send(s.item) for s in rest]
                    continue
                if _is_unknown_group(outcome):
                    # Caught up, at the epoch the items were built for, and
                    # this epoch's token still opens nothing at the server.
                    outcome = await self._stuck(group_id)
                error = outcome
            state = _answer_state(error)
            if state is not SendState.STALE:
                for send in rest:
                    send.to(state, error)
                return await self._failed(rest, error)
            for send in rest:
                send.to(SendState.STALE, error)
            epoch = rest[0].item.epoch
            if await self._out_of_step(group_id, epoch):
                failure = await self._stuck(group_id)
                for send in rest:
                    send.to(SendState.FAILED, failure)
                return await self._failed(rest, failure)
            sends = [_Send(s.item) for s in rest]
        stale = StaleEpochError(-1, "the group kept moving on")
        for send in sends:
            send.to(SendState.BACKOFF, stale)
        return await self._failed(sends, stale)

    async def _build_messages(self, group_id: bytes, sends: list[_Send]) -> None:
        """Each item built for the group's current epoch (the group's lock held).

        Items built for this epoch already (by an attempt whose answer was
        lost) are sent as they are; the others are encrypted together in one
        call to the MLS thread, and persisted with the group's new
        checkpoint, the requests and the sent hashes in one transaction.
        """
        group = await self._epochs.get(group_id)
        if group is None or not group.active:
            await self._inactive(group_id, group, sends)
            return
        epoch = group.epoch
        todo: list[_Send] = []
        for send in sends:
            item = send.item
            if item.built and item.epoch == epoch and _sealed(item.payload):
                send.to(SendState.BUILT)
            elif not _is_leave(item) and item.content is None:
                send.to(SendState.DROPPED)
            else:
                todo.append(send)
        if not todo:
            return
        if not _is_leave(todo[0].item) and group.pending_proposals():
            for send in todo:
                send.to(SendState.NEEDS_COMMIT)
            return
        try:
            if _is_leave(todo[0].item):
                data, state, token = await self._s.mls(_propose_leave, group, self._s.random)
            else:
                contents = [s.item.content for s in todo if s.item.content is not None]
                data, state, token = await self._s.mls(
                    _encrypt_many, group, contents, self._s.random
                )
            built = [
                (
                    send.item.id,
                    m.SendRequest(message, send.item.idempotency_key, token).dumps(),
                    epoch,
                    message_digest(message),
                )
                for send, message in zip(todo, data, strict=True)
            ]
            now = self._s.now_ms()

            def write(store: Store) -> None:
                store.groups.save(group_id, epoch, state, now=now)
                store.outbox.set_built_many(built)
                store.sent_messages.add_many([b[3] for b in built], group_id, now=now)

            await self._s.store.transaction(write)
        except BaseException:  # the state may have moved on, unsaved: load it again
            self._epochs.evict(group_id)
            raise
        for send, (_, payload, _, digest) in zip(todo, built, strict=True):
            send.item = dataclasses.replace(
                send.item, payload=payload, epoch=epoch, message_hash=digest
            )
            send.to(SendState.BUILT)

    async def _post(
        self, group_id: bytes, sends: list[_Send]
    ) -> tuple[list[_Send], Exception | None]:
        """Send built requests in order; those the server took, and the error that stopped it.

        More than one go in one request to the batch route: all or nothing,
        one transaction on the server, in the lane's order.
        """
        transport = self._s.transport
        if len(sends) > 1:
            try:
                await transport.send_batch(group_id, [s.item.payload for s in sends])
            except Exception as exc:
                return [], exc
            return sends, None
        for index, send in enumerate(sends):
            try:
                await transport.send(group_id, send.item.payload)
            except Exception as exc:
                return sends[:index], exc
        return sends, None

    # -- commits ------------------------------------------------------------------------------

    async def _commit(self, item: OutboxItem) -> bool:
        """Build, send and apply a commit; whether the lane goes on.

        No lock is held while the commit is on its way: the group's incoming
        messages, and every other conversation, go on meanwhile. A commit
        of someone else's that wins the epoch makes the server refuse this
        one (``stale_epoch``); it is then built again after catching up.
        """
        group_id = item.group_id
        assert group_id is not None
        reclaimed = False
        for _ in range(_MAX_STALE):
            send = _Send(item)
            async with self._epochs.lock(group_id):
                await self._build_commit(send)
            if send.state is SendState.DROPPED:
                await self._drop([send])
                return True
            if send.state is SendState.MOVED:
                return True
            if send.state in (SendState.FAILED, SendState.BACKOFF):
                return await self._failed([send], send.error)
            await self._hook(self._before_send)
            send.to(SendState.IN_FLIGHT)
            try:
                payload = send.item.payload
                await self._s.transport.commit(group_id, payload, sealed=_sealed_commit(payload))
            except Exception as exc:
                if not reclaimed and _is_unclaimed(exc) and await self._claim_again(send.item):
                    # The claims went stale: the add is built again from fresh ones.
                    reclaimed = True
                    self._epochs.release(item.id)
                    send.to(SendState.QUEUED)
                    continue
                if _is_unknown_group(exc) and not await self._out_of_step(
                    group_id, send.item.epoch
                ):
                    # Behind a removal: the server reads the state of a group
                    # sealed under its members' keys only with a token of an epoch
                    # since the last removal (docs/metadata.md §2), so the
                    # commit's token opened nothing, sealed or signed. Caught up,
                    # it is built again for the new epoch (or found moot).
                    self._epochs.release(item.id)
                    send.to(SendState.QUEUED)
                    continue
                if _is_unknown_group(exc):  # caught up, and the token still opens nothing
                    exc = await self._stuck(group_id)
                state = _answer_state(exc)
                send.to(state, exc)
                if state is not SendState.STALE:
                    if state is SendState.FAILED:
                        self._epochs.release(item.id)
                    return await self._failed([send], exc)
                self._epochs.release(item.id)
                if await self._out_of_step(group_id, send.item.epoch):
                    failure = await self._stuck(group_id)
                    send.to(SendState.FAILED, failure)
                    return await self._failed([send], failure)
                send.to(SendState.QUEUED)
                continue
            await self._hook(self._after_send)
            send.to(SendState.ACCEPTED)
            await self._accepted([send])
            return True
        self._epochs.release(item.id)
        stale = StaleEpochError(-1, "the group kept moving on")
        return await self._failed([_Send(item, SendState.BACKOFF)], stale)

    async def _claim_again(self, item: OutboxItem) -> bool:
        """Give an ``add`` refused for want of claim evidence fresh claims; whether it has them.

        The server keeps claim evidence for a week and dropped what it had
        when sealed commits came (server migration 12): an add that waited
        longer is claimed again for the same accounts (in the group's suite),
        not dropped.
        """
        intent = Intent.loads(item.intent)
        if self._reclaim is None or intent.op != "add" or item.group_id is None:
            return False
        try:
            accounts = sorted({key_package_member(kp)[1].account_id for kp in intent.key_packages})
            key_packages, claims = await self._reclaim(item.group_id, accounts)
        except Exception as exc:
            _log.warning("an add could not be claimed again (%s)", type(exc).__name__)
            return False
        fresh = dataclasses.replace(intent, key_packages=key_packages, claims=claims).dumps()
        await self._s.store.transaction(lambda s: s.outbox.set_intent(item.id, fresh))
        return True

    async def _inactive(self, group_id: bytes, group: Group | None, sends: list[_Send]) -> None:
        """Items of a group this client can no longer send to (the group's lock held).

        Items moved meanwhile to the group its conversation continues in
        (a ReInit, RFC 9420 §11.2) are that lane's now; the others wait for
        that move while the group's ReInit is merged and its successor not
        yet joined, and fail if the group was left.
        """
        ids = [s.item.id for s in sends]
        now = await self._s.store.run(lambda s: [s.outbox.get(i) for i in ids])
        moving = group is not None and not group.removed and group.pending_reinit is not None
        for send, item in zip(sends, now, strict=True):
            if item is None or item.group_id != group_id:
                send.to(SendState.MOVED)
            elif moving:
                send.to(SendState.BACKOFF, _MovingError("the conversation is moving"))
            else:
                send.to(SendState.FAILED, ServerRejectedError("not_a_member", "the group was left"))

    async def _build_commit(self, send: _Send) -> None:
        """The item's commit for the group's current epoch (the group's lock held)."""
        item = await self._s.store.run(lambda s: s.outbox.get(send.item.id))
        if item is None:
            send.to(SendState.DROPPED)
            return
        if item.group_id != send.item.group_id:
            send.to(SendState.MOVED)
            return
        send.item = item
        group_id = item.group_id
        assert group_id is not None
        group = await self._epochs.get(group_id)
        if group is None or not group.active:
            if group is not None and not group.removed and group.pending_reinit is not None:
                send.to(SendState.BACKOFF, _MovingError("the conversation is moving"))
            else:
                send.to(SendState.DROPPED)
            return
        if item.built and item.epoch == group.epoch and item.pending_state is not None:
            send.to(SendState.BUILT)  # an attempt whose answer was lost: the same request
            return
        intent = Intent.loads(item.intent)
        signer = self._s.transport.signer
        queue = None if signer is None else signer.queue
        if intent.op == "move" and self._s.account.delivery_address is None:
            send.to(SendState.BACKOFF, _NoAddressError("no address of the queue yet"))
            return
        try:
            result = await self._s.mls(
                _make_commit,
                group,
                intent,
                self._s.random,
                self._s.now_s(),
                self._s.account.delivery_address,
                own_token(self._s.account),
            )
        except (InvalidMessageError, UsageError) as exc:
            self._epochs.evict(group_id)
            send.to(SendState.FAILED, exc)
            return
        except BaseException:  # cancelled: the state may have moved on, unsaved
            self._epochs.evict(group_id)
            raise
        if result is None:
            send.to(SendState.DROPPED)
            return
        contact = self._s.contact
        # A move is made only for a group joined by the contact queue, so the
        # address the leaf leaves is the contact queue's (of whichever session).
        leaving = (
            contact
            if queue is not None
            and contact is not None
            and result.moved_to is not None
            and result.moved_from is not None
            else None
        )
        request = m.CommitRequest(
            epoch=group.epoch,
            commit=result.message,
            members=result.queues,
            welcome=result.welcome if result.welcome_to else None,
            welcome_to=result.welcome_to or None,
            group_info=result.group_info,
            idempotency_key=item.idempotency_key,
            # The new epoch's token and its digest: the server registers the digest
            # and seals the group's state under keys from the token (docs/metadata.md §2).
            send_token_hash=None if result.next_token is None else token_digest(result.next_token),
            token=result.token,
            claims=intent.claims or None,
            next_token=result.next_token,
            # A move adds this client's own queue, which nobody claimed: its key
            # proves it, over this commit (docs/metadata.md §1).
            join_queue=None if queue is None else result.moved_to,
            join_proof=None
            if queue is None or result.moved_to is None
            else queue.join_proof(group_id, group.epoch, result.message),
            # The contact queue it leaves, proved by its key: the server then
            # does not take its going for a member's removal.
            leave_queue=None if leaving is None else result.moved_from,
            leave_proof=None
            if leaving is None
            else leaving.leave_proof(group_id, group.epoch, result.message),
        )
        # A commit adding many members carries a large Welcome: encoded off the loop.
        payload = await self._s.mls(request.dumps)
        epoch, digest = group.epoch, message_digest(result.message)
        now = self._s.now_ms()

        def write(store: Store) -> OutboxItem | None:
            store.groups.save(group_id, epoch, result.state, now=now)
            store.outbox.set_built(
                item.id,
                payload=payload,
                epoch=epoch,
                message_hash=digest,
                pending_state=result.new_state,
            )
            store.sent_messages.add(digest, group_id, now=now)
            return store.outbox.get(item.id)

        try:
            built = await self._s.store.transaction(write)
        except BaseException:
            self._epochs.evict(group_id)
            raise
        assert built is not None
        self._epochs.hold(item.id, result.staged)
        send.item = built
        send.to(SendState.BUILT)

    async def _commit_item_for(self, group_id: bytes) -> OutboxItem:
        """The queued commit of the group's pending proposals (made if there is none)."""
        now = self._s.now_ms()
        intent = Intent("commit_pending").dumps()

        def find_or_make(store: Store) -> OutboxItem:
            for other in store.outbox.for_group(group_id):
                if other.kind is OutboxKind.COMMIT:
                    return other
            return store.outbox.enqueue(
                OutboxKind.COMMIT, b"", now=now, group_id=group_id, intent=intent
            )

        return await self._s.store.transaction(find_or_make)

    # -- outcomes -----------------------------------------------------------------------------

    @staticmethod
    async def _hook(hook: SendHook | None) -> None:
        if hook is not None:
            await hook()

    async def _accepted(self, sends: list[_Send]) -> None:
        """The server took these items: apply them (one transaction for a batch of messages)."""
        first = sends[0].item
        group_id = first.group_id
        if (
            group_id is None
            or first.kind is OutboxKind.CREATE_GROUP
            or (first.kind is OutboxKind.MESSAGE and not _is_leave(first))
        ):
            ids = [s.item.id for s in sends]
            me = self._s.account.account_id

            def write(store: Store) -> list[Event]:
                return with_views(store, apply_sent(store, ids), me)

            # The server has them: a lost commit here only means the items are sent
            # again, and answered from their idempotency keys (see local_transaction).
            self._s.events.publish(*await self._s.store.local_transaction(write))
            return
        async with self._epochs.lock(group_id):
            moved = await self._epochs.accept(first, finish=lambda store: None)
            if moved:
                await self._pipeline.retry_pending_locked(group_id)

    async def _register_send_token(
        self, group_id: bytes, epoch: int | None
    ) -> _TokenOutcome | Exception:
        """After ``unknown_group`` on a sealed send: register the epoch's token; the error left.

        The server answers a token that is not the current epoch's as it
        answers a stranger, so the client first catches up (the group may
        have moved on), then registers the digest of its epoch's token
        (signed, members only; a digest already set is never replaced).
        A :class:`_TokenOutcome`: send again (built again if the group moved
        on). Otherwise the error that stands: the group's ``unknown_group``
        (not a member), or ``stale_epoch`` to catch up.
        """
        await self._pipeline.catch_up()
        async with self._epochs.lock(group_id):
            group = await self._epochs.get(group_id)
            if group is not None and not group.removed and group.pending_reinit is not None:
                # Caught up to a ReInit (RFC 9420 §11.2): the items wait for the
                # new group and move there (_inactive), as for any send.
                return _MovingError("the conversation is moving")
            if group is None or not group.active:
                return ServerRejectedError("not_a_member", "the group was left")
            if group.epoch != epoch:
                return _TokenOutcome.MOVED_ON  # build again for the new epoch
            current, digest = group.epoch, await self._s.mls(send_token_hash, group)
        try:
            await self._s.transport.register_send_token(group_id, current, digest)
        except ServerRejectedError as exc:
            if exc.code != "key_in_use":
                return exc
            # Another member registered a digest that is not this epoch's
            # token: a new epoch (a commit with a path) brings a fresh one.
            _log.warning("a wrong send token is registered for a group; moving to a new epoch")
            if await self._commit(await self._rotate_item_for(group_id)):
                return _TokenOutcome.REGISTERED
            return _RotatingError("the group's commit to a new epoch waits to be retried")
        except Exception as exc:
            return exc
        return _TokenOutcome.REGISTERED

    async def _rotate_item_for(self, group_id: bytes) -> OutboxItem:
        """A queued commit that moves the group to a new epoch (made if there is none)."""
        now = self._s.now_ms()
        return await self._s.store.transaction(lambda s: queue_rotate(s, group_id, now))

    async def _stuck(self, group_id: bytes) -> _OutOfStepError:
        """Caught up, the server still refuses the group's epoch: it cannot go on
        here (:mod:`..group_restart`); the error its items fail with."""
        await mark_stuck(self._s, group_id)
        return _OutOfStepError(
            "out_of_step", "the server's epoch is not ours, and catching up changed nothing"
        )

    async def _out_of_step(self, group_id: bytes, epoch: int | None) -> bool:
        """After ``stale_epoch``: catch up (the queue has the winning commit).

        The server queues a commit in the same transaction that accepts it,
        so after a full catch-up the group is at the server's epoch -- unless
        it cannot get there (a commit it could not process, or a server that
        is behind): then it never will, and the item fails instead of being
        retried forever.
        """
        await self._pipeline.catch_up()
        async with self._epochs.lock(group_id):
            group = await self._epochs.get(group_id)
            at = None if group is None or not group.active else group.epoch
        return at is not None and at == epoch

    async def _drop(self, sends: list[_Send]) -> None:
        if sends:
            ids = [s.item.id for s in sends]
            await self._s.store.transaction(lambda s: [s.outbox.remove(i) for i in ids])

    async def _failed(self, sends: list[_Send], error: Exception | None) -> bool:
        """Items that failed: wait and retry (False: the lane stops), or give them up (True)."""
        assert error is not None
        if all(s.state is SendState.BACKOFF for s in sends):
            await self._retry_later(sends[0].item, error)
            return False
        for send in sends:
            await self._give_up(send.item, error)
        return True

    async def _retry_later(self, item: OutboxItem, exc: Exception) -> None:
        """A transient failure: the item (and its lane) waits, backing off per item.

        A copy the server says was replaced by a restored one stops sending
        for good, its items kept queued as they are (nothing was stored).
        """
        if isinstance(exc, DeviceReplacedError):
            if self._replaced is None:
                _log.warning("this copy was replaced by a restored one; the outbox stops")
            self._replaced = exc
            self._wake.set()
            return
        attempts = item.attempts
        delay = self._backoff.delay(attempts)
        if isinstance(exc, RateLimitedError):
            delay = max(delay, exc.retry_after)
        due = self._s.now_ms() + int(delay * 1000)
        _log.info("send failed (%s); retrying in %.1f s", type(exc).__name__, delay)
        await self._s.store.run(
            lambda s: s.outbox.record_failure(item.id, error=str(exc), next_attempt_at=due)
        )

    async def _give_up(self, item: OutboxItem, exc: Exception) -> None:
        """The server or MLS refused the item for good: drop it, tell the UI.

        A self-update (``rotate``, ``move``) is never the user's doing (the weekly
        update, a leaf's new address, a wrong send token, the move from the
        contact queue): it is dropped with a log line only, and the next one is
        queued when due (:mod:`.leaf_rotation`).
        """
        _log.warning("send refused (%s): %s", type(exc).__name__, exc)
        user_message = getattr(exc, "user_message", "A change could not be sent.")
        message_id = item.message_id
        group_id = item.group_id
        me = self._s.account.account_id
        quiet = (
            item.kind is OutboxKind.COMMIT
            and item.intent is not None
            and Intent.loads(item.intent).op in ("rotate", "move")
        )

        def write(store: Store) -> list[Event]:
            store.outbox.remove(item.id)
            conversation = None if group_id is None else store.conversations.by_group(group_id)
            events: list[Event] = []
            if not quiet:
                events.append(
                    OperationFailed(None if conversation is None else conversation.id, user_message)
                )
            if message_id is not None and store.messages.set_status(
                message_id, MessageStatus.FAILED
            ):
                message = store.messages.get(message_id)
                assert message is not None
                events.append(
                    MessageStatusChanged(message.conversation_id, message_id, MessageStatus.FAILED)
                )
            return with_views(store, events, me)

        events = await self._s.store.transaction(write)
        self._s.events.publish(*events)

    async def wait_idle(self) -> None:
        """Until the outbox is empty (for the command line and tests).

        DeviceReplacedError once this copy was replaced: it will never be.
        """
        while True:
            empty = await self._s.store.run(lambda s: s.outbox.count() == 0)
            if empty:
                return
            if self._replaced is not None:
                raise self._replaced
            self.wake()
            await asyncio.sleep(0.05)
