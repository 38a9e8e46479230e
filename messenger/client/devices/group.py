"""The devices group: one account's devices and nothing else (docs/devices.md §3).

The first device makes it when the account is created (or, for an account
from before devices groups, on its first start): an MLS group with the
``conversation_info`` kind ``devices`` (:mod:`..groups`), a conversation
row of kind ``devices`` that no list, count, search or notification shows,
and its ID in ``devices_group``. Each device linked later is added to it
(and to every other group of the account) by the device that linked it.

**Only this account's devices are ever members.** A commit of the devices
group whose new membership holds a client of another account, and a
Welcome to a devices group with such a member, are refused before
anything is applied (:func:`commit_admissible`, :func:`welcome_admissible`,
called by the inbound pipeline): the epoch does not move, and the Welcome
is dropped. RFC 9420 §13.4 leaves this to the application's policy on
which clients may be members; the credentials themselves were checked by
the identity validator (RFC 9420 §5.3.1).

The device list (:mod:`.views`) follows the group's members: a member is a
device; a device whose leaf is gone was removed.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from messenger.mls.events import StagedCommit
from messenger.mls.group import Group

from ..events import DevicesChanged, Event
from ..groups import ConversationInfo, GroupMember, group_members
from ..store.conversations import ConversationKind
from ..store.store import Store
from .records import MAX_DEVICE_NAME_LENGTH, DeviceInfo
from .sync import queue_records, queue_snapshot

if TYPE_CHECKING:
    from ..sync.effects import Actor

__all__ = [
    "DEVICE_SEEN_INTERVAL_MS",
    "commit_admissible",
    "default_device_name",
    "devices_group_made",
    "devices_joined",
    "devices_transition",
    "is_devices_info",
    "only_account",
    "welcome_admissible",
]

#: A device tells the others it is alive at most this often (its last-seen time).
DEVICE_SEEN_INTERVAL_MS: Final = 3_600_000


def default_device_name() -> str:
    """This computer's name for the device list: its host name, else "Desktop".

    The name goes only to this account's own devices, end-to-end encrypted
    in the devices group (never to the server or to contacts), so the host
    name -- the most useful way to tell two computers apart -- leaks
    nothing new; the user may rename the device.
    """
    name = " ".join(platform.node().split(".", 1)[0].split())
    return name[:MAX_DEVICE_NAME_LENGTH] or "Desktop"


def is_devices_info(extensions: Sequence[object]) -> bool:
    """Whether a GroupContext's extensions say "devices group"."""
    from messenger.mls.extensions import Extension

    found = [e for e in extensions if isinstance(e, Extension)]
    info = ConversationInfo.from_extensions(found)
    return info is not None and info.kind is ConversationKind.DEVICES


def only_account(members: Sequence[GroupMember], account_id: str) -> bool:
    """Whether every member is a client of ``account_id``."""
    return all(m.account_id == account_id for m in members)


def commit_admissible(group: Group, staged: StagedCommit, account_id: str) -> bool:
    """Whether a commit of the devices group keeps it to ``account_id``'s devices
    (in the MLS thread). A commit that removes this client is always let in."""
    from ..epochs import membership_after

    if staged.self_removed:
        return True
    if staged.state is not None and not is_devices_info(staged.state.context.extensions):
        return False  # the devices group cannot be turned into something else
    return only_account(membership_after(group, staged), account_id)


def welcome_admissible(
    group: Group, account_id: str, *, recorded: bytes | None, devices_info: bool
) -> bool:
    """Whether a Welcome may be joined as far as the devices group goes.

    A devices group must have only this account's members and be the one
    recorded (or none recorded yet); a group whose ID is the recorded
    devices group's must be a devices group.
    """
    if devices_info:
        if recorded is not None and recorded != group.group_id:
            return False
        return only_account(group_members(group), account_id)
    return recorded is None or recorded != group.group_id


def devices_group_made(
    store: Store, group_id: bytes, *, client_id: str, signature_key: bytes, now: int
) -> list[Event]:
    """Inside the transaction that made the devices group: record it and this device."""
    store.devices.set_group_id(group_id)
    store.devices.seen(client_id, signature_key, now=now)
    if _own_device_name(store, client_id) is None:
        store.devices.set_name(client_id, default_device_name())
    store.devices.set_last_seen(client_id, now)
    return [DevicesChanged()]


def _own_device_name(store: Store, client_id: str) -> str | None:
    found = store.devices.get(client_id)
    return None if found is None else found.name


def devices_transition(
    store: Store,
    after: Sequence[GroupMember],
    *,
    committer: str | None,
    me: Actor,
    now: int,
) -> list[Event]:
    """A new epoch of the devices group: the device list follows its members.

    When this device's own commit added devices, it sends them everything
    it syncs (:func:`.sync.queue_snapshot`).
    """
    present = {m.client_id for m in after if m.account_id == me.account_id}
    added = [
        m.client_id
        for m in after
        if m.account_id == me.account_id
        and store.devices.seen(m.client_id, m.signature_key, now=now)
    ]
    removed = [
        d.client_id
        for d in store.devices.all()
        if d.client_id not in present and store.devices.mark_removed(d.client_id, at=now)
    ]
    if added and committer == me.client_id:
        queue_snapshot(
            store,
            client_id=me.client_id,
            device_name=_own_device_name(store, me.client_id),
            new_uid=me.new_uid,
            now=now,
        )
    return [DevicesChanged()] if added or removed else []


def devices_joined(
    store: Store, group_id: bytes, members: Sequence[GroupMember], *, me: Actor, now: int
) -> list[Event]:
    """This device joined the devices group (it was linked): record it and its
    devices, and tell them this device's name."""
    store.devices.set_group_id(group_id)
    me_member = next((m for m in members if m.client_id == me.client_id), None)
    for member in members:
        if member.account_id == me.account_id:
            store.devices.seen(member.client_id, member.signature_key, now=now)
    if me_member is not None:
        if _own_device_name(store, me.client_id) is None:
            store.devices.set_name(me.client_id, default_device_name())
        store.devices.set_last_seen(me.client_id, now)
        queue_records(
            store,
            [DeviceInfo(me.client_id, _own_device_name(store, me.client_id), now)],
            client_id=me.client_id,
            new_uid=me.new_uid,
            now=now,
        )
    return [DevicesChanged()]
