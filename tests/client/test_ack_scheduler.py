"""Acks go out in bursts at random times, never per message (docs/metadata.md §4)."""

from __future__ import annotations

import asyncio

import pytest

from messenger.client.acks import AckPolicy, AckScheduler

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.acks: list[int] = []
        self.fail = fail

    async def __call__(self, cursor: int) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("the network is down")
        self.acks.append(cursor)


async def until(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_nothing_is_acked_before_the_delay_and_everything_on_close() -> None:
    sent = Recorder()
    acks = AckScheduler(sent, AckPolicy(min_delay=3600, max_delay=3600, max_pending=500))
    for cursor in range(1, 50):
        acks.processed(cursor, 1)
    await asyncio.sleep(0)  # let anything that was scheduled to run now run
    assert sent.acks == [], "an ack went out per message, not in a burst"
    assert acks.pending == 49
    await acks.close()
    assert sent.acks == [49], "closing acks everything processed, once"
    assert acks.pending == 0


async def test_a_full_burst_is_acked_at_once() -> None:
    sent = Recorder()
    acks = AckScheduler(sent, AckPolicy(min_delay=3600, max_delay=3600, max_pending=10))
    acks.processed(9, 9)
    await asyncio.sleep(0)
    assert sent.acks == []
    acks.processed(12, 3)
    await until(lambda: sent.acks == [12], "the ack of a full burst")
    assert acks.pending == 0
    await acks.close()
    assert sent.acks == [12], "nothing left to ack on close"


async def test_the_timer_acks_the_latest_cursor_once() -> None:
    sent = Recorder()
    acks = AckScheduler(sent, AckPolicy(min_delay=0, max_delay=0.05, max_pending=500))
    acks.processed(3, 3)
    acks.processed(7, 4)
    await until(lambda: sent.acks, "the timed ack")
    assert sent.acks == [7]
    acks.processed(8, 1)
    await until(lambda: len(sent.acks) == 2, "the next burst's ack")
    assert sent.acks == [7, 8]
    await acks.close()


async def test_a_failed_ack_is_retried_after_another_delay() -> None:
    sent = Recorder(fail=1)
    acks = AckScheduler(sent, AckPolicy(min_delay=0, max_delay=0, max_pending=500))
    acks.processed(5, 5)
    await until(lambda: sent.acks == [5], "the ack retried after its failure")
    assert sent.fail == 0, "the first attempt failed"
    assert acks.pending == 0
    await acks.close()


async def test_a_failed_ack_keeps_its_messages_pending() -> None:
    sent = Recorder(fail=1)
    acks = AckScheduler(sent, AckPolicy(min_delay=3600, max_delay=3600, max_pending=2))
    acks.processed(2, 2)
    await until(lambda: sent.fail == 0, "the failed attempt")
    assert sent.acks == []
    assert acks.pending == 2, "a failed ack keeps its messages pending"
    await acks.close()
    assert sent.acks == [2], "closing acks them"


def test_delays_stay_in_the_policy_range_and_vary() -> None:
    policy = AckPolicy(min_delay=5, max_delay=30)
    delays = {policy.delay() for _ in range(200)}
    assert all(5 <= d <= 30 for d in delays)
    assert len(delays) > 100, "delays are random, not one fixed value"


@pytest.mark.parametrize(("low", "high", "pending"), [(-1, 5, 10), (6, 5, 10), (0, 5, 0)])
def test_bad_policies_are_refused(low: float, high: float, pending: int) -> None:
    with pytest.raises(ValueError):
        AckPolicy(min_delay=low, max_delay=high, max_pending=pending)
