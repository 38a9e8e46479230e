"""The plaintexts of the link exchange (docs/devices.md §2 "The exchange").

Each sealed plaintext is one kind byte and a body. History chunks carry raw
bytes; every other kind a JSON object with exactly the keys of its kind
(bytes as unpadded base64url). Decoding checks every field -- types,
lengths, ranges -- and raises :class:`~messenger.client.errors.LinkFailedError`
on anything else: the plaintext opened under the link key, but a defect
must still end the link with a sentence, never an ``IndexError``.

Creator -> new device: ``invitation`` (index 0), ``answer`` (1),
``added`` (2: the groups the new device is being added to, and the size of
the history that follows), history ``chunk``\\ s, ``history_end`` (count
and SHA-256), or ``refusal`` at any point (declined or cancelled).
New device -> creator: ``offer`` (0), ``ready`` (1), ``done`` (2).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Final

from messenger.api.fields import b64decode, b64encode

from ..errors import LinkFailedError

__all__ = [
    "MAX_DEVICE_NAME",
    "Added",
    "Answer",
    "Done",
    "HistoryEnd",
    "Invitation",
    "Kind",
    "Offer",
    "Ready",
    "Refusal",
    "decode",
    "encode",
    "encode_chunk",
]

MAX_DEVICE_NAME: Final = 64
_MAX_TEXT: Final = 256
_MAX_GROUPS: Final = 100_000
_ID_MAX: Final = 64


class Kind(enum.IntEnum):
    INVITATION = 1
    OFFER = 2
    ANSWER = 3
    READY = 4
    ADDED = 5
    CHUNK = 6
    HISTORY_END = 7
    DONE = 8
    REFUSAL = 9


@dataclass(frozen=True, slots=True)
class Invitation:
    account_id: str
    display_name: str | None
    device_name: str | None


@dataclass(frozen=True, slots=True)
class Offer:
    signature_key: bytes
    proof: bytes
    device_name: str


@dataclass(frozen=True, slots=True)
class Answer:
    client_id: str
    queue_id: str
    credential: bytes
    """The new device's credential, encoded (``messenger.api.credential``)."""
    account_private_key: bytes | None
    """The account key (private), None for an account from before account keys."""
    account_public_key: bytes | None
    certified_at: int | None
    device_certificate: bytes | None
    server_key: bytes
    devices_group: bytes | None
    handle: str | None
    display_name: str | None
    history: bool
    groups: int
    """How many groups the new device will be added to (its KeyPackages to upload)."""

    def __repr__(self) -> str:  # the account's private key never reaches a log
        return f"Answer(client_id={self.client_id!r}, history={self.history})"


@dataclass(frozen=True, slots=True)
class Ready:
    pass


@dataclass(frozen=True, slots=True)
class Added:
    groups: tuple[bytes, ...]
    history_bytes: int
    """The compressed history's size (0: none follows)."""


@dataclass(frozen=True, slots=True)
class HistoryEnd:
    chunks: int
    size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class Done:
    pass


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    """``declined`` or ``cancelled``."""


Payload = Invitation | Offer | Answer | Ready | Added | HistoryEnd | Done | Refusal | bytes

_KINDS: Final[dict[type, Kind]] = {
    Invitation: Kind.INVITATION,
    Offer: Kind.OFFER,
    Answer: Kind.ANSWER,
    Ready: Kind.READY,
    Added: Kind.ADDED,
    HistoryEnd: Kind.HISTORY_END,
    Done: Kind.DONE,
    Refusal: Kind.REFUSAL,
}


def _b64(value: bytes | None) -> str | None:
    return None if value is None else b64encode(value)


def encode(
    payload: Invitation | Offer | Answer | Ready | Added | HistoryEnd | Done | Refusal,
) -> bytes:
    """The plaintext of a message (not a chunk: :func:`encode_chunk`)."""
    data: dict[str, object]
    match payload:
        case Invitation():
            data = {
                "account_id": payload.account_id,
                "display_name": payload.display_name,
                "device_name": payload.device_name,
            }
        case Offer():
            data = {
                "signature_key": b64encode(payload.signature_key),
                "proof": b64encode(payload.proof),
                "device_name": payload.device_name,
            }
        case Answer():
            data = {
                "client_id": payload.client_id,
                "queue_id": payload.queue_id,
                "credential": b64encode(payload.credential),
                "account_private_key": _b64(payload.account_private_key),
                "account_public_key": _b64(payload.account_public_key),
                "certified_at": payload.certified_at,
                "device_certificate": _b64(payload.device_certificate),
                "server_key": b64encode(payload.server_key),
                "devices_group": _b64(payload.devices_group),
                "handle": payload.handle,
                "display_name": payload.display_name,
                "history": payload.history,
                "groups": payload.groups,
            }
        case Added():
            data = {
                "groups": [b64encode(g) for g in payload.groups],
                "history_bytes": payload.history_bytes,
            }
        case HistoryEnd():
            data = {
                "chunks": payload.chunks,
                "size": payload.size,
                "sha256": b64encode(payload.sha256),
            }
        case Refusal():
            data = {"reason": payload.reason}
        case Ready() | Done():
            data = {}
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return bytes([_KINDS[type(payload)]]) + body


def encode_chunk(data: bytes) -> bytes:
    return bytes([Kind.CHUNK]) + data


class _Reader:
    """Checked access to a decoded JSON object with exactly ``keys``."""

    def __init__(self, body: bytes, keys: set[str]) -> None:
        try:
            data = json.loads(body.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise LinkFailedError("a link message that is not JSON") from None
        if not isinstance(data, dict) or set(data) != keys:
            raise LinkFailedError("a link message with the wrong fields")
        self._data: dict[str, object] = data

    def text(self, key: str, *, max_len: int = _MAX_TEXT, optional: bool = False) -> str:
        value = self._data[key]
        if not isinstance(value, str) or not 0 < len(value) <= max_len:
            raise LinkFailedError(f"link field {key} is not a text")
        if any(not c.isprintable() for c in value):
            raise LinkFailedError(f"link field {key} has control characters")
        return value

    def optional_text(self, key: str, *, max_len: int = _MAX_TEXT) -> str | None:
        return None if self._data[key] is None else self.text(key, max_len=max_len)

    def ident(self, key: str) -> str:
        value = self.text(key, max_len=_ID_MAX)
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
            raise LinkFailedError(f"link field {key} is not an ID")
        return value

    def bytes_(self, key: str, *, size: int | None = None, max_len: int = 4096) -> bytes:
        value = self._data[key]
        if not isinstance(value, str) or len(value) > max_len * 2:
            raise LinkFailedError(f"link field {key} is not base64url")
        try:
            decoded = b64decode(value)
        except ValueError:
            raise LinkFailedError(f"link field {key} is not base64url") from None
        if (size is not None and len(decoded) != size) or not 0 < len(decoded) <= max_len:
            raise LinkFailedError(f"link field {key} has the wrong length")
        return decoded

    def optional_bytes(
        self, key: str, *, size: int | None = None, max_len: int = 4096
    ) -> bytes | None:
        return None if self._data[key] is None else self.bytes_(key, size=size, max_len=max_len)

    def optional_integer(self, key: str) -> int | None:
        return None if self._data[key] is None else self.integer(key)

    def integer(self, key: str, *, maximum: int = (1 << 53) - 1) -> int:
        value = self._data[key]
        if type(value) is not int or not 0 <= value <= maximum:
            raise LinkFailedError(f"link field {key} is not a count")
        return value

    def boolean(self, key: str) -> bool:
        value = self._data[key]
        if type(value) is not bool:
            raise LinkFailedError(f"link field {key} is not a boolean")
        return value

    def list_(self, key: str) -> list[object]:
        value = self._data[key]
        if not isinstance(value, list) or len(value) > _MAX_GROUPS:
            raise LinkFailedError(f"link field {key} is not a list")
        return value


def decode(plaintext: bytes) -> Payload:
    """The message of a plaintext (LinkFailedError if it is not a valid one)."""
    if not plaintext:
        raise LinkFailedError("an empty link message")
    try:
        kind = Kind(plaintext[0])
    except ValueError:
        raise LinkFailedError("a link message of an unknown kind") from None
    body = plaintext[1:]
    if kind is Kind.CHUNK:
        if not body:
            raise LinkFailedError("an empty history chunk")
        return body
    if kind is Kind.INVITATION:
        r = _Reader(body, {"account_id", "display_name", "device_name"})
        return Invitation(
            r.ident("account_id"),
            r.optional_text("display_name"),
            r.optional_text("device_name", max_len=MAX_DEVICE_NAME),
        )
    if kind is Kind.OFFER:
        r = _Reader(body, {"signature_key", "proof", "device_name"})
        return Offer(
            r.bytes_("signature_key", size=32),
            r.bytes_("proof", size=64),
            r.text("device_name", max_len=MAX_DEVICE_NAME),
        )
    if kind is Kind.ANSWER:
        r = _Reader(
            body,
            {
                "client_id",
                "queue_id",
                "credential",
                "account_private_key",
                "account_public_key",
                "certified_at",
                "device_certificate",
                "server_key",
                "devices_group",
                "handle",
                "display_name",
                "history",
                "groups",
            },
        )
        keys = (
            r.optional_bytes("account_private_key", size=32),
            r.optional_bytes("account_public_key", size=32),
            r.optional_integer("certified_at"),
            r.optional_bytes("device_certificate", size=64),
        )
        if any(k is None for k in keys) and any(k is not None for k in keys):
            raise LinkFailedError("an answer with part of the account key")
        return Answer(
            client_id=r.ident("client_id"),
            queue_id=r.ident("queue_id"),
            credential=r.bytes_("credential", max_len=4096),
            account_private_key=keys[0],
            account_public_key=keys[1],
            certified_at=keys[2],
            device_certificate=keys[3],
            server_key=r.bytes_("server_key", size=32),
            devices_group=r.optional_bytes("devices_group", max_len=255),
            handle=r.optional_text("handle", max_len=64),
            display_name=r.optional_text("display_name"),
            history=r.boolean("history"),
            groups=r.integer("groups", maximum=_MAX_GROUPS),
        )
    if kind is Kind.ADDED:
        r = _Reader(body, {"groups", "history_bytes"})
        groups: list[bytes] = []
        for item in r.list_("groups"):
            if not isinstance(item, str) or len(item) > 512:
                raise LinkFailedError("a group ID that is not base64url")
            try:
                group_id = b64decode(item)
            except ValueError:
                raise LinkFailedError("a group ID that is not base64url") from None
            if not 0 < len(group_id) <= 255:
                raise LinkFailedError("a group ID of the wrong length")
            groups.append(group_id)
        return Added(tuple(groups), r.integer("history_bytes"))
    if kind is Kind.HISTORY_END:
        r = _Reader(body, {"chunks", "size", "sha256"})
        return HistoryEnd(r.integer("chunks"), r.integer("size"), r.bytes_("sha256", size=32))
    if kind is Kind.REFUSAL:
        r = _Reader(body, {"reason"})
        reason = r.text("reason", max_len=32)
        if reason not in ("declined", "cancelled"):
            raise LinkFailedError("a refusal for an unknown reason")
        return Refusal(reason)
    _Reader(body, set())
    return Ready() if kind is Kind.READY else Done()
