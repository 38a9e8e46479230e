"""The encrypted local store: SQLCipher, its key, its schema and repositories.

* :mod:`.store` -- :class:`Store`: create and unlock (keyring, then the
  recovery passphrase), migrations, one repository per concept;
* :mod:`.async_store` -- :class:`AsyncStore`: the same on one worker thread;
* :mod:`.database` -- the SQLCipher connection, transactions, error mapping;
* :mod:`.database_key`, :mod:`.keychain`, :mod:`.key_wrap`, :mod:`.kdf` --
  the database key, its OS keyring entry and its passphrase-wrapped copy;
* :mod:`.migrations` -- the schema, versioned;
* repositories: :mod:`.identity`, :mod:`.settings`, :mod:`.contacts`,
  :mod:`.conversations`, :mod:`.messages` (with :mod:`.search`),
  :mod:`.reactions`, :mod:`.read_markers`, :mod:`.groups`,
  :mod:`.key_packages`, :mod:`.outbox`, :mod:`.sent_messages`,
  :mod:`.pending_inbound`.
"""

from __future__ import annotations

from .async_store import AsyncStore
from .contacts import Contact, ContactClient, ContactRepository
from .conversations import (
    Conversation,
    ConversationKind,
    ConversationMember,
    ConversationRepository,
)
from .database import Database
from .database_key import DatabaseKey
from .groups import GroupState, GroupStateRepository
from .identity import Identity, IdentityRepository
from .kdf import DEFAULT_SCRYPT, MIN_PASSPHRASE_LENGTH, ScryptParams
from .key_packages import KeyPackageRepository, KeyPackageSecret
from .keychain import KEYRING_SERVICE, Keychain
from .messages import Message, MessageKind, MessageRepository, MessageStatus
from .migrations import LATEST_VERSION
from .outbox import OutboxItem, OutboxKind, OutboxRepository
from .pending_inbound import PendingInbound, PendingInboundRepository
from .pending_links import PendingLink, PendingLinkRepository
from .reactions import Reaction, ReactionRepository
from .read_markers import ReadMarker, ReadMarkerRepository
from .search import HIGHLIGHT_END, HIGHLIGHT_START, SearchHit
from .sent_messages import SentMessageRepository
from .settings import JsonValue, SettingsRepository
from .store import Store, UnlockMethod

__all__ = [
    "DEFAULT_SCRYPT",
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "KEYRING_SERVICE",
    "LATEST_VERSION",
    "MIN_PASSPHRASE_LENGTH",
    "AsyncStore",
    "Contact",
    "ContactClient",
    "ContactRepository",
    "Conversation",
    "ConversationKind",
    "ConversationMember",
    "ConversationRepository",
    "Database",
    "DatabaseKey",
    "GroupState",
    "GroupStateRepository",
    "Identity",
    "IdentityRepository",
    "JsonValue",
    "KeyPackageRepository",
    "KeyPackageSecret",
    "Keychain",
    "Message",
    "MessageKind",
    "MessageRepository",
    "MessageStatus",
    "OutboxItem",
    "OutboxKind",
    "OutboxRepository",
    "PendingInbound",
    "PendingInboundRepository",
    "PendingLink",
    "PendingLinkRepository",
    "Reaction",
    "ReactionRepository",
    "ReadMarker",
    "ReadMarkerRepository",
    "ScryptParams",
    "SearchHit",
    "SentMessageRepository",
    "SettingsRepository",
    "Store",
    "UnlockMethod",
]
