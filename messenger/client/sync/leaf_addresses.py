"""Moving this client's leaves from its queue ID to a delivery address.

New leaves name the client's queue by a delivery address the server sealed
(:mod:`messenger.api.delivery_address`, :meth:`..session.Session.leaf_account`),
so that those who read a leaf learn no queue ID. A leaf made before carries
the plain queue ID, and a commit's path keeps a leaf's extensions, so an
existing group would show it for as long as the group lives. So:

* every commit this client makes in a group where its leaf still names the
  queue ID gives the leaf the address instead (its path carries the new
  extensions, RFC 9420 §12.4.2; :func:`readdressed_extensions`);
* once per profile, when the session has an address, a self-update commit
  (intent ``rotate``) is queued for each such group
  (:func:`queue_readdressing`), so a group this client never commits in
  moves too.

The server maps both forms to the same queue, so a member that lists the
old form in a commit (it has not yet seen the new leaf) is still right.

The account's **contact token** (:mod:`..contact_tokens`) reaches existing
groups the same way: every commit this client makes in a group where its
leaf lacks the token gives the leaf the ``contact_token`` extension, and
lists it in the leaf's capabilities (:func:`with_token`; a leaf's
extensions must be listed there, RFC 9420 §7.2, §7.3), and once per
profile a self-update is queued in each group where the leaf lacks it
(:func:`queue_token_updates`), so that its members can claim this
account's KeyPackages for a new group (docs/metadata.md §1).

A group joined by the **contact queue** (:mod:`..contact_queue`) has this
client's leaf naming that queue, as its KeyPackage did. After the join (in
turn with the members added with it, :mod:`.move_turns`) a self-update
commit (intent ``move``, :func:`queue_move`) gives the
leaf an address of the client's own queue, whatever the leaf named; its
request proves that queue with the queue's key (``join_proof``), which is
what lets the commit add a queue nobody claimed, and the contact queue with
its key (``leave_proof``), so that its going is not taken for a member's
removal (docs/metadata.md §1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION, SEALED_ADDRESS_LENGTH
from messenger.mls.extensions import Extension, find_extension
from messenger.mls.group import Group
from messenger.mls.leaf_node import Capabilities

from ..contact_tokens import CONTACT_TOKEN_EXTENSION, leaf_token, own_token, token_extension
from ..groups import leaf_capabilities
from ..session import Session
from ..store.outbox import OutboxItem, OutboxKind
from ..store.store import Store
from .intents import Intent

__all__ = [
    "SETTING",
    "TOKEN_SETTING",
    "leaf_address",
    "queue_move",
    "queue_readdressing",
    "queue_rotate",
    "queue_token_updates",
    "readdressed_extensions",
    "with_token",
]

_log = logging.getLogger(__name__)

#: The setting that records that the self-updates were queued.
SETTING: Final = "leaf_addresses_queued"
#: The same for the self-updates that give the leaves the contact token.
TOKEN_SETTING: Final = "leaf_tokens_queued"  # noqa: S105 - a setting's name


def _sealed(address: str | None) -> bool:
    return address is not None and len(address) == SEALED_ADDRESS_LENGTH


def leaf_address(group: Group) -> str | None:
    """The delivery address this client's leaf in ``group`` names (None: none)."""
    own = group.member(group.leaf_index) if group.active else None
    found = None if own is None else find_extension(own.extensions, DELIVERY_QUEUE_EXTENSION)
    return None if found is None else bytes(found.extension_data).decode("ascii", "replace")


def readdressed_extensions(
    group: Group, address: str | None, *, move: bool = False
) -> list[Extension] | None:
    """The extensions for this client's leaf in ``group`` with ``address`` as its
    delivery address, if the leaf still names the plain queue ID (or, to
    ``move`` from the contact queue, any other address); else None (nothing
    to change, or no sealed address to change to)."""
    if not _sealed(address):
        return None
    named = leaf_address(group)
    if named is None or named == address or (_sealed(named) and not move):
        return None
    own = group.member(group.leaf_index)
    assert own is not None  # it names an address
    assert address is not None
    return [
        Extension(DELIVERY_QUEUE_EXTENSION, address.encode("ascii"))
        if e.extension_type == DELIVERY_QUEUE_EXTENSION
        else e
        for e in own.extensions
    ]


def with_token(
    group: Group, extensions: list[Extension] | None, token: bytes | None
) -> tuple[list[Extension] | None, Capabilities | None]:
    """The extensions and capabilities for this client's leaf in ``group``: those
    of ``extensions`` (None: the leaf's own, unchanged), with the ``contact_token``
    extension carrying ``token`` if the leaf lacks it; capabilities that list it
    then (None: unchanged). ``(extensions, None)`` when there is nothing to add."""
    own = group.member(group.leaf_index) if token is not None and group.active else None
    if own is None:
        return extensions, None
    current = list(own.extensions) if extensions is None else list(extensions)
    if leaf_token(current) == token:
        return extensions, None
    assert token is not None
    kept = [e for e in current if e.extension_type != CONTACT_TOKEN_EXTENSION]
    return [*kept, token_extension(token)], leaf_capabilities(group.suite)


def _lacks_token(group: Group, token: bytes) -> bool:
    own = group.member(group.leaf_index) if group.active else None
    return own is not None and leaf_token(own.extensions) != token


def _queued(store: Store, group_id: bytes, now: int, op: str) -> OutboxItem:
    """The queued self-update commit ``op`` for ``group_id``: the one already
    waiting, or a new one (in the caller's transaction)."""
    for other in store.outbox.for_group(group_id):
        if other.kind is OutboxKind.COMMIT and Intent.loads(other.intent).op == op:
            return other
    return store.outbox.enqueue(
        OutboxKind.COMMIT, b"", now=now, group_id=group_id, intent=Intent(op).dumps()
    )


def queue_rotate(store: Store, group_id: bytes, now: int) -> OutboxItem:
    """A queued self-update commit (``rotate``) for ``group_id`` (:func:`_queued`)."""
    return _queued(store, group_id, now, "rotate")


def queue_move(store: Store, group_id: bytes, now: int) -> OutboxItem:
    """A queued ``move`` commit for ``group_id``, joined by the contact queue
    (:func:`_queued`)."""
    return _queued(store, group_id, now, "move")


def _done(store: Store, setting: str = SETTING) -> bool:
    return store.settings.get(setting) is True


def _group_ids(store: Store) -> list[bytes]:
    found = [
        c.group_id for c in [*store.conversations.all(), *store.conversations.all(archived=True)]
    ]
    devices = store.devices.group_id()
    if devices is not None:
        found.append(devices)
    return [g for g in dict.fromkeys(found) if store.groups.epoch(g) is not None]


async def _queue_self_updates(
    session: Session, setting: str, lacks: Callable[[Group], bool], what: str
) -> int:
    """Once per profile (``setting``), a self-update in each group whose leaf of
    this client ``lacks`` something; how many were queued."""
    if await session.store.run(_done, setting):
        return 0
    waiting: list[bytes] = []
    for group_id in await session.store.run(_group_ids):
        async with session.group_lock(group_id):
            group = await session.epochs.get(group_id)
            if group is not None and lacks(group):
                waiting.append(group_id)
    now = session.now_ms()

    def queue(store: Store) -> None:
        for group_id in waiting:
            queue_rotate(store, group_id, now)
        store.settings.set(setting, True)

    await session.store.transaction(queue)
    for group_id in waiting:
        session.outbox_queued(group_id)
    if waiting:
        _log.info("%s in %d group(s)", what, len(waiting))
    return len(waiting)


async def queue_readdressing(session: Session) -> int:
    """Queue a self-update in each group whose leaf of this client names its queue
    ID; how many. Once per profile, and only with a sealed address at hand."""
    address = session.account.delivery_address
    if not _sealed(address):
        return 0
    return await _queue_self_updates(
        session,
        SETTING,
        lambda group: readdressed_extensions(group, address) is not None,
        "moving the leaf to a delivery address",
    )


async def queue_token_updates(session: Session) -> int:
    """Queue a self-update in each group whose leaf of this client lacks the
    account's contact token; how many. Once per profile, and only for an
    account that has a token (docs/metadata.md §1)."""
    token = own_token(session.account)
    if token is None:
        return 0
    return await _queue_self_updates(
        session,
        TOKEN_SETTING,
        lambda group: _lacks_token(group, token),
        "giving the leaf the contact token",
    )
