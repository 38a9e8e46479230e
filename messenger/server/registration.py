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
  :func:`~messenger.api.signing.credential_tbs`.

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
from typing import Final

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import ID_BYTES, b64encode
from messenger.api.models import (
    AddClientRequest,
    AddClientResponse,
    Challenge,
    Credential,
    RegisterRequest,
    RegisterResponse,
)
from messenger.api.pow import pow_ok
from messenger.api.signing import credential_tbs, possession_message

from .authentication import Principal, verify_ed25519
from .config import ServerConfig
from .handles import Handles
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


def new_id() -> str:
    """A fresh random account, client or queue ID."""
    return b64encode(secrets.token_bytes(ID_BYTES))


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


class Registration:
    """Issue challenges, register accounts, add clients."""

    def __init__(
        self,
        db: Database,
        config: ServerConfig,
        keys: ServerKeys,
        handles: Handles,
        clock: Callable[[], float],
    ) -> None:
        self._db = db
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

    def _credential(self, account_id: str, client_id: str, key: bytes) -> Credential:
        issued_at = self._now_ms()
        tbs = credential_tbs(account_id, client_id, key, issued_at)
        signature = self._keys.credential_key.sign(tbs)
        return Credential(account_id, client_id, key, issued_at, signature)

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
        if policy == "invite" and req.invite_code is None:
            raise ApiError(ErrorCode.INVITE_REQUIRED, "this server needs an invite code")
        code_hash = invite_hash(req.invite_code) if req.invite_code is not None else None
        handle_hash = self._handles.hash(req.handle) if req.handle is not None else None
        challenge_hash = hashlib.sha256(req.challenge).digest()
        account_id, client_id, queue_id = new_id(), new_id(), new_id()
        now = self._now_ms()

        async def op(tx: Tx) -> None:
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
                await tx.execute("INSERT INTO queues (queue_id) VALUES (?)", queue_id)
                await tx.execute(
                    "INSERT INTO accounts (account_id, handle_hash) VALUES (?, ?)",
                    account_id,
                    handle_hash,
                )
                await tx.execute(
                    "INSERT INTO clients (client_id, account_id, signature_key, queue_id) "
                    "VALUES (?, ?, ?, ?)",
                    client_id,
                    account_id,
                    req.signature_key,
                    queue_id,
                )
            except UniqueViolation as exc:
                if "handle_hash" in str(exc):
                    raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken") from None
                raise ApiError(
                    ErrorCode.KEY_IN_USE, "this signature key is already registered"
                ) from None

        await self._db.transaction(op)
        credential = self._credential(account_id, client_id, req.signature_key)
        return RegisterResponse(account_id, client_id, queue_id, credential)

    async def add_client(self, principal: Principal, req: AddClientRequest) -> AddClientResponse:
        """Add a client (a device with its own key and queue) to the account."""
        context = principal.account_id.encode("ascii")
        if not verify_ed25519(
            req.signature_key, req.proof, possession_message(context, req.signature_key)
        ):
            raise ApiError(ErrorCode.PROOF_INVALID, "the proof of possession does not verify")
        client_id, queue_id = new_id(), new_id()
        limit = self._config.max_clients_per_account

        async def op(tx: Tx) -> None:
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
                await tx.execute("INSERT INTO queues (queue_id) VALUES (?)", queue_id)
                await tx.execute(
                    "INSERT INTO clients (client_id, account_id, signature_key, queue_id) "
                    "VALUES (?, ?, ?, ?)",
                    client_id,
                    principal.account_id,
                    req.signature_key,
                    queue_id,
                )
            except UniqueViolation:
                raise ApiError(
                    ErrorCode.KEY_IN_USE, "this signature key is already registered"
                ) from None

        await self._db.transaction(op)
        credential = self._credential(principal.account_id, client_id, req.signature_key)
        return AddClientResponse(client_id, queue_id, credential)
