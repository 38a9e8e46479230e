"""Disappearing messages: the timer's choices and wording, and deleting what expired.

docs/attachments.md §7. The timer is agreed group state: a field of the
conversation-info GroupContext extension (:class:`~.groups.ConversationInfo`),
changed by a GroupContextExtensions commit (RFC 9420 §12.1.7), so every
member applies the same value from the same epoch. Each message carries the
timer of its sender's moment (``Content.expires_after``); a receiver keeps
the shorter of the message's and the conversation's (:func:`message_timer`),
so no member makes a message outlive the agreed setting by leaving its
timer out or raising it.

A message's countdown (``messages.expires_at``) starts when it is sent for
this account's own messages, and when this user has read it for the others
(:meth:`~.store.messages.MessageRepository.start_countdown`). When it ends,
:func:`expire_due` deletes the message for good on this device: the row (the
FTS5 triggers take its index entry; the index runs with ``secure-delete``,
so no segment keeps the tokens), its reactions, its attachment row (key and
thumbnail) and any outbox item not sent yet (it holds the plaintext); the
database runs with ``PRAGMA secure_delete`` so freed pages are zeroed. The
attachment's local blob file is unlinked after the transaction, and the
WAL is checkpointed and truncated so that it keeps no older page either.

:class:`ExpiryTimer` is the client's background task: it sleeps until the
next deadline (at most :data:`MAX_SLEEP_S`, since a sleep does not count
the time a suspended laptop spends asleep), wakes early when a message
arrives or is sent, or a conversation changes (a read position may have
set a nearer deadline), deletes what is due and publishes :class:`~.events.MessagesExpired`
and :class:`~.events.ConversationUpdated` per conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .events import (
    ConversationUpdated,
    Event,
    EventBus,
    EventsDropped,
    MessageReceived,
    MessagesExpired,
)
from .wake import wait_event

if TYPE_CHECKING:
    from .store.async_store import AsyncStore
    from .store.store import Store

__all__ = [
    "DISAPPEARING_CHOICES",
    "MAX_SLEEP_S",
    "MAX_TIMER",
    "MIN_TIMER",
    "WAKE_DEBOUNCE_S",
    "ExpiryTimer",
    "expire_due",
    "format_timer",
    "message_timer",
    "parse_timer",
    "remove_files",
    "sweep_now",
    "valid_timer",
]

#: The shortest timer a user may choose (seconds).
MIN_TIMER: Final = 10
#: The longest timer: one year (as :data:`~.content.MAX_EXPIRES_AFTER`).
MAX_TIMER: Final = 365 * 24 * 3600
#: The choices offered first: off, 5 minutes, 1 hour, 1 day, 1 week.
DISAPPEARING_CHOICES: Final[tuple[int, ...]] = (0, 300, 3600, 86400, 604800)
#: The longest the expiry task sleeps before looking at the clock again.
MAX_SLEEP_S: Final = 60.0
#: After a wake-up by an event, the task waits this long before it looks at
#: the deadlines, so that a burst of messages costs one sweep, not one each
#: (the shortest timer is 10 s: a second later is not noticeable).
WAKE_DEBOUNCE_S: Final = 1.0

_UNITS: Final = (
    (7 * 86400, "week"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
    (1, "second"),
)


def valid_timer(seconds: int) -> bool:
    """Whether ``seconds`` is a timer a group may agree on (0: off)."""
    return seconds == 0 or MIN_TIMER <= seconds <= MAX_TIMER


def format_timer(seconds: int) -> str:
    """A timer in words: "off", "1 hour", "5 minutes", "90 seconds", "2 weeks".

    The largest unit that divides the value exactly is used, so that the
    sentence is exact ("90 seconds", not "1 minute").
    """
    if seconds < 0:
        raise ValueError("a timer is not negative")
    if seconds == 0:
        return "off"
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("every count of seconds is a whole number of seconds")


_SUFFIXES: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_timer(text: str) -> int:
    """A timer as a person types it: "off", "90s", "5m", "1h", "2d", "1w" or seconds.

    ValueError if it is none of these; the range is not checked here
    (:func:`valid_timer`).
    """
    value = text.strip().lower()
    if value in ("off", "0"):
        return 0
    unit = _SUFFIXES.get(value[-1:], None)
    digits = value[:-1] if unit is not None else value
    if not digits.isascii() or not digits.isdigit() or len(digits) > 12:
        raise ValueError(f"not a duration: {text!r}")
    return int(digits) * (unit or 1)


def message_timer(carried: int, conversation: int) -> int:
    """The timer a received message gets: the shorter of the one it carries and
    the conversation's, either of which may be 0 (none)."""
    timers = [t for t in (carried, conversation) if t > 0]
    return min(timers, default=0)


def expire_due(store: Store, now: int) -> tuple[list[Event], list[str]]:
    """Delete every message whose deadline is at or before ``now`` (Unix ms).

    Runs in one transaction; returns the events for the UI and the local
    attachment files to unlink once it has committed. A read marker on a
    deleted message moves back to the conversation's newest remaining message
    before it (or goes, if none): unread counts stay the same, and a later
    message reusing the row id is not taken as read.
    """
    with store.transaction():
        db = store.db
        rows = db.query(
            "SELECT m.id, m.conversation_id, m.uid, c.group_id FROM messages AS m "
            "JOIN conversations AS c ON c.id = m.conversation_id "
            "WHERE m.expires_at <= ? ORDER BY m.id",
            (now,),
        )
        if not rows:
            return [], []
        ids = [int(row[0]) for row in rows]
        files: list[str] = []
        by_conversation: dict[int, list[int]] = {}
        targets: dict[bytes, set[bytes]] = {}
        for message_id, conversation_id, uid, group_id in rows:
            by_conversation.setdefault(int(conversation_id), []).append(int(message_id))
            targets.setdefault(bytes(group_id), set()).add(bytes(uid))
        _drop_queued_changes(store, targets)
        for start in range(0, len(ids), 500):
            chunk = tuple(ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            files += store.attachments.local_files(chunk)
            db.execute(f"DELETE FROM outbox WHERE message_id IN ({marks})", chunk)  # noqa: S608
            db.execute(f"DELETE FROM reactions WHERE message_id IN ({marks})", chunk)  # noqa: S608
            db.execute(f"DELETE FROM attachments WHERE message_id IN ({marks})", chunk)  # noqa: S608
            db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)  # noqa: S608
            db.execute(
                "UPDATE read_markers SET message_id = coalesce((SELECT max(m.id) FROM messages "  # noqa: S608
                "AS m WHERE m.conversation_id = read_markers.conversation_id "
                f"AND m.id < read_markers.message_id), 0) WHERE message_id IN ({marks})",
                chunk,
            )
        db.execute("DELETE FROM read_markers WHERE message_id = 0")
    events: list[Event] = []
    for conversation_id, message_ids in sorted(by_conversation.items()):
        events += [
            MessagesExpired(conversation_id, tuple(message_ids)),
            ConversationUpdated(conversation_id),
        ]
    return events, files


def _drop_queued_changes(store: Store, targets: dict[bytes, set[bytes]]) -> None:
    """Drop unsent edits and reactions of expired messages (by group, their uids):
    an edit's outbox item holds the new text, and every receiver would drop them."""
    from .content import Content, Edit, Reaction, decode_content
    from .errors import ContentDecodeError

    rows = store.db.query(
        "SELECT id, group_id, content FROM outbox WHERE message_id IS NULL "
        "AND content IS NOT NULL AND group_id IS NOT NULL"
    )
    for item_id, group_id, data in rows:
        uids = targets.get(bytes(group_id))
        if not uids:
            continue
        try:
            content = decode_content(bytes(data))
        except ContentDecodeError:
            continue
        if (
            isinstance(content, Content)
            and isinstance(content.body, Edit | Reaction)
            and content.body.target in uids
        ):
            store.db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))


def remove_files(profile_dir: Path, names: Sequence[str]) -> None:
    """Unlink expired attachments' blob files (after their rows are gone)."""
    if names:
        from .attachments.files import remove_attachment_files

        remove_attachment_files(profile_dir, names)


def sweep_now(store: Store, now: int) -> list[Event]:
    """:func:`expire_due` and the files' removal, on the store's thread."""
    events, files = expire_due(store, now)
    if events:
        # The WAL's copies of the pages as they were go too (they are encrypted,
        # but a disappearing message should leave no copy behind at all).
        store.db.query_one("PRAGMA wal_checkpoint(TRUNCATE)")
    remove_files(store.profile.path, files)
    return events


class ExpiryTimer:
    """The background task deleting messages when their deadline passes."""

    def __init__(
        self,
        store: AsyncStore,
        events: EventBus,
        clock: Callable[[], float],
        *,
        max_sleep: float = MAX_SLEEP_S,
        debounce: float = WAKE_DEBOUNCE_S,
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._max_sleep = max_sleep
        self._debounce = debounce
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the deadlines again now (one was written, or the clock moved)."""
        self._wake.set()

    async def sweep(self) -> int | None:
        """Delete what is due, publish it; the next deadline (Unix ms), if any."""
        now = int(self._clock() * 1000)

        def run(s: Store) -> tuple[list[Event], int | None]:
            return sweep_now(s, now), s.messages.next_deadline()

        events, deadline = await self._store.run(run)
        self._events.publish(*events)
        return deadline

    async def run(self) -> None:
        """Sweep, sleep until the next deadline or a wake-up, and again, until cancelled."""
        subscription = self._events.subscribe(maxsize=1)  # only a wake-up signal
        watcher = asyncio.create_task(self._watch(subscription), name="expiry watcher")
        try:
            while True:
                self._wake.clear()
                deadline = await self.sweep()
                delay = self._max_sleep
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline / 1000 - self._clock()))
                if not await wait_event(self._wake, delay):
                    continue  # a deadline (or the clock check) is due
                # Woken by an event: let the rest of its burst arrive first.
                await asyncio.sleep(min(self._debounce, delay))
        finally:
            subscription.close()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, subscription: AsyncIterator[Event]) -> None:
        async for event in subscription:  # what may have written a deadline
            if isinstance(event, MessageReceived | ConversationUpdated | EventsDropped):
                self._wake.set()
