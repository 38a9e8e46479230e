"""Anonymous registration: the Authentication Service (RFC 9750 §4).

No phone number, email or name: a client proves that it spent some work and
that it holds the key it registers, and gets pseudonymous IDs and a
credential.

* **Challenges** are stateless: ``version || expires_at || difficulty ||
  random || HMAC``, so any server process can check any challenge. Each is
  accepted once (its hash is stored until it expires).
* **Proof of work** (:mod:`messenger.api.pow`) is bound to the key being
  registered, at the difficulty that the server set when it issued the
  challenge.
* **Proof of possession**: the new key signs
  :func:`~messenger.api.signing.possession_message` of the challenge.
* **Invite codes** (policy ``invite``) are random strings minted with
  ``messenger-server mint-invite``; the database holds their SHA-256 only.
* **Credentials**: the server's Ed25519 key signs
  :func:`~messenger.api.signing.credential_tbs`. Version 2
  (docs/devices.md §1) also names the account's key, and carries the
  account key's certificate of the device key
  (:func:`~messenger.api.signing.device_certificate_tbs`), which the server
  verifies before storing it: at registration (optional), when a device is
  added to an account with a key (required) and on ``POST
  /v1/clients/certificate``, which gives an older account its key (first
  writer wins, then the same key only).

Account, client and queue IDs are independent random values, so a queue ID
(which group members see) says nothing about the account ID.

Stored times are coarse (docs/threat-model.md): a spent challenge is kept
until its expiry rounded up to the hour, so it does not tell when an account
registered. (An invite's expiry is the operator's choice and kept as given.)
Registrations are limited per address (``registrations_per_ip_per_hour``,
30 by default; routes.py) on top of the proof of work.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import (
    AddClientRequest,
    AddClientResponse,
    CertifyClientRequest,
    Challenge,
    ClientCredential,
    Credential,
    RegisterRequest,
    RegisterResponse,
)
from messenger.api.pow import pow_ok
from messenger.api.signing import credential_tbs, device_certificate_tbs, possession_message

from .authentication import Principal, verify_ed25519
from .config import ServerConfig
from .devices import check_not_removed, device_removed
from .handles import Handles
from .ids import new_id
from .queue_links import QueueLinks
from .server_keys import ServerKeys
from .storage import Database, Tx, UniqueViolation

__all__ = ["Registration", "invite_hash", "mint_invites", "new_id"]

_VERSION: Final = 1
_HEADER: Final = struct.Struct(">BQB16s")
_MAC_BYTES: Final = 16
#: The granularity of the stored expiry of spent challenges.
_EXPIRY_BUCKET_MS: Final = 3_600_000


def _round_up(ms: int, bucket_ms: int = _EXPIRY_BUCKET_MS) -> int:
    """``ms`` rounded up to a multiple of ``bucket_ms``."""
    return -(-ms // bucket_ms) * bucket_ms


def invite_hash(code: str) -> bytes:
    """The stored form of an invite code."""
    return hashlib.sha256(b"invite-v1\n" + code.encode("ascii")).digest()


#: Invite codes: 24 characters of letters and digits (about 143 bits), so a
#: code never starts with "-" (a command-line flag) nor needs escaping in a
#: link.
_INVITE_ALPHABET: Final = string.ascii_letters + string.digits
_INVITE_LENGTH: Final = 24


def _new_invite_code() -> str:
    return "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(_INVITE_LENGTH))


async def mint_invites(
    db: Database,
    count: int,
    uses: int,
    expires_at_ms: int | None,
) -> list[str]:
    """Create ``count`` invite codes, each good for ``uses`` registrations."""
    codes = [_new_invite_code() for _ in range(count)]

    async def op(tx: Tx) -> None:
        await tx.executemany(
            "INSERT INTO invites (code_hash, uses_left, expires_at) VALUES (?, ?, ?)",
            [(invite_hash(code), uses, expires_at_ms) for code in codes],
        )

    await db.transaction(op)
    return codes


@dataclass(frozen=True, slots=True)
class _Certificate:
    """The account key's certificate of one device key (docs/devices.md §1)."""

    account_key: bytes
    certified_at: int
    device_certificate: bytes

    def check(self, signature_key: bytes) -> None:
        """``proof_invalid`` unless the certificate of ``signature_key`` verifies."""
        tbs = device_certificate_tbs(self.account_key, signature_key, self.certified_at)
        if not verify_ed25519(self.account_key, self.device_certificate, tbs):
            raise ApiError(
                ErrorCode.PROOF_INVALID,
                "the device certificate does not verify under the account key",
            )

    async def store(self, tx: Tx, client_id: str) -> None:
        """Keep the certificate as the client's (the account key is the account's)."""
        await tx.execute(
            "UPDATE clients SET certified_at = ?, device_certificate = ? WHERE client_id = ?",
            self.certified_at,
            self.device_certificate,
            client_id,
        )


async def _insert_client(
    tx: Tx, links: QueueLinks, client_id: str, account_id: str, signature_key: bytes
) -> str:
    """Insert a client with a spare queue (:mod:`.queue_links`); its queue ID."""
    queue_id = await links.take_spare(tx)
    await tx.execute(
        "INSERT INTO clients (client_id, account_id, signature_key, queue_box) VALUES (?, ?, ?, ?)",
        client_id,
        account_id,
        signature_key,
        links.seal(client_id, queue_id),
    )
    return queue_id


class Registration:
    """Issue challenges, register accounts, add clients, certify them."""

    def __init__(
        self,
        db: Database,
        config: ServerConfig,
        keys: ServerKeys,
        handles: Handles,
        clock: Callable[[], float],
        queue_links: QueueLinks,
    ) -> None:
        self._db = db
        self._queue_links = queue_links
        self._config = config
        self._keys = keys
        self._handles = handles
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- challenges ---------------------------------------------------------

    def _mac(self, header: bytes) -> bytes:
        return hmac.new(self._keys.challenge_mac_key, header, hashlib.sha256).digest()[:_MAC_BYTES]

    def challenge(self) -> Challenge:
        """A fresh challenge at the configured difficulty."""
        if self._config.signup_policy == "closed":
            raise ApiError(ErrorCode.SIGNUP_CLOSED, "this server does not accept sign-ups")
        expires_at = self._now_ms() + self._config.challenge_ttl_seconds * 1000
        difficulty = self._config.pow_difficulty
        header = _HEADER.pack(_VERSION, expires_at, difficulty, secrets.token_bytes(16))
        return Challenge(header + self._mac(header), difficulty, expires_at)

    def _open_challenge(self, challenge: bytes) -> tuple[int, int]:
        """``(expires_at, difficulty)`` of a challenge this server issued."""
        if len(challenge) != _HEADER.size + _MAC_BYTES:
            raise ApiError(ErrorCode.CHALLENGE_INVALID, "not a challenge from this server")
        header, mac = challenge[: _HEADER.size], challenge[_HEADER.size :]
        if not hmac.compare_digest(mac, self._mac(header)):
            raise ApiError(ErrorCode.CHALLENGE_INVALID, "not a challenge from this server")
        version, expires_at, difficulty, _ = _HEADER.unpack(header)
        if version != _VERSION:
            raise ApiError(ErrorCode.CHALLENGE_INVALID, "unsupported challenge version")
        if self._now_ms() > expires_at:
            raise ApiError(ErrorCode.CHALLENGE_EXPIRED, "the challenge has expired")
        return expires_at, difficulty

    # -- credentials ----------------------------------------------------------

    def _credential(
        self,
        account_id: str,
        client_id: str,
        key: bytes,
        certificate: _Certificate | None = None,
    ) -> Credential:
        """A credential for the client: version 2 with the account's certificate."""
        issued_at = self._now_ms()
        if certificate is None:
            tbs = credential_tbs(account_id, client_id, key, issued_at)
            signature = self._keys.credential_key.sign(tbs)
            return Credential(account_id, client_id, key, issued_at, signature)
        tbs = credential_tbs(account_id, client_id, key, issued_at, certificate.account_key)
        signature = self._keys.credential_key.sign(tbs)
        return Credential(
            account_id,
            client_id,
            key,
            issued_at,
            signature,
            certificate.account_key,
            certificate.certified_at,
            certificate.device_certificate,
        )

    # -- registration -----------------------------------------------------------

    async def register(self, req: RegisterRequest) -> RegisterResponse:
        """Create an account, its first client and that client's queue."""
        policy = self._config.signup_policy
        if policy == "closed":
            raise ApiError(ErrorCode.SIGNUP_CLOSED, "this server does not accept sign-ups")
        expires_at, difficulty = self._open_challenge(req.challenge)
        if not pow_ok(req.challenge, req.signature_key, req.pow_nonce, difficulty):
            raise ApiError(ErrorCode.POW_INVALID, "the proof of work does not solve the challenge")
        if not verify_ed25519(
            req.signature_key, req.proof, possession_message(req.challenge, req.signature_key)
        ):
            raise ApiError(ErrorCode.PROOF_INVALID, "the proof of possession does not verify")
        certificate = None
        if req.account_key is not None:
            assert req.certified_at is not None and req.device_certificate is not None
            certificate = _Certificate(req.account_key, req.certified_at, req.device_certificate)
            certificate.check(req.signature_key)
        if policy == "invite" and req.invite_code is None:
            raise ApiError(ErrorCode.INVITE_REQUIRED, "this server needs an invite code")
        code_hash = invite_hash(req.invite_code) if req.invite_code is not None else None
        handle_hash = self._handles.hash(req.handle) if req.handle is not None else None
        challenge_hash = hashlib.sha256(req.challenge).digest()
        account_id, client_id = new_id(), new_id()
        now = self._now_ms()

        async def op(tx: Tx) -> str:
            used = await tx.execute(
                "INSERT INTO used_challenges (challenge_hash, expires_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                challenge_hash,
                _round_up(expires_at),  # outlives the challenge, to the hour
            )
            if used == 0:
                raise ApiError(ErrorCode.CHALLENGE_USED, "this challenge was already used")
            if policy == "invite" and code_hash is not None:
                spent = await tx.execute(
                    "UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = ? "
                    "AND uses_left > 0 AND (expires_at IS NULL OR expires_at > ?)",
                    code_hash,
                    now,
                )
                if spent == 0:
                    raise ApiError(ErrorCode.INVITE_INVALID, "the invite code is not valid")
            if handle_hash is not None and await tx.fetchone(
                "SELECT 1 FROM accounts WHERE handle_hash = ?", handle_hash
            ):
                raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken")
            if await tx.fetchone(
                "SELECT 1 FROM clients WHERE signature_key = ?", req.signature_key
            ):
                raise ApiError(ErrorCode.KEY_IN_USE, "this signature key is already registered")
            try:
                await tx.execute(
                    "INSERT INTO accounts (account_id, handle_hash) VALUES (?, ?)",
                    account_id,
                    handle_hash,
                )
                if req.contact_box is not None:  # kept with the handle (docs/metadata.md §1)
                    await tx.execute(
                        "UPDATE accounts SET handle_contact_box = ? WHERE account_id = ?",
                        req.contact_box,
                        account_id,
                    )
                queue_id = await _insert_client(
                    tx, self._queue_links, client_id, account_id, req.signature_key
                )
                if certificate is not None:
                    await tx.execute(
                        "UPDATE accounts SET account_key = ? WHERE account_id = ?",
                        certificate.account_key,
                        account_id,
                    )
                    await certificate.store(tx, client_id)
            except UniqueViolation as exc:
                if "handle_hash" in str(exc):
                    raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken") from None
                raise ApiError(
                    ErrorCode.KEY_IN_USE, "this signature key is already registered"
                ) from None
            return queue_id

        queue_id = await self._db.transaction(op)
        credential = self._credential(account_id, client_id, req.signature_key, certificate)
        return RegisterResponse(account_id, client_id, queue_id, credential)

    async def add_client(self, principal: Principal, req: AddClientRequest) -> AddClientResponse:
        """Add a client (a device with its own key and queue) to the account.

        When the account has a key, the new key must come with the account
        key's certificate (docs/devices.md §1), checked under the stored
        account key (``proof_invalid`` otherwise), and the credential issued
        is version 2. A certificate for an account without a key is refused
        too (``proof_invalid``): the account must be certified first.
        """
        context = principal.account_id.encode("ascii")
        if not verify_ed25519(
            req.signature_key, req.proof, possession_message(context, req.signature_key)
        ):
            raise ApiError(ErrorCode.PROOF_INVALID, "the proof of possession does not verify")
        client_id = new_id()
        limit = self._config.max_clients_per_account
        certificate: _Certificate | None = None

        async def op(tx: Tx) -> str:
            nonlocal certificate
            # The account's row serialises device changes of one account.
            account = await tx.fetchone(
                "SELECT account_key FROM accounts WHERE account_id = ?"  # noqa: S608
                + tx.for_update,
                principal.account_id,
            )
            await check_not_removed(tx, principal.client_id)
            account_key = None if account is None or account[0] is None else bytes(account[0])
            certificate = None
            if account_key is None and req.device_certificate is not None:
                # The sender holds an account key the server does not know:
                # a credential issued now would be version 1, which members
                # refuse. It must certify itself first (and so set the key).
                raise ApiError(
                    ErrorCode.PROOF_INVALID,
                    "this account has no key yet: certify a device first "
                    "(POST /v1/clients/certificate)",
                )
            if account_key is not None:
                if req.certified_at is None or req.device_certificate is None:
                    raise ApiError(
                        ErrorCode.PROOF_INVALID,
                        "this account has a key: a new device needs its certificate",
                    )
                certificate = _Certificate(account_key, req.certified_at, req.device_certificate)
                certificate.check(req.signature_key)
            row = await tx.fetchone(
                "SELECT COUNT(*) FROM clients WHERE account_id = ?", principal.account_id
            )
            if row is not None and int(row[0]) >= limit:
                raise ApiError(
                    ErrorCode.LIMIT_EXCEEDED, f"an account may have at most {limit} clients"
                )
            if await tx.fetchone(
                "SELECT 1 FROM clients WHERE signature_key = ?", req.signature_key
            ):
                raise ApiError(ErrorCode.KEY_IN_USE, "this signature key is already registered")
            try:
                queue_id = await _insert_client(
                    tx, self._queue_links, client_id, principal.account_id, req.signature_key
                )
                if certificate is not None:
                    await certificate.store(tx, client_id)
            except UniqueViolation:
                raise ApiError(
                    ErrorCode.KEY_IN_USE, "this signature key is already registered"
                ) from None
            return queue_id

        queue_id = await self._db.transaction(op)
        credential = self._credential(
            principal.account_id, client_id, req.signature_key, certificate
        )
        return AddClientResponse(client_id, queue_id, credential)

    async def certify(self, principal: Principal, req: CertifyClientRequest) -> ClientCredential:
        """Store the account key's certificate of the signing client; its v2 credential.

        For an account from before account keys, the first such request sets
        the account's key (first writer wins: the account's row is locked and
        the key set only while it is NULL); afterwards every certificate must
        be under that key (``key_in_use`` otherwise). The certificate must
        verify (``proof_invalid``). Nothing changes on a refusal.
        """
        certificate = _Certificate(req.account_key, req.certified_at, req.device_certificate)

        async def op(tx: Tx) -> bytes:
            account = await tx.fetchone(
                "SELECT account_key FROM accounts WHERE account_id = ?"  # noqa: S608
                + tx.for_update,
                principal.account_id,
            )
            if account is None:  # pragma: no cover - the request was just authenticated
                raise ApiError(ErrorCode.AUTH_INVALID, "bad signature")
            row = await tx.fetchone(
                "SELECT signature_key FROM clients WHERE client_id = ?", principal.client_id
            )
            if row is None:  # removed since the authentication
                raise device_removed()
            signature_key = bytes(row[0])
            certificate.check(signature_key)
            if account[0] is None:
                changed = await tx.execute(
                    "UPDATE accounts SET account_key = ? "
                    "WHERE account_id = ? AND account_key IS NULL",
                    certificate.account_key,
                    principal.account_id,
                )
                if changed != 1:  # pragma: no cover - the row lock rules this out
                    raise ApiError(ErrorCode.KEY_IN_USE, "the account has another key")
            elif not hmac.compare_digest(bytes(account[0]), certificate.account_key):
                raise ApiError(ErrorCode.KEY_IN_USE, "the account has another key")
            await certificate.store(tx, principal.client_id)
            return signature_key

        signature_key = await self._db.transaction(op)
        credential = self._credential(
            principal.account_id, principal.client_id, signature_key, certificate
        )
        return ClientCredential(credential)
