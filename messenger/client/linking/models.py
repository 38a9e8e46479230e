"""What the UI sees of a link in progress (docs/devices.md §2).

Light on purpose (no cryptography, no network): the UI imports these names
from :mod:`messenger.client` before the sync machinery is loaded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["LinkOffer", "LinkProgress", "LinkStage"]


class LinkStage(enum.StrEnum):
    """Where a link is, on either device."""

    WAITING_FOR_DEVICE = "waiting_for_device"
    """The code is shown (creator) or the other device is being reached (new device)."""
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    """The new device made its offer; the user of the existing device decides."""
    REGISTERING = "registering"
    """The new device is registered with the server and gets its identity."""
    TRANSFERRING_HISTORY = "transferring_history"
    """The history snapshot is on its way (``fraction`` by bytes)."""
    JOINING_CONVERSATIONS = "joining_conversations"
    """The new device is being added to every group (``fraction`` by groups joined)."""
    DONE = "done"


@dataclass(frozen=True, slots=True)
class LinkProgress:
    """A step of a link; ``fraction`` (0..1) where the step can be measured."""

    stage: LinkStage
    fraction: float | None = None


@dataclass(frozen=True, slots=True)
class LinkOffer:
    """The device that asks to be linked, as it names itself."""

    device_name: str
