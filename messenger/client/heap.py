"""Short garbage collections: what survives the client's heavy work is frozen.

CPython's cyclic collector runs a full (generation 2) collection now and
then, holding the interpreter lock while it visits *every* tracked object
of the process, whichever thread triggered it. With a client's groups in
memory (a 1,000-member ratchet tree is tens of thousands of objects), a
GUI toolkit's wrappers, and in tests a server in the same process, one
full collection took 45-120 ms (``bench/bench_event_loop.py``): the event
loop, and so the window, froze that long during a join or a catch-up.
Tuning the thresholds only moves the pause (a larger first threshold made
the join's shorter and the commit's longer).

``gc.freeze()`` moves every object alive into a permanent generation that
collections skip; such objects are still freed by reference counting as
usual. :func:`settle` is called when the client has loaded (``start``) and
after each heavy MLS operation (:data:`HEAVY_S` or longer in the MLS
thread: a commit, a join, a batch of decrypts, KeyPackages): what survived
such an operation is the long-lived state (groups, caches), so later full
collections visit only what is new since. Before freezing it collects the
two young generations (about a millisecond), so that cyclic garbage just
made is not kept. The price: a reference cycle that was already old when
frozen and becomes garbage later is not reclaimed; the client's state
(dataclasses, bytes, dicts) forms no such cycles.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["HEAVY_S", "settle"]

#: An MLS operation at least this long (seconds) is followed by :func:`settle`.
HEAVY_S: Final = 0.02


def settle() -> None:
    """Collect the young generations, then freeze every object still alive."""
    gc.collect(1)
    gc.freeze()
