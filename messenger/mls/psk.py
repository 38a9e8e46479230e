"""Pre-shared keys (RFC 9420 §8.4).

:class:`PreSharedKeyID` names a PSK on the wire (in PreSharedKey proposals,
RFC 9420 §12.1.4, and in GroupSecrets, RFC 9420 §12.4.3.1).
:func:`psk_secret` chains the PSK values into the ``psk_secret`` input of the
key schedule (RFC 9420 §8).

Where the PSK values come from (the application's store of external PSKs, the
resumption PSKs of past epochs) is the caller's business: this module only
does the encoding and the arithmetic.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .ciphersuite import CipherSuite
from .codec import Reader, Struct, Writer
from .errors import DecodeError, UsageError

__all__ = [
    "PSKType",
    "PreSharedKeyID",
    "ResumptionPSKUsage",
    "describe_psk",
    "psk_secret",
]


class PSKType(enum.IntEnum):
    """``PSKType`` (RFC 9420 §8.4); 0 is reserved."""

    EXTERNAL = 1
    RESUMPTION = 2


class ResumptionPSKUsage(enum.IntEnum):
    """``ResumptionPSKUsage`` (RFC 9420 §8.4); 0 is reserved."""

    APPLICATION = 1
    REINIT = 2
    BRANCH = 3


@dataclass(frozen=True, slots=True)
class PreSharedKeyID(Struct):
    """``PreSharedKeyID`` (RFC 9420 §8.4).

    For ``psktype == EXTERNAL`` only ``psk_id`` is meaningful; for
    ``RESUMPTION`` only ``usage``, ``psk_group_id`` and ``psk_epoch``. Use
    :meth:`external` and :meth:`resumption` to build one.
    """

    psktype: PSKType
    psk_nonce: bytes
    psk_id: bytes = b""
    usage: ResumptionPSKUsage = ResumptionPSKUsage.APPLICATION
    psk_group_id: bytes = b""
    psk_epoch: int = 0

    @classmethod
    def external(cls, psk_id: bytes, psk_nonce: bytes) -> PreSharedKeyID:
        return cls(PSKType.EXTERNAL, psk_nonce, psk_id=psk_id)

    @classmethod
    def resumption(
        cls,
        usage: ResumptionPSKUsage,
        psk_group_id: bytes,
        psk_epoch: int,
        psk_nonce: bytes,
    ) -> PreSharedKeyID:
        return cls(
            PSKType.RESUMPTION,
            psk_nonce,
            usage=usage,
            psk_group_id=psk_group_id,
            psk_epoch=psk_epoch,
        )

    def encode(self, w: Writer) -> None:
        w.u8(self.psktype)
        if self.psktype == PSKType.EXTERNAL:
            w.opaque(self.psk_id)
        elif self.psktype == PSKType.RESUMPTION:
            w.u8(self.usage)
            w.opaque(self.psk_group_id)
            w.u64(self.psk_epoch)
        else:  # pragma: no cover - the constructor's type forbids it
            raise UsageError(f"unknown PSKType {self.psktype}")
        w.opaque(self.psk_nonce)

    @classmethod
    def decode(cls, r: Reader) -> PreSharedKeyID:
        raw_type = r.u8()
        if raw_type == PSKType.EXTERNAL:
            psk_id = r.opaque()
            return cls(PSKType.EXTERNAL, r.opaque(), psk_id=psk_id)
        if raw_type == PSKType.RESUMPTION:
            raw_usage = r.u8()
            try:
                usage = ResumptionPSKUsage(raw_usage)
            except ValueError:
                raise DecodeError(f"unknown ResumptionPSKUsage {raw_usage}") from None
            group_id = r.opaque()
            epoch = r.u64()
            return cls(
                PSKType.RESUMPTION,
                r.opaque(),
                usage=usage,
                psk_group_id=group_id,
                psk_epoch=epoch,
            )
        raise DecodeError(f"unknown PSKType {raw_type}")


def _psk_label(psk_id: PreSharedKeyID, index: int, count: int) -> bytes:
    """``PSKLabel`` (RFC 9420 §8.4): the id, then uint16 index and count."""
    w = Writer()
    psk_id.encode(w)
    w.u16(index)
    w.u16(count)
    return w.getvalue()


def psk_secret(suite: CipherSuite, psks: Sequence[tuple[PreSharedKeyID, bytes]]) -> bytes:
    """``psk_secret`` from ``(id, value)`` pairs, in order (RFC 9420 §8.4).

    With no PSKs this is ``psk_secret_[0]``, the all-zero vector of length
    ``KDF.Nh``.
    """
    count = len(psks)
    if count > 0xFFFF:
        raise UsageError("too many PSKs for a uint16 count")
    zero = bytes(suite.hash_len)
    secret = zero
    for index, (psk_id, value) in enumerate(psks):
        extracted = suite.extract(zero, value)
        psk_input = suite.expand_with_label(
            extracted, b"derived psk", _psk_label(psk_id, index, count), suite.hash_len
        )
        secret = suite.extract(psk_input, secret)
    return secret


def describe_psk(psk_id: PreSharedKeyID) -> str:
    """``psk_id`` in words, for error messages."""
    if psk_id.psktype == PSKType.EXTERNAL:
        return f"external PSK {psk_id.psk_id!r}"
    return (
        f"{psk_id.usage.name.lower()} resumption PSK of group "
        f"{psk_id.psk_group_id.hex()[:16]}, epoch {psk_id.psk_epoch}"
    )
