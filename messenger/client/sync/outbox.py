"""The outbox sender: delivers queued sends in order, until the server accepts.

Every send is first an outbox row (:mod:`..store.outbox`), written in the
same transaction as its local effect (the message row, the reaction...).
The items of one group (one conversation) form a *lane*: a lane's items go
out in order -- a later message waits for the earlier one -- while lanes
progress side by side, each in a task of its own, so that a conversation
whose sends keep failing never delays another conversation's. A lane's
head, once due, is sent like this:

1. **builds** its MLS message in the group's current epoch, if it is not
   built yet or was built for an older epoch: encrypts the content
   (RFC 9420 §6.3), makes the proposal, or makes the commit from its
   intent (:mod:`.intents`). The request, the advanced group state (a
   PrivateMessage consumes a generation of the sender's ratchet, RFC 9420
   §9.1), the message hash and, for a commit, the group state once it is
   accepted, are written in one transaction before anything is sent;
2. **sends** it with the item's idempotency key, so that a retry after a
   lost answer or a crash is answered by the server without a second
   delivery (docs/server.md, "Retries");
3. on success **applies** it (:meth:`InboundPipeline.apply_accepted_locked`):
   a commit's new epoch is persisted, then merged; the item is removed;
4. on ``stale_epoch`` **catches up** (fetch and process the queue, which
   holds the winning commit), and goes back to 1 for the new epoch
   (RFC 9750 §5.2). If catching up does not move the group, it never will
   (the server's group went where this client cannot follow, e.g. a commit
   that does not process): the item fails for good;
5. on a transient failure (unreachable, 5xx, rate limited) records it and
   the lane waits: per item, exponential backoff with a cap, with jitter
   from :mod:`secrets`; on a refusal (a typed permanent error: not a
   member, unknown group, out of step...) it gives the item up, marks its
   message failed and tells the UI (:class:`~..events.OperationFailed`),
   and the lane goes on with its next item.

Commits are built and sent holding the group's lock
(:meth:`Session.group_lock`), so no commit of another member is merged in
between; other conversations -- their lanes and their incoming messages --
do not wait for it. Messages are built under the lock and sent without it.
Building (encrypting, committing, saving the state) runs in the client's
MLS thread (:meth:`Session.mls`), off the event loop. An application message cannot be
encrypted while proposals are pending (RFC 9420 §12.4); the sender then
commits them first.

Test hooks: ``before_send`` and ``after_send`` (:data:`SendHook`, given to
the constructor) are awaited just before a built request goes out and just
after the server accepted it (before it is applied), so that a test can
stop the sender there -- e.g. pause for good and kill the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

from messenger.api import models as m
from messenger.mls.ciphersuite import RandomSource
from messenger.mls.errors import InvalidMessageError, UsageError
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint
from messenger.mls.messages import message_digest

from ..errors import (
    GroupExistsError,
    NetworkError,
    RateLimitedError,
    ServerRejectedError,
    StaleEpochError,
)
from ..events import Event, MessageStatusChanged, OperationFailed
from ..groups import GroupCache, group_members
from ..net.backoff import Backoff
from ..session import Session
from ..store.messages import MessageStatus
from ..store.outbox import OutboxItem, OutboxKind
from ..store.store import Store
from .inbound import InboundPipeline
from .intents import Intent, build_commit

__all__ = ["OutboxSender", "SendHook"]

_log = logging.getLogger(__name__)

#: A test hook awaited at a point of a send (see the module docstring).
SendHook = Callable[[], Awaitable[None]]
#: Stale answers in a row before an attempt counts as failed.
_MAX_STALE: Final = 5


def _secure_fraction() -> float:
    """A uniform float in [0, 1) from the OS's CSPRNG, for backoff jitter."""
    return secrets.randbits(53) / (1 << 53)


def _remove(store: Store, item_id: int) -> bool:
    return store.outbox.remove(item_id)


@dataclasses.dataclass(frozen=True, slots=True)
class _BuiltCommit:
    """A commit built in the MLS thread, with what the request needs."""

    message: bytes
    welcome: bytes | None
    group_info: bytes | None
    state: bytes
    new_state: bytes
    queues: tuple[str, ...]
    welcome_to: tuple[str, ...]


def _make_commit(
    cache: GroupCache, group: Group, intent: Intent, random: RandomSource, now: int
) -> _BuiltCommit | None:
    """Build the commit of ``intent`` and the queue sets (in the MLS thread)."""
    result = build_commit(group, intent, random, now=now)
    if result is None:
        return None
    new_state = group.to_bytes(result.staged)
    after = cache.load(new_state)
    before = {(x.account_id, x.client_id) for x in group_members(group)}
    members = group_members(after)
    queues = sorted({x.queue_id for x in members if x.queue_id})
    welcome_to = sorted(
        {x.queue_id for x in members if x.queue_id and (x.account_id, x.client_id) not in before}
    )
    return _BuiltCommit(
        result.message,
        result.welcome,
        result.group_info,
        group.to_bytes(),
        new_state,
        tuple(queues),
        tuple(welcome_to),
    )


def _encrypt(group: Group, content: bytes, random: RandomSource) -> tuple[bytes, GroupCheckpoint]:
    """An application message and the state after it (in the MLS thread).

    The checkpoint holds only this member's changed ratchet, not the group.
    """
    data = group.encrypt(content, random)
    return data, group.checkpoint()


def _propose_leave(group: Group, random: RandomSource) -> tuple[bytes, GroupCheckpoint]:
    """A proposal to remove this member and the state after it (in the MLS thread)."""
    data = group.propose_remove(group.leaf_index, random)
    return data, group.checkpoint()


class _Dropped(Exception):
    """The item has nothing left to do (already applied, or moot)."""


class _NeedsCommit(Exception):
    """Proposals are pending in the group: commit them before encrypting."""


class _OutOfStepError(ServerRejectedError):
    """The server's epoch is not ours, and catching up does not change that.

    Nothing this client can send to the group will be accepted again: a
    permanent failure of the item (until the group is rejoined).
    """

    default_user_message = (
        "This conversation is out of step with the server, so the message could not be sent."
    )


class OutboxSender:
    """Sends the outbox: each lane (group) in order, lanes independently."""

    def __init__(
        self,
        session: Session,
        pipeline: InboundPipeline,
        *,
        backoff: Backoff | None = None,
        before_send: SendHook | None = None,
        after_send: SendHook | None = None,
    ) -> None:
        self._s = session
        self._before_send = before_send
        self._after_send = after_send
        self._pipeline = pipeline
        chosen = backoff or Backoff(base=0.5, maximum=30.0)
        # Retries of different clients must not fall into step, and their
        # timing should tell an observer nothing: jitter from the CSPRNG.
        self._backoff = dataclasses.replace(chosen, random=_secure_fraction)
        self._wake = asyncio.Event()
        self._lanes: dict[bytes | None, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """Look at the outbox now (a new item, or the network is back)."""
        self._wake.set()

    async def run(self) -> None:
        """Send forever: whenever woken, and when the next retry is due."""
        try:
            while True:
                self._wake.clear()
                due = await self._start_lanes()
                timeout = None if due is None else max(0.0, (due - self._s.now_ms()) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
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
        return bool(await self._s.store.run(lambda s: s.outbox.count() == 0))

    # -- lanes ------------------------------------------------------------------------------

    async def _start_lanes(self) -> int | None:
        """Start a task for each idle lane whose head is due; when the next idle one is due."""
        heads = await self._s.store.run(lambda s: s.outbox.lane_heads())
        now = self._s.now_ms()
        next_due: int | None = None
        for lane, due in heads:
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
        self._wake.set()  # the lane may have new items, or a new due time

    async def _stop_lanes(self) -> None:
        tasks = list(self._lanes.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._lanes.clear()

    async def _run_lane(self, lane: bytes | None) -> None:
        """Send a lane's items in order while they are due; stop at a transient failure."""
        while True:
            item = await self._s.store.run(lambda s: s.outbox.head(lane))
            if item is None or item.next_attempt_at > self._s.now_ms():
                return
            try:
                delivered = await self._deliver(item)
            except Exception as exc:  # a bug, or the store failing: retry later, not at once
                _log.exception("sending an outbox item failed")
                await self._retry_later(item, exc)
                return
            if not delivered:
                return

    # -- one item ---------------------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> bool:
        """Deliver one item; False after a transient failure (retry later)."""
        try:
            if item.kind is OutboxKind.CREATE_GROUP:
                await self._create_group(item)
            elif item.kind is OutboxKind.COMMIT:
                await self._send_commit(item)
            else:
                await self._send_message(item)
        except _Dropped:
            await self._s.store.run(_remove, item.id)
        except (ServerRejectedError, InvalidMessageError, UsageError) as exc:
            await self._give_up(item, exc)
        except (NetworkError, StaleEpochError) as exc:
            await self._retry_later(item, exc)
            return False
        return True

    async def _create_group(self, item: OutboxItem) -> None:
        assert item.group_id is not None
        with contextlib.suppress(GroupExistsError):  # an earlier attempt got through
            await self._s.transport.create_group(item.payload)
        async with self._s.group_lock(item.group_id):
            await self._pipeline.apply_accepted_locked(item)

    async def _send_message(self, item: OutboxItem) -> None:
        group_id = item.group_id
        assert group_id is not None
        for _ in range(_MAX_STALE):
            commit = None
            async with self._s.group_lock(group_id):
                try:
                    built = await self._build_message(item)
                except _NeedsCommit:
                    commit = await self._commit_item_for(group_id)
            if commit is not None:
                try:
                    await self._send_commit(commit)
                except _Dropped:
                    await self._s.store.run(_remove, commit.id)
                continue
            await self._hook(self._before_send)
            try:
                await self._s.transport.send(group_id, built.payload)
            except StaleEpochError:
                await self._catch_up_after_stale(group_id, built.epoch)
                continue
            await self._hook(self._after_send)
            async with self._s.group_lock(group_id):
                await self._pipeline.apply_accepted_locked(built)
            return
        raise StaleEpochError(-1, "the group kept moving on")

    async def _send_commit(self, item: OutboxItem) -> None:
        group_id = item.group_id
        assert group_id is not None
        for _ in range(_MAX_STALE):
            stale = False
            # Held across the round trip: no other commit of this group may be merged
            # meanwhile. Only this conversation waits (other groups have locks of their own).
            async with self._s.group_lock(group_id):
                built = await self._build_commit(item)
                built_epoch = built.epoch
                await self._hook(self._before_send)
                try:
                    await self._s.transport.commit(group_id, built.payload)
                except StaleEpochError:
                    stale = True
                else:
                    await self._hook(self._after_send)
                    await self._pipeline.apply_accepted_locked(built)
                    return
            if stale:
                await self._catch_up_after_stale(group_id, built_epoch)
        raise StaleEpochError(-1, "the group kept moving on")

    @staticmethod
    async def _hook(hook: SendHook | None) -> None:
        if hook is not None:
            await hook()

    async def _catch_up_after_stale(self, group_id: bytes, epoch: int | None) -> None:
        """The server holds another epoch: process the queue (it has the commits).

        The server queues a commit in the same transaction that accepts it,
        so after a full catch-up the group is at the server's epoch -- unless
        it cannot get there (a commit it could not process, or a server that
        is behind): then it never will, and :class:`_OutOfStepError` ends the
        item instead of retrying it forever.
        """
        await self._pipeline.catch_up()
        async with self._s.group_lock(group_id):
            group = await self._s.groups.get(group_id)
            at = None if group is None or not group.active else group.epoch
        if at is not None and at == epoch:
            raise _OutOfStepError(
                "out_of_step", "the server's epoch is not ours, and catching up changed nothing"
            )

    # -- building ---------------------------------------------------------------------------

    async def _current(self, item: OutboxItem) -> OutboxItem:
        current = await self._s.store.run(lambda s: s.outbox.get(item.id))
        if current is None:
            raise _Dropped
        return current

    async def _build_message(self, item: OutboxItem) -> OutboxItem:
        """The item, built for the group's current epoch (the group's lock held)."""
        item = await self._current(item)
        assert item.group_id is not None
        group = await self._s.groups.get(item.group_id)
        if group is None or not group.active:
            raise ServerRejectedError("not_a_member", "the group was left")
        if item.built and item.epoch == group.epoch:
            return item
        intent = Intent.loads(item.intent)
        random = self._s.random
        try:
            if intent.op == "leave":
                data, state = await self._s.mls(_propose_leave, group, random)
            else:
                if group.pending_proposals():
                    raise _NeedsCommit
                if item.content is None:
                    raise _Dropped
                data, state = await self._s.mls(_encrypt, group, item.content, random)
        except asyncio.CancelledError:  # the state may have moved on, unsaved
            self._s.groups.evict(item.group_id)
            raise
        payload = m.SendRequest(data, item.idempotency_key).dumps()
        return await self._save_built(item, state, group.epoch, payload, data, None)

    async def _build_commit(self, item: OutboxItem) -> OutboxItem:
        """The item's commit for the group's current epoch (the group's lock held)."""
        item = await self._current(item)
        assert item.group_id is not None
        group = await self._s.groups.get(item.group_id)
        if group is None or not group.active:
            raise _Dropped
        if item.built and item.epoch == group.epoch and item.pending_state is not None:
            return item
        intent = Intent.loads(item.intent)
        try:
            result = await self._s.mls(
                _make_commit, self._s.groups, group, intent, self._s.random, self._s.now_s()
            )
        except asyncio.CancelledError:  # the state may have moved on, unsaved
            self._s.groups.evict(item.group_id)
            raise
        if result is None:
            raise _Dropped
        request = m.CommitRequest(
            epoch=group.epoch,
            commit=result.message,
            members=result.queues,
            welcome=result.welcome if result.welcome_to else None,
            welcome_to=result.welcome_to or None,
            group_info=result.group_info,
            idempotency_key=item.idempotency_key,
        )
        return await self._save_built(
            item, result.state, group.epoch, request.dumps(), result.message, result.new_state
        )

    async def _save_built(
        self,
        item: OutboxItem,
        state: bytes | GroupCheckpoint,
        epoch: int,
        payload: bytes,
        message: bytes,
        pending_state: bytes | None,
    ) -> OutboxItem:
        """Persist a built request with the group state it advanced (one transaction)."""
        assert item.group_id is not None
        group_id = item.group_id
        digest = message_digest(message)
        now = self._s.now_ms()

        def write(store: Store) -> OutboxItem | None:
            store.groups.save(group_id, epoch, state, now=now)
            store.outbox.set_built(
                item.id,
                payload=payload,
                epoch=epoch,
                message_hash=digest,
                pending_state=pending_state,
            )
            store.sent_messages.add(digest, group_id, now=now)
            return store.outbox.get(item.id)

        try:
            built = await self._s.store.transaction(write)
        except BaseException:
            self._s.groups.evict(group_id)
            raise
        assert built is not None
        return built

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

    # -- failures ---------------------------------------------------------------------------

    async def _retry_later(self, item: OutboxItem, exc: Exception) -> None:
        """A transient failure: the item (and its lane) waits, backing off per item."""
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
        """The server or MLS refused the item for good: drop it, tell the UI."""
        _log.warning("send refused (%s): %s", type(exc).__name__, exc)
        user_message = getattr(exc, "user_message", "A change could not be sent.")
        message_id = item.message_id
        group_id = item.group_id

        def write(store: Store) -> list[Event]:
            store.outbox.remove(item.id)
            conversation = None if group_id is None else store.conversations.by_group(group_id)
            events: list[Event] = [
                OperationFailed(None if conversation is None else conversation.id, user_message)
            ]
            if message_id is not None and store.messages.set_status(
                message_id, MessageStatus.FAILED
            ):
                message = store.messages.get(message_id)
                assert message is not None
                events.append(
                    MessageStatusChanged(message.conversation_id, message_id, MessageStatus.FAILED)
                )
            return events

        events = await self._s.store.transaction(write)
        self._s.events.publish(*events)

    async def wait_idle(self) -> None:
        """Until the outbox is empty (for the command line and tests)."""
        while True:
            empty = await self._s.store.run(lambda s: s.outbox.count() == 0)
            if empty:
                return
            self.wake()
            await asyncio.sleep(0.05)
