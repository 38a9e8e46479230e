"""A new group that continues a conversation's old one: registered, then filled.

Two things make one: moving a conversation to another cipher suite (a
ReInit's successor, RFC 9420 §11.2, :mod:`.suite_upgrade`) and starting a
conversation again from a group that cannot go on (a branch, §11.3,
:mod:`.group_restart`). Either way the member makes the new group at epoch 0
with its first Commit staged -- adding the others with the old group's
resumption PSK -- and then:

1. registers it (``POST /v1/groups``, sealed with epoch 0's send token); a
   group the server has already, from an attempt that was cut off, is taken
   as registered;
2. sends that Commit with the Welcome, sealed too, again with the same
   idempotency key if the answer was lost.

:func:`first_commit` builds both requests (in the MLS thread) and merges the
Commit into the group, which nothing else sees until the caller saves it
after :func:`start_group` returned. The other members join with
:func:`join_resumed`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from messenger.api import models as m
from messenger.api.sealed import token_digest
from messenger.mls.errors import MLSError
from messenger.mls.events import CommitResult
from messenger.mls.group import Group
from messenger.mls.key_package_bundle import KeyPackageBundle

from .errors import GroupExistsError, NetworkError, ServerRejectedError, StaleEpochError
from .groups import GROUP_CONFIG, ConversationInfo
from .identity import same_client
from .sealed_sending import next_send_token, send_token, send_token_hash
from .session import Session

__all__ = ["Claim", "FirstCommit", "first_commit", "join_resumed", "send_commit", "start_group"]

_log = logging.getLogger(__name__)

#: Claims and checks one KeyPackage per client of each account, in the first
#: of the listed suites they all provide (:meth:`~.client.MessengerClient._claim`).
Claim = Callable[[Sequence[str], Sequence[int]], Awaitable[list[bytes]]]

#: Times a Commit is sent again when its answer may have been lost: the same
#: idempotency key gets the first answer, so it is never applied twice.
_SENDS: Final = 3


@dataclass(frozen=True, slots=True)
class FirstCommit:
    """A new group's registration and its first Commit, ready to send."""

    create: m.CreateGroupRequest
    commit: m.CommitRequest
    state: bytes
    """The group's state with the Commit merged, to save once the server took it."""
    message: bytes
    """The Commit: its echo is this client's own."""


def first_commit(
    group: Group,
    result: CommitResult,
    client_id: str,
    claims: tuple[bytes, ...],
    random: Callable[[int], bytes],
) -> FirstCommit:
    """The requests that register ``group`` (at epoch 0, ``result`` staged) and
    send its first Commit; the Commit is merged (MLS thread)."""
    from .epochs import membership_after, queues_of  # epochs -> sync -> inbound -> here

    members = membership_after(group, result.staged)
    others = [x for x in members if x.client_id != client_id]
    sealing = send_token(group)  # of epoch 0: the first Commit is sealed too
    create = m.CreateGroupRequest(
        group.group_id,
        group.group_info(),
        send_token_hash=send_token_hash(group),
        send_token=sealing,  # the server seals the group's state under it (metadata.md §2)
    )
    token = next_send_token(group, result.staged)
    state = group.to_bytes(result.staged)
    group.merge(result.staged)
    commit = m.CommitRequest(
        epoch=0,
        commit=result.message,
        members=tuple(queues_of(members)),
        welcome=result.welcome if others else None,
        welcome_to=tuple(queues_of(others)) or None,
        group_info=group.group_info(),  # of epoch 1, for external joins (a restore)
        idempotency_key=random(16),
        send_token_hash=None if token is None else token_digest(token),
        token=sealing,
        claims=claims or None,
        next_token=token,
    )
    return FirstCommit(create, commit, state, result.message)


async def send_commit(session: Session, group_id: bytes, request: m.CommitRequest) -> None:
    """Send a sealed Commit; again with the same idempotency key if the answer was lost."""
    for attempt in range(_SENDS):
        try:
            await session.transport.commit(group_id, request, sealed=True)
            return
        except (ServerRejectedError, StaleEpochError):  # an answer: not lost
            raise
        except NetworkError:
            if attempt == _SENDS - 1:
                raise


async def start_group(session: Session, group_id: bytes, first: FirstCommit) -> None:
    """Register the new group (or find it registered by a cut-off attempt) and
    send its first Commit."""
    try:
        await session.transport.create_group(first.create)
    except GroupExistsError:
        _log.info("the new group was registered by an attempt that was cut off")
    await send_commit(session, group_id, first.commit)


async def join_resumed(
    session: Session, data: bytes, bundle: KeyPackageBundle, old: Group
) -> Group | str:
    """Join the new group that resumes ``old`` from its Welcome ``data``, or why not.

    MLS checks the old group's resumption PSK and how the members compare
    (RFC 9420 §11.2, §11.3, §12.4.3.1); the new group must also be the same
    conversation (name, kind, timer). The caller checks the rest.
    """
    try:
        group = await session.mls(
            Group.join_from_welcome,
            data,
            bundle,
            previous=old,
            config=GROUP_CONFIG,
            identity=session.account.verifier,
            successor=same_client,
            now=session.now_s(),
        )
    except MLSError as exc:
        return f"a Welcome to a new group that does not open: {exc}"
    if ConversationInfo.from_extensions(group.extensions) != ConversationInfo.from_extensions(
        old.extensions
    ):
        return "a new group that is another conversation"
    return group
