"""Starting a conversation again when its group cannot go on (RFC 9420 §11.3).

Commits are sealed (docs/metadata.md §3): the server cannot read them, so it
accepts whatever a member sends as the next epoch. A member -- hostile, or
with a broken app -- can make a group unusable for the others:

* a commit they cannot process (MLS refuses it): the server's group is an
  epoch ahead of everyone else's for good;
* a commit with a wrong ``next_token``: everyone processes it, but no one
  else's send token of the new epoch opens the group's state at the server,
  so every send is ``unknown_group``.

**Finding it** (:func:`mark_stuck`). The inbound pipeline marks a group when
MLS refuses a commit of its current epoch (the server accepted that commit,
or it would not be in the queue); the outbox marks it when, caught up, the
server still refuses the epoch it is at (``out_of_step``, or its token opens
nothing). The mark is stored (``mls_groups.stuck_at``), the timeline says
so once (:attr:`~.store.messages.NoteKind.STUCK`), and the conversation's
view is :attr:`~.models.ConversationView.stuck`.

**Starting again** (:func:`restart_group`, any member whose group is stuck).
The members' last shared epoch is a sound place to start from, so the
member *branches* the group there (RFC 9420 §11.3): a new group whose first
Commit adds a fresh KeyPackage of every other member client of the old
group, with the old group's ``branch`` resumption PSK of that epoch (§8.6).
The Welcome thus proves to each joiner that its maker was a member of the
old group at that very epoch: a stranger, or a member removed before it,
cannot make one. The conversation moves to the new group, history kept, and
what waited to be sent goes there (as for a ReInit, :mod:`.suite_upgrade`).
Members who have no KeyPackage left, or whom the user leaves out, are not
in it; the timeline names them (:attr:`~.store.messages.NoteKind.RESTARTED`).

**Joining it** (:func:`join_branch`). A member follows a branch only:

* of a group it has, is still in, and whose conversation is still on it --
  or on another branch of it (below);
* from its own current epoch (a branch from an epoch it has not reached
  waits in the contact queue for the commit that makes it, as a ReInit's
  successor does; one from an earlier epoch is refused);
* if the group is stuck here too: marked so, or the server confirms it with
  this member's token of the epoch (``POST …/rejoin-info``: the token opens
  nothing, or the server's epoch is ahead while nothing of the group waits
  unread). A member cannot fork a group that works (``branch of a group
  that works here``), and no one can take others out of a working group
  this way;
* whose members were all members of the old group (checked by MLS, §11.3),
  with the same conversation info.

**Two members starting again at once** each make a branch; every member
keeps the one with the smaller group ID (ties cannot happen: the IDs are
random), joining it even when already on the other, so all of them end up
in the same group.

A member who broke the group can be in the new one too (it was a member;
nobody can tell who sent a commit that does not open), so the user can
start again without chosen members (``leave_out``), or remove them after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Final

from messenger.mls.group import Group
from messenger.mls.key_package_bundle import KeyPackageBundle
from messenger.mls.messages import message_digest

from .errors import (
    ConversationLeftError,
    NoKeyPackageError,
    NotAllowedError,
    ServerRejectedError,
)
from .events import ConversationUpdated, Event
from .groups import (
    GROUP_CONFIG,
    SuccessorWelcome,
    group_members,
    key_package_member,
    new_key_package,
)
from .identity import member_identity
from .sealed_sending import send_token
from .session import Session
from .store.conversations import Conversation
from .store.key_packages import KeyPackageSecret
from .store.messages import Note, NoteKind
from .store.store import Store
from .successor_groups import Claim, FirstCommit, first_commit, join_resumed, start_group

if TYPE_CHECKING:
    from .sync.effects import Actor

__all__ = ["NOT_THERE_YET", "join_branch", "mark_stuck", "restart_group"]

_log = logging.getLogger(__name__)

#: Why :func:`join_branch` refuses a Welcome that branches from an epoch this
#: client has not reached (the commit that makes it may be in the queue, unread).
NOT_THERE_YET: Final = "a Welcome branching from an epoch this client has not reached"


def _actor(session: Session) -> Actor:
    from .sync.effects import Actor  # sync -> inbound -> this module

    account = session.account
    return Actor(account.account_id, account.client_id, session.new_uid)


def _mark_stuck_in(store: Store, session: Session, group_id: bytes, now: int) -> list[Event]:
    """Inside a transaction: mark ``group_id`` stuck; its note and events if news."""
    from .sync.effects import system_note

    if not store.groups.mark_stuck(group_id, now):
        return []
    conversation = store.conversations.by_group(group_id)
    if conversation is None or conversation.left_at is not None:
        return []
    me = _actor(session)
    note = system_note(
        store, conversation, Note(NoteKind.STUCK), me=me, by=None, now=now, epoch=None
    )
    return [note, ConversationUpdated(conversation.id)]


async def mark_stuck(session: Session, group_id: bytes) -> None:
    """The server moved ``group_id`` where this client cannot follow (module docstring)."""
    now = session.now_ms()
    events = await session.store.transaction(lambda s: _mark_stuck_in(s, session, group_id, now))
    if events:
        _log.warning("a group cannot go on: the server's epoch is one this client cannot reach")
        session.events.publish(*events)


async def _confirmed_stuck(session: Session, group: Group) -> bool | None:
    """Whether the server confirms ``group`` cannot go on here (its lock held);
    None: not yet known (the server is ahead: a commit may wait unread)."""
    group_id = group.group_id
    if await session.store.run(lambda s: s.groups.stuck_at(group_id)) is not None:
        return True
    token = await session.mls(send_token, group)
    try:
        info = await session.transport.rejoin_info(group_id, token)
    except ServerRejectedError as exc:
        if exc.code != "unknown_group":
            return False  # the token opened the state (no GroupInfo kept, say): it works
    else:
        # Of this epoch, the group works here; of a later one, a commit may wait unread.
        return False if info.epoch <= group.epoch else None
    await mark_stuck(session, group_id)  # this epoch's token opens nothing at the server
    return True


async def _claim_members(
    session: Session, old: Group, claim: Claim, leave_out: Collection[str]
) -> tuple[list[bytes], list[str]]:
    """A KeyPackage of each other member client of ``old`` in its suite; and the
    accounts left out (asked to, or with no KeyPackage for a client)."""
    me = session.account
    others = [x for x in group_members(old) if x.leaf_index != old.leaf_index]
    found: list[bytes] = []
    missing: list[str] = []
    suite = old.suite.suite_id
    for account_id in sorted({x.account_id for x in others}):
        if account_id in leave_out and account_id != me.account_id:
            missing.append(account_id)
            continue
        wanted = {x.client_id for x in others if x.account_id == account_id}
        try:
            claimed = await claim([account_id], (suite,))
        except NoKeyPackageError:
            claimed = []
        have = {}
        for data in claimed:
            client_id = key_package_member(data)[1].client_id
            if client_id in wanted:  # a device added since is not of the old group
                have[client_id] = data
        if not have:
            missing.append(account_id)
        found += have.values()
    return found, missing


async def restart_group(
    session: Session,
    conversation: Conversation,
    claim: Claim,
    *,
    leave_out: Collection[str] = (),
) -> list[Event]:
    """Start ``conversation`` again in a branch of its stuck group (module docstring).

    NotAllowedError if the group works, or if nobody could be added (nothing
    changes); ConversationLeftError if this client is not in it.
    """
    from .sync.effects import system_note

    old_id = conversation.group_id
    async with session.group_lock(old_id):
        old = await session.groups.get(old_id)
        if old is None or not old.active:
            raise ConversationLeftError("no group to start again: the conversation was left")
        if await _confirmed_stuck(session, old) is not True:
            raise NotAllowedError(
                "the group works",
                user_message="This conversation works; there is nothing to start again.",
            )
        key_packages, left_out = await _claim_members(session, old, claim, set(leave_out))
        if not key_packages and len(group_members(old)) > 1:
            raise NotAllowedError(
                "no member could be added",
                user_message="Nobody could be added to the conversation right now. "
                "Try again later.",
            )
        account, random, now_s = await session.leaf_account(), session.random, session.now_s()
        claims = session.transport.claim_tokens.take(key_packages)

        def build() -> tuple[Group, FirstCommit]:
            """The branch at epoch 0, its registration and first Commit (MLS thread)."""
            bundle = new_key_package(account, random, now=now_s, suite=old.suite.suite_id)
            group, result = Group.branch(
                old,
                bundle,
                key_packages,
                random,
                group_id=random(32),
                now=now_s,
                config=GROUP_CONFIG,
            )
            return group, first_commit(group, result, account.client_id, claims, random)

        group, first = await session.mls(build)
        new_id = group.group_id
        async with session.group_lock(new_id):
            await start_group(session, new_id, first)
            now, digest, epoch = session.now_ms(), message_digest(first.message), group.epoch
            state = first.state
            me = _actor(session)

            def write(store: Store) -> list[Event]:
                store.groups.save(new_id, epoch, state, now=now)
                store.groups.set_branch_of(new_id, old_id)
                store.sent_messages.add(digest, new_id, now=now)
                _moved(store, conversation.id, old_id, new_id, left_out, now)
                note = Note(NoteKind.RESTARTED, accounts=tuple(left_out))
                return [
                    system_note(store, conversation, note, me=me, by=None, now=now, epoch=epoch)
                ]

            events = await session.store.transaction(write)
            session.groups.put(group)
    session.outbox_queued(new_id)
    session.rejoin_boxes_changed()  # a new group: its rejoin box is due (rejoin_boxes.py)
    return [*events, ConversationUpdated(conversation.id)]


def _moved(
    store: Store,
    conversation_id: int,
    from_id: bytes,
    new_id: bytes,
    left_out: Collection[str],
    now: int,
) -> None:
    """Inside a transaction: the conversation continues in ``new_id``; what waited
    to be sent goes there; accounts left out are no longer its members."""
    store.conversations.move_to_group(conversation_id, new_id)
    store.outbox.move_lane(from_id, new_id, now=now)
    for account_id in left_out:
        store.conversations.remove_member(conversation_id, account_id)


async def join_branch(
    session: Session,
    data: bytes,
    secret: KeyPackageSecret,
    bundle: KeyPackageBundle,
    header: SuccessorWelcome,
    *,
    finish: Callable[[Store], None],
) -> bytes | str:
    """Follow a branch of one of this client's stuck groups from its Welcome
    (module docstring): the new group's ID, or why the Welcome was refused
    (the caller skips it then, or, for :data:`NOT_THERE_YET`, may wait)."""
    from .sync.effects import system_note

    old_id = header.resumes
    store = session.store
    async with session.group_lock(old_id):
        old = await session.groups.get(old_id)
        if old is None or old.removed:
            return "a Welcome branching from a group this client does not have"
        if old.epoch < header.epoch:
            return NOT_THERE_YET
        if old.epoch > header.epoch:
            return "a Welcome branching from an epoch this client has left behind"

        def where(s: Store) -> tuple[Conversation | None, bytes | None]:
            found = s.conversations.by_group(old_id)
            if found is not None:
                return found, None
            # On another branch of the same group already (two members started again).
            for branch in s.groups.branches_of(old_id):
                found = s.conversations.by_group(branch)
                if found is not None:
                    return found, branch
            return None, None

        conversation, current = await store.run(where)
        if conversation is None or conversation.left_at is not None:
            return "a Welcome branching from a group this client's conversation is not on"
        stuck = await _confirmed_stuck(session, old)
        if stuck is None:
            return NOT_THERE_YET
        if not stuck:
            return "a Welcome branching from a group that works here"
        group = await join_resumed(session, data, bundle, old)
        if isinstance(group, str):
            return group
        new_id = group.group_id
        if current is not None and new_id >= current:
            return "a branch after another of the same group (the smaller group ID is kept)"
        kept = {x.account_id for x in group_members(group)}
        left_out = sorted({x.account_id for x in group_members(old)} - kept)
        # The branch's maker is its first leaf (RFC 9420 §11).
        first = group.member(0)
        maker = None if first is None else member_identity(first.credential)
        state, epoch, now = group.to_bytes(), group.epoch, session.now_ms()
        ref, one_time = secret.ref, not secret.last_resort
        me = _actor(session)
        async with session.group_lock(new_id):

            def write(s: Store) -> list[Event] | str:
                if s.groups.get(new_id) is not None or s.conversations.by_group(new_id):
                    return "a Welcome for a group this client already has"
                s.groups.save(new_id, epoch, state, now=now)
                s.groups.set_branch_of(new_id, old_id)
                source = old_id if current is None else current
                _moved(s, conversation.id, source, new_id, left_out, now)
                if one_time:
                    s.key_packages.delete(ref)
                note = Note(
                    NoteKind.RESTARTED,
                    actor=None if maker is None else maker.account_id,
                    accounts=tuple(left_out),
                )
                finish(s)
                return [system_note(s, conversation, note, me=me, by=maker, now=now, epoch=epoch)]

            written = await store.transaction(write)
            if isinstance(written, str):
                return written
            session.groups.put(group)
    session.rejoin_boxes_changed()
    session.outbox_queued(new_id)
    session.events.publish(*written, ConversationUpdated(conversation.id))
    return new_id
