"""Synchronisation with the server: inbound pipeline, outbox, push, KeyPackages.

* :mod:`.inbound` -- :class:`InboundPipeline`: decode, route, MLS process,
  persist, ack -- runs of application messages as batches (one MLS-thread
  call, one transaction, one ack per page);
* :mod:`.outbox` -- :class:`OutboxSender`: a state machine per item;
  build, persist and send a lane's messages in batches with idempotency
  keys, apply; stale epochs resolved by catching up and rebuilding;
* :mod:`.listener` -- :class:`PushListener`: WebSocket push with catch-up,
  reconnect and backoff;
* :mod:`.key_packages` -- :class:`KeyPackagePool`: replenishment;
* :mod:`.intents` -- what an outbox item is for, and building its commit;
* :mod:`.effects` -- what processed messages change in the store.

Every change of a group's epoch goes through the owner of transitions,
:class:`messenger.client.epochs.GroupEpochs` (``Session.epochs``).
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
