"""The members' keys to a group's sealed state (docs/metadata.md §2).

Sealed under the server's key alone (:mod:`.at_rest`), a group's GroupInfo
is open to whoever holds the secret key file: the operator, whose copy of
the database then shows every group's ratchet tree, which names each
member's account and client (RFC 9420 §12.4.3.3). So the GroupInfo of a
group whose members send the keys is sealed under a **data key** of its own
(32 random bytes), and the data key is stored only **wrapped**: once under
a key derived from each send token of the epochs since the group's last
removal (``mls_groups.state_keys``).

* A send token is ``MLS-Exporter("messenger send token", group_id, 32)`` of
  its epoch (RFC 9420 §8.5, docs/metadata.md §3): only members of that epoch
  can compute it. The server gets the current one with every sealed send
  and commit, and the next one with every commit (``next_token``), so it
  can open and reseal the state whenever it routes, and keeps neither.
* A wrap's key comes from the token *and* the server's key
  (HKDF-SHA-256, the at-rest key as salt, bound to the group ID): a
  recorded token alone does not open a copy of the database, nor does the
  key file alone.
* The wraps of earlier epochs stay until a commit removes a member, so a
  device restoring a backup opens the state with the token of its backup's
  epoch, or with the one its account keeps in a rejoin box
  (:mod:`.rejoin_boxes`). A commit that removes anyone draws a new data key
  wrapped only under the new epoch's token, which a removed member never
  learns (RFC 9420 §12.1.3): its old tokens open nothing. At most
  :data:`WRAP_LIMIT` wraps are kept; the oldest go first.

Each wrap is ``hint ‖ sealed data key``: the hint (8 bytes of an HMAC of the
token under a key from the key file) picks the wrap to try without trying
every one; it tells nothing without the key file and the token.

The data key seals the group's member set (``members_box``,
:mod:`.member_sets`) and its epochs (``epoch_box``, :mod:`.group_epochs`)
too, each bound to its column and the group ID, so the key file alone
shows neither who is in the group nor how often it changed. Rows sealed
before that (``group_info_sealed`` = :data:`INFO_SEALED_BY_MEMBERS`) keep
those two under the server's key until a send or commit opens the state
and seals them again (:data:`SEALED_BY_MEMBERS`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .at_rest import SEALED_OVERHEAD, SealedColumn
from .storage import StorageError

__all__ = [
    "DATA_KEY_BYTES",
    "INFO_SEALED_BY_MEMBERS",
    "SEALED_BY_MEMBERS",
    "SEALED_BY_SERVER",
    "SERVER_SEALED",
    "WRAP_BYTES",
    "WRAP_LIMIT",
    "GroupKeys",
    "StateKeys",
]

#: A group's data key.
DATA_KEY_BYTES: Final = 32
#: The most wraps kept: the epochs since the last removal whose tokens open the state.
WRAP_LIMIT: Final = 256
_HINT_BYTES: Final = 8
#: One stored wrap: its hint, then the sealed data key.
WRAP_BYTES: Final = _HINT_BYTES + SEALED_OVERHEAD + DATA_KEY_BYTES
_COLUMN: Final = "mls_groups.state_keys"

#: ``mls_groups.group_info_sealed``: the GroupInfo, member set and epochs are
#: sealed under the server's key (:mod:`.at_rest`; 0: rows from before).
SEALED_BY_SERVER: Final = 1
#: The GroupInfo under the group's data key, the member set and epochs still
#: under the server's key (rows of server migration 20, until moved).
INFO_SEALED_BY_MEMBERS: Final = 2
#: The GroupInfo, the member set and the epochs under the group's data key.
SEALED_BY_MEMBERS: Final = 3


@dataclass(frozen=True, slots=True)
class GroupKeys:
    """What opens one group's stored state, as one request opened it."""

    #: The group's data key; None for a group sealed under the server's key.
    data_key: bytes | None
    #: The key of its ``members_box`` and ``epoch_box``: the data key, or None
    #: for the server's (a group sealed under it, or a row not yet moved).
    boxes: bytes | None

    @property
    def moved(self) -> bool:
        """Whether the member set and epochs are under the data key (or there is none)."""
        return self.data_key is None or self.boxes is not None


#: The keys of a group sealed under the server's key.
SERVER_SEALED: Final = GroupKeys(None, None)


class StateKeys:
    """Wrap, unwrap and rotate the data keys of groups' sealed state."""

    __slots__ = ("_hint_key", "_wrap_salt")

    def __init__(self, at_rest_key: bytes) -> None:
        if len(at_rest_key) != 32:
            raise ValueError("state keys need a 32-byte at-rest key")
        self._wrap_salt = hmac.digest(at_rest_key, b"messenger state wrap salt v1", "sha256")
        self._hint_key = hmac.digest(at_rest_key, b"messenger state wrap hint v1", "sha256")

    def _hint(self, group_id: bytes, token: bytes) -> bytes:
        body = len(group_id).to_bytes(2, "big") + group_id + token
        return hmac.digest(self._hint_key, body, hashlib.sha256)[:_HINT_BYTES]

    def _sealer(self, group_id: bytes, token: bytes) -> SealedColumn:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self._wrap_salt,
            info=b"messenger group state wrap v1\x00" + group_id,
        ).derive(token)
        return SealedColumn(key, _COLUMN)

    def _wrap(self, group_id: bytes, token: bytes, data_key: bytes) -> bytes:
        return self._hint(group_id, token) + self._sealer(group_id, token).seal(group_id, data_key)

    @staticmethod
    def _wraps(stored: bytes) -> list[bytes]:
        if not stored or len(stored) % WRAP_BYTES:
            raise StorageError("a group's state keys are malformed")
        return [stored[i : i + WRAP_BYTES] for i in range(0, len(stored), WRAP_BYTES)]

    def new(self, group_id: bytes, token: bytes) -> tuple[bytes, bytes]:
        """A fresh data key and its wraps: under ``token`` only (creation, a removal)."""
        data_key = secrets.token_bytes(DATA_KEY_BYTES)
        return data_key, self._wrap(group_id, token, data_key)

    def open(self, group_id: bytes, stored: bytes, token: bytes) -> bytes | None:
        """The data key if ``token`` opens one of the wraps, else None."""
        hint = self._hint(group_id, token)
        for wrap in reversed(self._wraps(stored)):
            if hmac.compare_digest(wrap[:_HINT_BYTES], hint):
                try:
                    return self._sealer(group_id, token).open(group_id, wrap[_HINT_BYTES:])
                except StorageError:
                    continue  # a hint shared by chance: try the others
        return None

    def unlock(
        self, group_id: bytes, stored: object, sealed: object, token: bytes | None
    ) -> GroupKeys | None:
        """The keys to a group row's state (``state_keys`` = ``stored``,
        ``group_info_sealed`` = ``sealed``) that ``token`` gives.

        A group sealed under the server's key needs no token
        (:data:`SERVER_SEALED`). For a group sealed under its members' keys,
        None unless ``token`` opens one of its wraps: the server then cannot
        read its member set or epoch, nor tell a member with an old token
        from a stranger.
        """
        if stored is None:
            return SERVER_SEALED
        if not isinstance(stored, bytes | memoryview):
            raise StorageError("a group's state keys are malformed")
        if token is None:
            return None
        data_key = self.open(group_id, bytes(stored), token)
        if data_key is None:
            return None
        return GroupKeys(data_key, data_key if sealed == SEALED_BY_MEMBERS else None)

    def extend(self, group_id: bytes, stored: bytes, data_key: bytes, token: bytes) -> bytes:
        """``stored`` with a wrap of ``data_key`` under ``token`` (the next epoch's) added.

        The oldest wraps go once there are more than :data:`WRAP_LIMIT`.
        """
        wraps = self._wraps(stored)
        wraps.append(self._wrap(group_id, token, data_key))
        return b"".join(wraps[-WRAP_LIMIT:])

    @staticmethod
    def sealer(data_key: bytes, column: str = "mls_groups.group_info") -> SealedColumn:
        """What seals the group's ``column`` under its data key (bound to the group ID).

        The column's name is in the associated data, so one data key seals
        the GroupInfo, the member set and the epochs, and none opens as another.
        """
        return SealedColumn(data_key, column)
