"""Records the UI shows, built from the store (architecture guide, "The layers").

The facade (:mod:`.client`) returns these and the store's own records
(:class:`~.store.conversations.Conversation`, :class:`~.store.messages.Message`,
:class:`~.store.contacts.Contact`, :class:`~.store.search.SearchHit`); all
are frozen dataclasses, safe to hand to another thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from .attachments.layout import stored_size
from .disappearing import format_timer
from .events import (
    ConversationUpdated,
    Event,
    MessageReceived,
    MessageStatusChanged,
    MessageUpdated,
)
from .safety_number import SafetyNumber
from .store.attachments import Attachment, TransferState
from .store.conversations import Conversation, ConversationKind
from .store.messages import Message, MessageKind, Note, NoteKind
from .store.store import Store

__all__ = [
    "AccountInfo",
    "AttachmentView",
    "ConversationView",
    "MemberView",
    "MessageView",
    "NoteView",
    "Preferences",
    "ReactionSummary",
    "SafetyNumberView",
    "attachment_view",
    "conversation_view",
    "message_views",
    "note_text",
    "preferences",
    "with_views",
]

#: The settings keys of :class:`Preferences`.
READ_RECEIPTS_KEY: Final = "preferences.read_receipts"
TYPING_INDICATORS_KEY: Final = "preferences.typing_indicators"
AUTO_DOWNLOAD_KEY: Final = "preferences.auto_download_bytes"
#: Received files up to this size are downloaded at once (docs/attachments.md §4).
DEFAULT_AUTO_DOWNLOAD_BYTES: Final = 16 << 20


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """This profile's account."""

    server_url: str
    account_id: str
    client_id: str
    handle: str | None
    address: str | None
    """``handle@server``, if the account has a handle."""
    invite_link: str
    display_name: str | None = None
    """The name this user chose (:meth:`~.client.MessengerClient.set_display_name`)."""


@dataclass(frozen=True, slots=True)
class Preferences:
    """The user's global choices; a conversation may override them."""

    read_receipts: bool = True
    """Tell the sender when their messages were read."""
    typing_indicators: bool = True
    """Tell the others when this user is typing."""
    auto_download_bytes: int = DEFAULT_AUTO_DOWNLOAD_BYTES
    """Download received files up to this size at once (0: none; others on demand)."""


@dataclass(frozen=True, slots=True)
class MemberView:
    account_id: str
    name: str
    is_me: bool


@dataclass(frozen=True, slots=True)
class ConversationView:
    conversation: Conversation
    name: str
    """The group's name, or the other person's name in a one-to-one chat."""
    members: tuple[MemberView, ...]
    unread: int
    muted: bool = False
    """Muted now (``conversation.muted_until`` says until when)."""
    blocked: bool = False
    """A one-to-one chat with a blocked contact: nothing can be sent, nothing arrives."""
    read_receipts: bool = True
    """Whether read receipts are sent here (the conversation's choice, or the global one)."""
    typing_indicators: bool = True
    """Whether typing notices are sent here (the conversation's choice, or the global one)."""
    stuck: bool = False
    """The group went where this client cannot follow: nothing sent here gets
    through until someone starts the conversation again (``restart_conversation``)."""

    @property
    def id(self) -> int:
        return self.conversation.id

    @property
    def archived(self) -> bool:
        return self.conversation.archived

    @property
    def draft(self) -> str | None:
        """The text typed here and not sent yet."""
        return self.conversation.draft

    @property
    def active(self) -> bool:
        """Whether this client is still a member."""
        return self.conversation.left_at is None


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    emoji: str
    count: int
    mine: bool


@dataclass(frozen=True, slots=True)
class NoteView:
    """A system message, to word in the user's language (:func:`note_text`: English).

    See :class:`~.store.messages.NoteKind` for what each kind says with
    ``actor``, ``members`` and ``name``.
    """

    kind: NoteKind
    actor: MemberView | None = None
    """Who did it (the committer), if known."""
    members: tuple[MemberView, ...] = ()
    """Who was added, removed, or left."""
    name: str | None = None
    """The group's name (created, joined, renamed to); None: it has none."""
    text: str | None = None
    """The stored sentence of a :attr:`~.store.messages.NoteKind.LEGACY_TEXT` note."""
    seconds: int | None = None
    """A :attr:`~.store.messages.NoteKind.TIMER_CHANGED` note's new timer (0: off)."""


@dataclass(frozen=True, slots=True)
class AttachmentView:
    """The attachment of a file message, as the timeline shows it (docs/attachments.md §4)."""

    name: str
    """The sender's file name: for display only, never a path."""
    media_type: str
    size: int
    """The file's size in bytes."""
    state: TransferState
    done: int = 0
    """Bytes uploaded or downloaded so far."""
    width: int = 0
    height: int = 0
    """An image's size in pixels (0: not an image, or unknown)."""
    thumbnail: bytes = field(default=b"", repr=False)
    """A small JPEG preview (empty: none)."""
    error: str | None = None
    """Why the transfer failed: a sentence for the user."""

    @property
    def is_image(self) -> bool:
        return self.media_type in IMAGE_TYPES

    @property
    def readable(self) -> bool:
        """Whether the whole file is on this device (open, save, show inline)."""
        return self.state in (TransferState.SENT, TransferState.DOWNLOADED)


#: Media types shown inline as images (others are file cards).
IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})


@dataclass(frozen=True, slots=True)
class MessageView:
    message: Message
    """For a system message, ``message.body`` is :func:`note_text` of ``note`` (English)."""
    sender_name: str
    reactions: tuple[ReactionSummary, ...]
    reply_to: Message | None = None
    """The message replied to, if this is a reply and it is stored."""
    note: NoteView | None = None
    """What a system message says, to render and translate (None for the other kinds)."""
    attachment: AttachmentView | None = None
    """A file message's attachment (None for the other kinds)."""

    @property
    def id(self) -> int:
        return self.message.id


@dataclass(frozen=True, slots=True)
class SafetyNumberView:
    """A contact's safety number, and whether the user verified this very number."""

    account_id: str
    number: SafetyNumber
    verified: bool
    changed: bool
    """The user verified an earlier number: the contact's keys changed since."""


# -- built on the store's thread ---------------------------------------------------------


def display_name(store: Store, account_id: str, me: str) -> str:
    """How the timeline names an account: "You", the contact's name or handle, or its id."""
    if account_id == me:
        return "You"
    contact = store.contacts.get(account_id)
    if contact is not None and (contact.display_name or contact.handle):
        return contact.display_name or contact.handle or account_id
    return account_id[:8]


def preferences(s: Store) -> Preferences:
    return Preferences(
        read_receipts=s.settings.get(READ_RECEIPTS_KEY, True) is not False,
        typing_indicators=s.settings.get(TYPING_INDICATORS_KEY, True) is not False,
        auto_download_bytes=max(
            0, s.settings.get_int(AUTO_DOWNLOAD_KEY, DEFAULT_AUTO_DOWNLOAD_BYTES)
        ),
    )


def conversation_view(
    s: Store,
    conversation: Conversation,
    me: str,
    *,
    now: int | None = None,
    unread: int | None = None,
    prefs: Preferences | None = None,
    blocked: bool | None = None,
    stuck: bool | None = None,
) -> ConversationView:
    """The view of ``conversation``; ``now`` (Unix ms) ends a timed mute.

    ``unread``, ``prefs``, ``blocked`` and ``stuck``: already known to the
    caller (None: read).
    """
    members = tuple(
        MemberView(x.account_id, display_name(s, x.account_id, me), x.account_id == me)
        for x in s.conversations.members(conversation.id)
    )
    if conversation.kind is ConversationKind.DIRECT and conversation.peer_account_id:
        name = display_name(s, conversation.peer_account_id, me)
    else:
        name = conversation.title or "Unnamed group"
    if unread is None:
        unread = s.read_markers.unread_count(conversation.id, me)
    prefs = prefs if prefs is not None else preferences(s)
    peer = conversation.peer_account_id
    return ConversationView(
        conversation,
        name,
        members,
        unread,
        muted=conversation.muted if now is None else conversation.muted_at(now),
        blocked=conversation.kind is ConversationKind.DIRECT
        and peer is not None
        and (s.contacts.is_blocked(peer) if blocked is None else blocked),
        read_receipts=(
            conversation.read_receipts
            if conversation.read_receipts is not None
            else prefs.read_receipts
        ),
        typing_indicators=(
            conversation.typing_indicators
            if conversation.typing_indicators is not None
            else prefs.typing_indicators
        ),
        stuck=conversation.left_at is None
        and (s.groups.stuck_at(conversation.group_id) is not None if stuck is None else stuck),
    )


def note_text(note: NoteView) -> str:
    """The English sentence of a system message (names as :class:`MemberView` has them)."""
    kind, actor = note.kind, note.actor
    names = ", ".join(m.name for m in note.members)
    where = f"“{note.name}”" if note.name else "the group"
    if kind is NoteKind.CREATED:
        return f"You created {where}"
    if kind is NoteKind.JOINED:
        if actor is not None and not actor.is_me:
            return f"{actor.name} added you to {where}"
        return f"You joined {where}"
    if kind is NoteKind.ADDED:
        return f"{actor.name} added {names}" if actor is not None else f"{names} joined"
    if kind is NoteKind.LEFT:
        return f"{names} left"
    if kind is NoteKind.REMOVED:
        return f"{actor.name} removed {names}" if actor is not None else f"{names} left"
    if kind is NoteKind.RENAMED:
        to = f"“{note.name}”" if note.name else "no name"
        return f"{actor.name} renamed the group to {to}" if actor else f"The group is now {to}"
    if kind is NoteKind.YOU_LEFT:
        return "You left"
    if kind is NoteKind.YOU_WERE_REMOVED:
        return "You were removed from the conversation"
    if kind in (NoteKind.DEVICE_ADDED, NoteKind.DEVICE_REMOVED):
        added = kind is NoteKind.DEVICE_ADDED
        if note.members and note.members[0].is_me:
            return "You linked a device" if added else "You removed a device"
        who = names or "A member"
        return f"{who} added a device" if added else f"{who} removed a device"
    if kind is NoteKind.REJOIN_FAILED:
        return "This device could not rejoin the conversation; what it holds stays readable"
    if kind is NoteKind.STUCK:
        return "This conversation could not go on: a change sent to it could not be read here"
    if kind is NoteKind.RESTARTED:
        who = "You" if actor is None or actor.is_me else actor.name
        return f"{who} started the conversation again" + (f" without {names}" if names else "")
    if kind is NoteKind.TIMER_CHANGED:
        if not note.seconds:
            off = "turned off disappearing messages"
            return f"{actor.name} {off}" if actor else "Disappearing messages are off"
        timer = format_timer(note.seconds)
        return (
            f"{actor.name} set disappearing messages to {timer}"
            if actor
            else f"Disappearing messages are set to {timer}"
        )
    return note.text or ""


def _note_view(s: Store, note: Note, me: str, names: dict[str, str]) -> NoteView:
    def member(account_id: str) -> MemberView:
        if account_id not in names:
            names[account_id] = display_name(s, account_id, me)
        return MemberView(account_id, names[account_id], account_id == me)

    return NoteView(
        note.kind,
        actor=None if note.actor is None else member(note.actor),
        members=tuple(member(a) for a in note.accounts),
        name=note.name,
        text=note.text,
        seconds=note.seconds,
    )


def attachment_view(attachment: Attachment) -> AttachmentView:
    """What the timeline shows of an attachment (``done`` in bytes of the file)."""
    readable = attachment.state in (TransferState.SENT, TransferState.DOWNLOADED)
    stored = max(1, stored_size(attachment.size))
    done = attachment.size if readable else attachment.done * attachment.size // stored
    return AttachmentView(
        name=attachment.name,
        media_type=attachment.media_type,
        size=attachment.size,
        state=attachment.state,
        done=done,
        width=attachment.width,
        height=attachment.height,
        thumbnail=attachment.thumbnail,
        error=attachment.error,
    )


def message_views(s: Store, page: Sequence[Message], me: str) -> list[MessageView]:
    reactions = s.reactions.for_messages([x.id for x in page])
    attachments = s.attachments.for_messages([x.id for x in page if x.kind is MessageKind.FILE])
    names: dict[str, str] = {}
    views = []
    for message in page:
        note = None
        if message.kind is MessageKind.SYSTEM:
            stored = message.note or Note(NoteKind.LEGACY_TEXT, text=message.body)
            note = _note_view(s, stored, me, names)
            message = replace(message, body=note_text(note))
        summary: dict[str, list[str]] = {}
        for reaction in reactions.get(message.id, []):
            summary.setdefault(reaction.emoji, []).append(reaction.account_id)
        reply_to = None
        if message.reply_to_uid is not None:
            reply_to = s.messages.by_uid(message.conversation_id, message.reply_to_uid)
        sender = message.sender_account_id
        if sender not in names:
            names[sender] = display_name(s, sender, me)
        views.append(
            MessageView(
                message=message,
                sender_name=names[sender],
                reactions=tuple(
                    ReactionSummary(emoji, len(accounts), me in accounts)
                    for emoji, accounts in summary.items()
                ),
                reply_to=reply_to,
                note=note,
                attachment=(
                    attachment_view(attachments[message.id]) if message.id in attachments else None
                ),
            )
        )
    return views


def with_views(
    s: Store, events: Sequence[Event], me: str, *, now: int | None = None
) -> list[Event]:
    """``events`` carrying the views of their messages and conversations, as stored now.

    A :class:`MessageReceived` also carries its conversation's view (the
    unread count and activity time it changed).

    Run inside the transaction that made the change, so that the views are
    what it wrote and the UI needs no store read to show them.
    """
    wanted = MessageReceived | MessageUpdated | MessageStatusChanged
    ids = sorted({e.message_id for e in events if isinstance(e, wanted) and e.view is None})
    page = s.messages.get_many(ids)
    views = {v.id: v for v in message_views(s, page, me)}
    conversations: dict[int, ConversationView | None] = {}
    prefs: Preferences | None = None
    result: list[Event] = []

    def conversation(cid: int) -> ConversationView | None:
        nonlocal prefs
        if cid not in conversations:
            found = s.conversations.get(cid)
            if found is not None and prefs is None:
                prefs = preferences(s)
            conversations[cid] = (
                None if found is None else conversation_view(s, found, me, now=now, prefs=prefs)
            )
        return conversations[cid]

    for event in events:
        if isinstance(event, wanted) and event.view is None:
            event = replace(event, view=views.get(event.message_id))
        if isinstance(event, MessageReceived) and event.conversation is None:
            event = replace(event, conversation=conversation(event.conversation_id))
        elif isinstance(event, ConversationUpdated) and event.view is None:
            event = replace(event, view=conversation(event.conversation_id))
        result.append(event)
    return result
