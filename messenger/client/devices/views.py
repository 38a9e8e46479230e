"""The device list as the UI shows it (docs/devices.md §3, §5).

Built from the devices group -- its members and the device records they
sent (names, last seen) -- never from the server. ``verified`` says that
the device's credential in the group carries a certificate by this
account's key (docs/devices.md §1) that checks out.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store.devices import Device

if TYPE_CHECKING:  # the UI imports DeviceView without the sync machinery
    from messenger.mls.group import Group

__all__ = ["DeviceView", "certified_devices", "device_views"]


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device of this account."""

    client_id: str
    name: str | None
    last_seen_at: int | None
    """Unix ms, by that device's clock (None: it never said)."""
    this_device: bool
    verified: bool
    """Its credential carries a valid certificate by this account's key."""


def certified_devices(group: Group, account_key: bytes | None) -> dict[str, bool]:
    """Per client ID of the group's members: whether its device certificate verifies
    under ``account_key`` (all False without one). In the MLS thread or on the loop:
    the checks are cached."""
    from messenger.api.credential import decode_credential
    from messenger.mls.credentials import CredentialType

    from ..identity import certificate_verifies

    found: dict[str, bool] = {}
    for member in group.members():
        credential = member.credential
        if credential.credential_type != CredentialType.BASIC:
            continue
        decoded = decode_credential(credential.identity)
        if decoded is None:
            continue
        found[decoded.client_id] = (
            account_key is not None
            and decoded.account_key is not None
            and decoded.certified_at is not None
            and decoded.device_certificate is not None
            and hmac.compare_digest(decoded.account_key, account_key)
            and hmac.compare_digest(decoded.signature_key, bytes(member.signature_key))
            and certificate_verifies(
                decoded.account_key,
                decoded.signature_key,
                decoded.certified_at,
                decoded.device_certificate,
            )
        )
    return found


def device_views(
    devices: Sequence[Device], certified: dict[str, bool], this_client: str
) -> list[DeviceView]:
    """The views of the active devices: this one first, then by first seen."""
    views = [
        DeviceView(
            d.client_id,
            d.name,
            d.last_seen_at,
            d.client_id == this_client,
            certified.get(d.client_id, False),
        )
        for d in devices
        if d.active
    ]
    return sorted(views, key=lambda v: not v.this_device)
