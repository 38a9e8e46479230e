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
very signature key of the leaf. A server that wanted to slip in a key of
its own would have to sign it, and the key then shows in the safety number
(:mod:`.safety_number`).

Registration (:func:`register_account`) generates the key, solves the
proof of work (:mod:`messenger.api.pow`, in a worker thread so the event
loop keeps running) and proves possession of the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from messenger.api import models as m
from messenger.api.credential import CREDENTIAL_VERSION, decode_credential, encode_credential
from messenger.api.pow import estimated_fraction, solve_pow
from messenger.api.signing import credential_tbs, possession_message
from messenger.mls.ciphersuite import CipherSuite, RandomSource, get_cipher_suite
from messenger.mls.credentials import Credential, CredentialType

from .net.http import Transport
from .net.signing import Signer
from .store.identity import Identity

__all__ = [
    "CIPHER_SUITE",
    "CREDENTIAL_VERSION",
    "Account",
    "CredentialVerifier",
    "MemberIdentity",
    "Registration",
    "decode_credential",
    "encode_credential",
    "member_identity",
    "register_account",
]

#: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 §17.1): its
#: signature scheme is Ed25519, the scheme of the server's credentials.
CIPHER_SUITE: Final = 1


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    """Who a group member is, according to its verified credential."""

    account_id: str
    client_id: str
    signature_key: bytes


def member_identity(credential: Credential) -> MemberIdentity | None:
    """The account and client of a member's MLS credential (None if not ours)."""
    if credential.credential_type != CredentialType.BASIC:
        return None
    decoded = decode_credential(credential.identity)
    if decoded is None:
        return None
    return MemberIdentity(decoded.account_id, decoded.client_id, decoded.signature_key)


class CredentialVerifier:
    """The MLS ``IdentityValidator`` for one server (RFC 9420 §5.3.1).

    Accepts a credential only if it is a basic credential carrying a server
    credential that (1) is signed by ``server_key`` and (2) certifies the
    leaf's own ``signature_key``.
    """

    def __init__(self, server_key: bytes) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(server_key)

    def __call__(self, credential: Credential, signature_key: bytes) -> bool:
        if credential.credential_type != CredentialType.BASIC:
            return False
        decoded = decode_credential(credential.identity)
        if decoded is None or decoded.signature_key != bytes(signature_key):
            return False
        tbs = credential_tbs(
            decoded.account_id, decoded.client_id, decoded.signature_key, decoded.issued_at
        )
        try:
            self._key.verify(decoded.signature, tbs)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Account:
    """This client's loaded identity: keys, credential, verifier, signer."""

    identity: Identity
    credential: m.Credential
    verifier: CredentialVerifier = field(repr=False)
    signer: Signer = field(repr=False)

    @classmethod
    def load(cls, identity: Identity, signer: Signer) -> Account:
        decoded = decode_credential(identity.credential)
        if decoded is None or identity.server_key is None:
            raise ValueError("the stored identity has no valid credential or server key")
        return cls(identity, decoded, CredentialVerifier(identity.server_key), signer)

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
        return get_cipher_suite(self.identity.cipher_suite)

    @property
    def signature_private_key(self) -> bytes:
        return self.identity.signature_private_key

    @property
    def mls_credential(self) -> Credential:
        return Credential.basic(self.identity.credential)


@dataclass(frozen=True, slots=True)
class Registration:
    """A new account: what the server answered, and the key it certified."""

    response: m.RegisterResponse
    server_info: m.ServerInfo
    signature_private_key: bytes = field(repr=False)
    signature_public_key: bytes


async def register_account(
    transport: Transport,
    random: RandomSource,
    *,
    handle: str | None = None,
    invite_code: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> Registration:
    """Register an anonymous account (proof of work) with an optional handle.

    ``invite_code`` is the server's invite, for a server that signs up by invite.
    ``progress`` is called on the event loop with the proof of work's estimated
    fraction done (:func:`~messenger.api.pow.estimated_fraction`, below 1.0).
    """
    info = await transport.server_info()
    suite = get_cipher_suite(CIPHER_SUITE)
    private, public = suite.generate_signature_key_pair(random)
    key = Ed25519PrivateKey.from_private_bytes(private)
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
    request = m.RegisterRequest(
        signature_key=public,
        challenge=challenge.challenge,
        pow_nonce=nonce,
        proof=key.sign(possession_message(challenge.challenge, public)),
        handle=handle,
        invite_code=invite_code,
    )
    response = await transport.register(request)
    return Registration(response, info, private, public)
