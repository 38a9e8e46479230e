"""What a processed message changes in the store, and the events it gives.

These functions run on the store's thread, inside the transaction that
also saves the group state and moves the queue cursor (stage, persist,
merge: architecture guide, convention 4), so the timeline and the MLS
state never disagree after a crash.

* :func:`apply_content` -- an application message (:mod:`..content`):
  a new text or reply, an edit, a delete, a reaction, a read receipt, a
  typing notice;
* :func:`apply_transition` -- a new epoch (a commit, received or this
  client's own): members who joined or left, a new group name or
  disappearing-message timer, the keys first seen for a contact's
  clients; with a system note for each;
* :func:`apply_joined` -- this client joined a new group from a Welcome
  (with a note naming who added it);
* :func:`apply_sent` -- outbox items the server accepted (by its answer or
  by their echo in the queue): dropped, their messages marked sent.

A system note is stored as a :class:`~..store.messages.Note` (a kind and
account ids), never as a sentence: names are looked up, and the sentence
worded, when it is shown (:func:`messenger.client.note_text`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..attachments.files import remove_attachment_files
from ..attachments.media import display_name as display_name_of_file
from ..content import (
    Content,
    Delete,
    Edit,
    File,
    Profile,
    Reaction,
    ReadReceipt,
    Reply,
    Sync,
    Text,
    Typing,
)
from ..devices.group import devices_joined, devices_transition
from ..devices.sync import apply_sync
from ..disappearing import message_timer
from ..errors import DuplicateMessageError
from ..events import (
    ContactUpdated,
    ConversationUpdated,
    Event,
    MessageReceived,
    MessageStatusChanged,
    MessageUpdated,
    TypingChanged,
)
from ..groups import ConversationInfo, GroupMember
from ..identity import MemberIdentity
from ..models import display_name, preferences
from ..store.attachments import TransferState
from ..store.conversations import Conversation, ConversationKind
from ..store.messages import Message, MessageKind, MessageStatus, Note, NoteKind
from ..store.store import Store

__all__ = [
    "TYPING_FRESH_MS",
    "Actor",
    "apply_content",
    "apply_joined",
    "apply_sent",
    "apply_transition",
    "display_name",
    "drop_attachment",
    "system_note",
]

#: A typing notice older than this (by the sender's clock) is ignored.
TYPING_FRESH_MS: Final = 30_000


@dataclass(frozen=True, slots=True)
class Actor:
    """This client, as the store needs it."""

    account_id: str
    client_id: str
    new_uid: Callable[[], bytes]


def system_note(
    store: Store,
    conversation: Conversation,
    note: Note,
    *,
    me: Actor,
    by: MemberIdentity | None,
    now: int,
    epoch: int | None,
) -> MessageReceived:
    """Add a system message to the timeline (``by``: its sender, if not this client)."""
    message = store.messages.add(
        conversation.id,
        uid=me.new_uid(),
        sender_account_id=by.account_id if by is not None else me.account_id,
        sender_client_id=by.client_id if by is not None else me.client_id,
        outgoing=False,
        body=None,
        sent_at=now,
        received_at=now,
        kind=MessageKind.SYSTEM,
        status=MessageStatus.RECEIVED,
        epoch=epoch,
        note=note,
    )
    return MessageReceived(conversation.id, message.id)


def _read_statuses(store: Store, conversation: Conversation, me: str) -> list[Event]:
    """Mark sent messages read up to where every other member has read."""
    others = [m.account_id for m in store.conversations.members(conversation.id)]
    others = [a for a in others if a != me]
    if not others:
        return []
    markers = {
        m.account_id: m.message_id for m in store.read_markers.for_conversation(conversation.id)
    }
    if any(a not in markers for a in others):
        return []
    up_to = min(markers[a] for a in others)
    changed = store.messages.mark_read_up_to(conversation.id, up_to)
    return [MessageStatusChanged(conversation.id, i, MessageStatus.READ) for i in changed]


def apply_content(
    store: Store,
    conversation: Conversation,
    sender: MemberIdentity,
    content: Content,
    *,
    me: Actor,
    seq: int | None,
    epoch: int,
    now: int,
) -> list[Event]:
    """Store what an application message says; the events for the UI.

    The devices group carries only sync records (docs/devices.md §3), and
    sync records go only there. A message from another device of this
    account is this user's own (docs/devices.md §4): stored as sent by me.
    """
    cid = conversation.id
    body = content.body
    if conversation.kind is ConversationKind.DEVICES or isinstance(body, Sync):
        if not isinstance(body, Sync):
            return []
        return apply_sync(store, conversation, sender, body, me=me, now=now)
    mine = sender.account_id == me.account_id
    if isinstance(body, Text | Reply):
        message = _add_received(
            store,
            conversation,
            sender,
            content,
            mine=mine,
            seq=seq,
            epoch=epoch,
            now=now,
            kind=MessageKind.REPLY if isinstance(body, Reply) else MessageKind.TEXT,
            text=body.body,
            reply_to=body.target if isinstance(body, Reply) else None,
        )
        return [] if message is None else [MessageReceived(cid, message.id)]
    if isinstance(body, File):
        return _apply_file(
            store, conversation, sender, content, body, mine=mine, seq=seq, epoch=epoch, now=now
        )
    if isinstance(body, Edit):
        edited = store.messages.edit(
            cid, body.target, editor_account_id=sender.account_id, body=body.body, at=now
        )
        return [] if edited is None else [MessageUpdated(cid, edited.id)]
    if isinstance(body, Delete):
        deleted = store.messages.delete_for_everyone(
            cid, body.target, by_account_id=sender.account_id, at=now
        )
        if deleted is not None and deleted.kind is MessageKind.FILE:
            drop_attachment(store, deleted.id)
        return [] if deleted is None else [MessageUpdated(cid, deleted.id)]
    if isinstance(body, Reaction):
        target = store.messages.by_uid(cid, body.target)
        if target is None or target.deleted:
            return []
        if body.remove:
            changed = store.reactions.remove(target.id, sender.account_id, body.emoji)
        else:
            changed = store.reactions.add(target.id, sender.account_id, body.emoji, at=now)
        return [MessageUpdated(cid, target.id)] if changed else []
    if isinstance(body, ReadReceipt):
        target = store.messages.by_uid(cid, body.target)
        if target is None:
            return []
        if not store.read_markers.mark_read(cid, sender.account_id, target.id, at=now):
            return []
        return _read_statuses(store, conversation, me.account_id)
    if mine and isinstance(body, Profile | Typing):
        return []  # this user's own name, or typing on another device
    if isinstance(body, Profile):
        contact = store.contacts.get(sender.account_id)
        if contact is not None and contact.display_name is not None:
            return []
        store.contacts.upsert(sender.account_id, now=now, display_name=body.name)
        return [ContactUpdated(sender.account_id), ConversationUpdated(cid)]
    assert isinstance(body, Typing)
    if now - content.sent_at > TYPING_FRESH_MS:
        return []
    return [TypingChanged(cid, sender.account_id, body.active)]


def _add_received(
    store: Store,
    conversation: Conversation,
    sender: MemberIdentity,
    content: Content,
    *,
    mine: bool,
    seq: int | None,
    epoch: int,
    now: int,
    kind: MessageKind,
    text: str | None,
    reply_to: bytes | None = None,
) -> Message | None:
    """Store a received message with its timer (docs/attachments.md §7); None: a duplicate."""
    timer = message_timer(content.expires_after, conversation.disappearing_seconds)
    try:
        return store.messages.add(
            conversation.id,
            uid=content.uid,
            sender_account_id=sender.account_id,
            sender_client_id=sender.client_id,
            outgoing=mine,
            status=MessageStatus.SENT if mine else None,
            body=text,
            sent_at=content.sent_at,
            received_at=now,
            kind=kind,
            reply_to_uid=reply_to,
            server_seq=seq,
            epoch=epoch,
            expires_after=timer,
            # Sent by another device of this account: counting since it was sent.
            expires_at=content.sent_at + timer * 1000 if mine and timer else None,
        )
    except DuplicateMessageError:
        return None


def _apply_file(
    store: Store,
    conversation: Conversation,
    sender: MemberIdentity,
    content: Content,
    body: File,
    *,
    mine: bool,
    seq: int | None,
    epoch: int,
    now: int,
) -> list[Event]:
    """A file message (docs/attachments.md §4): the message, and its attachment
    ``available`` -- or queued for download at once when it is small enough."""
    cid = conversation.id
    message = _add_received(
        store,
        conversation,
        sender,
        content,
        mine=mine,
        seq=seq,
        epoch=epoch,
        now=now,
        kind=MessageKind.FILE,
        text=body.caption or None,
    )
    if message is None:
        return []
    limit = preferences(store).auto_download_bytes
    from ..attachments.thumbnails import MAX_SIDE, check_thumbnail  # Pillow: loaded when needed

    sized = 0 < body.width <= MAX_SIDE and 0 < body.height <= MAX_SIDE
    store.attachments.add(
        message.id,
        blob_id=body.blob_id,
        access=body.access,
        key=body.key,
        digest=body.digest,
        size=body.size,
        media_type=body.media_type,
        name=display_name_of_file(body.name),  # no bidi overrides or control characters
        width=body.width if sized else 0,
        height=body.height if sized else 0,
        thumbnail=body.thumbnail if check_thumbnail(body.thumbnail) else b"",  # §5
        state=TransferState.DOWNLOADING if body.size <= limit else TransferState.AVAILABLE,
        now=now,
    )
    return [MessageReceived(cid, message.id)]


def drop_attachment(store: Store, message_id: int) -> None:
    """A file message deleted for everyone: its attachment row (key, thumbnail) and file."""
    removed = store.attachments.remove(message_id)
    if removed is not None and removed.local_file is not None:
        remove_attachment_files(store.profile.path, [removed.local_file])


def _save_clients(
    store: Store, members: Sequence[GroupMember], *, me: str, now: int
) -> list[Event]:
    """Record each other member's client key; an event for each new or changed one."""
    events: list[Event] = []
    for member in members:
        if member.account_id == me:
            continue
        if store.contacts.get(member.account_id) is None:
            store.contacts.upsert(member.account_id, now=now)
        if member.account_key is not None and store.contacts.pin_account_key(
            member.account_id, member.account_key, now=now
        ):  # first seen (docs/devices.md §1); the verifier refused any other key
            events.append(ContactUpdated(member.account_id))
        if store.contacts.save_client(
            member.account_id, member.client_id, member.signature_key, now=now
        ):
            events.append(ContactUpdated(member.account_id))
    return events


def apply_transition(
    store: Store,
    conversation: Conversation,
    *,
    before: Sequence[GroupMember],
    after: Sequence[GroupMember],
    info_before: ConversationInfo | None,
    info_after: ConversationInfo | None,
    committer: MemberIdentity | None,
    leavers: frozenset[str],
    me: Actor,
    now: int,
    epoch: int,
) -> list[Event]:
    """Record a new epoch's membership and name; ``leavers`` proposed their own removal."""
    cid = conversation.id
    if conversation.kind is ConversationKind.DEVICES:  # the device list, no timeline
        return devices_transition(
            store,
            after,
            committer=None if committer is None else committer.client_id,
            me=me,
            now=now,
        )
    events: list[Event] = [ConversationUpdated(cid)]
    old_clients = {(m.account_id, m.client_id) for m in before}
    events += _save_clients(
        store,
        [m for m in after if (m.account_id, m.client_id) not in old_clients],
        me=me.account_id,
        now=now,
    )
    old_accounts = {m.account_id for m in before}
    new_accounts = {m.account_id for m in after}
    added = sorted(new_accounts - old_accounts)
    removed = sorted(old_accounts - new_accounts)
    for account in added:
        store.conversations.add_member(cid, account, joined_at=now)
    for account in removed:
        store.conversations.remove_member(cid, account)
    actor = committer.account_id if committer is not None else None

    def note(kind: NoteKind, accounts: Sequence[str] = (), name: str | None = None) -> None:
        found = Note(kind, actor=actor, accounts=tuple(sorted(accounts)), name=name)
        events.append(
            system_note(store, conversation, found, me=me, by=committer, now=now, epoch=epoch)
        )

    if added and conversation.kind is ConversationKind.GROUP:
        note(NoteKind.ADDED, added)
    left = [a for a in removed if a in leavers]
    kicked = [a for a in removed if a not in leavers]
    if left:
        events.append(
            system_note(
                store,
                conversation,
                Note(NoteKind.LEFT, accounts=tuple(left)),
                me=me,
                by=committer,
                now=now,
                epoch=epoch,
            )
        )
    if kicked:
        note(NoteKind.REMOVED, kicked)
    _device_notes(before, after, me=me.account_id, stayed=old_accounts & new_accounts, note=note)
    new_name = info_after.name if info_after is not None else None
    old_name = info_before.name if info_before is not None else conversation.title
    # An unreadable extension (malformed, or a timer out of range) changes neither
    # name nor timer: every member decodes it alike, so all keep what they had.
    if info_after is not None and new_name != old_name:
        store.conversations.rename(cid, new_name)
        note(NoteKind.RENAMED, name=new_name)
    if info_after is not None and store.conversations.set_disappearing(
        cid, info_after.disappearing_seconds
    ):
        events.append(
            system_note(
                store,
                conversation,
                Note(NoteKind.TIMER_CHANGED, actor=actor, seconds=info_after.disappearing_seconds),
                me=me,
                by=committer,
                now=now,
                epoch=epoch,
            )
        )
    return events


def _device_notes(
    before: Sequence[GroupMember],
    after: Sequence[GroupMember],
    *,
    me: str,
    stayed: set[str],
    note: Callable[[NoteKind, Sequence[str]], None],
) -> None:
    """A note per contact that stayed in the group with a device more or fewer
    (docs/devices.md §4: "Alice added a device"). This account's own devices
    get none: the device list shows them, and linking one would otherwise
    write a note into every conversation."""

    def clients(members: Sequence[GroupMember]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for member in members:
            found.setdefault(member.account_id, set()).add(member.client_id)
        return found

    old, new = clients(before), clients(after)
    for account in sorted(stayed - {me}):
        if new[account] - old[account]:
            note(NoteKind.DEVICE_ADDED, (account,))
        if old[account] - new[account]:
            note(NoteKind.DEVICE_REMOVED, (account,))


def apply_joined(
    store: Store,
    group_id: bytes,
    *,
    members: Sequence[GroupMember],
    info: ConversationInfo,
    adder: MemberIdentity | None,
    me: Actor,
    now: int,
    epoch: int,
) -> tuple[Conversation, list[Event]]:
    """This client joined a *new* group from a Welcome: its conversation, members, contacts.

    ``adder`` is the member that signed the Welcome's GroupInfo (the
    committer that added this client, RFC 9420 §12.4.3.1); a group's
    timeline says who that was. The caller has checked that the group ID is
    new to this client: a Welcome never replaces or revives a conversation.
    """
    if store.conversations.by_group(group_id) is not None:
        raise ValueError("a Welcome for a group that already has a conversation")
    others = sorted({m.account_id for m in members if m.account_id != me.account_id})
    kind = info.kind
    if kind is ConversationKind.DIRECT and len(others) != 1:
        kind = ConversationKind.GROUP
    conversation = store.conversations.create(
        group_id,
        kind,
        now=now,
        title=info.name,
        peer_account_id=others[0] if kind is ConversationKind.DIRECT else None,
    )
    if info.disappearing_seconds and kind is not ConversationKind.DEVICES:
        store.conversations.set_disappearing(conversation.id, info.disappearing_seconds)
        conversation = dataclasses.replace(
            conversation, disappearing_seconds=info.disappearing_seconds
        )
    if kind is ConversationKind.DEVICES:  # linked: the device list, no timeline
        for account in {m.account_id for m in members}:
            store.conversations.add_member(conversation.id, account, joined_at=now)
        return conversation, devices_joined(store, group_id, members, me=me, now=now)
    events: list[Event] = [ConversationUpdated(conversation.id)]
    events += _save_clients(store, members, me=me.account_id, now=now)
    for account in {m.account_id for m in members}:
        store.conversations.add_member(conversation.id, account, joined_at=now)
    # Added by another device of this account (it was linked): no "X added you".
    if conversation.kind is ConversationKind.GROUP and (
        adder is None or adder.account_id != me.account_id
    ):
        joined = Note(
            NoteKind.JOINED,
            actor=adder.account_id if adder is not None else None,
            name=info.name,
        )
        events.append(
            system_note(store, conversation, joined, me=me, by=adder, now=now, epoch=epoch)
        )
    return conversation, events


def apply_sent(store: Store, item_ids: Sequence[int]) -> list[Event]:
    """Outbox items the server accepted: drop them; their pending messages become sent.

    Idempotent: items already gone (applied by their echo, or by the
    server's answer) and messages no longer pending change nothing.
    """
    message_ids = store.outbox.remove_many(item_ids)
    return [
        MessageStatusChanged(conversation_id, message_id, MessageStatus.SENT)
        for message_id, conversation_id in store.messages.mark_sent(message_ids)
    ]
