"""The sync machinery's import: MLS, HTTP and the pipelines, loaded when needed.

Reading the store -- the conversation list, a timeline, search -- needs
none of it, and the desktop app shows its first window from the store
alone (issue 10: a cold start under a second). What talks to the server or
to a group -- :mod:`.sync`, :mod:`.session`, :mod:`.groups`,
:mod:`.identity`, :mod:`.net.http`, and through them :mod:`messenger.mls`,
:mod:`messenger.api` and httpx -- is imported here, once, about half a
second of work:

* :func:`load_off_loop` when the client starts syncing
  (:meth:`~.client.MessengerClient.start`): in a worker thread, so that the
  event loop (the UI) keeps running while it is loaded;
* :func:`load` by whatever needs it at once (the facade builds its session
  on first use): in the calling thread, after waiting for a load already
  under way in another one.

One lock serialises the two: a thread that needs the machinery waits for
the one loading it instead of importing the same modules concurrently
(which Python's per-module import locks allow, but which would only make
both slower).

While the worker thread imports, the interpreter's switch interval is
lowered through the process's one owner of it (:mod:`.thread_switching`)
and restored after. Executing module bodies holds the interpreter lock; a
thread that wants it back -- the event loop's, every time Qt calls into
Python (a timer, a paint, a queued callback) -- waits up to the switch
interval (5 ms by default) for each of those calls, and one UI frame makes
many: the window stalled for about 100 ms while the machinery loaded
(issue 10's frame-gap target).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from typing import Final

from .thread_switching import fair_switching

__all__ = ["MODULES", "load", "load_off_loop", "loaded"]

#: What the facade's session and background tasks import (with their
#: dependencies: MLS, the API's models, httpx, httpx-ws); then the TLS
#: context is built. The last is what httpcore imports on its first
#: request (anyio's asyncio backend, a dozen modules): on the event loop,
#: that request stalled the window for 20 ms (75 ms without bytecode caches).
MODULES: Final = (
    "messenger.client.sync",
    "messenger.client.restore_device",
    "messenger.client.addresses",
    "anyio._backends._asyncio",
)

_lock = threading.Lock()
_loaded = False


def loaded() -> bool:
    """Whether :func:`load` has run to the end (in any thread)."""
    return _loaded


def load(*, background: bool = False) -> None:
    """Import the machinery in this thread (at once if it is loaded already).

    ``background``: this is a worker thread beside the event loop's, which
    gets the interpreter lock back sooner meanwhile (the module doc).
    """
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        if not background:
            _import()
            return
        with fair_switching:
            _import()


def _import() -> None:
    """The imports, then the TLS context; under the lock."""
    global _loaded
    for name in MODULES:
        importlib.import_module(name)
    # Building the TLS context reads the whole CA bundle (~60 ms): here
    # too, not on the event loop when the transport is made. A bad
    # MESSENGER_CA_FILE is reported there, where it is used.
    from .errors import ClientError
    from .net.transport_security import ssl_context

    with contextlib.suppress(ClientError, OSError):
        ssl_context()
    _loaded = True


async def load_off_loop() -> None:
    """Import the machinery in a worker thread, so that the event loop keeps running.

    The thread is the module's own, not the loop's executor: an import cannot
    be stopped half-way, and a caller cancelled meanwhile (a client closed at
    once) leaves it to finish; the interpreter waits for it at exit rather
    than tearing down a Qt executor thread that is still running.
    """
    if _loaded:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            load(background=True)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="machinery-import").start()
    await done
