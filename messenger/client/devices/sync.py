"""Sync records sent and applied: one account's devices agree (docs/devices.md §3).

**Sending.** A change the user makes on this device (a contact renamed,
a conversation muted, a draft typed, a setting...) is written locally and,
in the same transaction, :func:`queue_records` stamps it in the
``sync_clock`` (:mod:`..store.sync_clock`) and queues a
:class:`~..content.Sync` message to the devices group through the outbox,
so it survives a crash and is sent in order like any message. While this
device is the account's only one nothing is sent; the clocks are kept, and
a device added later gets everything in one snapshot (:func:`snapshot`)
from the device that added it.

**Applying.** :func:`apply_sync` runs inside the inbound transaction that
consumes the message (stage, persist, merge): a record applies only if it
came in the account's devices group, from another device of this account
that is still one of its devices, and only if it is later, by ``(clock,
sender's client ID)``, than what this device has for that value (last
writer wins). Records never carry anything a device could not set by hand
on the other device: a removed or hostile ex-device can at worst have
changed names and flags until it was removed, never a message or a key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from ..content import Content, Sync, encode_content
from ..events import (
    ContactUpdated,
    ConversationUpdated,
    DevicesChanged,
    Event,
    PreferencesChanged,
)
from ..identity import MemberIdentity
from ..models import READ_RECEIPTS_KEY, TYPING_INDICATORS_KEY, preferences
from ..store.conversations import Conversation, ConversationKind
from ..store.messages import MessageKind
from ..store.outbox import OutboxItem, OutboxKind
from ..store.store import Store
from ..store.sync_clock import ClockEntry
from .records import (
    ContactBlocked,
    ContactName,
    ContactVerified,
    ConversationArchived,
    ConversationDraft,
    ConversationMuted,
    ConversationRead,
    DeviceInfo,
    Record,
    RecordDecodeError,
    Setting,
    SignedOut,
    Stamped,
    decode_records,
    encode_batches,
    encode_records,
    record_key,
)

if TYPE_CHECKING:
    from ..sync.effects import Actor

__all__ = [
    "MAX_CLOCK_SKEW_MS",
    "SETTING_KEYS",
    "apply_sync",
    "devices_group",
    "other_devices",
    "queue_records",
    "queue_removal",
    "queue_snapshot",
    "snapshot",
]

_log = logging.getLogger(__name__)

#: A record dated further than this ahead of this device's clock is ignored:
#: a hostile device must not win every later write with a time far ahead.
MAX_CLOCK_SKEW_MS: Final = 24 * 3_600_000
#: The settings keys of the synced settings, by their name in a record.
SETTING_KEYS: Final = {
    "read_receipts": READ_RECEIPTS_KEY,
    "typing_indicators": TYPING_INDICATORS_KEY,
}


def devices_group(store: Store) -> Conversation | None:
    """The account's devices group's conversation (None: none yet, or left)."""
    group_id = store.devices.group_id()
    if group_id is None:
        return None
    conversation = store.conversations.by_group(group_id)
    if conversation is None or conversation.kind is not ConversationKind.DEVICES:
        return None
    return conversation


def other_devices(store: Store, client_id: str) -> list[str]:
    """The client IDs of this account's other devices (in the devices group)."""
    return [d.client_id for d in store.devices.all() if d.client_id != client_id]


# -- sending -----------------------------------------------------------------------------


def _sync_message(records: bytes, *, uid: bytes, now: int) -> bytes:
    return encode_content(Content(uid, now, Sync(records)))


def queue_records(
    store: Store,
    records: Sequence[Record],
    *,
    client_id: str,
    new_uid: Callable[[], bytes],
    now: int,
) -> OutboxItem | None:
    """Stamp local changes and queue them to the other devices (inside a transaction).

    The outbox item (wake its group's lane), or None when nothing is sent:
    no devices group, or no other device yet.
    """
    stamped = []
    for record in records:
        kind, key = record_key(record)
        entry = store.sync_clock.stamp(kind, key, now=now, client_id=client_id)
        stamped.append(Stamped(record, entry.updated_at))
    conversation = devices_group(store)
    if conversation is None or conversation.left_at is not None or not stamped:
        return None
    if not other_devices(store, client_id):
        return None
    data = _sync_message(encode_records(stamped), uid=new_uid(), now=now)
    return store.outbox.enqueue(
        OutboxKind.MESSAGE, b"", now=now, group_id=conversation.group_id, content=data
    )


def _clock_of(store: Store, record: Record) -> int:
    entry = store.sync_clock.get(*record_key(record))
    return 0 if entry is None else entry.updated_at


def snapshot(store: Store, *, client_id: str, device_name: str | None, now: int) -> list[Stamped]:
    """Everything this device syncs, with the clocks it has: for a new device.

    Values never changed since this device kept clocks go out at clock 0,
    so that anything written since wins over them.
    """
    found: list[Record] = [DeviceInfo(client_id, device_name, now)]
    me = store.identity.get()
    for contact in store.contacts.all(include_blocked=True):
        if me is not None and contact.account_id == me.account_id:
            continue
        found.append(ContactName(contact.account_id, contact.display_name))
        found.append(ContactBlocked(contact.account_id, contact.blocked))
        found.append(ContactVerified(contact.account_id, contact.verified_fingerprint))
    conversations = [
        *store.conversations.all(archived=False),
        *store.conversations.all(archived=True),
    ]
    for conversation in conversations:
        gid = conversation.group_id
        found.append(ConversationMuted(gid, conversation.muted, conversation.muted_until))
        found.append(ConversationArchived(gid, conversation.archived))
        found.append(ConversationDraft(gid, conversation.draft))
        if me is not None:
            marker = store.read_markers.get(conversation.id, me.account_id)
            read = None if marker is None else store.messages.get(marker.message_id)
            if read is not None:
                found.append(ConversationRead(gid, read.uid))
    prefs = preferences(store)
    found.append(Setting("read_receipts", prefs.read_receipts))
    found.append(Setting("typing_indicators", prefs.typing_indicators))
    return [Stamped(r, now if isinstance(r, DeviceInfo) else _clock_of(store, r)) for r in found]


def queue_snapshot(
    store: Store,
    *,
    client_id: str,
    device_name: str | None,
    new_uid: Callable[[], bytes],
    now: int,
) -> bytes | None:
    """Queue :func:`snapshot` to the devices group (a device joined); its group ID."""
    conversation = devices_group(store)
    if conversation is None or conversation.left_at is not None:
        return None
    records = snapshot(store, client_id=client_id, device_name=device_name, now=now)
    for batch in encode_batches(records):
        store.outbox.enqueue(
            OutboxKind.MESSAGE,
            b"",
            now=now,
            group_id=conversation.group_id,
            content=_sync_message(batch, uid=new_uid(), now=now),
        )
    return conversation.group_id


def queue_removal(store: Store, client_ids: Iterable[str], *, now: int) -> list[bytes]:
    """Queue, durably, a commit removing ``client_ids``' leaves in every group of
    the account (RFC 9420 §12.1.3), the devices group included; the group IDs.

    The devices are marked removed at once (the device list drops them).
    """
    from ..sync.intents import Intent

    clients = tuple(sorted(set(client_ids)))
    intent = Intent("remove_clients", clients=clients).dumps()
    group_ids: list[bytes] = []
    targets = [
        *store.conversations.all(archived=False),
        *store.conversations.all(archived=True),
    ]
    devices = devices_group(store)
    if devices is not None:
        targets.append(devices)
    for conversation in targets:
        if conversation.left_at is not None or store.groups.epoch(conversation.group_id) is None:
            continue
        store.outbox.enqueue(
            OutboxKind.COMMIT, b"", now=now, group_id=conversation.group_id, intent=intent
        )
        group_ids.append(conversation.group_id)
    for client_id in clients:
        store.devices.mark_removed(client_id, at=now)
    return group_ids


# -- applying ----------------------------------------------------------------------------


def apply_sync(
    store: Store,
    conversation: Conversation,
    sender: MemberIdentity,
    body: Sync,
    *,
    me: Actor,
    now: int,
) -> list[Event]:
    """Apply a batch of records received in ``conversation``; the events for the UI.

    Ignored unless it came in the account's devices group from another of
    this account's current devices.
    """
    devices = devices_group(store)
    if (
        devices is None
        or devices.id != conversation.id
        or sender.account_id != me.account_id
        or sender.client_id == me.client_id
    ):
        return []
    known = store.devices.get(sender.client_id)
    if known is None or not known.active or known.signature_key != sender.signature_key:
        return []  # not (or no longer) one of this account's devices
    try:
        records = decode_records(body.records)
    except RecordDecodeError as exc:
        _log.info("ignored sync records: %s", exc)
        return []
    events: list[Event] = []
    for stamped in records:
        if stamped.clock > now + MAX_CLOCK_SKEW_MS:
            continue
        events += _apply(store, stamped, sender=sender.client_id, me=me, now=now)
    return _unique(events)


def _unique(events: Sequence[Event]) -> list[Event]:
    seen: set[Event] = set()
    result: list[Event] = []
    for event in events:
        if event not in seen:
            seen.add(event)
            result.append(event)
    return result


def _wins(store: Store, record: Record, clock: int, sender: str) -> bool:
    kind, key = record_key(record)
    return store.sync_clock.advance(kind, key, ClockEntry(clock, sender))


def _contact_events(store: Store, account_id: str) -> list[Event]:
    return [
        ContactUpdated(account_id),
        *(ConversationUpdated(c) for c in store.conversations.with_member(account_id)),
    ]


def _conversation(store: Store, group_id: bytes) -> Conversation | None:
    found = store.conversations.by_group(group_id)
    if found is None or found.kind is ConversationKind.DEVICES:
        return None
    return found


def _apply(store: Store, stamped: Stamped, *, sender: str, me: Actor, now: int) -> list[Event]:
    record, clock = stamped.record, stamped.clock
    match record:
        case DeviceInfo(client_id, name, last_seen_at):
            if client_id != sender:  # a device speaks only for itself
                return []
            changed = False
            if _wins(store, record, clock, sender):
                changed = store.devices.set_name(client_id, name)
            changed = store.devices.set_last_seen(client_id, min(last_seen_at, now)) or changed
            return [DevicesChanged()] if changed else []
        case SignedOut(client_id):
            if client_id != sender:
                return []
            queue_removal(store, [client_id], now=now)
            return [DevicesChanged()]
        case ConversationRead(group_id, up_to):
            # Read markers only move forward: no clock needed.
            conversation = _conversation(store, group_id)
            if conversation is None:
                return []
            target = store.messages.by_uid(conversation.id, up_to)
            if target is None or target.kind is MessageKind.SYSTEM:
                return []
            if not store.read_markers.mark_read(conversation.id, me.account_id, target.id, at=now):
                return []
            # Read on another device: disappearing messages count down here too.
            store.messages.start_countdown(conversation.id, target.id, now=now)
            return [ConversationUpdated(conversation.id)]
        case Setting(name, enabled):
            if not _wins(store, record, clock, sender):
                return []
            store.settings.set(SETTING_KEYS[name], enabled)
            prefs = preferences(store)
            return [PreferencesChanged(prefs.read_receipts, prefs.typing_indicators)]
        case ContactName() | ContactBlocked() | ContactVerified():
            return _apply_contact(store, record, clock, sender=sender, me=me, now=now)
        case _:
            return _apply_conversation(store, record, clock, sender=sender, now=now)


def _apply_contact(
    store: Store,
    record: ContactName | ContactBlocked | ContactVerified,
    clock: int,
    *,
    sender: str,
    me: Actor,
    now: int,
) -> list[Event]:
    account_id = record.account_id
    if account_id == me.account_id or not _wins(store, record, clock, sender):
        return []
    if store.contacts.get(account_id) is None:
        store.contacts.upsert(account_id, now=now)
    match record:
        case ContactName(_, name):
            store.contacts.set_display_name(account_id, name, now=now)
        case ContactBlocked(_, blocked):
            store.contacts.set_blocked(account_id, blocked, now=now)
        case ContactVerified(_, fingerprint):
            if fingerprint is None:
                store.contacts.clear_verified(account_id, now=now)
            else:
                store.contacts.set_verified(account_id, fingerprint, at=now)
    return _contact_events(store, account_id)


def _apply_conversation(
    store: Store, record: Record, clock: int, *, sender: str, now: int
) -> list[Event]:
    assert isinstance(record, ConversationMuted | ConversationArchived | ConversationDraft)
    conversation = _conversation(store, record.group_id)
    if conversation is None or not _wins(store, record, clock, sender):
        return []
    cid = conversation.id
    match record:
        case ConversationMuted(_, muted, until):
            store.conversations.set_muted(cid, muted, until=until)
        case ConversationArchived(_, archived):
            store.conversations.set_archived(cid, archived)
        case ConversationDraft(_, draft):
            store.conversations.set_draft(cid, draft, at=now)
    return [ConversationUpdated(cid)]
