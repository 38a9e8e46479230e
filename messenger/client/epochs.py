"""The one owner of group transitions: stage, persist, merge (RFC 9420 §12.4.2, §14).

Every change of a group's epoch goes through :class:`GroupEpochs`, whoever
caused it: a commit received from the queue (the inbound pipeline), this
client's own commit accepted by the server (the outbox, or its echo in the
queue), this client's leave, a group joined from a Welcome. It holds the
group cache and one lock per group (:meth:`GroupEpochs.lock`), and for each
transition:

1. **stage**: the commit was staged by :meth:`Group.process` (received) or
   :meth:`Group.commit` (own; the :class:`StagedCommit` is kept here from
   the moment it is built until the server has answered);
2. read the **membership change** from the :class:`StagedCommit` (who was
   added, removed, updated -- OpenMLS's ``StagedCommit`` is the model), the
   group name from the new GroupContext, and take the state once merged
   (:meth:`Group.checkpoint` with the staged commit);
3. **persist** in one store transaction: the new state, the timeline's
   system notes and member lists (:func:`.sync.effects.apply_transition`),
   the epoch of a commit that removed a leaf (the account's rejoin box of
   the group is then due, :mod:`.rejoin_boxes`), and the caller's own
   bookkeeping (the queue cursor, the outbox item);
4. **merge** (:meth:`Group.merge`) in memory, then publish the events.

A crash before 3 leaves the old epoch (the message is processed again, the
commit is sent again under its idempotency key); after 3 the new one.
After a restart an own commit's :class:`StagedCommit` is gone: its state
once accepted (written with the built request) is then loaded instead.

The locks are per group, and no one holds one across a network call: a
commit waiting for the server's answer holds nothing, so neither its own
conversation's incoming messages nor any other conversation wait for it.
The MLS work runs in the client's MLS thread (:meth:`Session.mls`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from messenger.mls.events import ProposalReceived, StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint
from messenger.mls.proposals import Remove

from .events import ConversationUpdated, Event
from .groups import ConversationInfo, GroupCache, GroupMember, group_member, group_members
from .identity import MemberIdentity, member_identity
from .leave_notices import commit_leavers, proposal_notices
from .models import with_views
from .rejoin_boxes import box_due
from .store.conversations import ConversationKind
from .store.messages import Note, NoteKind
from .store.outbox import OutboxItem, OutboxKind
from .store.store import Store
from .sync.effects import Actor, apply_joined, apply_sent, apply_transition, system_note
from .sync.intents import Intent

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Finish", "GroupEpochs", "Membership", "leavers_of", "membership_after", "queues_of"]

_log = logging.getLogger(__name__)

#: The caller's part of a transition's transaction (move the cursor, drop the item).
Finish = Callable[[Store], object]


@dataclass(frozen=True, slots=True)
class Membership:
    """A transition as the timeline sees it: members and names on both sides."""

    before: list[GroupMember]
    after: list[GroupMember]
    info_before: ConversationInfo | None
    info_after: ConversationInfo | None
    leavers: frozenset[str]
    removed: bool
    """This client was removed."""
    epoch: int
    """The new epoch."""
    removal: bool = False
    """The commit removed a leaf (a Remove proposal, RFC 9420 §12.1.3): the
    tokens of earlier epochs no longer open the group's state on the server."""


def membership_after(group: Group, staged: StagedCommit) -> list[GroupMember]:
    """The members once ``staged`` is merged, read from the staged commit alone.

    RFC 9420 §12.3: removed leaves are blanked, updated ones replaced, added
    ones take the leftmost free leaves; ``staged`` says which.
    """
    if staged.self_removed:
        return []
    gone = {m.leaf_index for m in staged.removed} | {m.leaf_index for m in staged.updated}
    kept = [m for m in group_members(group) if m.leaf_index not in gone]
    new = (group_member(m) for m in (*staged.updated, *staged.added))
    return sorted([*kept, *(m for m in new if m is not None)], key=lambda m: m.leaf_index)


def queues_of(members: Sequence[GroupMember]) -> list[str]:
    """The delivery queues of ``members``, sorted and without repeats."""
    return sorted({m.queue_id for m in members if m.queue_id})


def leavers_of(proposals: Sequence[ProposalReceived]) -> frozenset[str]:
    """Accounts whose member proposed its own removal (RFC 9420 §12.1.3)."""
    found = set()
    for proposal in proposals:
        body = proposal.proposal.body
        member = proposal.member
        if isinstance(body, Remove) and member is not None and body.removed == member.leaf_index:
            who = member_identity(member.credential)
            if who is not None:
                found.add(who.account_id)
    return frozenset(found)


def _staged_change(group: Group, staged: StagedCommit) -> tuple[Membership, GroupCheckpoint | None]:
    """Step 2 for a staged commit (in the MLS thread): the change and the state after it."""
    after = membership_after(group, staged)
    info_after = (
        None
        if staged.state is None
        else ConversationInfo.from_extensions(staged.state.context.extensions)
    )
    change = Membership(
        before=group_members(group),
        after=after,
        info_before=ConversationInfo.from_extensions(group.extensions),
        info_after=info_after,
        # Who proposed leaving, or whose leave notice the commit carries.
        leavers=leavers_of(group.pending_proposals()) | commit_leavers(group, staged),
        removed=staged.self_removed,
        epoch=group.epoch + 1,
        removal=bool(staged.removed),
    )
    return change, None if staged.self_removed else group.checkpoint(staged)


def _loaded_change(
    cache: GroupCache, group: Group, state: bytes
) -> tuple[Membership, Group, GroupCheckpoint]:
    """Step 2 for an own commit whose StagedCommit was lost in a restart (in the MLS thread)."""
    after = cache.load(state)
    before = group_members(group)
    members_after = [] if after.removed else group_members(after)
    # Without the staged commit, a removal shows as a leaf that no longer holds
    # its client (RFC 9420 §12.3: an Update keeps the leaf's client, a Remove
    # blanks the leaf, which an Add of the same commit may fill with another).
    kept = {(m.leaf_index, m.client_id) for m in members_after}
    change = Membership(
        before=before,
        after=members_after,
        info_before=ConversationInfo.from_extensions(group.extensions),
        info_after=ConversationInfo.from_extensions(after.extensions),
        leavers=leavers_of(group.pending_proposals()),
        removed=after.removed,
        epoch=after.epoch,
        removal=any((m.leaf_index, m.client_id) not in kept for m in before),
    )
    return change, after, after.checkpoint()


class GroupEpochs:
    """The group cache, the group locks, and every transition of a group's epoch."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._locks: dict[bytes, asyncio.Lock] = {}
        self._own: dict[int, StagedCommit] = {}
        account = session.account
        self._me = Actor(account.account_id, account.client_id, session.new_uid)

    @property
    def cache(self) -> GroupCache:
        return self._s.groups

    def lock(self, group_id: bytes) -> asyncio.Lock:
        """The lock of a group's MLS state (made on first use)."""
        lock = self._locks.get(group_id)
        if lock is None:
            lock = self._locks[group_id] = asyncio.Lock()
        return lock

    async def get(self, group_id: bytes) -> Group | None:
        """The group (its lock held), or None if this client has no state for it."""
        return await self._s.groups.get(group_id)

    def evict(self, group_id: bytes) -> None:
        """Forget the in-memory group: the store's state is the truth (after a failure)."""
        self._s.groups.evict(group_id)

    # -- own commits between building and the server's answer ---------------------------

    def hold(self, item_id: int, staged: StagedCommit) -> None:
        """Keep an own commit's staged change until the server has answered."""
        self._own[item_id] = staged

    def release(self, item_id: int) -> None:
        """Forget an own commit's staged change (rebuilt, refused or moot)."""
        self._own.pop(item_id, None)

    # -- transitions (the group's lock held) --------------------------------------------

    async def accept(self, item: OutboxItem, *, finish: Finish) -> bool:
        """The server accepted ``item`` (its answer, or its echo in the queue): apply it.

        A commit moves the group to its epoch, a leave leaves the
        conversation, a message is marked sent; the item is dropped, with
        ``finish``, in the same transaction. Idempotent: an item already
        applied changes nothing but ``finish``. Whether the group's epoch moved.
        """

        def drop(store: Store) -> list[Event]:
            finish(store)
            return with_views(store, apply_sent(store, [item.id]), self._me.account_id)

        if item.kind is OutboxKind.COMMIT and item.group_id is not None:

            def finish_commit(store: Store) -> None:
                store.outbox.remove(item.id)
                finish(store)

            if await self.own_commit_accepted(item, finish=finish_commit):
                return True
        elif Intent.loads(item.intent).op == "leave" and item.group_id is not None:
            await self.left(item, finish=finish)
            return False
        self.release(item.id)
        self._s.events.publish(*await self._s.store.transaction(drop))
        return False

    async def commit_received(
        self, group: Group, staged: StagedCommit, *, finish: Finish
    ) -> list[Event]:
        """A commit of another member, processed: persist the epoch after it, then merge."""
        by = member_identity(staged.committer.credential)
        return await self._staged_transition(group, staged, by=by, finish=finish)

    async def proposal_received(
        self, group: Group, event: ProposalReceived, *, finish: Finish
    ) -> None:
        """A proposal of another member, processed: keep it, and queue a commit of it.

        ``Group.process`` cached the proposal in the group (RFC 9420 §12.1);
        the state holding it is saved with ``finish`` and, unless one is
        queued already, a commit covering it (RFC 9420 §12.4: a member
        commits the pending proposals). A member leaving proposes its own
        removal (RFC 9420 §12.1.3); a commit built before the proposal
        arrived would not cover it, and the proposal would die with the
        epoch, so a leave is queued as a removal of the leaver, which is
        moot once anyone has committed the proposal.
        """
        group_id, epoch = group.group_id, group.epoch
        state = await self._s.mls(group.checkpoint)
        now = self._s.now_ms()
        leaver = leavers_of([event])
        if leaver:
            # Its leave notice goes with the removal (leave_notices.py): should
            # the proposal die with its epoch, the removal still reads as leaving.
            notices = await self._s.mls(proposal_notices, group, event)
            intent = Intent("remove", accounts=tuple(sorted(leaver)), notices=notices).dumps()
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
            finish(store)

        await self._s.store.transaction(write)
        self._s.outbox_queued()

    async def own_commit_accepted(self, item: OutboxItem, *, finish: Finish) -> bool:
        """The server accepted this client's commit ``item``: move to its epoch.

        False if the group is not at the epoch the commit was built in (it
        was applied already, e.g. by its echo): nothing is changed then.
        """
        group_id = item.group_id
        assert group_id is not None and item.kind is OutboxKind.COMMIT
        group = await self.get(group_id)
        staged = self._own.pop(item.id, None)
        if group is None or group.epoch != item.epoch:
            return False
        by = member_identity(self._s.account.mls_credential)
        if staged is not None and staged.base_context == group.group_context.to_bytes():
            await self._staged_transition(group, staged, by=by, finish=finish)
            return True
        if item.pending_state is None:
            return False
        change, after, checkpoint = await self._s.mls(
            _loaded_change, self._s.groups, group, item.pending_state
        )
        # A path, whatever else it held.
        rotated = Intent.loads(item.intent).op in ("rotate", "move")
        await self._persist(group, change, checkpoint, by=by, finish=finish, rotated=rotated)
        if change.removed:
            self.evict(group_id)
        else:
            self._s.groups.put(after)
        return True

    async def _staged_transition(
        self, group: Group, staged: StagedCommit, *, by: MemberIdentity | None, finish: Finish
    ) -> list[Event]:
        group_id = group.group_id
        # A commit of this client's own that carried an update path gave its
        # leaf fresh keys (RFC 9420 §12.4.2): the periodic update waits again.
        own = group.leaf_index
        rotated = staged.committer.leaf_index == own and any(
            u.leaf_index == own for u in staged.updated
        )
        try:
            change, checkpoint = await self._s.mls(_staged_change, group, staged)
            events = await self._persist(
                group, change, checkpoint, by=by, finish=finish, rotated=rotated
            )
        except BaseException:
            self.evict(group_id)  # the store still has the epoch before this commit
            raise
        if change.removed:
            self.evict(group_id)
        else:
            await self._s.mls(group.merge, staged, persisted=True)
        return events

    async def _persist(
        self,
        group: Group,
        change: Membership,
        checkpoint: GroupCheckpoint | None,
        *,
        by: MemberIdentity | None,
        finish: Finish,
        rotated: bool = False,
    ) -> list[Event]:
        """Step 3: one transaction; then publish its events. ``rotated``: the commit
        gave this client's leaf fresh keys (recorded for the periodic update)."""
        group_id = group.group_id
        me_id = self._s.account.account_id
        newcomers = (
            {m.account_id for m in change.after} - {m.account_id for m in change.before} - {me_id}
        )
        profile = self._s.profile_content() if newcomers else None
        now = self._s.now_ms()
        me = self._me
        announced = False
        box_changed = False

        def write(store: Store) -> list[Event]:
            nonlocal announced, box_changed
            events: list[Event] = []
            conversation = store.conversations.by_group(group_id)
            if change.removed:
                store.groups.delete(group_id, forget_box=True)
                box_changed = True
                if conversation is not None and store.conversations.mark_left(conversation.id, now):
                    events.append(ConversationUpdated(conversation.id))
                    note = Note(
                        NoteKind.YOU_WERE_REMOVED, actor=by.account_id if by is not None else None
                    )
                    events.append(
                        system_note(
                            store, conversation, note, me=me, by=by, now=now, epoch=change.epoch
                        )
                    )
            else:
                assert checkpoint is not None
                store.groups.save(group_id, change.epoch, checkpoint, now=now)
                if rotated:
                    store.groups.record_leaf_rotation(group_id, now)
                if change.removal:  # the server drew a fresh key: the box is due
                    store.groups.record_removal(group_id, change.epoch)
                box_changed = any(box_due(x, now) for x in store.groups.rejoin_marks(group_id))
                if conversation is not None:
                    if (
                        newcomers
                        and profile is not None
                        and conversation.kind is ConversationKind.GROUP
                    ):
                        store.outbox.enqueue(
                            OutboxKind.MESSAGE, b"", now=now, group_id=group_id, content=profile
                        )
                        announced = True
                    events += apply_transition(
                        store,
                        conversation,
                        before=change.before,
                        after=change.after,
                        info_before=change.info_before,
                        info_after=change.info_after,
                        committer=by,
                        leavers=change.leavers,
                        me=me,
                        now=now,
                        epoch=change.epoch,
                    )
            finish(store)
            return with_views(store, events, me.account_id, now=now)

        events = await self._s.store.transaction(write)
        self._s.events.publish(*events)
        if announced:
            self._s.outbox_queued()
        if box_changed:
            self._s.rejoin_boxes_changed()
        return events

    async def joined(
        self,
        group: Group,
        members: Sequence[GroupMember],
        adder: MemberIdentity | None,
        state: GroupCheckpoint,
        *,
        finish: Finish,
    ) -> bool:
        """This client joined ``group`` from a Welcome (its lock held): persist it,
        its conversation, members and timeline note, then keep it in memory.

        False, and nothing written, if the group ID is known to this client
        by now -- checked again inside the transaction (RFC 9420 §12.4.3.1: a
        Welcome never replaces or revives a group).
        """
        group_id = group.group_id
        info = ConversationInfo.from_extensions(group.extensions) or ConversationInfo(
            ConversationKind.GROUP
        )
        epoch = group.epoch
        now = self._s.now_ms()
        profile = self._s.profile_content()
        me = self._me

        def write(store: Store) -> list[Event] | None:
            if (
                store.groups.epoch(group_id) is not None
                or store.conversations.by_group(group_id) is not None
            ):
                return None
            store.groups.save(group_id, epoch, state, now=now)
            _, events = apply_joined(
                store,
                group_id,
                members=members,
                info=info,
                adder=adder,
                me=me,
                now=now,
                epoch=epoch,
            )
            if profile is not None:  # this user's name, for the members
                store.outbox.enqueue(
                    OutboxKind.MESSAGE, b"", now=now, group_id=group_id, content=profile
                )
            finish(store)
            return with_views(store, events, me.account_id, now=now)

        events = await self._s.store.transaction(write)
        if events is None:
            return False
        self._s.groups.put(group)
        self._s.events.publish(*events)
        self._s.outbox_queued()
        self._s.rejoin_boxes_changed()  # a new group: its box is due
        return True

    async def left(self, item: OutboxItem, *, finish: Finish) -> None:
        """This client's leave proposal reached the server: the conversation is left."""
        group_id = item.group_id
        assert group_id is not None
        now = self._s.now_ms()
        me = self._me

        def write(store: Store) -> list[Event]:
            finish(store)
            store.groups.delete(group_id, forget_box=True)
            for other in store.outbox.for_group(group_id):
                store.outbox.remove(other.id)
            conversation = store.conversations.by_group(group_id)
            if conversation is None or not store.conversations.mark_left(conversation.id, now):
                return []
            note = system_note(
                store, conversation, Note(NoteKind.YOU_LEFT), me=me, by=None, now=now, epoch=None
            )
            return with_views(store, [ConversationUpdated(conversation.id), note], me.account_id)

        events = await self._s.store.transaction(write)
        self.evict(group_id)
        self._s.events.publish(*events)
        self._s.rejoin_boxes_changed()  # its box is to be deleted
