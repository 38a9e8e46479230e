"""A restored backup takes its device over (until devices can be linked).

A backup holds the client's signature key, so the copy restored from it and
the copy it was made from would sign alike and read the same server queue,
silently splitting the device's messages. So a restore takes the device
over (docs/server.md, "Takeover"):

1. :func:`~messenger.client.backup.restore_backup` writes
   :data:`~.store.settings.TAKEOVER_PENDING` into the restored store;
2. before its first connection (:func:`prepare_device`, called by the push
   listener), the restored copy draws a fresh 32-byte device token and
   calls ``POST /v1/clients/takeover``; the server keeps the token's hash,
   closes the client's other WebSockets, and from then on serves only
   requests carrying the token;
3. the copy keeps the token in its settings (:data:`~.store.settings.DEVICE_TOKEN`)
   and clears the flag in one transaction; its signer sends the token with
   every request from then on.

Any other copy then gets :class:`~.errors.DeviceReplacedError`: its listener
publishes ``ConnectionState.REPLACED`` and stops; its outbox stops and
keeps what is queued. A crash between the server's answer and step 3
leaves the flag set, and the next start takes over again with a new token.
The other copy never takes over on its own: only a restore sets the flag.
"""

from __future__ import annotations

import logging
import secrets

from messenger.api.signing import DEVICE_TOKEN_BYTES

from .session import Session
from .store.store import Store

__all__ = ["prepare_device"]

_log = logging.getLogger(__name__)


def _load(store: Store) -> tuple[bytes | None, bool]:
    return store.settings.device_token(), store.settings.takeover_pending()


def _took_over(store: Store, token: bytes) -> None:
    store.settings.took_over(token)


async def prepare_device(session: Session) -> bool:
    """Set this copy's device token on its signer; take the device over if pending.

    Whether a takeover happened now. Network failures propagate (the
    listener retries); the flag stays set until the server took it.
    """
    signer = session.transport.signer
    if signer is None:  # pragma: no cover - a session always has a signer
        raise RuntimeError("a session without a signer")
    token, pending = await session.store.run(_load)
    if token is not None and signer.device_token is None:
        signer.device_token = token
    if not pending:
        return False
    fresh = secrets.token_bytes(DEVICE_TOKEN_BYTES)
    await session.transport.take_over(fresh)
    await session.store.transaction(_took_over, fresh)
    _log.info("this copy took its device over")
    return True
