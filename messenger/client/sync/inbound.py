"""The inbound pipeline: decode, route, process, persist, then ack.

Each message of this client's queue (docs/server.md, "Queues") goes
through, in queue order:

1. **decode** the ``MLSMessage`` (RFC 9420 §6); bytes that do not decode
   are skipped;
2. **route**: a Welcome finds the KeyPackage it was made for (RFC 9420
   §12.4.3.1); a group message finds its group. The server echoes this
   client's own messages back (docs/threat-model.md): they are recognised
   by their hash (:mod:`..store.sent_messages`) -- an echoed commit of this
   client's that is still in the outbox proves the server accepted it. A
   message for an epoch not reached yet, or for a group not joined yet, is
   kept (:mod:`..store.pending_inbound`, within its limits: anyone who can
   reach the queue can send such messages) and offered again after the next
   commit or Welcome of that group; a handshake of a past epoch is stale and
   skipped. A Welcome for a group ID this client already has -- joined,
   left or removed from -- is dropped (RFC 9420 §12.4.3.1): a known group
   moves on only by its commits, processed in order;
3. **MLS process** (:meth:`Group.process`): an application message, a
   proposal, or a staged commit;
4. **persist** the new group state (for a commit, the state *after* it:
   ``Group.to_bytes(staged)``), what the message changes in the timeline
   (:mod:`.effects`) and the queue cursor, in **one** store transaction;
5. **merge** in memory, publish the events; the caller then **acks** the
   server up to the cursor.

A crash at any point leaves the store consistent with some prefix of the
queue; what was not acked is fetched again and skipped by the cursor.
Messages that fail MLS validation are the sender's fault (RFC 9420 §6.3:
they change nothing) and are skipped.

Queue messages are processed one at a time, in order (the pipeline's
queue lock); each under the lock of its group (:meth:`Session.group_lock`),
which no one holds across a network call except the outbox while the
group's own commit is on its way. The MLS work (processing, joining,
loading and saving states) runs in the client's MLS thread
(:meth:`Session.mls`), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Final

from messenger.api.models import MAX_FETCH, QueueMessage
from messenger.mls.content import ContentType, PrivateMessage, PublicMessage
from messenger.mls.errors import InvalidMessageError, MLSError
from messenger.mls.events import ApplicationMessage, ProposalReceived, StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint
from messenger.mls.key_package_bundle import KeyPackageBundle
from messenger.mls.messages import MLSMessage, message_digest
from messenger.mls.proposals import Remove
from messenger.mls.welcome import Welcome

from ..content import Content, decode_content
from ..errors import ContentDecodeError
from ..events import ConversationUpdated, Event, MessageStatusChanged
from ..groups import (
    GROUP_CONFIG,
    ConversationInfo,
    GroupCache,
    GroupMember,
    WelcomeHeader,
    group_members,
    member_at,
    open_welcome,
)
from ..identity import Account, member_identity
from ..models import with_views
from ..session import Session
from ..store.conversations import ConversationKind
from ..store.key_packages import KeyPackageSecret
from ..store.messages import MessageStatus, Note, NoteKind
from ..store.outbox import OutboxItem, OutboxKind
from ..store.pending_inbound import (
    DEFAULT_PENDING_LIMITS,
    PendingAdmission,
    PendingInbound,
    PendingLimits,
)
from ..store.store import Store
from .effects import Actor, apply_content, apply_joined, apply_transition, system_note
from .intents import Intent

__all__ = ["CURSOR_KEY", "InboundPipeline"]

_log = logging.getLogger(__name__)

#: The settings key of the last processed queue sequence number.
CURSOR_KEY: Final = "sync.cursor"
#: Hashes of sent messages whose echo never came are forgotten after this.
SENT_HASH_TTL_MS: Final = 7 * 86_400_000
#: Refused pending messages are logged at most this often (a flood must not fill the log).
DROP_LOG_INTERVAL_S: Final = 60.0
#: Messages fetched per page when catching up: parsed on the event loop, a page of
#: MAX_FETCH (1,000) stalls it for about 25 ms, 200 for about 10 (a page larger than
#: ``net.http.PARSE_OFF_LOOP_BYTES`` is parsed in a thread instead).
CATCH_UP_PAGE: Final = min(200, MAX_FETCH)
#: A queue message larger than this is decoded in the MLS thread, not on the loop:
#: a Welcome to a 1,000-member group (~470 KB) takes about 4 ms to decode.
DECODE_OFF_LOOP_BYTES: Final = 64 * 1024
#: Why a message was not kept for later, for the log (no content, no IDs).
_REFUSED: Final = {
    PendingAdmission.GROUP_FULL: "its group has the most messages kept that a group may have",
    PendingAdmission.UNKNOWN_FULL: "groups not joined have the most messages kept they may have",
    PendingAdmission.TOTAL_FULL: "the most messages that may wait are waiting",
}


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


def _epochs(
    cache: GroupCache, group: Group, new_state: bytes
) -> tuple[Group, list[GroupMember], list[GroupMember]]:
    """The group after a commit, the members before and after (in the MLS thread)."""
    after = cache.load(new_state)
    return after, group_members(group), ([] if after.removed else group_members(after))


def _join(
    data: bytes, bundle: KeyPackageBundle, account: Account, signer: int, now: int
) -> tuple[Group, list[GroupMember], GroupMember | None, GroupCheckpoint]:
    """Join from a Welcome: the group, its members, the adder, its state (in the MLS thread)."""
    group = Group.join_from_welcome(
        data, bundle, config=GROUP_CONFIG, identity=account.verifier, now=now
    )
    return group, group_members(group), member_at(group, signer), group.checkpoint()


def _leavers(group: Group) -> frozenset[str]:
    """Accounts whose member proposed its own removal in this epoch (RFC 9420 §12.1.3)."""
    return _leavers_of(group.pending_proposals())


def _leavers_of(proposals: Sequence[ProposalReceived]) -> frozenset[str]:
    found = set()
    for proposal in proposals:
        body = proposal.proposal.body
        member = proposal.member
        if isinstance(body, Remove) and member is not None and body.removed == member.leaf_index:
            who = member_identity(member.credential)
            if who is not None:
                found.add(who.account_id)
    return frozenset(found)


class InboundPipeline:
    """Processes this client's queue, in order, exactly once each."""

    def __init__(
        self,
        session: Session,
        *,
        wake_outbox: Callable[[], None] = lambda: None,
        key_package_used: Callable[[], None] = lambda: None,
        pending_limits: PendingLimits = DEFAULT_PENDING_LIMITS,
    ) -> None:
        self._s = session
        self._limits = pending_limits
        self._wake_outbox = wake_outbox
        self._key_package_used = key_package_used
        self._cursor: int | None = None
        self._queue_lock = asyncio.Lock()
        self._retrying: set[bytes] = set()
        self._dropped: dict[PendingAdmission, int] = {}
        self._dropped_logged_at = float("-inf")
        account = session.account
        self._me = Actor(account.account_id, account.client_id, session.new_uid)

    # -- the cursor -------------------------------------------------------------------

    async def cursor(self) -> int:
        """The last queue sequence number processed."""
        if self._cursor is None:
            self._cursor = await self._s.store.run(lambda s: s.settings.get_int(CURSOR_KEY, 0))
        return self._cursor

    def _finish(self, store: Store, seq: int | None, pending: PendingInbound | None) -> None:
        """Inside the transaction: move the cursor past ``seq`` or drop ``pending``."""
        if pending is not None:
            store.pending_inbound.remove(pending.id)
        elif seq is not None and seq > store.settings.get_int(CURSOR_KEY, 0):
            store.settings.set(CURSOR_KEY, seq)

    def _advanced(self, seq: int | None, pending: PendingInbound | None) -> None:
        """After the transaction: remember the cursor."""
        if pending is None and seq is not None and self._cursor is not None:
            self._cursor = max(self._cursor, seq)

    # -- entry points ---------------------------------------------------------------------

    async def process(self, messages: Sequence[QueueMessage]) -> int:
        """Process a batch from the queue (already processed ones are skipped); the cursor."""
        for message in messages:
            async with self._queue_lock:
                if message.seq <= await self.cursor():
                    continue
                await self._process_one(message.seq, message.data)
        return await self.cursor()

    async def _process_one(self, seq: int, data: bytes) -> None:
        """One queue message (queue lock held), under its group's lock."""
        try:
            decoded = await self._decode(data)
        except InvalidMessageError as exc:
            await self._skip(seq, None, f"undecodable message: {exc}")
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
        """Fetch and process everything after the cursor, then ack; the cursor."""
        while True:
            page = await self._s.transport.fetch(await self.cursor(), limit=CATCH_UP_PAGE)
            cursor = await self.process(page.messages)
            if page.messages:
                await self._s.transport.ack(cursor)
            if not page.more:
                return cursor

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
            group_id, epoch = body.group_id, body.epoch
            application = body.content_type == ContentType.APPLICATION
        elif isinstance(body, PublicMessage):
            group_id, epoch = body.content.group_id, body.content.epoch
            application = body.content.content_type == ContentType.APPLICATION
        else:
            await self._skip(seq, pending, f"a {type(body).__name__} in the queue")
            return True
        digest = message_digest(data)
        if await self._s.store.run(lambda s: s.sent_messages.contains(digest)):
            await self._own_echo(seq, digest, pending)
            return True
        group = await self._s.groups.get(group_id)
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
            self._s.groups.evict(group_id)
            await self._skip(seq, pending, f"MLS refused the message: {exc}")
            return True
        except BaseException:  # cancelled: the state may have moved on, unsaved
            self._s.groups.evict(group_id)
            raise
        try:
            if isinstance(event, ApplicationMessage):
                await self._application(seq, pending, group, event)
            elif isinstance(event, ProposalReceived):
                await self._proposal(seq, pending, group, event)
            else:
                await self._commit(seq, pending, group, event)
        except BaseException:
            self._s.groups.evict(group_id)  # the store has the state before this message
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

    @staticmethod
    def _announce(store: Store, group_id: bytes, profile: bytes | None, now: int) -> None:
        """Queue this user's profile name for the group's members."""
        if profile is not None:
            store.outbox.enqueue(
                OutboxKind.MESSAGE, b"", now=now, group_id=group_id, content=profile
            )

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
        """This client's own message came back: the server has it."""
        item = await self._s.store.run(lambda s: s.outbox.by_message_hash(digest))
        if item is not None:
            await self.apply_accepted_locked(item, seq=seq, pending=pending)

        def write(store: Store) -> None:
            store.sent_messages.remove(digest)
            self._finish(store, seq, pending)

        await self._s.store.transaction(write)
        self._advanced(seq, pending)

    # -- MLS events -------------------------------------------------------------------------

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

    async def _proposal(
        self,
        seq: int | None,
        pending: PendingInbound | None,
        group: Group,
        event: ProposalReceived,
    ) -> None:
        """A proposal: cache it, and queue a commit of it.

        A member leaving proposes its own removal (RFC 9420 §12.1.3). A
        commit built before the proposal arrived would not cover it, and the
        proposal would die with the epoch; so a leave is queued as a removal
        of the leaver, which is moot once anyone has committed the proposal.
        """
        group_id, epoch, state = group.group_id, group.epoch, await self._s.mls(group.to_bytes)
        now = self._s.now_ms()
        leaver = _leavers_of([event])
        if leaver:
            intent = Intent("remove", accounts=tuple(sorted(leaver))).dumps()
        else:
            intent = Intent("commit_pending").dumps()

        def write(store: Store) -> None:
            store.groups.save(group_id, epoch, state, now=now)
            queued = any(
                i.kind is OutboxKind.COMMIT and not i.built and i.intent == intent
                for i in store.outbox.for_group(group_id)
            )
            if not queued:
                store.outbox.enqueue(
                    OutboxKind.COMMIT, b"", now=now, group_id=group_id, intent=intent
                )
            self._finish(store, seq, pending)

        await self._s.store.transaction(write)
        self._advanced(seq, pending)
        self._wake_outbox()

    async def _commit(
        self, seq: int | None, pending: PendingInbound | None, group: Group, staged: StagedCommit
    ) -> None:
        await self._transition(
            group,
            await self._s.mls(group.to_bytes, staged),
            seq=seq,
            pending=pending,
            committer=staged,
        )

    async def _transition(
        self,
        group: Group,
        new_state: bytes,
        *,
        seq: int | None,
        pending: PendingInbound | None,
        committer_is_me: bool = False,
        extra: Callable[[Store], object] | None = None,
        committer: StagedCommit | None = None,
    ) -> None:
        """Persist the epoch after ``group`` (stage, persist, merge), with its effects."""
        group_id = group.group_id
        after, before_members, after_members = await self._s.mls(
            _epochs, self._s.groups, group, new_state
        )
        # Saved as a checkpoint: the next message then writes only its records.
        checkpoint = await self._s.mls(after.checkpoint)
        removed = after.removed
        info_before = ConversationInfo.from_extensions(group.extensions)
        info_after = ConversationInfo.from_extensions(after.extensions)
        leavers = _leavers(group)
        me_id = self._s.account.account_id
        newcomers = (
            {m.account_id for m in after_members} - {m.account_id for m in before_members} - {me_id}
        )
        profile = self._s.profile_content() if newcomers else None
        by = None
        if committer_is_me:
            by = member_identity(self._s.account.mls_credential)
        elif committer is not None:
            by = member_identity(committer.committer.credential)
        now = self._s.now_ms()
        me = self._me

        def write(store: Store) -> list[Event]:
            events: list[Event] = []
            conversation = store.conversations.by_group(group_id)
            if removed:
                store.groups.delete(group_id)
                if conversation is not None and store.conversations.mark_left(conversation.id, now):
                    events.append(ConversationUpdated(conversation.id))
                    events.append(
                        system_note(
                            store,
                            conversation,
                            Note(
                                NoteKind.YOU_WERE_REMOVED,
                                actor=by.account_id if by is not None else None,
                            ),
                            me=me,
                            by=by,
                            now=now,
                            epoch=group.epoch + 1,
                        )
                    )
            else:
                store.groups.save(group_id, after.epoch, checkpoint, now=now)
                if (
                    conversation is not None
                    and newcomers
                    and (conversation.kind is ConversationKind.GROUP)
                ):
                    self._announce(store, group_id, profile, now)
                if conversation is not None:
                    events += apply_transition(
                        store,
                        conversation,
                        before=before_members,
                        after=after_members,
                        info_before=info_before,
                        info_after=info_after,
                        committer=by,
                        leavers=leavers,
                        me=me,
                        now=now,
                        epoch=after.epoch,
                    )
            if extra is not None:
                extra(store)
            self._finish(store, seq, pending)
            return with_views(store, events, me.account_id, now=now)

        events = await self._s.store.transaction(write)
        self._advanced(seq, pending)
        if removed:
            self._s.groups.evict(group_id)
        else:
            self._s.groups.put(after)
        self._s.events.publish(*events)
        if profile is not None:
            self._wake_outbox()
        if not removed:
            await self.retry_pending_locked(group_id)

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
        async with self._s.group_lock(header.group_id):
            await self._join_locked(seq, data, secret, bundle, header)

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
        info = ConversationInfo.from_extensions(group.extensions) or ConversationInfo(
            ConversationKind.GROUP
        )
        epoch = group.epoch
        now = self._s.now_ms()
        ref, one_time = secret.ref, not secret.last_resort
        profile = self._s.profile_content()

        def write(store: Store) -> list[Event] | None:
            if _known_group(store, group_id):  # checked again, atomically with the join
                return None
            store.groups.save(group_id, epoch, state, now=now)
            _, events = apply_joined(
                store,
                group_id,
                members=members,
                info=info,
                adder=None if adder is None else adder.identity,
                me=self._me,
                now=now,
                epoch=epoch,
            )
            if one_time:
                store.key_packages.delete(ref)
            self._announce(store, group_id, profile, now)
            self._finish(store, seq, pending)
            return with_views(store, events, self._me.account_id, now=now)

        events = await store.transaction(write)
        if events is None:
            await self._drop_welcome(seq, pending, secret)
            return
        self._advanced(seq, pending)
        self._s.groups.put(group)
        self._s.events.publish(*events)
        self._key_package_used()
        self._wake_outbox()
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

    # -- this client's sends, accepted by the server -----------------------------------------

    async def apply_accepted_locked(
        self,
        item: OutboxItem,
        *,
        seq: int | None = None,
        pending: PendingInbound | None = None,
    ) -> None:
        """The server accepted an outbox item: apply it and drop it (its group's lock held).

        Called by the sender when the server answered, and by the pipeline
        when the echo of the item's message arrives first. Idempotent: an
        item already gone is ignored.
        """
        item_id = item.id
        current = await self._s.store.run(lambda s: s.outbox.get(item_id))
        if current is None:
            return
        group_id = current.group_id
        if current.kind is OutboxKind.COMMIT and group_id is not None:
            group = await self._s.groups.get(group_id)
            state = current.pending_state
            if group is not None and state is not None and group.epoch == current.epoch:
                await self._transition(
                    group,
                    state,
                    seq=None,
                    pending=None,
                    committer_is_me=True,
                    extra=lambda s: s.outbox.remove(item_id),
                )
                return
        if Intent.loads(current.intent).op == "leave" and group_id is not None:
            await self._left_group(current)
            return
        message_id = current.message_id

        def write(store: Store) -> list[Event]:
            store.outbox.remove(item_id)
            if message_id is None:
                return []
            message = store.messages.get(message_id)
            if message is None or message.status is not MessageStatus.PENDING:
                return []
            store.messages.set_status(message_id, MessageStatus.SENT)
            sent = MessageStatusChanged(message.conversation_id, message_id, MessageStatus.SENT)
            return with_views(store, [sent], self._me.account_id)

        events = await self._s.store.transaction(write)
        self._s.events.publish(*events)

    async def _left_group(self, item: OutboxItem) -> None:
        """This client's leave proposal reached the server: the conversation is left."""
        group_id = item.group_id
        assert group_id is not None
        now = self._s.now_ms()
        me = self._me

        def write(store: Store) -> list[Event]:
            store.outbox.remove(item.id)
            store.groups.delete(group_id)
            for other in store.outbox.for_group(group_id):
                store.outbox.remove(other.id)
            conversation = store.conversations.by_group(group_id)
            if conversation is None or not store.conversations.mark_left(conversation.id, now):
                return []
            left = Note(NoteKind.YOU_LEFT)
            note = system_note(store, conversation, left, me=me, by=None, now=now, epoch=None)
            return with_views(store, [ConversationUpdated(conversation.id), note], me.account_id)

        events = await self._s.store.transaction(write)
        self._s.groups.evict(group_id)
        self._s.events.publish(*events)
