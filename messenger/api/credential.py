"""The server credential as an MLS ``BasicCredential`` identity (stdlib only).

The Authentication Service (RFC 9750 §4) signs a :class:`~.models.Credential`
binding a client's Ed25519 key to its account and client IDs
(:func:`~.signing.credential_tbs`). A client carries exactly that statement
as the ``identity`` of its MLS ``BasicCredential`` (RFC 9420 §5.3), encoded
in the TLS presentation language of RFC 9420 §2.1::

    struct {
        uint8 version;             // 1, or 2 with an account key
        opaque account_id<V>;
        opaque client_id<V>;
        opaque signature_key<V>;
        uint64 issued_at;          // Unix ms
        opaque signature<V>;       // the server's, over credential_tbs
        select (version) {
            case 1: struct {};
            case 2:
                opaque account_key<V>;         // covered by the server's signature
                uint64 certified_at;           // Unix ms
                opaque device_certificate<V>;  // the account key's, over
                                               // device_certificate_tbs
        };
    } MessengerCredential;

Version 2 (docs/devices.md) lets every member check, without trusting the
server, that a device belongs to the account: the account key, held only by
the account's devices, certifies each device's signature key.

This is the one codec of that struct: the client (:mod:`messenger.client.
identity`) writes and checks it, the server (:mod:`messenger.server.
mls_frames`) reads it from uploaded KeyPackages and external commits.
``<V>`` lengths are the minimal MLS varints of RFC 9420 §2.1.2.
"""

from __future__ import annotations

from typing import Final

from .models import Credential

__all__ = ["CREDENTIAL_VERSION", "decode_credential", "encode_credential"]

#: The version written for a credential with an account key.
CREDENTIAL_VERSION: Final = 2
_VERSIONS: Final = (1, 2)

_SIGNATURE_KEY_LEN: Final = 32  # Ed25519 (RFC 8032)
_SIGNATURE_LEN: Final = 64


def _varint(value: int) -> bytes:
    if value < 0x40:
        return bytes((value,))
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x4000_0000:
        return (value | 0x8000_0000).to_bytes(4, "big")
    raise ValueError("vector too long for an MLS varint")


def _opaque(data: bytes) -> bytes:
    return _varint(len(data)) + data


def encode_credential(credential: Credential) -> bytes:
    """The ``MessengerCredential`` identity carrying ``credential``."""
    head = (
        _opaque(credential.account_id.encode("ascii")),
        _opaque(credential.client_id.encode("ascii")),
        _opaque(bytes(credential.signature_key)),
        credential.issued_at.to_bytes(8, "big"),
        _opaque(bytes(credential.signature)),
    )
    if credential.account_key is None:
        return b"".join((b"\x01", *head))
    if credential.certified_at is None or credential.device_certificate is None:
        raise ValueError("a version-2 credential needs its device certificate")
    return b"".join(
        (
            b"\x02",
            *head,
            _opaque(bytes(credential.account_key)),
            credential.certified_at.to_bytes(8, "big"),
            _opaque(bytes(credential.device_certificate)),
        )
    )


class _Truncated(Exception):
    pass


class _Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise _Truncated
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def opaque(self) -> bytes:
        first = self.read(1)[0]
        prefix = first >> 6
        if prefix == 3:
            raise _Truncated  # reserved prefix (RFC 9420 §2.1.2)
        n = first & 0x3F
        for byte in self.read((1 << prefix) - 1):
            n = (n << 8) | byte
        if (prefix == 1 and n < 0x40) or (prefix == 2 and n < 0x4000):
            raise _Truncated  # not minimal
        return self.read(n)

    def at_end(self) -> bool:
        return self._pos == len(self._data)


def decode_credential(identity: bytes) -> Credential | None:
    """The server credential in a ``BasicCredential`` identity, or None if it is not one.

    None for anything but a well-formed version-1 or version-2 struct with
    ASCII IDs that are not empty, 32-byte keys and 64-byte signatures, and
    no trailing bytes. Whether the signatures verify is for the caller to
    check.
    """
    r = _Reader(bytes(identity))
    account_key = device_certificate = None
    certified_at = None
    try:
        version = r.read(1)[0]
        if version not in _VERSIONS:
            return None
        account_id = r.opaque().decode("ascii")
        client_id = r.opaque().decode("ascii")
        signature_key = r.opaque()
        issued_at = int.from_bytes(r.read(8), "big")
        signature = r.opaque()
        if version == 2:
            account_key = r.opaque()
            certified_at = int.from_bytes(r.read(8), "big")
            device_certificate = r.opaque()
    except (_Truncated, UnicodeDecodeError):
        return None
    if (
        not r.at_end()
        or not account_id
        or not client_id
        or len(signature_key) != _SIGNATURE_KEY_LEN
        or len(signature) != _SIGNATURE_LEN
        or (account_key is not None and len(account_key) != _SIGNATURE_KEY_LEN)
        or (device_certificate is not None and len(device_certificate) != _SIGNATURE_LEN)
    ):
        return None
    return Credential(
        account_id,
        client_id,
        signature_key,
        issued_at,
        signature,
        account_key,
        certified_at,
        device_certificate,
    )
