"""Linking a new device to the account (docs/devices.md §2).

* :mod:`.code` -- the one-time link code: Crockford base32 and the
  ``messenger://link`` URI;
* :mod:`.channel` -- HKDF-derived mailbox name and key, ChaCha20-Poly1305
  sealed messages opened strictly in order;
* :mod:`.payloads` -- the exchange's messages, checked field by field;
* :mod:`.existing` -- the existing device's side (:class:`~.existing.DeviceLink`);
* :mod:`.joining` -- the new device's side;
* :mod:`.history` -- the history snapshot, exported and imported;
* :mod:`.models` -- stages and offers, as the UI sees them;
* :mod:`.commands` -- ``messenger-cli link``, ``devices`` and ``unlink``.

Only the light modules are imported here; the sides load on use.
"""

from __future__ import annotations

from .code import LinkCode, new_link_code, parse_link_code
from .models import LinkOffer, LinkProgress, LinkStage

__all__ = [
    "LinkCode",
    "LinkOffer",
    "LinkProgress",
    "LinkStage",
    "new_link_code",
    "parse_link_code",
]
