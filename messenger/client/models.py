"""Records the UI shows, built from the store (architecture guide, "The layers").

The facade (:mod:`.client`) returns these and the store's own records
(:class:`~.store.conversations.Conversation`, :class:`~.store.messages.Message`,
:class:`~.store.contacts.Contact`, :class:`~.store.search.SearchHit`); all
are frozen dataclasses, safe to hand to another thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .safety_number import SafetyNumber
from .store.conversations import Conversation, ConversationKind
from .store.messages import Message
from .store.store import Store
from .sync.effects import display_name

__all__ = [
    "AccountInfo",
    "ConversationView",
    "MemberView",
    "MessageView",
    "ReactionSummary",
    "SafetyNumberView",
    "conversation_view",
    "message_views",
]


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

    @property
    def id(self) -> int:
        return self.conversation.id

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
class MessageView:
    message: Message
    sender_name: str
    reactions: tuple[ReactionSummary, ...]
    reply_to: Message | None = None
    """The message replied to, if this is a reply and it is stored."""

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


def conversation_view(s: Store, conversation: Conversation, me: str) -> ConversationView:
    members = tuple(
        MemberView(x.account_id, display_name(s, x.account_id, me), x.account_id == me)
        for x in s.conversations.members(conversation.id)
    )
    if conversation.kind is ConversationKind.DIRECT and conversation.peer_account_id:
        name = display_name(s, conversation.peer_account_id, me)
    else:
        name = conversation.title or "Unnamed group"
    unread = s.read_markers.unread_count(conversation.id, me)
    return ConversationView(conversation, name, members, unread)


def message_views(s: Store, page: Sequence[Message], me: str) -> list[MessageView]:
    reactions = s.reactions.for_messages([x.id for x in page])
    views = []
    for message in page:
        summary: dict[str, list[str]] = {}
        for reaction in reactions.get(message.id, []):
            summary.setdefault(reaction.emoji, []).append(reaction.account_id)
        reply_to = None
        if message.reply_to_uid is not None:
            reply_to = s.messages.by_uid(message.conversation_id, message.reply_to_uid)
        views.append(
            MessageView(
                message=message,
                sender_name=display_name(s, message.sender_account_id, me),
                reactions=tuple(
                    ReactionSummary(emoji, len(accounts), me in accounts)
                    for emoji, accounts in summary.items()
                ),
                reply_to=reply_to,
            )
        )
    return views
