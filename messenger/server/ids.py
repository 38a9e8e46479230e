"""Fresh random IDs for accounts, clients and queues."""

from __future__ import annotations

import secrets

from messenger.api.fields import ID_BYTES, b64encode

__all__ = ["new_id"]


def new_id() -> str:
    """A fresh random account, client or queue ID (``ID_BYTES`` from ``secrets``)."""
    return b64encode(secrets.token_bytes(ID_BYTES))
