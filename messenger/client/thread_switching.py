"""A short thread switch interval while a thread works hard, so the event loop gets its turn.

This module is the process's one owner of ``sys.setswitchinterval``: MLS
operations (:class:`~.groups.MLSWorker`) and the loading of the sync
machinery beside the window (:mod:`.machinery`) both enter
:data:`fair_switching`, so the interval put back is always the one in
force before the first of them began.

The client's MLS work runs in a thread (:class:`~.groups.MLSWorker`) and the
event loop waits for the interpreter lock (GIL) between its callbacks.
``sys.getswitchinterval()`` (5 ms) was meant to bound that wait: a thread
that has waited that long asks the holder to let go. But the wait is only
counted as "waited that long" when it *times out*; it starts again whenever
the lock is released. ``cryptography`` releases the GIL around each of its
operations, and a commit adding 100 members does hundreds of them (the
X25519 and AES-GCM of each newcomer's Welcome, RFC 9420 §12.4.3.1), each
shorter than it takes the loop's thread to wake up: the MLS thread
releases, takes the lock straight back, and the woken loop goes back to
waiting, never timing out -- the "convoy effect" of CPython's GIL. Measured
(``bench/bench_event_loop.py``, 100 adds): the loop stalled 20-45 ms with no
callback of its own running, the MLS thread busy throughout
(``/proc/.../schedstat``), the loop's thread woken on the GIL's condition
every 0.2-1.5 ms and losing the race each time (``strace``, ``perf``).

With an interval of :data:`MLS_SWITCH_INTERVAL_S` (0.1 ms), shorter than
the gaps between those releases, the loop's wait times out, its request to
switch is honoured at the MLS thread's next bytecode boundary, and the
stall falls to 6-10 ms; the commit takes no longer. The interval is
process-wide, so it is lowered only while at least one MLS operation is
running (:data:`fair_switching` counts them, for every client of the
process) and put back as it was when the last one ends: with no MLS work,
threads switch as the process had them switch.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Final

__all__ = ["MLS_SWITCH_INTERVAL_S", "FairSwitching", "fair_switching"]

#: The switch interval (seconds) while MLS work runs.
MLS_SWITCH_INTERVAL_S: Final = 0.0001


class FairSwitching:
    """Context manager: the switch interval is at most ``interval`` while any is entered.

    Reentrant and shared: the first to enter lowers the interval, the last to
    leave puts back the one in force before the first entered.
    """

    def __init__(self, interval: float = MLS_SWITCH_INTERVAL_S) -> None:
        if interval <= 0:
            raise ValueError("a switch interval is positive")
        self._interval = interval
        self._lock = threading.Lock()
        self._active = 0
        self._saved: float | None = None

    @property
    def active(self) -> int:
        """How many operations are inside."""
        return self._active

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                saved = sys.getswitchinterval()
                if saved > self._interval:
                    self._saved = saved
                    sys.setswitchinterval(self._interval)
            self._active += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._saved is not None:
                sys.setswitchinterval(self._saved)
                self._saved = None


#: The one of the process: every client's MLS thread counts here.
fair_switching: Final = FairSwitching()
