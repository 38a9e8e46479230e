"""The protocol version and the GroupContext (RFC 9420 §6, §8.1).

The GroupContext summarises the state of a group in one epoch; it is an input
to the key schedule, to ``FramedContentTBS`` of members' messages and to the
encryption of path secrets (RFC 9420 §8.1).

Version fields are kept as plain ``int`` values: a ReInit proposal may name a
later version (RFC 9420 §12.1.5) and KeyPackage versions are checked by
validation, not by the decoder. Only ``MLSMessage`` insists on ``mls10``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from .codec import CachedStruct, Reader, Writer
from .extensions import Extension

__all__ = [
    "GroupContext",
    "ProtocolVersion",
]


class ProtocolVersion(enum.IntEnum):
    """``ProtocolVersion`` (RFC 9420 §6); 0 is reserved."""

    MLS10 = 1


@dataclass(frozen=True, slots=True)
class GroupContext(CachedStruct):
    """``GroupContext`` (RFC 9420 §8.1).

    ``version`` is the last field so that it can default to ``mls10``; on the
    wire it comes first. The encoding is kept: the key schedule, signatures
    and path secret encryption all take it.
    """

    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: tuple[Extension, ...] = ()
    version: int = ProtocolVersion.MLS10

    def _encode_fields(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.opaque(self.tree_hash)
        w.opaque(self.confirmed_transcript_hash)
        w.structs(self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> GroupContext:
        start = r.position
        version = r.u16()
        context = cls(
            cipher_suite=r.u16(),
            group_id=r.opaque(),
            epoch=r.u64(),
            tree_hash=r.opaque(),
            confirmed_transcript_hash=r.opaque(),
            extensions=tuple(r.structs(Extension)),
            version=version,
        )
        context._keep_encoding(r.taken(start))
        return context

    def next_epoch(
        self,
        tree_hash: bytes,
        confirmed_transcript_hash: bytes,
        extensions: tuple[Extension, ...] | None = None,
    ) -> GroupContext:
        """The context of the following epoch (RFC 9420 §8.1, §12.4.2)."""
        return replace(
            self,
            epoch=self.epoch + 1,
            tree_hash=tree_hash,
            confirmed_transcript_hash=confirmed_transcript_hash,
            extensions=self.extensions if extensions is None else extensions,
        )
