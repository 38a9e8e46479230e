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
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from typing import Final

__all__ = ["MODULES", "load", "load_off_loop", "loaded"]

#: What the facade's session and background tasks import (with their
#: dependencies: MLS, the API's models, httpx, httpx-ws); then the TLS
#: context is built.
MODULES: Final = (
    "messenger.client.sync",
    "messenger.client.takeover",
    "messenger.client.addresses",
)

_lock = threading.Lock()
_loaded = False


def loaded() -> bool:
    """Whether :func:`load` has run to the end (in any thread)."""
    return _loaded


def load() -> None:
    """Import the machinery in this thread (at once if it is loaded already)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
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
            load()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="machinery-import").start()
    await done
