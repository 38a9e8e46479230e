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
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .at_rest import SEALED_OVERHEAD, SealedColumn
from .storage import StorageError

__all__ = ["DATA_KEY_BYTES", "WRAP_BYTES", "WRAP_LIMIT", "StateKeys"]

#: A group's data key.
DATA_KEY_BYTES: Final = 32
#: The most wraps kept: the epochs since the last removal whose tokens open the state.
WRAP_LIMIT: Final = 256
_HINT_BYTES: Final = 8
#: One stored wrap: its hint, then the sealed data key.
WRAP_BYTES: Final = _HINT_BYTES + SEALED_OVERHEAD + DATA_KEY_BYTES
_COLUMN: Final = "mls_groups.state_keys"


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

    def extend(self, group_id: bytes, stored: bytes, data_key: bytes, token: bytes) -> bytes:
        """``stored`` with a wrap of ``data_key`` under ``token`` (the next epoch's) added.

        The oldest wraps go once there are more than :data:`WRAP_LIMIT`.
        """
        wraps = self._wraps(stored)
        wraps.append(self._wrap(group_id, token, data_key))
        return b"".join(wraps[-WRAP_LIMIT:])

    @staticmethod
    def sealer(data_key: bytes) -> SealedColumn:
        """What seals the group's GroupInfo under its data key (bound to the group ID)."""
        return SealedColumn(data_key, "mls_groups.group_info")
