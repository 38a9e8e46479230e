"""Preparing this device before it connects: a restored backup becomes a new device.

Restoring (docs/devices.md §5). A backup holds a device's signature key; the
copy restored from it must not act as that device (both would read one
queue and sign in one leaf, splitting the device's messages and reusing its
ratchets). So a restored copy registers itself as a **new device** of the
account, step by step, each step recorded so that a crash resumes it:

1. :func:`~messenger.client.backup.restore_backup` marks the store
   (:data:`RESTORE_STATE` ``{"step": "register"}``);
2. before the first connection (:func:`prepare_device`, called by the client
   on start and by the push listener) the copy makes a new signature key,
   certifies it with the account key of the backup (docs/devices.md §1) and
   registers it (``POST /v1/clients``) **signed with the backed-up device's
   key**, which proves the account's consent. If that device was removed
   meanwhile, the server says ``device_removed``:
   :class:`~.errors.DeviceRemovedError`, whose sentence says to link this
   computer from another device instead;
3. one transaction swaps the identity for the new client's (IDs, queue,
   keys, credential) and drops what belonged to the old client: its queue
   cursor, its outbox (the messages in it are marked failed), its
   KeyPackages and its undecryptable leftovers; the step becomes
   ``rejoin``. A crash before this transaction leaves a registered client
   that this copy never uses (remove it from the device list); the next
   start registers another;
4. KeyPackages of the new client are uploaded;
5. every group of the store is joined again by **external commit**
   (RFC 9420 §12.4.3.2) from the GroupInfo the server keeps, and the joined
   state replaces the old one in the same transaction that records the
   group as done (the group's rejoin box is then due again). The server
   seals a group's GroupInfo under keys that the send token of any epoch
   since the group's last removal opens (docs/metadata.md §2), so the copy
   reads it (``POST /v1/groups/{id}/rejoin-info``, allowed to a device of
   a member account) with the first of these that works: the token in the
   account's rejoin box of the group (:mod:`.rejoin_boxes`), then the token
   of the epoch the backup is at; a token that opens nothing gives way to
   the next (the server answers it ``unknown_group``, as it answers a
   stranger: without the state it cannot read the member set either). The external commit
   carries the token that worked (``rejoin_token``) and the new epoch's
   (``next_token``). With no token at all, or on a server from before, the
   GroupInfo is read as before (``GET /v1/groups/{id}/group-info``). A group
   that cannot be joined (gone, the server refuses, or no token opens it) is
   recorded as failed: its conversation gets a
   :attr:`~.store.messages.NoteKind.REJOIN_FAILED` note, is marked left and
   stays readable;
6. the state is deleted.

The same rejoin (with ``resync``, RFC 9420 §12.4.3.2: the Commit also
removes this client's old leaf) serves an account **from before account
keys**: :func:`prepare_device` then makes the account key, has the
server re-issue this client's credential at version 2
(:func:`~.identity.certify_this_device`), and replaces the client's
version-1 leaf in every group, which members would otherwise refuse as an
unverified device.

The takeover of earlier versions (``POST /v1/clients/takeover``) is no
longer started by a restore. A copy that took its device over before this
version still sends its device token (:data:`~.store.settings.DEVICE_TOKEN`);
a store restored by an earlier version whose takeover was still pending
(:data:`~.store.settings.TAKEOVER_PENDING`) becomes a new device instead.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import weakref
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api.sealed import token_digest
from messenger.api.signing import possession_message

from .errors import (
    ClientError,
    DeviceRemovedError,
    NetworkError,
    ProtocolError,
    ServerRejectedError,
    StaleEpochError,
)
from .events import Event
from .groups import group_members, join_external
from .identity import (
    CredentialVerifier,
    certify_device,
    certify_this_device,
    encode_credential,
    issued_credential_verifies,
)
from .net.signing import Signer
from .rejoin_boxes import box_token
from .sealed_sending import send_token
from .session import Session
from .store.async_store import AsyncStore
from .store.identity import Identity
from .store.messages import MessageStatus, Note, NoteKind
from .store.settings import (
    CONTACT_CURSOR,
    CONTACT_KEY_PACKAGES_OWED,
    CONTACT_QUEUE,
    DEVICE_TOKEN,
    QUEUE_KEY,
    TAKEOVER_PENDING,
    JsonValue,
    SettingsRepository,
)
from .store.store import Store

if TYPE_CHECKING:
    from messenger.mls.group import Group

__all__ = [
    "RESTORE_NO_KEY_USER_MESSAGE",
    "RESTORE_STATE",
    "RESTORE_USER_MESSAGE",
    "mark_restore_pending",
    "prepare_device",
    "restore_pending",
]

_log = logging.getLogger(__name__)

#: The setting that records a restore (or a resync) in progress: a JSON
#: object ``{"step": "register"}`` or ``{"step": "rejoin", "resync": bool,
#: "done": [group ID hex...], "failed": [...]}``.
RESTORE_STATE: Final = "device.restore"

#: What a restore says when the backed-up device was removed from the account.
RESTORE_USER_MESSAGE: Final = (
    "The device this backup was made on has been removed from your account, so "
    "this copy cannot join it on its own. Link this computer from one of your "
    "other devices instead."
)

#: How many times a rejoin retries after losing the race for an epoch.
_STALE_RETRIES: Final = 5
#: Server answers after which a group cannot be rejoined (not worth retrying).
_GONE: Final = frozenset(
    {
        "not_found",
        "unknown_group",
        "forbidden",
        "not_member",
        "no_group_info",
        "invalid_message",
    }
)
#: The answer to a token that opens none of the group's state: a member was
#: removed since its epoch (or this account is no longer in the group).
_NOT_OPENED: Final = "unknown_group"
#: Answers to ``POST …/rejoin-info`` from a server from before it (no such route).
_NO_ROUTE: Final = frozenset({"not_found", "method_not_allowed"})

#: One lock per store: the tasks preparing one device take turns.
_locks: weakref.WeakKeyDictionary[AsyncStore, asyncio.Lock] = weakref.WeakKeyDictionary()


def mark_restore_pending(settings: SettingsRepository) -> None:
    """Make a restored store register itself as a new device on its first start."""
    settings.set(RESTORE_STATE, {"step": "register"})


def restore_pending(settings: SettingsRepository) -> bool:
    """Whether a restore (or a resync) still has steps to do."""
    return _state(settings) is not None or settings.get(TAKEOVER_PENDING) is True


def _state(settings: SettingsRepository) -> dict[str, JsonValue] | None:
    value = settings.get(RESTORE_STATE)
    if isinstance(value, dict) and value.get("step") in ("register", "rejoin"):
        return value
    return None


#: What a restore says when the backup has no account key and the account has one now.
RESTORE_NO_KEY_USER_MESSAGE: Final = (
    "This backup was made before your account had an account key, and another of "
    "your devices has made one since, so this copy cannot join on its own. Link "
    "this computer from one of your other devices instead."
)

#: Stores whose account the server refused an account key (this run): not asked again.
_refused: weakref.WeakSet[AsyncStore] = weakref.WeakSet()


def _load(store: Store) -> tuple[bytes | None, dict[str, JsonValue] | None]:
    settings = store.settings
    state = _state(settings)
    if state is None and settings.get(TAKEOVER_PENDING) is True:
        state = {"step": "register"}  # restored by an earlier version: a new device now
    return settings.device_token(), state


async def prepare_device(session: Session) -> bool:
    """Finish what this device must do before it connects; whether anything was done.

    A restore's steps (module docstring), or an account's first account
    key and the resync that follows. Idempotent, and safe to call from
    several tasks: they take turns. Network failures propagate (the caller
    retries); every finished step is recorded.
    """
    lock = _locks.setdefault(session.store, asyncio.Lock())
    async with lock:
        signer = session.transport.signer
        if signer is None:  # pragma: no cover - a session always has a signer
            raise RuntimeError("a session without a signer")
        token, state = await session.store.run(_load)
        if token is not None and signer.device_token is None:
            signer.device_token = token  # a copy that took its device over (earlier versions)
        did = False
        if state is not None and state.get("step") == "register":
            await _register_new_device(session)
            did = True
        elif (
            state is None and session.account.account_key is None and session.store not in _refused
        ):
            if not await _certify_account(session):
                _refused.add(session.store)
                return False
            did = True
        state = await session.store.run(lambda s: _state(s.settings))
        if state is not None and state.get("step") == "rejoin":
            await _rejoin_all(session, state)
            did = True
        return did


# -- an account from before account keys ---------------------------------------------


async def _certify_account(session: Session) -> bool:
    """Give the account its key and this client a version-2 credential; then resync."""
    account = session.account
    try:
        identity = await certify_this_device(
            session.transport, account.identity, now_ms=session.now_ms()
        )
    except ServerRejectedError as exc:
        # A server from before account keys, or another device set the key first
        # (then this one must be linked). Keep working with the version-1 credential.
        _log.warning("this account could not get an account key: %s", exc.code)
        return False

    def save(s: Store) -> None:
        s.identity.save(identity)
        s.settings.set(RESTORE_STATE, _rejoin_state(resync=True))

    await session.store.transaction(save)
    session.account = account.with_identity(identity)
    _log.info("this account has an account key now")
    await _upload_key_packages(session)
    return True


# -- a restored copy: a new device ------------------------------------------------------


async def _register_new_device(session: Session) -> None:
    account = session.account
    identity = account.identity
    transport = session.transport
    try:
        if identity.account_private_key is None:
            # A backup from before account keys: certify the backed-up device first.
            try:
                identity = await certify_this_device(transport, identity, now_ms=session.now_ms())
            except ServerRejectedError as exc:
                raise DeviceRemovedError(
                    f"the account refused an account key: {exc.code}",
                    user_message=RESTORE_NO_KEY_USER_MESSAGE,
                ) from None
            await session.store.transaction(lambda s: s.identity.save(identity))
            account = account.with_identity(identity)
            session.account = account
        assert identity.account_private_key is not None
        assert identity.account_public_key is not None and identity.server_key is not None
        private, public = account.suite.generate_signature_key_pair(session.random)
        certified_at = session.now_ms()
        certificate = certify_device(identity.account_private_key, public, certified_at)
        proof = Ed25519PrivateKey.from_private_bytes(private).sign(
            possession_message(identity.account_id.encode("ascii"), public)
        )
        # Signed with the backed-up device's key: the account's consent (docs/devices.md §5).
        response = await transport.add_client(
            m.AddClientRequest(public, proof, certified_at, certificate)
        )
    except DeviceRemovedError as exc:
        raise DeviceRemovedError(str(exc), user_message=RESTORE_USER_MESSAGE) from None
    credential = response.credential
    if (
        credential.account_id != identity.account_id
        or credential.client_id != response.client_id
        or not issued_credential_verifies(
            credential, identity.server_key, public, identity.account_public_key
        )
    ):
        raise ProtocolError("the server issued a credential that does not verify")
    new = Identity(
        server_url=identity.server_url,
        account_id=identity.account_id,
        client_id=response.client_id,
        queue_id=response.queue_id,
        cipher_suite=identity.cipher_suite,
        signature_private_key=private,
        signature_public_key=public,
        credential=encode_credential(credential),
        created_at=session.now_ms(),
        handle=identity.handle,
        display_name=identity.display_name,
        server_key=identity.server_key,
        account_private_key=identity.account_private_key,
        account_public_key=identity.account_public_key,
        certified_at=certified_at,
        device_certificate=certificate,
    )
    await session.store.transaction(_swap_identity, new)
    signer = Signer(new.client_id, private, clock=session.clock, random=session.random)
    session.account = account.with_identity(new, signer)
    session.transport.signer = signer
    session.contact = None  # the old client's; the new one asks for its own
    _log.info("this restored copy is a new device of its account now")
    await _upload_key_packages(session)


def _swap_identity(store: Store, identity: Identity) -> None:
    """The new client's identity; nothing of the old client's delivery is kept."""
    from .sync.inbound import CURSOR_KEY

    store.identity.save(identity)
    settings = store.settings
    for key in (
        CURSOR_KEY,
        DEVICE_TOKEN,
        TAKEOVER_PENDING,
        QUEUE_KEY,
        CONTACT_QUEUE,
        CONTACT_CURSOR,
        CONTACT_KEY_PACKAGES_OWED,
    ):
        settings.delete(key)
    # Boxes the backed-up device still meant to delete: the account may be back in
    # those groups by now, with boxes its other devices keep (rejoin_boxes.py).
    store.groups.clear_rejoin_box_deletions()
    db = store.db
    # The outbox was built (or is to be built) in the old client's leaves.
    pending = [
        int(row[0])
        for row in db.query("SELECT message_id FROM outbox WHERE message_id IS NOT NULL")
    ]
    db.execute("DELETE FROM outbox")
    for message_id in pending:
        store.messages.set_status(message_id, MessageStatus.FAILED)
    db.execute("DELETE FROM key_packages")  # the old client's private keys
    db.execute("DELETE FROM pending_inbound")  # for the old client's leaves
    settings.set(RESTORE_STATE, _rejoin_state(resync=False))


def _rejoin_state(*, resync: bool) -> dict[str, JsonValue]:
    return {"step": "rejoin", "resync": resync, "done": [], "failed": []}


async def _upload_key_packages(session: Session) -> None:
    from .sync.key_packages import KeyPackagePool

    await KeyPackagePool(session).replenish()


# -- rejoining every group (RFC 9420 §12.4.3.2) ---------------------------------------------


def _hex_list(state: dict[str, JsonValue], key: str) -> list[str]:
    value = state.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


async def _rejoin_all(session: Session, state: dict[str, JsonValue]) -> None:
    resync = state.get("resync") is True
    finished = set(_hex_list(state, "done")) | set(_hex_list(state, "failed"))
    group_ids = await session.store.run(lambda s: s.groups.group_ids())
    for group_id in group_ids:
        if group_id.hex() in finished:
            continue
        async with session.group_lock(group_id):
            await _rejoin_one(session, group_id, resync=resync)
    await session.store.transaction(lambda s: s.settings.delete(RESTORE_STATE))
    _log.info("rejoined the groups of this device")


def _record(store: Store, group_id: bytes, key: str) -> None:
    state = _state(store.settings)
    if state is None:
        return
    state[key] = [*_hex_list(state, key), group_id.hex()]
    store.settings.set(RESTORE_STATE, state)


def _leaf_with_key(group_info: bytes, signature_key: bytes) -> int | None:
    """The leaf of the GroupInfo's tree that has ``signature_key`` (None: none or unreadable).

    Read without verifying anything: it only picks the leaf that the external
    Commit removes (RFC 9420 §12.4.3.2, resync); the join verifies the tree.
    """
    from messenger.mls.errors import MLSError
    from messenger.mls.extensions import ExtensionType, find_extension
    from messenger.mls.leaf_node import LeafNode
    from messenger.mls.messages import MLSMessage
    from messenger.mls.nodes import RatchetTree

    try:
        info = MLSMessage.from_bytes(group_info).group_info
        inline = find_extension(info.extensions, ExtensionType.RATCHET_TREE)
        if inline is None:
            return None
        values = RatchetTree.from_bytes(inline.extension_data).values
    except MLSError:
        return None
    for node_index in range(0, len(values), 2):  # leaves are the even nodes (RFC 9420 §4.2)
        leaf = values[node_index]
        if isinstance(leaf, LeafNode) and hmac.compare_digest(
            bytes(leaf.signature_key), signature_key
        ):
            return node_index // 2
    return None


async def _rejoin_one(session: Session, group_id: bytes, *, resync: bool) -> None:
    """Join ``group_id`` by external commit and replace its state; or record the failure.

    This client's leaf, if the tree has one -- its version-1 leaf (``resync``),
    or the leaf of an earlier attempt whose answer was lost -- is removed by
    the same Commit. A resync validates the tree leniently (other members may
    not have replaced their version-1 leaves yet); the group is then reloaded
    with the account's verifier on its next use.
    """
    account = await session.leaf_account()
    identity = None
    if resync:
        identity = CredentialVerifier(
            account.identity.server_key or b"",
            accept_uncertified=True,
            pins=account.verifier.pins.without(account.account_id),
        )
    candidates = await _candidate_tokens(session, group_id)
    for _ in range(_STALE_RETRIES):
        opener: bytes | None = None
        try:
            info, opener = await _read_group_info(session, group_id, candidates)
            own_leaf = _leaf_with_key(info.group_info, account.identity.signature_public_key)
            group, commit = await session.mls(
                join_external,
                account,
                info.group_info,
                session.random,
                now=session.now_s(),
                resync=own_leaf,
                identity=identity,
            )
            queues = _queues(group)
            token = send_token(group)  # of the epoch the external commit makes
            await session.transport.commit(
                group_id,
                m.CommitRequest(
                    epoch=info.epoch,
                    commit=commit,
                    members=queues,
                    group_info=group.group_info(),
                    idempotency_key=session.random(16),
                    send_token_hash=token_digest(token),
                    # The key that opened the group's state, and the new epoch's
                    # token to seal it under (docs/metadata.md §2).
                    rejoin_token=opener,
                    next_token=token,
                ),
                sealed=False,  # an external commit is signed: its joiner shows who it is
            )
        except StaleEpochError:
            continue  # a member committed meanwhile: take the new GroupInfo
        except ServerRejectedError as exc:
            if exc.code == _NOT_OPENED and opener is not None:
                # A member was removed since the GroupInfo was read: the next token.
                candidates = [t for t in candidates if t is not opener]
                continue
            if exc.code not in _GONE:
                raise
            _log.warning("a group could not be rejoined: %s", exc.code)
            await _give_up(session, group_id)
            return
        except NetworkError:
            raise
        except (ClientError, ValueError) as exc:
            _log.warning("a group could not be rejoined: %s", type(exc).__name__)
            await _give_up(session, group_id)
            return
        except Exception as exc:  # the MLS layer refused the GroupInfo or its tree
            from messenger.mls.errors import MLSError

            if not isinstance(exc, MLSError):
                raise
            _log.warning("a group could not be rejoined: %s", type(exc).__name__)
            await _give_up(session, group_id)
            return
        devices = tuple(
            (member.client_id, member.signature_key)
            for member in group_members(group)
            if member.account_id == account.account_id
        )
        await session.store.transaction(
            _joined, group_id, group.epoch, group.to_bytes(), session.now_ms(), devices
        )
        session.rejoin_boxes_changed()
        session.groups.evict(group_id)
        if identity is None:
            session.groups.put(group)
        return
    _log.warning("a group could not be rejoined: its epoch kept moving")
    await _give_up(session, group_id)


async def _candidate_tokens(session: Session, group_id: bytes) -> list[bytes]:
    """The tokens that may open ``group_id``'s state on the server, best first.

    The token in the account's rejoin box (kept fresh by the account's
    devices), then the token of the epoch the backed-up state is at (it
    works if no one was removed since). Its lock is held.
    """
    found: list[bytes] = []
    boxed = await box_token(session, group_id)
    if boxed is not None:
        found.append(boxed)
    backed_up = await _backed_up_token(session, group_id)
    if backed_up is not None and not any(hmac.compare_digest(backed_up, t) for t in found):
        found.append(backed_up)
    return found


async def _backed_up_token(session: Session, group_id: bytes) -> bytes | None:
    """The send token of the epoch of the stored state (None: it does not load)."""
    try:
        group = await session.groups.get(group_id)
        if group is None or group.removed:
            return None
        return await session.mls(send_token, group)
    except Exception as exc:  # a state that does not load gives no token; the rejoin may
        _log.info("a backed-up group gave no token: %s", type(exc).__name__)
        return None
    finally:
        session.groups.evict(group_id)  # loaded for its token only


async def _read_group_info(
    session: Session, group_id: bytes, candidates: list[bytes]
) -> tuple[m.GroupInfoResponse, bytes | None]:
    """The stored GroupInfo and the token that opened it (None: read the old way).

    Each candidate in turn; ``unknown_group`` (the last one's) if none
    opens it. Without candidates, or from a server from before
    ``rejoin-info``, the GroupInfo is read as before; a group sealed the new
    way cannot be read without a token (``unknown_group``; ``outdated_client``
    from a server that sealed only its GroupInfo so, reported the same).
    """
    transport = session.transport
    stale: ServerRejectedError | None = None
    for token in candidates:
        try:
            return await transport.rejoin_info(group_id, token), token
        except ServerRejectedError as exc:
            if exc.code == _NOT_OPENED:
                stale = exc
                continue
            if exc.code not in _NO_ROUTE:
                raise
            break  # a server from before: no sealed state to open
    else:
        if stale is not None:
            raise stale
    try:
        return await transport.group_info(group_id), None
    except ServerRejectedError as exc:
        if exc.code != "outdated_client":
            raise
        raise ServerRejectedError(_NOT_OPENED, "no token to open the group's state") from None


def _queues(group: Group) -> tuple[str, ...]:
    queues = {member.queue_id for member in group_members(group) if member.queue_id is not None}
    return tuple(sorted(queues))


def _joined(
    store: Store,
    group_id: bytes,
    epoch: int,
    state: bytes,
    now: int,
    devices: tuple[tuple[str, bytes], ...],
) -> None:
    """The joined state replaces the old one; the group is done (one transaction).

    For the devices group, its members are the account's devices as of now,
    this new one included (docs/devices.md §3).
    """
    store.groups.save(group_id, epoch, state, now=now)
    # The account's box may hold a token from before: upload this epoch's.
    store.groups.reset_rejoin_box(group_id)
    if store.devices.group_id() == group_id:
        for client_id, signature_key in devices:
            store.devices.seen(client_id, signature_key, now=now)
    _record(store, group_id, "done")


async def _give_up(session: Session, group_id: bytes) -> None:
    """A group this device cannot rejoin: its conversation stays readable, marked left."""
    from .sync.effects import Actor, system_note

    session.groups.evict(group_id)
    me = Actor(session.account.account_id, session.account.client_id, session.new_uid)
    now = session.now_ms()

    def write(s: Store) -> list[Event]:
        events: list[Event] = []
        conversation = s.conversations.by_group(group_id)
        devices_group = s.devices.group_id() == group_id
        if conversation is not None and not devices_group:
            events.append(
                system_note(
                    s,
                    conversation,
                    Note(NoteKind.REJOIN_FAILED),
                    me=me,
                    by=None,
                    now=now,
                    epoch=None,
                )
            )
        if conversation is not None:
            s.conversations.mark_left(conversation.id, now)
        if devices_group:
            # Never registered on the server (the backed-up device had not sent it
            # yet) or gone: this device makes a new devices group on start.
            s.devices.forget_group()
        # The account's box stays: another device of the account may still be a
        # member and keep it (rejoin_boxes.py); only a member that leaves deletes it.
        s.groups.delete(group_id)
        _record(s, group_id, "failed")
        return events

    events = await session.store.transaction(write)
    for event in events:
        session.events.publish(event)
