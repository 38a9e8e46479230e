"""Contact tokens: this account's, and how this client learns those of others
(docs/metadata.md §1, :mod:`messenger.api.contact_token`).

The server keeps each client's KeyPackages sealed under a key it derives
from its key file **and the account's contact token**, which it does not
store: a claim opens them only by presenting the token. So the operator,
key file in hand, cannot join an account to its contact queue from what
is stored.

* **This account's token** is ``HKDF-SHA256(ikm=account private key,
  salt=None, info="messenger contact token v1", 32)`` (:func:`contact_token`):
  every device of the account derives the same one. An account without an
  account key (from before docs/devices.md) has none and stays on the old
  scheme (its KeyPackages are sealed under the key file alone).
* **Every leaf this client makes** carries it in the ``contact_token``
  LeafNode extension (0xF003; RFC 9420 §13.1, §17.3), listed in the leaf's
  capabilities but never required of a group (old apps' leaves lack it):
  KeyPackages, a new group's first leaf, external joins, and the path of
  its commits (:mod:`.sync.leaf_addresses`), so that a group's members
  learn it.
* **Others' tokens** come from an invite link (its ``token`` parameter,
  :mod:`.addresses`), a handle's lookup (the server hands out the token
  sealed under a key from the handle, which only those who know the handle
  can open: :func:`look_up_handle`), and the leaves of the groups this
  client shares with the account (read only when a claim needs a token it
  does not have: :func:`token_in_groups`). The last one that worked is kept
  (:mod:`.store.contact_tokens`).
* **A claim** (:func:`claim_key_packages`) presents the token: the own
  account's for its own devices, else the one kept or found in a shared
  group. Refused (``contact_token_invalid``), it tries a token from a
  shared group, then one from the contact's handle looked up again, each
  once; then :class:`~.errors.ContactTokenError`, whose sentence tells the
  user what to ask for. A refused claim changes nothing on the server.
* **The handle's box** goes to the server with the handle: with the
  registration (:func:`registration_box`), or, for a handle set before
  contact tokens or on a server from before them, once per profile and
  handle (:func:`give_handle_box`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from messenger.api.contact_token import CONTACT_TOKEN_BYTES, CONTACT_TOKEN_EXTENSION

from .errors import ClientError, ContactTokenError
from .handle_box import open_handle_box, seal_handle_box
from .store.settings import HANDLE_CONTACT_BOX

if TYPE_CHECKING:
    from messenger.api import models as m
    from messenger.mls.extensions import Extension
    from messenger.mls.group import Group

    from .identity import Account
    from .session import Session
    from .store.groups import GroupState
    from .store.store import Store

__all__ = [
    "CONTACT_TOKEN_EXTENSION",
    "claim_key_packages",
    "contact_token",
    "give_handle_box",
    "leaf_token",
    "look_up_handle",
    "own_token",
    "registration_box",
    "remember_token",
    "token_extension",
    "token_in_groups",
]

_log = logging.getLogger(__name__)

_INFO: Final = b"messenger contact token v1"


def contact_token(account_private_key: bytes) -> bytes:
    """The contact token of the account whose raw Ed25519 private key is given."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=CONTACT_TOKEN_BYTES, salt=None, info=_INFO)
    return hkdf.derive(account_private_key)


def own_token(account: Account) -> bytes | None:
    """This account's contact token (None: an account without an account key)."""
    private = account.identity.account_private_key
    return None if private is None else contact_token(private)


def token_extension(token: bytes) -> Extension:
    """The ``contact_token`` LeafNode extension carrying ``token``."""
    from messenger.mls.extensions import Extension

    return Extension(CONTACT_TOKEN_EXTENSION, token)


def leaf_token(extensions: Sequence[Extension]) -> bytes | None:
    """The contact token a leaf's extensions carry (None: none, or malformed)."""
    for ext in extensions:
        if ext.extension_type == CONTACT_TOKEN_EXTENSION:
            data = bytes(ext.extension_data)
            return data if len(data) == CONTACT_TOKEN_BYTES else None
    return None


def _members_token(group: Group, account_id: str) -> bytes | None:
    """The token a leaf of ``account_id`` carries in ``group`` (MLS thread)."""
    from .identity import member_identity

    for member in group.members():
        token = leaf_token(member.extensions)
        if token is None:
            continue
        who = member_identity(member.credential)
        if who is not None and who.account_id == account_id:
            return token
    return None


def _shared_groups(store: Store, account_id: str) -> list[bytes]:
    found = []
    for conversation_id in store.conversations.with_member(account_id):
        conversation = store.conversations.get(conversation_id)
        if conversation is not None and conversation.left_at is None:
            found.append(conversation.group_id)
    return found


def _saved(store: Store, group_id: bytes) -> GroupState | None:
    return store.groups.get(group_id)


async def token_in_groups(session: Session, account_id: str) -> bytes | None:
    """The contact token a leaf of ``account_id`` carries in a group this client
    shares with it (None: none found). Read only when a claim needs it: the
    groups are the store's conversations with that member, not all of them."""
    for group_id in await session.store.run(_shared_groups, account_id):
        lock = session.group_lock(group_id)
        group: Group | None
        if lock.locked():
            # Held, maybe by the caller (a ReInit claims with its group's lock
            # held): the state as stored, loaded apart from the cache.
            saved = await session.store.run(_saved, group_id)
            if saved is None:
                continue
            group = await session.mls(session.groups.load, saved.state, saved.records)
        else:
            async with lock:
                group = await session.groups.get(group_id)
        if group is None:
            continue
        token = await session.mls(_members_token, group, account_id)
        if token is not None:
            return token
    return None


async def remember_token(session: Session, account_id: str, token: bytes) -> None:
    """Keep ``token`` as ``account_id``'s (never this account's own)."""
    if account_id == session.account.account_id or len(token) != CONTACT_TOKEN_BYTES:
        return
    now = session.now_ms()
    await session.store.run(lambda s: s.contact_tokens.set(account_id, token, now=now))


async def look_up_handle(session: Session, handle: str) -> str:
    """The account that holds ``handle``; its contact token, if the server gave a
    box that opens with the handle, is kept. A box that does not open is
    ignored: the server cannot make a token it does not know, but it can send
    junk."""
    found = await session.transport.look_up_handle(handle)
    box = found.contact_box
    if box is not None:
        # scrypt (tens of ms): off the event loop, which draws the window.
        token = await asyncio.to_thread(open_handle_box, box, handle)
        if token is not None:
            await remember_token(session, found.account_id, token)
        else:
            _log.info("a handle's contact box did not open; ignored")
    return found.account_id


async def _token_by_handle(session: Session, account_id: str) -> bytes | None:
    """The token in the box of ``account_id``'s handle, looked up again (None: the
    contact has no handle, the handle is another account's now, or no box)."""
    contact = await session.store.run(lambda s: s.contacts.get(account_id))
    if contact is None or not contact.handle:
        return None
    try:
        found = await session.transport.look_up_handle(contact.handle)
    except ClientError as exc:
        _log.info("the contact's handle was not looked up again (%s)", type(exc).__name__)
        return None
    if found.account_id != account_id or found.contact_box is None:
        return None
    return await asyncio.to_thread(open_handle_box, found.contact_box, contact.handle)


async def claim_key_packages(
    session: Session, account_id: str, suites: Sequence[int] | None = None
) -> tuple[m.ClaimedKeyPackage, ...]:
    """Claim ``account_id``'s KeyPackages with its contact token (module docstring).

    ContactTokenError if no token this client has or can find is taken;
    the other errors of the claim pass through.
    """
    transport = session.transport
    if account_id == session.account.account_id:
        return await transport.claim_key_packages(
            account_id, suites, contact_token=own_token(session.account)
        )
    token = await session.store.run(lambda s: s.contact_tokens.get(account_id))
    looked_in_groups = looked_up = False
    if token is None:
        looked_in_groups = True
        token = await token_in_groups(session, account_id)
    tried: list[bytes | None] = []
    while True:
        try:
            claimed = await transport.claim_key_packages(account_id, suites, contact_token=token)
        except ContactTokenError:
            tried.append(token)
            token = None
            if not looked_in_groups:
                looked_in_groups = True
                token = await token_in_groups(session, account_id)
            if (token is None or token in tried) and not looked_up:
                looked_up = True
                token = await _token_by_handle(session, account_id)
            if token is None or token in tried:
                raise
            continue
        if token is not None:
            await remember_token(session, account_id, token)
        return claimed


async def registration_box(account_private_key: bytes, handle: str) -> bytes | None:
    """The contact box of a new account's ``handle``, which its registration
    carries (scrypt: off the event loop)."""
    token = contact_token(account_private_key)
    return await asyncio.to_thread(seal_handle_box, token, handle)


async def give_handle_box(session: Session) -> bool:
    """Set this account's handle again with its contact box, once per profile and
    handle (the handle a registration or an app from before set had none);
    whether it did now. Network failures propagate (asked again at the next
    connection)."""
    identity = session.account.identity
    token = own_token(session.account)
    handle = identity.handle
    if token is None or not handle:
        return False
    given = await session.store.run(lambda s: s.settings.get(HANDLE_CONTACT_BOX))
    if given == handle:
        return False
    box = await asyncio.to_thread(seal_handle_box, token, handle)
    await session.transport.set_handle(handle, box)
    await session.store.run(lambda s: s.settings.set(HANDLE_CONTACT_BOX, handle))
    _log.info("the server has this account's handle box now")
    return True
