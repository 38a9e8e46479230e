"""The event stream: fan-out to each subscription, in order, bounded, until closed."""

from __future__ import annotations

import asyncio

import pytest

from messenger.client.events import (
    ConnectionState,
    ConnectionStateChanged,
    ConversationUpdated,
    EventBus,
    EventsDropped,
    MessageReceived,
)


def test_every_subscription_gets_every_event_in_order() -> None:
    async def main() -> None:
        bus = EventBus()
        first, second = bus.subscribe(), bus.subscribe()
        bus.publish(ConversationUpdated(1), MessageReceived(1, 2))
        second.close()
        bus.publish(ConnectionStateChanged(ConnectionState.ONLINE))
        bus.close()
        assert [e async for e in first] == [
            ConversationUpdated(1),
            MessageReceived(1, 2),
            ConnectionStateChanged(ConnectionState.ONLINE),
        ]
        assert [e async for e in second] == [ConversationUpdated(1), MessageReceived(1, 2)]
        late = bus.subscribe()
        bus.publish(ConversationUpdated(3))
        assert late.pending() == [ConversationUpdated(3)]

    asyncio.run(main())


def test_a_waiting_consumer_wakes_up() -> None:
    async def main() -> None:
        bus = EventBus()
        async with bus.subscribe() as events:
            task = asyncio.create_task(anext(aiter(events)))
            await asyncio.sleep(0)
            bus.publish(MessageReceived(5, 6))
            assert await asyncio.wait_for(task, 1) == MessageReceived(5, 6)

    asyncio.run(main())


def test_a_slow_subscriber_is_bounded_and_told_to_resync() -> None:
    async def main() -> None:
        bus = EventBus()
        slow = bus.subscribe(maxsize=3)
        fast = bus.subscribe()
        bus.publish(*(ConversationUpdated(i) for i in range(10)))
        # The slow one holds 3 and counted the 7 it dropped; the other got all.
        assert slow.dropped == 7
        assert len(fast.pending()) == 10
        assert await anext(aiter(slow)) == ConversationUpdated(0)
        # Room again, but it still drops until it has caught up, so that the
        # EventsDropped marks exactly where the gap is.
        bus.publish(ConversationUpdated(10))
        assert slow.pending() == [
            ConversationUpdated(1),
            ConversationUpdated(2),
            EventsDropped(8),
        ]
        assert slow.dropped == 0
        bus.publish(ConversationUpdated(11))
        bus.close()
        assert [e async for e in slow] == [ConversationUpdated(11)]

    asyncio.run(main())


def test_one_events_dropped_per_overflow_even_when_closed() -> None:
    async def main() -> None:
        bus = EventBus()
        events = bus.subscribe(maxsize=1)
        bus.publish(MessageReceived(1, 1), MessageReceived(1, 2), MessageReceived(1, 3))
        bus.close()
        assert [e async for e in events] == [MessageReceived(1, 1), EventsDropped(2)]
        with pytest.raises(ValueError, match="at least one"):
            bus.subscribe(maxsize=0)

    asyncio.run(main())


def test_memory_stays_bounded_under_a_flood() -> None:
    async def main() -> None:
        bus = EventBus()
        events = bus.subscribe(maxsize=100)
        for i in range(100_000):
            bus.publish(MessageReceived(1, i))
        assert events._queue.qsize() == 100
        assert events.dropped == 99_900
        assert events.pending()[-1] == EventsDropped(99_900)

    asyncio.run(main())


def test_events_published_before_iteration_starts_are_kept() -> None:
    async def main() -> None:
        bus = EventBus()
        events = bus.subscribe()
        bus.publish(ConversationUpdated(1))
        await asyncio.sleep(0)
        bus.publish(MessageReceived(1, 2))
        async with events:
            assert await anext(aiter(events)) == ConversationUpdated(1)
            assert await anext(aiter(events)) == MessageReceived(1, 2)

    asyncio.run(main())
