"""Small builders shared by the client tests."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import keyring.backend
import keyring.errors

from messenger.client.store import (
    Conversation,
    ConversationKind,
    Message,
    MessageKind,
    MessageStatus,
    ScryptParams,
    Store,
)

if TYPE_CHECKING:
    from messenger.client import MessengerClient

#: Cheap scrypt for tests (the default costs 128 MiB and ~0.5 s).
FAST_KDF = ScryptParams(n=2**10, r=8, p=1, allow_weak=True)
PASSPHRASE = "correct horse battery staple"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend that keeps secrets in a dict."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.passwords: dict[tuple[str, str], str] = {}
        self.writes = 0

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.writes += 1
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.passwords[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("no such password") from None


_uids = itertools.count(1)

ME = "acct-me"
PEER = "acct-peer"


def new_uid() -> bytes:
    return next(_uids).to_bytes(16, "big")


def direct_conversation(
    store: Store, peer: str = PEER, *, group_id: bytes | None = None
) -> Conversation:
    return store.conversations.create(
        group_id if group_id is not None else new_uid(),
        ConversationKind.DIRECT,
        peer_account_id=peer,
        now=1_000,
    )


def add_text(
    store: Store,
    conversation_id: int,
    body: str,
    *,
    sender: str = PEER,
    at: int = 2_000,
    kind: MessageKind = MessageKind.TEXT,
    reply_to_uid: bytes | None = None,
    status: MessageStatus | None = None,
) -> Message:
    return store.messages.add(
        conversation_id,
        uid=new_uid(),
        sender_account_id=sender,
        sender_client_id=f"{sender}-client",
        outgoing=sender == ME,
        body=body,
        sent_at=at,
        received_at=at,
        kind=kind,
        reply_to_uid=reply_to_uid,
        status=status,
    )


async def account_id(client: MessengerClient) -> str:
    """The client's account ID (it has an account)."""
    info = await client.account()
    assert info is not None
    return info.account_id


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    """The bodies of a conversation's messages, system notes left out."""
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=100)
        if v.message.kind is not MessageKind.SYSTEM
    ]
