"""Synchronisation with the server: inbound pipeline, outbox, push, KeyPackages.

* :mod:`.inbound` -- :class:`InboundPipeline`: decode, route, MLS process,
  persist (one transaction), merge, ack;
* :mod:`.outbox` -- :class:`OutboxSender`: build, send with an idempotency
  key, apply; stale epochs resolved by catching up and rebuilding;
* :mod:`.listener` -- :class:`PushListener`: WebSocket push with catch-up,
  reconnect and backoff;
* :mod:`.key_packages` -- :class:`KeyPackagePool`: replenishment;
* :mod:`.intents` -- what an outbox item is for, and building its commit;
* :mod:`.effects` -- what processed messages change in the store.
"""

from __future__ import annotations

from .inbound import CURSOR_KEY, InboundPipeline
from .intents import Intent, build_commit
from .key_packages import KeyPackagePool
from .listener import PushListener
from .outbox import OutboxSender, SendHook

__all__ = [
    "CURSOR_KEY",
    "InboundPipeline",
    "Intent",
    "KeyPackagePool",
    "OutboxSender",
    "PushListener",
    "SendHook",
    "build_commit",
]
