"""The event stream: fan-out to each subscription, in order, until closed."""

from __future__ import annotations

import asyncio

from messenger.client.events import (
    ConnectionState,
    ConnectionStateChanged,
    ConversationUpdated,
    EventBus,
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
