"""This client's identity: the server-issued credential as the MLS identity.

The Authentication Service (the server, RFC 9750 §4) signs a
:class:`~messenger.api.models.Credential` binding a client's Ed25519 key to
its pseudonymous account and client IDs (:func:`messenger.api.signing.
credential_tbs`). The client puts exactly that statement into its MLS
``BasicCredential`` (RFC 9420 §5.3), encoded as the ``MessengerCredential``
struct of :mod:`messenger.api.credential` (the one codec, shared with the
server; re-exported here).

:class:`CredentialVerifier` is the ``IdentityValidator`` given to every
:class:`~messenger.mls.group.Group` (RFC 9420 §5.3.1): a credential entering
a group must be such a statement, signed by this server's key, about the
very signature key of the leaf, and (docs/devices.md §1) carrying the
**account key**'s certificate of that key: the account key is held by the
account's devices only, so a device the server adds on its own is visibly
not the account's. A credential without a valid certificate is an
*unverified device*, refused by default (:data:`ACCEPT_UNCERTIFIED_DEVICES`).
Each account's key is pinned the first time it is seen (:class:`PinnedKeys`):
a server that minted a "ghost" account key would be refused by anyone who
knows the real one, and shows in the safety number (:mod:`.safety_number`)
to anyone who does not.

Registration (:func:`register_account`) generates the device key and the
account key, certifies the one with the other, solves the proof of work
(:mod:`messenger.api.pow`, in a worker thread so the event loop keeps
running) and proves possession of the device key. An account from before
account keys gets one with :func:`certify_this_device`.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from messenger.api import models as m
from messenger.api.credential import CREDENTIAL_VERSION, decode_credential, encode_credential
from messenger.api.pow import estimated_fraction, solve_pow
from messenger.api.signing import credential_tbs, device_certificate_tbs, possession_message
from messenger.mls.ciphersuite import CipherSuite, RandomSource, get_cipher_suite
from messenger.mls.credentials import Credential, CredentialType

from .errors import ProtocolError, ServerRejectedError
from .net.http import Transport
from .net.signing import Signer
from .store.identity import Identity

__all__ = [
    "ACCEPT_UNCERTIFIED_DEVICES",
    "CIPHER_SUITE",
    "CREDENTIAL_VERSION",
    "GROUP_SUITES",
    "HYBRID_SUITE",
    "Account",
    "AccountKey",
    "CredentialVerifier",
    "MemberIdentity",
    "PinnedKeys",
    "Registration",
    "certificate_verifies",
    "certify_device",
    "certify_this_device",
    "decode_credential",
    "encode_credential",
    "issued_credential_verifies",
    "member_identity",
    "register_account",
    "same_client",
    "server_signature_verifies",
]

_log = logging.getLogger(__name__)

#: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 §17.1): its
#: signature scheme is Ed25519, the scheme of the server's credentials.
CIPHER_SUITE: Final = 1

#: MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 (docs/pq-suites.md): the
#: hybrid post-quantum KEM with the same Ed25519 signatures, so the account's
#: signature key and credential serve it too.
HYBRID_SUITE: Final = 0xF001

#: The suites this client keeps KeyPackages in and makes groups in, most
#: wanted first (docs/pq-suites.md, "Suite choice and migration").
GROUP_SUITES: Final = (HYBRID_SUITE, CIPHER_SUITE)


#: The default policy for a device whose credential carries no valid device
#: certificate (a version-1 credential, or a certificate that does not verify
#: under the account key it names): refuse it (docs/devices.md §1, "Who
#: checks what"). :class:`~.client.ClientOptions` ``accept_uncertified_devices``
#: overrides it, for a server whose clients predate account keys; such
#: members then show as :attr:`MemberIdentity.certified` False.
ACCEPT_UNCERTIFIED_DEVICES: Final = False


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    """Who a group member is, according to its credential.

    ``account_key`` is the account key the credential names (None for a
    version-1 credential); ``certified`` whether its device certificate
    verifies under that key. Whether the server's signature verifies is the
    :class:`CredentialVerifier`'s business: a member of a group passed it.
    """

    account_id: str
    client_id: str
    signature_key: bytes
    account_key: bytes | None = None
    certified: bool = False


def certify_device(account_private_key: bytes, signature_key: bytes, certified_at: int) -> bytes:
    """The account key's certificate of a device's signature key (docs/devices.md §1)."""
    key = Ed25519PrivateKey.from_private_bytes(account_private_key)
    public = key.public_key().public_bytes_raw()
    return key.sign(device_certificate_tbs(public, signature_key, certified_at))


@functools.lru_cache(maxsize=4096)
def certificate_verifies(
    account_key: bytes, signature_key: bytes, certified_at: int, certificate: bytes
) -> bool:
    """Whether ``certificate`` is ``account_key``'s certificate of ``signature_key``.

    Public values only; cached, as every member's identity is read often.
    """
    try:
        Ed25519PublicKey.from_public_bytes(account_key).verify(
            certificate, device_certificate_tbs(account_key, signature_key, certified_at)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _certified(credential: m.Credential) -> bool:
    if (
        credential.account_key is None
        or credential.certified_at is None
        or credential.device_certificate is None
    ):
        return False
    return certificate_verifies(
        bytes(credential.account_key),
        bytes(credential.signature_key),
        credential.certified_at,
        bytes(credential.device_certificate),
    )


def member_identity(credential: Credential) -> MemberIdentity | None:
    """The account and client of a member's MLS credential (None if not ours)."""
    if credential.credential_type != CredentialType.BASIC:
        return None
    decoded = decode_credential(credential.identity)
    if decoded is None:
        return None
    return MemberIdentity(
        decoded.account_id,
        decoded.client_id,
        decoded.signature_key,
        decoded.account_key,
        _certified(decoded),
    )


def server_signature_verifies(server_key: bytes, credential: m.Credential) -> bool:
    """Whether the server's signature over ``credential`` verifies (v1 or v2 tbs)."""
    tbs = credential_tbs(
        credential.account_id,
        credential.client_id,
        bytes(credential.signature_key),
        credential.issued_at,
        None if credential.account_key is None else bytes(credential.account_key),
    )
    try:
        Ed25519PublicKey.from_public_bytes(server_key).verify(bytes(credential.signature), tbs)
    except (InvalidSignature, ValueError):
        return False
    return True


def same_client(old: Credential, new: Credential) -> bool:
    """The ``SuccessorValidator`` (RFC 9420 §5.3.1): whether ``new`` may replace ``old``
    in a leaf -- the same account and client, and no other account key than
    ``old`` names. This lets a client replace its version-1 leaf with a
    version-2 one (a resync, RFC 9420 §12.4.3.2) and nothing else; the new
    credential itself is checked by the :class:`CredentialVerifier`."""
    before, after = member_identity(old), member_identity(new)
    if before is None or after is None:
        return old == new
    return (
        before.account_id == after.account_id
        and before.client_id == after.client_id
        and (before.account_key is None or before.account_key == after.account_key)
    )


class PinnedKeys:
    """The account key of each account, pinned the first time it is seen.

    Loaded from the store (``contacts.account_key``, and this account's own
    key) and shared by the :class:`CredentialVerifier`, which runs in the
    MLS thread: hence the lock. An account seen for the first time is pinned
    here at once (so one Welcome cannot show two account keys for one
    account); the store pins it when the claim, Welcome or commit that
    showed it is applied (:meth:`~.store.contacts.ContactRepository.pin_account_key`).
    A credential naming another key than the pinned one is refused, and
    ``on_changed(account_id, offered_key)`` is called (in the caller's
    thread) so that the store can record it for the UI.
    """

    def __init__(
        self,
        pinned: dict[str, bytes] | None = None,
        *,
        own: tuple[str, bytes] | None = None,
        on_changed: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._pinned = dict(pinned or {})
        self._own = own
        if own is not None:
            self._pinned[own[0]] = own[1]
        self.on_changed = on_changed

    def get(self, account_id: str) -> bytes | None:
        with self._lock:
            return self._pinned.get(account_id)

    def check(self, account_id: str, account_key: bytes) -> bool:
        """Whether ``account_key`` is (or, first seen, becomes) ``account_id``'s pinned key."""
        with self._lock:
            pinned = self._pinned.setdefault(account_id, bytes(account_key))
        if hmac.compare_digest(pinned, bytes(account_key)):
            return True
        _log.warning("refused a credential with another account key than the pinned one")
        if self.on_changed is not None:
            self.on_changed(account_id, bytes(account_key))
        return False

    def replace(self, account_id: str, account_key: bytes) -> None:
        """The user accepted a new account key for ``account_id``."""
        with self._lock:
            self._pinned[account_id] = bytes(account_key)

    def without(self, account_id: str) -> PinnedKeys:
        """A copy without ``account_id``'s pin (and no ``on_changed``)."""
        with self._lock:
            pinned = {a: k for a, k in self._pinned.items() if a != account_id}
        return PinnedKeys(pinned)

    def set_own(self, account_id: str, account_key: bytes) -> None:
        """This account's own key (known from the store, never learnt from a peer)."""
        with self._lock:
            self._own = (account_id, bytes(account_key))
            self._pinned[account_id] = bytes(account_key)


class CredentialVerifier:
    """The MLS ``IdentityValidator`` for one server (RFC 9420 §5.3.1).

    Accepts a credential only if it is a basic credential carrying a server
    credential that (1) is signed by ``server_key`` (version 2: over the
    account key too), (2) certifies the leaf's own ``signature_key``, and
    (3) carries a device certificate that verifies under the account key it
    names (docs/devices.md §1), an account key that is not another than the
    one pinned for the account (:class:`PinnedKeys`). A credential without a
    valid certificate -- version 1, or a forged one -- is an *unverified
    device*: refused unless ``accept_uncertified`` (default
    :data:`ACCEPT_UNCERTIFIED_DEVICES`). The MLS layer calls this for every
    leaf entering a group (Welcome trees, Adds, Updates, commit paths,
    external commits), and a refusal fails the whole message with nothing
    changed.
    """

    def __init__(
        self,
        server_key: bytes,
        *,
        accept_uncertified: bool = ACCEPT_UNCERTIFIED_DEVICES,
        pins: PinnedKeys | None = None,
    ) -> None:
        self._server_key = bytes(server_key)
        Ed25519PublicKey.from_public_bytes(self._server_key)  # a valid key, or ValueError
        self.accept_uncertified = accept_uncertified
        self.pins = pins if pins is not None else PinnedKeys()

    def __call__(self, credential: Credential, signature_key: bytes) -> bool:
        if credential.credential_type != CredentialType.BASIC:
            return False
        decoded = decode_credential(credential.identity)
        if decoded is None or not hmac.compare_digest(
            bytes(decoded.signature_key), bytes(signature_key)
        ):
            return False
        if not server_signature_verifies(self._server_key, decoded):
            return False
        if not _certified(decoded) and not self.accept_uncertified:
            return False  # an unverified device
        if decoded.account_key is None:
            # Version 1: never for an account whose key is known (a downgrade).
            return self.pins.get(decoded.account_id) is None
        return self.pins.check(decoded.account_id, bytes(decoded.account_key))


@dataclass(frozen=True, slots=True)
class Account:
    """This client's loaded identity: keys, credential, verifier, signer."""

    identity: Identity
    credential: m.Credential
    verifier: CredentialVerifier = field(repr=False)
    signer: Signer = field(repr=False)
    delivery_address: str | None = field(default=None, repr=False)
    """An address of this client's queue for its new leaves, sealed by the
    server (:mod:`messenger.api.delivery_address`); None until the session
    asks for one (:meth:`~.session.Session.leaf_account`)."""

    @classmethod
    def load(
        cls,
        identity: Identity,
        signer: Signer,
        *,
        accept_uncertified: bool = ACCEPT_UNCERTIFIED_DEVICES,
        pins: PinnedKeys | None = None,
    ) -> Account:
        decoded = decode_credential(identity.credential)
        if decoded is None or identity.server_key is None:
            raise ValueError("the stored identity has no valid credential or server key")
        pins = pins if pins is not None else PinnedKeys()
        if identity.account_public_key is not None:
            pins.set_own(identity.account_id, identity.account_public_key)
        verifier = CredentialVerifier(
            identity.server_key, accept_uncertified=accept_uncertified, pins=pins
        )
        return cls(identity, decoded, verifier, signer)

    def with_identity(self, identity: Identity, signer: Signer | None = None) -> Account:
        """This account with a changed identity row (same verifier and pins)."""
        decoded = decode_credential(identity.credential)
        if decoded is None:
            raise ValueError("the stored identity has no valid credential")
        if identity.account_public_key is not None:
            self.verifier.pins.set_own(identity.account_id, identity.account_public_key)
        # An address names one queue: a new client (a restore) needs another.
        kept = self.delivery_address if identity.queue_id == self.queue_id else None
        return Account(identity, decoded, self.verifier, signer or self.signer, kept)

    def with_address(self, address: str) -> Account:
        """This account with ``address`` as its queue's delivery address."""
        return replace(self, delivery_address=address)

    @property
    def leaf_queue(self) -> str:
        """What this client's new leaves carry in their ``delivery_queue``
        extension: its delivery address, or (none asked for yet) the queue ID."""
        return self.delivery_address or self.queue_id

    @property
    def account_id(self) -> str:
        return self.identity.account_id

    @property
    def client_id(self) -> str:
        return self.identity.client_id

    @property
    def queue_id(self) -> str:
        return self.identity.queue_id

    @property
    def suite(self) -> CipherSuite:
        """The suite of the account's signature key (:data:`CIPHER_SUITE`); groups
        may use any of :data:`GROUP_SUITES`, which all sign with that scheme."""
        return get_cipher_suite(self.identity.cipher_suite)

    @property
    def signature_private_key(self) -> bytes:
        return self.identity.signature_private_key

    @property
    def account_key(self) -> bytes | None:
        """The account's public key (None for an account from before account keys)."""
        return self.identity.account_public_key

    @property
    def mls_credential(self) -> Credential:
        return Credential.basic(self.identity.credential)


def issued_credential_verifies(
    credential: m.Credential, server_key: bytes, signature_key: bytes, account_key: bytes | None
) -> bool:
    """Whether the server issued what was asked: ``signature_key`` certified, signed
    by ``server_key``, and (with an ``account_key``) a version-2 credential naming
    that key with a device certificate that verifies."""
    if not hmac.compare_digest(bytes(credential.signature_key), bytes(signature_key)):
        return False
    if not server_signature_verifies(server_key, credential):
        return False
    if account_key is None:
        return True
    return (
        credential.account_key is not None
        and hmac.compare_digest(bytes(credential.account_key), bytes(account_key))
        and _certified(credential)
    )


@dataclass(frozen=True, slots=True)
class AccountKey:
    """A new account key pair (docs/devices.md §1), drawn from the OS."""

    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def generate(cls) -> AccountKey:
        key = Ed25519PrivateKey.generate()  # the OS's randomness
        return cls(
            key.private_bytes_raw(),
            key.public_key().public_bytes_raw(),
        )


@dataclass(frozen=True, slots=True)
class Registration:
    """A new account: what the server answered, and the keys it certified."""

    response: m.RegisterResponse
    server_info: m.ServerInfo
    signature_private_key: bytes = field(repr=False)
    signature_public_key: bytes
    account_key: AccountKey
    certified_at: int
    device_certificate: bytes
    #: Whether the server took the handle's contact box with the registration
    #: (docs/metadata.md §1; a server from before refuses the field).
    contact_box_given: bool = False


async def register_account(
    transport: Transport,
    random: RandomSource,
    *,
    handle: str | None = None,
    invite_code: str | None = None,
    progress: Callable[[float], None] | None = None,
    now_ms: Callable[[], int] | None = None,
) -> Registration:
    """Register an anonymous account (proof of work) with an optional handle.

    A new account key certifies the first device (docs/devices.md §1);
    the server answers with a version-2 credential naming the account key.
    ``invite_code`` is the server's invite, for a server that signs up by invite.
    ``progress`` is called on the event loop with the proof of work's estimated
    fraction done (:func:`~messenger.api.pow.estimated_fraction`, below 1.0).
    ``now_ms`` gives the certificate's time (Unix ms; default: the system clock).
    """
    info = await transport.server_info()
    suite = get_cipher_suite(CIPHER_SUITE)
    private, public = suite.generate_signature_key_pair(random)
    key = Ed25519PrivateKey.from_private_bytes(private)
    account_key = AccountKey.generate()
    certified_at = now_ms() if now_ms is not None else int(time.time() * 1000)
    certificate = certify_device(account_key.private, public, certified_at)
    challenge = await transport.challenge()
    report: Callable[[int, int], None] | None = None
    if progress is not None:
        loop = asyncio.get_running_loop()
        callback = progress

        def on_worker(attempts: int, expected: int) -> None:
            # On the worker thread: hand the fraction to the event loop.
            loop.call_soon_threadsafe(callback, estimated_fraction(attempts, expected))

        report = on_worker

    nonce = await asyncio.to_thread(
        solve_pow, challenge.challenge, public, challenge.difficulty, progress=report
    )
    box = None
    if handle is not None:
        from .contact_tokens import registration_box

        # The handle's contact box goes with the handle (docs/metadata.md §1), so a
        # lookup gives the token from the start.
        box = await registration_box(account_key.private, handle)
    request = m.RegisterRequest(
        signature_key=public,
        challenge=challenge.challenge,
        pow_nonce=nonce,
        proof=key.sign(possession_message(challenge.challenge, public)),
        handle=handle,
        invite_code=invite_code,
        account_key=account_key.public,
        certified_at=certified_at,
        device_certificate=certificate,
        contact_box=box,
    )
    try:
        response = await transport.register(request)
    except ServerRejectedError as exc:
        if box is None or exc.code != "invalid_field" or "contact_box" not in str(exc):
            raise
        # A server from before contact tokens: the field is unknown to it. The
        # body is checked before the challenge is used, so the same proof of
        # work registers without it; the box is given once the server takes it.
        box = None
        response = await transport.register(replace(request, contact_box=None))
    return Registration(
        response,
        info,
        private,
        public,
        account_key,
        certified_at,
        certificate,
        contact_box_given=box is not None,
    )


async def certify_this_device(transport: Transport, identity: Identity, *, now_ms: int) -> Identity:
    """Give an account from before account keys its key (docs/devices.md §1).

    Makes the account key, certifies this device's key with it, and asks the
    server to re-issue this client's credential at version 2
    (``POST /v1/clients/certificate``); the identity to store, with the new
    key and credential. ProtocolError if the server's answer does not verify.
    Another device of the account that got there first has set another key:
    the server refuses this one (it then has to be linked, docs/devices.md §2).
    """
    if identity.server_key is None:
        raise ProtocolError("the stored identity has no server key")
    account_key = AccountKey.generate()
    certificate = certify_device(account_key.private, identity.signature_public_key, now_ms)
    credential = await transport.certify_client(
        m.CertifyClientRequest(account_key.public, now_ms, certificate)
    )
    if (
        credential.account_id != identity.account_id
        or credential.client_id != identity.client_id
        or not issued_credential_verifies(
            credential, identity.server_key, identity.signature_public_key, account_key.public
        )
    ):
        raise ProtocolError("the server issued a credential that does not verify")
    return replace(
        identity,
        credential=encode_credential(credential),
        account_private_key=account_key.private,
        account_public_key=account_key.public,
        certified_at=now_ms,
        device_certificate=certificate,
    )
