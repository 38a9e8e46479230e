"""Request and response bodies of the API as validated dataclasses.

Every model is a frozen dataclass whose ``FIELDS`` describe its JSON form
(:mod:`messenger.api.fields`). ``from_json`` validates every field and raises
:class:`~messenger.api.errors.ApiError` (``invalid_field`` naming the field,
or ``malformed_json``); ``to_json`` gives the JSON object back. Request
models refuse unknown fields; response models ignore them, so that a newer
server can add fields without breaking older clients.

The roles follow RFC 9750: registration and credentials are the
Authentication Service (§4); KeyPackages, queues, groups, commits, Welcome
and GroupInfo are the Delivery Service (§5). MLS messages are opaque base64url
bytes here; the server reads only their framing header (group, epoch,
content type).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

from .contact_token import CONTACT_BOX_BYTES, CONTACT_TOKEN_BYTES
from .errors import ApiError, ErrorCode
from .fields import (
    Bytes,
    Choice,
    DeliveryAddress,
    Field,
    Flag,
    Ident,
    Int,
    ListOf,
    Nested,
    Padded,
    Text,
)

__all__ = [
    "CLAIM_TOKEN_BYTES",
    "DEFAULT_CLAIM_SUITE",
    "HANDLE_PATTERN",
    "LINK_IDLE_SECONDS",
    "LINK_ID_BYTES",
    "LINK_MAX_SECONDS",
    "MAX_CLAIM_SUITES",
    "MAX_FETCH",
    "MAX_GROUP_ID_BYTES",
    "MAX_GROUP_MEMBERS",
    "MAX_IDEMPOTENCY_KEY_BYTES",
    "MAX_KEY_PACKAGES_PER_UPLOAD",
    "MAX_KEY_PACKAGE_BYTES",
    "MAX_LINK_BYTES",
    "MAX_LINK_FETCH",
    "MAX_LINK_MESSAGES_TO_CREATOR",
    "MAX_LINK_MESSAGE_BYTES",
    "MAX_LINK_OFFER_BYTES",
    "MAX_MLS_MESSAGE_BYTES",
    "MAX_SEND_BATCH_BYTES",
    "MAX_SEND_BATCH_ITEMS",
    "MIN_IDEMPOTENCY_KEY_BYTES",
    "QUEUE_KEY_BYTES",
    "QUEUE_KILL_BYTES",
    "REJOIN_HANDLE_BYTES",
    "SEND_TOKEN_BYTES",
    "SIGNUP_POLICIES",
    "AckRequest",
    "AckResponse",
    "AddClientRequest",
    "AddClientResponse",
    "BlobStatus",
    "CertifyClientRequest",
    "Challenge",
    "ClaimKeyPackagesRequest",
    "ClaimKeyPackagesResponse",
    "ClaimedKeyPackage",
    "ClientCredential",
    "CommitRequest",
    "CommitResponse",
    "ContactQueueRequest",
    "ContactQueueResponse",
    "CreateBlobRequest",
    "CreateBlobResponse",
    "CreateGroupRequest",
    "CreateGroupResponse",
    "CreateLinkRequest",
    "CreateLinkResponse",
    "Credential",
    "Empty",
    "FetchResponse",
    "GroupInfoRequest",
    "GroupInfoResponse",
    "HandleLookupRequest",
    "HandleLookupResponse",
    "Health",
    "KeyPackageCount",
    "LinkMessage",
    "LinkMessages",
    "LinkPostRequest",
    "LinkPostResponse",
    "Model",
    "PushAck",
    "PushAcked",
    "PushMessages",
    "QueueAddressResponse",
    "QueueKeyRequest",
    "QueueMessage",
    "RegisterRequest",
    "RegisterResponse",
    "RejoinBox",
    "RejoinBoxResponse",
    "RejoinInfoRequest",
    "RemoveClientRequest",
    "SendBatchRequest",
    "SendBatchResponse",
    "SendRequest",
    "SendResponse",
    "SendTokenRequest",
    "ServerInfo",
    "SetHandleRequest",
    "SuiteKeyPackageCount",
    "TakeoverRequest",
    "UploadKeyPackagesRequest",
    "UploadKeyPackagesResponse",
    "parse_json",
]

#: The largest MLS message (commit, Welcome, application message) accepted.
MAX_MLS_MESSAGE_BYTES: Final = 1 << 20
#: The most messages in one batch send.
MAX_SEND_BATCH_ITEMS: Final = 100
#: The most MLS message bytes in one batch send, all items together.
MAX_SEND_BATCH_BYTES: Final = 2 << 20
#: The largest KeyPackage (encoded MLSMessage) accepted.
MAX_KEY_PACKAGE_BYTES: Final = 64 << 10
#: MLS group IDs longer than this are refused.
MAX_GROUP_ID_BYTES: Final = 255
#: The most queues a group may fan out to.
MAX_GROUP_MEMBERS: Final = 10_000
#: The most KeyPackages in one upload.
MAX_KEY_PACKAGES_PER_UPLOAD: Final = 100
#: The most messages one fetch returns.
MAX_FETCH: Final = 1000
#: Handles: lower-case ASCII letters, digits, ``_ . -``; 3 to 32 characters.
HANDLE_PATTERN: Final = r"[a-z0-9][a-z0-9_.\-]{2,31}"
#: Who may sign up: anyone (with proof of work), holders of an invite code, nobody.
SIGNUP_POLICIES: Final = ("open", "invite", "closed")
#: Bounds of an idempotency key (random bytes chosen by the client).
MIN_IDEMPOTENCY_KEY_BYTES: Final = 16
MAX_IDEMPOTENCY_KEY_BYTES: Final = 64
#: A send token (docs/metadata.md §3) and its digest are this long.
SEND_TOKEN_BYTES: Final = 32
#: A KeyPackage claim's token (ClaimedKeyPackage.claim_token).
CLAIM_TOKEN_BYTES: Final = 32
#: A rejoin box's handle: HMAC-SHA-256 of the group ID under the account's
#: rejoin secret (docs/metadata.md §2, ``messenger/client/rejoin_boxes.py``).
REJOIN_HANDLE_BYTES: Final = 32
#: A queue's own Ed25519 public key (docs/metadata.md §1).
QUEUE_KEY_BYTES: Final = 32
#: A queue's kill secret, and its SHA-256 that the server keeps.
QUEUE_KILL_BYTES: Final = 32
#: The bounds of a rejoin box (the client's AEAD of an epoch and a send token).
MIN_REJOIN_BOX_BYTES: Final = 32
MAX_REJOIN_BOX_BYTES: Final = 256

_SIGNATURE_KEY = "Ed25519 public key (RFC 8032), 32 bytes"


def _send_token_hash() -> Bytes:
    return Bytes(
        "send_token_hash",
        min_len=SEND_TOKEN_BYTES,
        max_len=SEND_TOKEN_BYTES,
        optional=True,
        description=(
            "the digest (messenger.api.sealed.token_digest) of the new epoch's send token: "
            "sends to the group then prove membership with the token, unsigned"
        ),
    )


def _token(name: str, description: str) -> Bytes:
    """An optional send token (``SEND_TOKEN_BYTES``), named ``name``."""
    return Bytes(
        name,
        min_len=SEND_TOKEN_BYTES,
        max_len=SEND_TOKEN_BYTES,
        optional=True,
        description=description,
    )


def _idempotency_key() -> Bytes:
    return Bytes(
        "idempotency_key",
        min_len=MIN_IDEMPOTENCY_KEY_BYTES,
        max_len=MAX_IDEMPOTENCY_KEY_BYTES,
        optional=True,
        description=(
            "random bytes naming this send: a retry with the same key (by the same "
            "client, within the retention window) gets the first answer and is not "
            "delivered again"
        ),
    )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> object:
    """Decode a JSON document strictly; :attr:`ErrorCode.MALFORMED_JSON` otherwise.

    Refuses invalid UTF-8, duplicate keys, ``NaN``/``Infinity`` and nesting
    deep enough to exhaust the parser.
    """
    try:
        return json.loads(
            body,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ApiError(ErrorCode.MALFORMED_JSON, f"body is not valid JSON ({reason})") from None


class Model:
    """Base of every API body: JSON in and out as described by ``FIELDS``."""

    __slots__ = ()

    FIELDS: ClassVar[tuple[Field, ...]] = ()
    #: Requests refuse unknown fields; responses ignore them.
    STRICT: ClassVar[bool] = True

    def to_json(self) -> dict[str, object]:
        """The JSON object (absent optional fields are left out)."""
        out: dict[str, object] = {}
        for field in self.FIELDS:
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = field.dump(value)
        return out

    def dumps(self) -> bytes:
        """The compact UTF-8 JSON encoding."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: object, *, path: str = "") -> Self:
        """Validate a decoded JSON value; :class:`ApiError` names the first bad field."""
        where = path or "body"
        if not isinstance(data, dict):
            raise ApiError.invalid_field(where, "expected a JSON object")
        names = {field.name for field in cls.FIELDS}
        if cls.STRICT:
            unknown = sorted(key for key in data if key not in names)
            if unknown:
                name = f"{path}.{unknown[0]}" if path else unknown[0]
                raise ApiError.invalid_field(name, "unknown field")
        values: dict[str, Any] = {}
        for field in cls.FIELDS:
            name = f"{path}.{field.name}" if path else field.name
            raw = data.get(field.name)
            if raw is None:
                if not field.optional:
                    raise ApiError.invalid_field(name, "missing")
                values[field.name] = None
            else:
                values[field.name] = field.parse(raw, name)
        model = cls(**values)
        model._validate(path)
        return model

    def _validate(self, path: str) -> None:
        """Rules across fields, checked after each field parsed (none by default)."""

    @classmethod
    def loads(cls, body: bytes) -> Self:
        """Decode and validate a JSON body."""
        return cls.from_json(parse_json(body))

    @classmethod
    def json_schema(cls) -> dict[str, object]:
        """The JSON Schema (OpenAPI 3.1 dialect) of this model."""
        return {
            "type": "object",
            "properties": {field.name: field.schema() for field in cls.FIELDS},
            "required": [field.name for field in cls.FIELDS if not field.optional],
            "additionalProperties": not cls.STRICT,
            "description": (cls.__doc__ or "").strip().splitlines()[0],
        }


class _Response(Model):
    __slots__ = ()
    STRICT: ClassVar[bool] = False


# -- server and health -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Empty(_Response):
    """An empty object: the request succeeded and there is nothing to report."""


@dataclass(frozen=True, slots=True)
class Health(_Response):
    """Liveness and database reachability."""

    status: str
    database: str

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Choice("status", ("ok", "degraded")),
        Choice("database", ("ok", "unreachable")),
    )


@dataclass(frozen=True, slots=True)
class ServerInfo(_Response):
    """What a client needs to know before it registers."""

    server_key: bytes
    signup_policy: str
    pow_difficulty: int
    timestamp_window_seconds: int
    max_body_bytes: int
    retention_seconds: int
    max_blob_bytes: int | None = None
    """The largest attachment blob (None: a server without a blob store)."""

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes(
            "server_key",
            min_len=32,
            max_len=32,
            description="Ed25519 key that signs credentials",
        ),
        Choice("signup_policy", SIGNUP_POLICIES),
        Int("pow_difficulty", maximum=64, description="leading zero bits required"),
        Int("timestamp_window_seconds"),
        Int("max_body_bytes"),
        Int("retention_seconds", description="unfetched messages are dropped after this"),
        Int("max_blob_bytes", optional=True, description="the largest attachment blob"),
    )


# -- registration (the Authentication Service) --------------------------------


@dataclass(frozen=True, slots=True)
class Challenge(_Response):
    """A proof-of-work challenge for one registration."""

    challenge: bytes
    difficulty: int
    expires_at: int

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("challenge", min_len=1, max_len=256, description="opaque, signed by the server"),
        Int("difficulty", maximum=64, description="leading zero bits of the PoW digest"),
        Int("expires_at", description="Unix time in milliseconds"),
    )


def _all_or_none(model: Model, path: str, names: tuple[str, ...]) -> None:
    """Refuse a body that carries some of ``names`` but not all of them."""
    present = [getattr(model, name) is not None for name in names]
    if any(present) and not all(present):
        missing = names[present.index(False)]
        raise ApiError.invalid_field(f"{path}.{missing}" if path else missing, "missing")


def _contact_box() -> Bytes:
    """A handle's contact box (:mod:`messenger.api.contact_token`), optional."""
    return Bytes(
        "contact_box",
        min_len=CONTACT_BOX_BYTES,
        max_len=CONTACT_BOX_BYTES,
        optional=True,
        description="the contact token sealed under a key from the handle",
    )


def _certificate_fields(*, with_key: bool = True) -> tuple[Field, ...]:
    """The optional fields of a device certificate (docs/devices.md)."""
    key = (
        Bytes(
            "account_key",
            min_len=32,
            max_len=32,
            optional=True,
            description="the account's Ed25519 public key (held by its devices only)",
        ),
    )
    rest = (
        Int("certified_at", optional=True, description="Unix time in milliseconds"),
        Bytes(
            "device_certificate",
            min_len=64,
            max_len=64,
            optional=True,
            description="account key's signature over signing.device_certificate_tbs",
        ),
    )
    return (*key, *rest) if with_key else rest


@dataclass(frozen=True, slots=True)
class Credential(_Response):
    """The Authentication Service's statement binding a client's key to its IDs."""

    account_id: str
    client_id: str
    signature_key: bytes
    issued_at: int
    signature: bytes
    #: Version 2 (docs/devices.md): the account's key, which the server's
    #: signature covers, and the account key's certificate of this device.
    account_key: bytes | None = None
    certified_at: int | None = None
    device_certificate: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Ident("account_id"),
        Ident("client_id"),
        Bytes("signature_key", min_len=32, max_len=32, description=_SIGNATURE_KEY),
        Int("issued_at", description="Unix time in milliseconds"),
        Bytes(
            "signature",
            min_len=64,
            max_len=64,
            description="server's Ed25519 signature over signing.credential_tbs",
        ),
        *_certificate_fields(),
    )

    @property
    def version(self) -> int:
        """1 without an account key, 2 with one."""
        return 1 if self.account_key is None else 2

    def _validate(self, path: str) -> None:
        _all_or_none(self, path, ("account_key", "certified_at", "device_certificate"))


@dataclass(frozen=True, slots=True)
class RegisterRequest(Model):
    """Create a pseudonymous account with its first client."""

    signature_key: bytes
    challenge: bytes
    pow_nonce: int
    proof: bytes
    invite_code: str | None = None
    handle: str | None = None
    #: The account's key and its certificate of this first device (docs/devices.md).
    account_key: bytes | None = None
    certified_at: int | None = None
    device_certificate: bytes | None = None
    #: The handle's contact box (:class:`SetHandleRequest`), with ``handle`` only.
    contact_box: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("signature_key", min_len=32, max_len=32, description=_SIGNATURE_KEY),
        Bytes("challenge", min_len=1, max_len=256),
        Int("pow_nonce", description="solves pow.pow_digest for the challenge and key"),
        Bytes(
            "proof",
            min_len=64,
            max_len=64,
            description="signature by signature_key over signing.possession_message",
        ),
        Text("invite_code", min_len=8, max_len=64, pattern=r"[A-Za-z0-9_-]+", optional=True),
        Text("handle", min_len=3, max_len=32, pattern=HANDLE_PATTERN, optional=True),
        *_certificate_fields(),
        _contact_box(),
    )

    def _validate(self, path: str) -> None:
        _all_or_none(self, path, ("account_key", "certified_at", "device_certificate"))
        if self.contact_box is not None and self.handle is None:
            where = f"{path}.contact_box" if path else "contact_box"
            raise ApiError.invalid_field(where, "a contact box goes with a handle")


@dataclass(frozen=True, slots=True)
class RegisterResponse(_Response):
    """The new account's pseudonymous IDs and its first client's credential."""

    account_id: str
    client_id: str
    queue_id: str
    credential: Credential

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Ident("account_id"),
        Ident("client_id"),
        Ident("queue_id", description="the client's delivery queue"),
        Nested("credential", Credential),
    )


@dataclass(frozen=True, slots=True)
class AddClientRequest(Model):
    """Add another client (device) to the signing client's account.

    ``proof`` is the new key's signature over ``signing.possession_message``
    with the account ID as context. When the account has a key, the account
    key's certificate of the new key is required and checked.
    """

    signature_key: bytes
    proof: bytes
    certified_at: int | None = None
    device_certificate: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("signature_key", min_len=32, max_len=32, description=_SIGNATURE_KEY),
        Bytes("proof", min_len=64, max_len=64),
        *_certificate_fields(with_key=False),
    )

    def _validate(self, path: str) -> None:
        _all_or_none(self, path, ("certified_at", "device_certificate"))


@dataclass(frozen=True, slots=True)
class CertifyClientRequest(Model):
    """Give the signing client the account key's certificate (docs/devices.md).

    For an account registered before account keys: the first such request
    sets the account's key; later ones must name the same key. The answer is
    the client's credential, re-issued at version 2.
    """

    account_key: bytes
    certified_at: int
    device_certificate: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("account_key", min_len=32, max_len=32),
        Int("certified_at", description="Unix time in milliseconds"),
        Bytes("device_certificate", min_len=64, max_len=64),
    )


@dataclass(frozen=True, slots=True)
class ClientCredential(_Response):
    """A client's (re-issued) credential."""

    credential: Credential

    FIELDS: ClassVar[tuple[Field, ...]] = (Nested("credential", Credential),)


@dataclass(frozen=True, slots=True)
class AddClientResponse(_Response):
    """The new client's IDs and credential."""

    client_id: str
    queue_id: str
    credential: Credential

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Ident("client_id"),
        Ident("queue_id"),
        Nested("credential", Credential),
    )


@dataclass(frozen=True, slots=True)
class TakeoverRequest(Model):
    """Make this copy of the signing client the only one the server answers.

    A copy restored from a backup sends this once, before anything else.
    From then on every signed request and WebSocket of the client must carry
    ``device_token`` in the ``X-Messenger-Device-Token`` header; the server
    keeps only its SHA-256, closes the client's open WebSockets, and answers
    any other copy ``device_replaced``.
    """

    device_token: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes(
            "device_token",
            min_len=32,
            max_len=32,
            description="32 fresh random bytes, known to this copy only",
        ),
    )


@dataclass(frozen=True, slots=True)
class SetHandleRequest(Model):
    """Set (or replace) the account's handle; the server keeps only a keyed hash.

    ``contact_box`` is the account's contact token sealed under a key from the
    handle (:mod:`messenger.api.contact_token`): the server keeps it and hands
    it to whoever looks the handle up. Without it, a lookup hands out none.
    """

    handle: str
    contact_box: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Text("handle", min_len=3, max_len=32, pattern=HANDLE_PATTERN),
        _contact_box(),
    )


@dataclass(frozen=True, slots=True)
class HandleLookupRequest(Model):
    """Find the account that holds exactly this handle."""

    handle: str

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Text("handle", min_len=3, max_len=32, pattern=HANDLE_PATTERN),
    )


@dataclass(frozen=True, slots=True)
class HandleLookupResponse(_Response):
    """The account that holds the handle, and its contact box if it gave one
    (:mod:`messenger.api.contact_token`: the looker opens it with the handle)."""

    account_id: str
    contact_box: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Ident("account_id"),
        _contact_box(),
    )


# -- KeyPackages (RFC 9750 §5.1) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadKeyPackagesRequest(Model):
    """Publish one-time KeyPackages and optionally replace the last-resort one."""

    key_packages: tuple[bytes, ...]
    last_resort: bytes | None = None
    contact_proof: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        ListOf(
            "key_packages",
            Bytes("", min_len=1, max_len=MAX_KEY_PACKAGE_BYTES),
            max_items=MAX_KEY_PACKAGES_PER_UPLOAD,
            description="MLSMessage-encoded KeyPackages, each used at most once",
        ),
        Bytes(
            "last_resort",
            min_len=1,
            max_len=MAX_KEY_PACKAGE_BYTES,
            optional=True,
            description="handed out when no one-time KeyPackage is left (RFC 9750 §5.1)",
        ),
        Bytes(
            "contact_proof",
            min_len=64,
            max_len=64,
            optional=True,
            description="the contact queue key's signature over contact_queue_possession "
            "(the uploader and that key): the leaves may name that queue",
        ),
    )


#: The cipher suite of a claim that names none (RFC 9420 §17.1:
#: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519).
DEFAULT_CLAIM_SUITE: Final = 1
#: The most cipher suites a claim may list.
MAX_CLAIM_SUITES: Final = 8


@dataclass(frozen=True, slots=True)
class SuiteKeyPackageCount(_Response):
    """The signing client's unclaimed KeyPackages in one cipher suite (RFC 9420 §10)."""

    cipher_suite: int
    available: int
    last_resort: bool

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("cipher_suite", minimum=1, maximum=0xFFFF),
        Int("available"),
        Flag("last_resort"),
    )


def _suite_counts() -> ListOf:
    return ListOf(
        "suites",
        Nested("", SuiteKeyPackageCount),
        max_items=64,
        optional=True,
        description="the counts per cipher suite (available and last_resort above are suite 1's)",
    )


@dataclass(frozen=True, slots=True)
class UploadKeyPackagesResponse(_Response):
    """How many one-time KeyPackages the client now has on the server."""

    available: int
    last_resort: bool
    suites: tuple[SuiteKeyPackageCount, ...] | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("available"),
        Flag("last_resort"),
        _suite_counts(),
    )


@dataclass(frozen=True, slots=True)
class KeyPackageCount(_Response):
    """The signing client's unclaimed KeyPackages, so that it can replenish.

    ``available`` and ``last_resort`` count suite 1 (what a client from
    before cipher-suite choice uploads); ``suites`` has every suite's.
    """

    available: int
    last_resort: bool
    suites: tuple[SuiteKeyPackageCount, ...] | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("available"),
        Flag("last_resort"),
        _suite_counts(),
    )

    def for_suite(self, suite: int) -> SuiteKeyPackageCount:
        """The count in ``suite`` (none if the server did not report it)."""
        for count in self.suites or ():
            if count.cipher_suite == suite:
                return count
        if suite == DEFAULT_CLAIM_SUITE and self.suites is None:  # a server from before suites
            return SuiteKeyPackageCount(suite, self.available, self.last_resort)
        return SuiteKeyPackageCount(suite, 0, False)


@dataclass(frozen=True, slots=True)
class ClaimKeyPackagesRequest(Model):
    """Claim one KeyPackage for each client of an account, all in one cipher suite.

    ``suites`` lists the acceptable cipher suites, most wanted first
    (default: suite 1 only); the server answers in the first one that every
    client of the account can provide (docs/pq-suites.md).
    """

    account_id: str
    suites: tuple[int, ...] | None = None
    contact_token: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Ident("account_id"),
        ListOf(
            "suites",
            Int("", minimum=1, maximum=0xFFFF),
            min_items=1,
            max_items=MAX_CLAIM_SUITES,
            unique=True,
            optional=True,
            description="acceptable cipher suites (RFC 9420 §17.1), most wanted first",
        ),
        Bytes(
            "contact_token",
            min_len=CONTACT_TOKEN_BYTES,
            max_len=CONTACT_TOKEN_BYTES,
            optional=True,
            description="the account's contact token (docs/metadata.md §1), needed for "
            "KeyPackages that carry one",
        ),
    )

    @property
    def wanted(self) -> tuple[int, ...]:
        """The acceptable suites in order (suite 1 if none were named)."""
        return self.suites or (DEFAULT_CLAIM_SUITE,)


@dataclass(frozen=True, slots=True)
class ClaimedKeyPackage(_Response):
    """One client's KeyPackage and the delivery address its Welcome goes to.

    ``queue_id`` is the address in the KeyPackage's leaf (the ``delivery_queue``
    extension, :mod:`messenger.api.delivery_address`): a sealed address, so
    the claimer learns no queue ID, or the plain queue ID for a KeyPackage
    made before addresses (or one without the extension). ``claim_token``
    is the claimer's evidence of this claim: a commit that adds
    ``queue_id`` with a Welcome to this KeyPackage carries it in
    ``CommitRequest.claims`` (docs/metadata.md §3), so the commit need not
    name its committer.
    """

    client_id: str
    queue_id: str
    key_package: bytes
    last_resort: bool
    claim_token: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Ident("client_id"),
        DeliveryAddress("queue_id"),
        Bytes("key_package", min_len=1, max_len=MAX_KEY_PACKAGE_BYTES),
        Flag("last_resort"),
        Bytes("claim_token", min_len=CLAIM_TOKEN_BYTES, max_len=CLAIM_TOKEN_BYTES, optional=True),
    )


@dataclass(frozen=True, slots=True)
class ClaimKeyPackagesResponse(_Response):
    """One KeyPackage per client of the account (clients with none are left out),
    all in ``cipher_suite``."""

    key_packages: tuple[ClaimedKeyPackage, ...]
    cipher_suite: int | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        ListOf("key_packages", Nested("", ClaimedKeyPackage), max_items=1000),
        Int("cipher_suite", minimum=1, maximum=0xFFFF, optional=True),
    )


# -- device links ---------------------------------------------------------------

#: Length of a link ID (derived by both devices from the link code).
LINK_ID_BYTES: Final = 16
#: The largest sealed link message.
MAX_LINK_MESSAGE_BYTES: Final = 1 << 20
#: The most messages a new device may post to a link (unsigned).
MAX_LINK_MESSAGES_TO_CREATOR: Final = 16
#: The largest sealed message a new device may post (unsigned).
MAX_LINK_OFFER_BYTES: Final = 64 << 10
#: The most bytes the creator may post to one link (a history snapshot).
MAX_LINK_BYTES: Final = 256 << 20
#: The most messages one link fetch returns.
MAX_LINK_FETCH: Final = 64
#: How long a link is open without activity by its creator, and at most.
LINK_IDLE_SECONDS: Final = 600
LINK_MAX_SECONDS: Final = 3600


@dataclass(frozen=True, slots=True)
class CreateLinkRequest(Model):
    """Open a link mailbox, through which a new device joins the account.

    ``link_id`` is derived from a one-time secret shown as a QR code and a
    short code; the server never sees the secret, and every message in the
    mailbox is sealed with a key derived from it (docs/devices.md).
    """

    link_id: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("link_id", min_len=LINK_ID_BYTES, max_len=LINK_ID_BYTES),
    )


@dataclass(frozen=True, slots=True)
class CreateLinkResponse(_Response):
    """When the link closes unless its creator keeps using it."""

    expires_at: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("expires_at", description="Unix ms"),)


@dataclass(frozen=True, slots=True)
class LinkPostRequest(Model):
    """One sealed message into a link mailbox.

    Signed by the link's creator, it goes to the new device; unsigned, it
    goes to the creator (at most :data:`MAX_LINK_MESSAGES_TO_CREATOR` of at
    most :data:`MAX_LINK_OFFER_BYTES`).
    """

    sealed: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("sealed", min_len=1, max_len=MAX_LINK_MESSAGE_BYTES),
    )


@dataclass(frozen=True, slots=True)
class LinkPostResponse(_Response):
    """The message's sequence number in its direction (from 1)."""

    seq: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("seq", minimum=1),)


@dataclass(frozen=True, slots=True)
class LinkMessage(_Response):
    """One sealed message of a link mailbox."""

    seq: int
    sealed: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("seq", minimum=1),
        Bytes("sealed", min_len=1, max_len=MAX_LINK_MESSAGE_BYTES),
    )


@dataclass(frozen=True, slots=True)
class LinkMessages(_Response):
    """Messages of one direction after a sequence number, oldest first."""

    messages: tuple[LinkMessage, ...]
    expires_at: int

    FIELDS: ClassVar[tuple[Field, ...]] = (
        ListOf("messages", Nested("", LinkMessage), max_items=MAX_LINK_FETCH),
        Int("expires_at", description="Unix ms"),
    )


# -- queues -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueMessage(_Response):
    """One message in a queue: its sequence number and the MLSMessage bytes.

    Sequence numbers of a queue only grow. The messages a queue holds are
    numbered consecutively, and an ack that empties it makes the next number
    jump ahead (docs/server.md, "Queues"), so a gap is no sign of loss.
    """

    seq: int
    data: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("seq", minimum=1),
        Padded("data", max_len=MAX_MLS_MESSAGE_BYTES),
    )


@dataclass(frozen=True, slots=True)
class FetchResponse(_Response):
    """Messages after the cursor, oldest first."""

    messages: tuple[QueueMessage, ...]
    more: bool

    FIELDS: ClassVar[tuple[Field, ...]] = (
        ListOf("messages", Nested("", QueueMessage), max_items=MAX_FETCH),
        Flag("more", description="more messages are waiting after these"),
    )


@dataclass(frozen=True, slots=True)
class AckRequest(Model):
    """Delete every message of the signing client's queue up to ``up_to``."""

    up_to: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("up_to"),)


@dataclass(frozen=True, slots=True)
class AckResponse(_Response):
    """How many messages were deleted."""

    deleted: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("deleted"),)


# -- groups (RFC 9750 §5.2) -----------------------------------------------------


def _members(
    name: str, *, min_items: int = 0, optional: bool = False, description: str = ""
) -> ListOf:
    return ListOf(
        name,
        DeliveryAddress(""),
        min_items=min_items,
        max_items=MAX_GROUP_MEMBERS,
        unique=True,
        optional=optional,
        description=description,
    )


@dataclass(frozen=True, slots=True)
class QueueAddressResponse(_Response):
    """A fresh delivery address of the signing client's queue, for its leaves
    (:mod:`messenger.api.delivery_address`)."""

    address: str

    FIELDS: ClassVar[tuple[Field, ...]] = (DeliveryAddress("address"),)


@dataclass(frozen=True, slots=True)
class QueueKeyRequest(Model):
    """Give the signing client's queue a key of its own (docs/metadata.md §1).

    ``auth_key`` is the queue's Ed25519 public key: from then on the client
    proves its queue with a signature by it on each request
    (:func:`~messenger.api.signing.queue_proof_message`), and the server keeps
    no row joining the client to its queue. ``kill_hash`` is the SHA-256 of
    the queue's kill secret, which the account's devices derive from the
    account key and present to remove the device. ``proof`` is the queue
    key's signature over :func:`~messenger.api.signing.queue_key_possession`.
    """

    auth_key: bytes
    kill_hash: bytes
    proof: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("auth_key", min_len=QUEUE_KEY_BYTES, max_len=QUEUE_KEY_BYTES),
        Bytes("kill_hash", min_len=QUEUE_KILL_BYTES, max_len=QUEUE_KILL_BYTES),
        Bytes("proof", min_len=64, max_len=64, description="an Ed25519 signature"),
    )


@dataclass(frozen=True, slots=True)
class ContactQueueRequest(Model):
    """Ask for the signing client's **contact queue** (docs/metadata.md §1,
    "Contact queues"): a second queue, read with a key of its own, that the
    client's KeyPackages name, so that what the server stores to hand out
    ties the account to that queue only, not to the queue the client reads
    its groups from.

    ``auth_key`` is the contact queue's Ed25519 public key (fresh: a key no
    other queue has); ``proof`` its signature over
    :func:`~messenger.api.signing.contact_queue_possession` for the signing
    client. A client has one contact queue, and its key never changes: asking
    again with the same key answers the same queue.

    ``kill_hash`` (SHA-256 of the contact queue's kill secret, which the
    account's devices derive) lets the server keep no row that names the
    contact queue: a device that removes this client names the queue with
    the secret. Given again for a contact queue made without it, the server
    drops the sealed link it kept.
    """

    auth_key: bytes
    proof: bytes
    kill_hash: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("auth_key", min_len=QUEUE_KEY_BYTES, max_len=QUEUE_KEY_BYTES),
        Bytes("proof", min_len=64, max_len=64, description="an Ed25519 signature"),
        Bytes(
            "kill_hash",
            min_len=QUEUE_KILL_BYTES,
            max_len=QUEUE_KILL_BYTES,
            optional=True,
            description="SHA-256 of the contact queue's kill secret: with it the server "
            "keeps no row that names the client's contact queue",
        ),
    )


@dataclass(frozen=True, slots=True)
class ContactQueueResponse(_Response):
    """The signing client's contact queue: read it with queue requests signed by
    its key, and ask ``GET /v1/queue/address`` (a queue request) for the
    addresses its KeyPackages name."""

    queue_id: str

    FIELDS: ClassVar[tuple[Field, ...]] = (Ident("queue_id"),)


@dataclass(frozen=True, slots=True)
class RemoveClientRequest(Model):
    """The optional body of ``DELETE /v1/clients/{client_id}``: the removed client's
    queue kill secret, needed once its queue has a key of its own, and its
    contact queue's, needed once that queue has a kill hash."""

    queue_kill: bytes | None = None
    contact_kill: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("queue_kill", min_len=QUEUE_KILL_BYTES, max_len=QUEUE_KILL_BYTES, optional=True),
        Bytes("contact_kill", min_len=QUEUE_KILL_BYTES, max_len=QUEUE_KILL_BYTES, optional=True),
    )


@dataclass(frozen=True, slots=True)
class CreateGroupRequest(Model):
    """Register a new MLS group at epoch 0 with its creator's queue as the only member."""

    group_id: bytes
    group_info: bytes | None = None
    send_token_hash: bytes | None = None
    send_token: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("group_id", min_len=1, max_len=MAX_GROUP_ID_BYTES),
        Padded("group_info", max_len=MAX_MLS_MESSAGE_BYTES, optional=True),
        _send_token_hash(),
        _token(
            "send_token",
            "epoch 0's send token itself: the server seals the group's state under "
            "keys derived from it (docs/metadata.md §2), not under its own key only",
        ),
    )


@dataclass(frozen=True, slots=True)
class CreateGroupResponse(_Response):
    """The group's epoch on the server (0)."""

    epoch: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("epoch"),)


@dataclass(frozen=True, slots=True)
class CommitRequest(Model):
    """A commit for ``epoch``; exactly one commit per epoch is accepted.

    ``members`` is the group's member set once the commit is applied, as the
    committer computes it: the delivery addresses of its leaves
    (:mod:`messenger.api.delivery_address`); ``welcome`` goes to ``welcome_to`` (which must be
    members). ``group_info`` (optional) is the GroupInfo of the new epoch,
    kept for external joins. ``idempotency_key`` (optional) makes a retry
    safe: a commit already accepted under the key is answered again, not
    refused as stale.
    """

    epoch: int
    commit: bytes
    members: tuple[str, ...]
    welcome: bytes | None = None
    welcome_to: tuple[str, ...] | None = None
    group_info: bytes | None = None
    idempotency_key: bytes | None = None
    send_token_hash: bytes | None = None
    token: bytes | None = None
    claims: tuple[bytes, ...] | None = None
    next_token: bytes | None = None
    rejoin_token: bytes | None = None
    join_queue: str | None = None
    join_proof: bytes | None = None
    leave_queue: str | None = None
    leave_proof: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("epoch", description="the epoch the commit was made in"),
        Padded("commit", max_len=MAX_MLS_MESSAGE_BYTES),
        _members(
            "members",
            min_items=1,
            description="delivery addresses of the group's leaves after the commit",
        ),
        Padded("welcome", max_len=MAX_MLS_MESSAGE_BYTES, optional=True),
        _members("welcome_to", optional=True),
        Padded("group_info", max_len=MAX_MLS_MESSAGE_BYTES, optional=True),
        _idempotency_key(),
        _send_token_hash(),
        Bytes(
            "token",
            min_len=SEND_TOKEN_BYTES,
            max_len=SEND_TOKEN_BYTES,
            optional=True,
            description=(
                "the epoch's send token: the commit is sealed (not signed), the token "
                "proves membership (docs/metadata.md §3)"
            ),
        ),
        ListOf(
            "claims",
            Bytes("", min_len=CLAIM_TOKEN_BYTES, max_len=CLAIM_TOKEN_BYTES),
            max_items=MAX_GROUP_MEMBERS,
            unique=True,
            optional=True,
            description="the claim tokens of the KeyPackages the Welcome adds",
        ),
        _token(
            "next_token",
            "the new epoch's send token itself (its digest is send_token_hash): the "
            "server seals the group's state under keys derived from it "
            "(docs/metadata.md §2)",
        ),
        _token(
            "rejoin_token",
            "an external commit's key to the group's sealed state: the send token of "
            "an epoch since the last removal, from the account's rejoin box or the "
            "joiner's backup (docs/metadata.md §2)",
        ),
        DeliveryAddress(
            "join_queue",
            optional=True,
            description=(
                "a queue the commit adds without a claim: the committer's own, moving "
                "its leaf from its contact queue (docs/metadata.md §1); one of members"
            ),
        ),
        Bytes(
            "join_proof",
            min_len=64,
            max_len=64,
            optional=True,
            description=(
                "join_queue's key's Ed25519 signature over queue_join_message(group, epoch, commit)"
            ),
        ),
        DeliveryAddress(
            "leave_queue",
            optional=True,
            description=(
                "with join_queue: the queue the committer moves off (its contact queue), "
                "which leaves the member set without counting as a removal; not one of members"
            ),
        ),
        Bytes(
            "leave_proof",
            min_len=64,
            max_len=64,
            optional=True,
            description=(
                "leave_queue's key's Ed25519 signature over queue_leave_message(group, "
                "epoch, commit)"
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class CommitResponse(_Response):
    """The commit was accepted: the group is now at ``epoch``."""

    epoch: int
    recipients: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("epoch"), Int("recipients"))


@dataclass(frozen=True, slots=True)
class SendRequest(Model):
    """An application message or proposal for the group's current epoch.

    ``idempotency_key`` (optional) makes a retry safe: a message already
    stored under the key is not stored again, and the first answer is repeated.
    """

    message: bytes
    idempotency_key: bytes | None = None
    token: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Padded("message", max_len=MAX_MLS_MESSAGE_BYTES),
        _idempotency_key(),
        Bytes(
            "token",
            min_len=SEND_TOKEN_BYTES,
            max_len=SEND_TOKEN_BYTES,
            optional=True,
            description="the epoch's send token (docs/metadata.md §3); the request is not signed",
        ),
    )


@dataclass(frozen=True, slots=True)
class SendResponse(_Response):
    """The message was stored for ``recipients`` queues."""

    epoch: int
    recipients: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Int("epoch"), Int("recipients"))


@dataclass(frozen=True, slots=True)
class SendBatchRequest(Model):
    """Up to :data:`MAX_SEND_BATCH_ITEMS` sends to one group, accepted all or none.

    Each item is what ``POST /v1/groups/{group_id}/messages`` takes and is
    checked as that route checks it; the messages together hold at most
    :data:`MAX_SEND_BATCH_BYTES` bytes, and no two items share an
    ``idempotency_key``. The server stores them in this order.
    """

    messages: tuple[SendRequest, ...]

    FIELDS: ClassVar[tuple[Field, ...]] = (
        ListOf(
            "messages",
            Nested("", SendRequest),
            min_items=1,
            max_items=MAX_SEND_BATCH_ITEMS,
            description=(
                f"the sends, in order; their messages hold at most {MAX_SEND_BATCH_BYTES} "
                "bytes together, and idempotency keys differ"
            ),
        ),
    )

    def _validate(self, path: str) -> None:
        name = f"{path}.messages" if path else "messages"
        if sum(len(item.message) for item in self.messages) > MAX_SEND_BATCH_BYTES:
            raise ApiError.invalid_field(
                name, f"the messages exceed {MAX_SEND_BATCH_BYTES} bytes together"
            )
        keys = [item.idempotency_key for item in self.messages if item.idempotency_key]
        if len(set(keys)) != len(keys):
            raise ApiError.invalid_field(name, "two items share an idempotency_key")


@dataclass(frozen=True, slots=True)
class SendBatchResponse(_Response):
    """What the single send route answers, for each item of the batch, in order."""

    results: tuple[SendResponse, ...]

    FIELDS: ClassVar[tuple[Field, ...]] = (
        ListOf("results", Nested("", SendResponse), max_items=MAX_SEND_BATCH_ITEMS),
    )


@dataclass(frozen=True, slots=True)
class GroupInfoRequest(Model):
    """Replace the stored GroupInfo of the group's current epoch."""

    epoch: int
    group_info: bytes
    token: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("epoch"),
        Padded("group_info", max_len=MAX_MLS_MESSAGE_BYTES),
        _token(
            "token",
            "the current epoch's send token: needed for a group whose state is sealed "
            "under its members' keys (docs/metadata.md §2)",
        ),
    )


@dataclass(frozen=True, slots=True)
class RejoinInfoRequest(Model):
    """Read the stored GroupInfo with a key to the group's sealed state (to rejoin)."""

    token: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes(
            "token",
            min_len=SEND_TOKEN_BYTES,
            max_len=SEND_TOKEN_BYTES,
            description=(
                "the send token of an epoch since the group's last removal, from the "
                "account's rejoin box or the joiner's backup (docs/metadata.md §2)"
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class RejoinBox(Model):
    """An account's sealed rejoin key of one group; the server stores it unread."""

    box: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes(
            "box",
            min_len=MIN_REJOIN_BOX_BYTES,
            max_len=MAX_REJOIN_BOX_BYTES,
            description="sealed by the account's devices under a secret the server never sees",
        ),
    )


@dataclass(frozen=True, slots=True)
class RejoinBoxResponse(_Response):
    """The account's stored rejoin box of one group."""

    box: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("box", min_len=MIN_REJOIN_BOX_BYTES, max_len=MAX_REJOIN_BOX_BYTES),
    )


@dataclass(frozen=True, slots=True)
class SendTokenRequest(Model):
    """Register the send token's hash for the group's current epoch (a group made before them)."""

    epoch: int
    send_token_hash: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("epoch"),
        Bytes("send_token_hash", min_len=SEND_TOKEN_BYTES, max_len=SEND_TOKEN_BYTES),
    )


@dataclass(frozen=True, slots=True)
class GroupInfoResponse(_Response):
    """The latest GroupInfo of a group, for a member rejoining by external commit."""

    epoch: int
    group_info: bytes

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("epoch"),
        Padded("group_info", max_len=MAX_MLS_MESSAGE_BYTES),
    )


# -- WebSocket frames -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushMessages(_Response):
    """Server to client: new messages of the client's queue."""

    type: str
    messages: tuple[QueueMessage, ...]

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Choice("type", ("messages",)),
        ListOf("messages", Nested("", QueueMessage), max_items=MAX_FETCH),
    )


@dataclass(frozen=True, slots=True)
class PushAck(Model):
    """Client to server: delete messages up to ``up_to``."""

    type: str
    up_to: int

    FIELDS: ClassVar[tuple[Field, ...]] = (Choice("type", ("ack",)), Int("up_to"))


@dataclass(frozen=True, slots=True)
class PushAcked(_Response):
    """Server to client: the ack was stored."""

    type: str
    up_to: int
    deleted: int

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Choice("type", ("acked",)),
        Int("up_to"),
        Int("deleted"),
    )


# -- blobs (attachments, docs/attachments.md §3) --------------------------------


@dataclass(frozen=True, slots=True)
class CreateBlobRequest(Model):
    """Reserve a blob of ``size`` bytes for an attachment to ``group_id``.

    ``size`` is the stored (padded) size and must be a Padmé value
    (:func:`messenger.api.blobs.is_padme`); ``access_hash`` is the SHA-256 of
    the access capability that the MLS message will carry. Only members of
    the group may create, and later fetch, its blobs; ``token`` opens the
    member set of a group sealed under its members' keys (docs/metadata.md §2).
    """

    group_id: bytes
    size: int
    access_hash: bytes
    token: bytes | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("group_id", min_len=1, max_len=MAX_GROUP_ID_BYTES),
        Int("size", minimum=1, maximum=1 << 40, description="stored bytes, a Padmé size"),
        Bytes("access_hash", min_len=32, max_len=32, description="SHA-256 of the capability"),
        _token(
            "token",
            "the group's current send token: needed for a group whose state is sealed "
            "under its members' keys, whose member set the server reads only with it "
            "(docs/metadata.md §2)",
        ),
    )


@dataclass(frozen=True, slots=True)
class CreateBlobResponse(_Response):
    """The new blob's ID; an upload not finished by ``expires_at`` is deleted."""

    blob_id: bytes
    expires_at: int
    part_bytes: int

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Bytes("blob_id", min_len=16, max_len=16),
        Int("expires_at", description="Unix ms"),
        Int("part_bytes", minimum=1, description="the largest part one request may carry"),
    )


@dataclass(frozen=True, slots=True)
class BlobStatus(_Response):
    """How much of a blob the server holds (to resume an upload)."""

    size: int
    received: int
    complete: bool

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Int("size", minimum=1),
        Int("received"),
        Flag("complete"),
    )
