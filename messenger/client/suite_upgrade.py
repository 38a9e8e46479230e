"""Moving a conversation to the hybrid post-quantum suite by ReInit (RFC 9420 §11.2, §12.1.5).

A group's cipher suite is fixed for its life (RFC 9420 §8.1); to change it
the group is reinitialised: a Commit with only a ReInit proposal (§12.2)
naming a new group ID, the new suite and the same GroupContext extensions
(the conversation's name, kind and timer) ends the old group, and a new
group in the new suite starts with every member of the old one, joined by a
Welcome that carries the old group's ``reinit`` resumption PSK (§8.6), which
proves to each joiner that the new group continues the old one (§11.2).
The conversation moves to the new group: same conversation in the UI, its
history kept (:meth:`~.store.conversations.ConversationRepository.move_to_group`).

**The member who upgrades** (:func:`upgrade_group`, under the old group's
lock, then the new one's):

1. claims a KeyPackage in the new suite for every other member client of
   the old group (this account's other devices too); if one has none, a
   :class:`~.suite_choice.SuiteNotSupportedError` names its account and
   nothing changes (claimed KeyPackages are spent, as any claim's);
2. commits the ReInit to the old group (saved before it is sent, merged once
   the server accepts it; the old group then takes no more messages);
3. makes the new group (:meth:`Group.reinit`: its first Commit adds everyone
   with the resumption PSK), registers it, sends that Commit with the
   Welcome, and moves the conversation, in one store transaction.

A crash between 2 and 3 leaves the old group reinitialised with no
successor: calling :func:`upgrade_group` again (any member may) claims again
and makes it; a group the server already has from an attempt that was cut
off is taken over (the server knows only its ID, epoch and queues).

**The other members** process the ReInit Commit like any other (the inbound
pipeline refuses a ReInit to a suite this client does not use:
:func:`reinit_acceptable`), then join the new group from the Welcome
(:func:`join_successor`): only if they have the old group with that very
ReInit merged (the PSK is checked by :meth:`Group.join_from_welcome`), the
new group has exactly the old group's member clients, and its ID is new to
them; their conversation then continues in it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

from messenger.api import models as m
from messenger.api.sealed import token_digest
from messenger.mls.events import StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_context import ProtocolVersion
from messenger.mls.key_package_bundle import KeyPackageBundle
from messenger.mls.messages import message_digest
from messenger.mls.proposals import ReInit

from .errors import (
    ConversationLeftError,
    NoKeyPackageError,
    NotAllowedError,
)
from .events import ConversationUpdated, Event
from .groups import (
    GROUP_CONFIG,
    SuccessorWelcome,
    group_members,
    key_package_member,
    new_key_package,
)
from .identity import GROUP_SUITES, HYBRID_SUITE
from .models import display_name
from .sealed_sending import next_send_token, send_token
from .session import Session
from .store.conversations import Conversation
from .store.key_packages import KeyPackageSecret
from .store.store import Store
from .successor_groups import (
    Claim,
    FirstCommit,
    first_commit,
    join_resumed,
    send_commit,
    start_group,
)
from .suite_choice import SuiteNotSupportedError

__all__ = ["NOT_REINITIALISED", "join_successor", "reinit_acceptable", "upgrade_group"]

_log = logging.getLogger(__name__)

#: Why :func:`join_successor` refuses a Welcome that came before the ReInit it
#: follows (it may yet come: the contact queue is read beside the queue).
NOT_REINITIALISED: Final = "a Welcome resuming a group that this client has not seen reinitialised"

_MAX_GROUP_ID = m.MAX_GROUP_ID_BYTES


def reinit_acceptable(reinit: ReInit, extensions_now: Sequence[object]) -> bool:
    """Whether this client follows a ReInit (RFC 9420 §12.1.5) of one of its groups.

    Only to a suite it makes groups in (:data:`~.identity.GROUP_SUITES`), in
    MLS 1.0, to a group ID the server can hold, keeping the conversation's
    extensions (a ReInit is not a way to rename or retype a conversation).
    Anything else is refused, and the Commit carrying it with it.
    """
    return (
        reinit.cipher_suite in GROUP_SUITES
        and reinit.version == ProtocolVersion.MLS10
        and 0 < len(reinit.group_id) <= _MAX_GROUP_ID
        and tuple(reinit.extensions) == tuple(extensions_now)
    )


def _member_keys(group: Group) -> set[tuple[str, str]]:
    return {(x.account_id, x.client_id) for x in group_members(group)}


async def _claim_members(session: Session, old: Group, suite: int, claim: Claim) -> list[bytes]:
    """A KeyPackage in ``suite`` for each other member client of ``old``, or
    SuiteNotSupportedError naming an account that has none."""
    me = session.account
    others = [x for x in group_members(old) if x.leaf_index != old.leaf_index]
    found: list[bytes] = []
    for account_id in sorted({x.account_id for x in others}):
        wanted = {x.client_id for x in others if x.account_id == account_id}
        try:
            claimed = await claim([account_id], (suite,))
        except NoKeyPackageError:
            claimed = []
        have: dict[str, bytes] = {}
        for data in claimed:
            client_id = key_package_member(data)[1].client_id
            if client_id in wanted:
                have[client_id] = data
        if set(have) != wanted:
            if account_id == me.account_id:
                who = "Your other device"
            else:
                who = await session.store.run(display_name, account_id, me.account_id)
            raise SuiteNotSupportedError(
                f"{len(wanted - set(have))} client(s) of {account_id} lack suite 0x{suite:04X}",
                who=who,
            )
        found += have.values()
    return found


async def _commit_reinit(session: Session, old: Group, suite: int) -> None:
    """Commit a ReInit to ``suite`` in ``old`` (its lock held): saved, sent, merged."""
    from .epochs import queues_of  # epochs -> sync -> inbound -> this module

    group_id = old.group_id
    new_id = session.random(32)
    reinit = ReInit(new_id, int(ProtocolVersion.MLS10), suite, tuple(old.extensions))
    random, now_s = session.random, session.now_s()

    def build() -> tuple[bytes, bytes | None, StagedCommit, bytes | None, bytes]:
        # RFC 9420 §12.2: a Commit with a ReInit carries no other proposal.
        result = old.commit(random, reinit=reinit, include_pending=False, now=now_s)
        token = next_send_token(old, result.staged)
        return result.message, result.group_info, result.staged, token, send_token(old)

    try:
        message, group_info, staged, token, sealing = await session.mls(build)
        sending = await session.mls(old.checkpoint)  # the handshake used a ratchet step
    except BaseException:
        session.groups.evict(group_id)
        raise
    request = m.CommitRequest(
        epoch=old.epoch,
        commit=message,
        members=tuple(queues_of(group_members(old))),
        group_info=group_info,
        idempotency_key=session.random(16),
        send_token_hash=None if token is None else token_digest(token),
        token=sealing,
        next_token=token,  # the server seals the new epoch's state under it (metadata.md §2)
    )
    digest, epoch, now = message_digest(message), old.epoch, session.now_ms()

    def before(store: Store) -> None:
        store.groups.save(group_id, epoch, sending, now=now)
        store.sent_messages.add(digest, group_id, now=now)  # its echo is ours

    try:
        await session.store.transaction(before)
        await send_commit(session, group_id, request)
        state = await session.mls(old.checkpoint, staged)
        await session.store.transaction(
            lambda s: s.groups.save(group_id, epoch + 1, state, now=now)
        )
    except BaseException:
        session.groups.evict(group_id)  # the store has the state before the Commit
        raise
    old.merge(staged, persisted=True)


async def _make_successor(
    session: Session,
    conversation: Conversation,
    old: Group,
    key_packages: Sequence[bytes],
) -> None:
    """Make, register and fill the group that continues ``old`` (both locks held)."""
    reinit = old.pending_reinit
    assert reinit is not None
    account, random, now_s = await session.leaf_account(), session.random, session.now_s()
    claims = session.transport.claim_tokens.take(key_packages)

    def build() -> tuple[Group, FirstCommit]:
        """The new group at epoch 0, its registration and first Commit (MLS thread)."""
        bundle = new_key_package(account, random, now=now_s, suite=reinit.cipher_suite)
        group, result = Group.reinit(
            old, bundle, key_packages, random, now=now_s, config=GROUP_CONFIG
        )
        return group, first_commit(group, result, account.client_id, claims, random)

    group, first = await session.mls(build)
    new_id, old_id = group.group_id, old.group_id
    await start_group(session, new_id, first)
    now, digest, epoch, state = (
        session.now_ms(),
        message_digest(first.message),
        group.epoch,
        first.state,
    )
    conversation_id = conversation.id

    def write(store: Store) -> None:
        store.groups.save(new_id, epoch, state, now=now)
        store.sent_messages.add(digest, new_id, now=now)
        store.conversations.move_to_group(conversation_id, new_id)
        store.outbox.move_lane(old_id, new_id, now=now)

    await session.store.transaction(write)
    session.groups.put(group)
    session.outbox_queued(new_id)
    session.rejoin_boxes_changed()  # a new group: its rejoin box is due (rejoin_boxes.py)


async def upgrade_group(
    session: Session, conversation: Conversation, claim: Claim, *, suite: int = HYBRID_SUITE
) -> list[Event]:
    """Move ``conversation`` to ``suite`` by ReInit (module docstring); its events.

    SuiteNotSupportedError (nothing changed) if a member client cannot join
    a group in ``suite``; NotAllowedError if the group is in it already.
    """
    old_id = conversation.group_id
    async with session.group_lock(old_id):
        old = await session.groups.get(old_id)
        if old is None:
            raise ConversationLeftError("no group state: the conversation was left")
        reinit = old.pending_reinit
        if reinit is None:
            if not old.active:
                raise ConversationLeftError("this client was removed from the group")
            if old.suite.suite_id == suite:
                raise NotAllowedError(
                    "the group is in that suite",
                    user_message="This conversation already uses this encryption.",
                )
            key_packages = await _claim_members(session, old, suite, claim)
            await _commit_reinit(session, old, suite)
            reinit = old.pending_reinit
            assert reinit is not None
        else:  # an upgrade cut off after its ReInit (by this member or another)
            key_packages = await _claim_members(session, old, reinit.cipher_suite, claim)
        async with session.group_lock(reinit.group_id):
            await _make_successor(session, conversation, old, key_packages)
    return [ConversationUpdated(conversation.id)]


async def join_successor(
    session: Session,
    data: bytes,
    secret: KeyPackageSecret,
    bundle: KeyPackageBundle,
    header: SuccessorWelcome,
    *,
    finish: Callable[[Store], None],
) -> bytes | str:
    """Join the group that continues one of this client's groups, from its Welcome
    (RFC 9420 §11.2), and move the conversation to it: the new group's ID, or why
    the Welcome was refused (the caller skips it then; nothing was changed)."""
    previous_id = header.resumes
    store = session.store
    async with session.group_lock(previous_id):
        old = await session.groups.get(previous_id)
        # Anyone who claims a KeyPackage can send a Welcome naming any group, so
        # only one that may yet be reinitialised here waits for its ReInit (the
        # pipeline bounds the wait): a group this client has and is still in,
        # not yet at the epoch the ReInit would make (RFC 9420 §11.2).
        if old is None:
            return "a Welcome resuming a group this client does not have"
        if old.removed:
            return "a Welcome resuming a group this client was removed from"
        reinit = old.pending_reinit
        if reinit is None:
            if old.epoch >= header.epoch:
                return "a Welcome resuming an epoch of the group that had no ReInit"
            return NOT_REINITIALISED
        if not reinit_acceptable(reinit, old.extensions):
            return "a Welcome to a group this client does not follow a ReInit to"
        new_id = reinit.group_id
        async with session.group_lock(new_id):

            def known(s: Store) -> bool:
                return (
                    s.groups.get(new_id) is not None or s.conversations.by_group(new_id) is not None
                )

            if await store.run(known):
                return "a Welcome for a group this client already has"
            group = await join_resumed(session, data, bundle, old)
            if isinstance(group, str):
                return group
            if group.group_id != new_id:  # also checked by join_from_welcome (§11.2)
                return "a Welcome to another group than its ReInit names"
            if _member_keys(group) != _member_keys(old):
                return "a new group whose members are not the old group's"
            state, epoch, now = group.to_bytes(), group.epoch, session.now_ms()
            ref, one_time = secret.ref, not secret.last_resort

            def write(s: Store) -> int | None:
                conversation = s.conversations.by_group(previous_id)
                s.groups.save(new_id, epoch, state, now=now)
                if conversation is not None:
                    s.conversations.move_to_group(conversation.id, new_id)
                    s.outbox.move_lane(previous_id, new_id, now=now)
                if one_time:
                    s.key_packages.delete(ref)
                finish(s)
                return None if conversation is None else conversation.id

            moved = await store.transaction(write)
            session.groups.put(group)
    session.rejoin_boxes_changed()  # a new group: its rejoin box is due (rejoin_boxes.py)
    if moved is not None:
        session.outbox_queued(new_id)
        session.events.publish(ConversationUpdated(moved))
    return new_id
