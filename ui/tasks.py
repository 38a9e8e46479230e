"""Running client coroutines from Qt slots, and where their errors go.

A slot calls :func:`spawn` with one client coroutine. A
:class:`~messenger.client.ClientError` reaches the user as its
``user_message`` through the error sink the app installs (a toast or
banner); any other exception is logged (type and traceback only, never
arguments or message text) and reported as a plain sentence. No traceback
ever reaches the screen (issue 10, "Errors").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from messenger.client import ClientError

T = TypeVar("T")

log = logging.getLogger(__name__)

#: What the user reads when something failed that we did not expect.
UNEXPECTED = "Something went wrong. The details were written to the app's log file."

ErrorSink = Callable[[str], None]

_sink: ErrorSink | None = None
_tasks: set[asyncio.Task[Any]] = set()


def set_error_sink(sink: ErrorSink | None) -> None:
    """Where sentences about failed operations go (the main window's toast)."""
    global _sink
    _sink = sink


def user_sentence(error: BaseException) -> str:
    """The sentence shown for ``error``; unexpected errors are logged here."""
    if isinstance(error, ClientError):
        return error.user_message
    log.error(
        "unexpected %s in a UI operation",
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__),
    )
    return UNEXPECTED


def report(error: BaseException, on_error: ErrorSink | None = None) -> None:
    """Turn ``error`` into a sentence and hand it to ``on_error`` or the sink."""
    sentence = user_sentence(error)
    target = on_error or _sink
    if target is not None:
        target(sentence)


def spawn(
    coro: Coroutine[Any, Any, T],
    *,
    on_done: Callable[[T], None] | None = None,
    on_error: ErrorSink | None = None,
) -> asyncio.Task[T]:
    """Run ``coro`` on the running loop; its result goes to ``on_done``.

    The task is kept referenced until it ends. Cancellation is silent.
    """
    task = asyncio.get_event_loop().create_task(coro)
    _tasks.add(task)

    def finished(done: asyncio.Task[T]) -> None:
        _tasks.discard(done)
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            report(error, on_error)
        elif on_done is not None:
            on_done(done.result())

    task.add_done_callback(finished)
    return task


async def cancel_all() -> None:
    """Cancel every task started with :func:`spawn` (at shutdown)."""
    pending = [t for t in _tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
