"""The switch interval is short while MLS work runs, and as it was otherwise (issue 9).

``messenger/client/thread_switching.py`` explains why: with the default
5 ms, ``cryptography`` releasing the GIL for each of its operations kept
the event loop waiting 20-45 ms during a commit adding 100 members.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest

from messenger.client.groups import MLSWorker
from messenger.client.thread_switching import (
    MLS_SWITCH_INTERVAL_S,
    FairSwitching,
    fair_switching,
)

#: Bounds every wait: a bug shows as a timeout, not as a hang.
DEADLINE = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def default_interval() -> Iterator[float]:
    """The process's interval set to 5 ms for the test, and put back after it."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        yield 0.005
    finally:
        sys.setswitchinterval(saved)


def test_lowered_while_entered_and_put_back(default_interval: float) -> None:
    switching = FairSwitching(0.0002)
    with switching:
        assert sys.getswitchinterval() == pytest.approx(0.0002)
        with switching:  # a second operation meanwhile
            assert switching.active == 2
        assert sys.getswitchinterval() == pytest.approx(0.0002)  # the first still runs
    assert switching.active == 0
    assert sys.getswitchinterval() == pytest.approx(default_interval)


def test_put_back_when_the_operation_fails(default_interval: float) -> None:
    switching = FairSwitching(0.0002)
    with pytest.raises(RuntimeError), switching:
        raise RuntimeError("the operation failed")
    assert switching.active == 0
    assert sys.getswitchinterval() == pytest.approx(default_interval)


def test_a_shorter_interval_is_left_alone(default_interval: float) -> None:
    sys.setswitchinterval(0.00005)
    with FairSwitching(0.0002):
        assert sys.getswitchinterval() == pytest.approx(0.00005)
    assert sys.getswitchinterval() == pytest.approx(0.00005)


def test_a_positive_interval_is_required() -> None:
    with pytest.raises(ValueError):
        FairSwitching(0)


@pytest.mark.anyio
async def test_mls_operations_run_with_the_short_interval(default_interval: float) -> None:
    """The interval the MLS thread sees, during two overlapping operations and after."""
    first, second = MLSWorker(), MLSWorker()  # two clients of one process
    release = threading.Event()
    seen: list[float] = []

    def held() -> float:
        if not release.wait(DEADLINE):
            raise TimeoutError("never released")
        return sys.getswitchinterval()

    def quick() -> None:
        seen.append(sys.getswitchinterval())

    try:
        slow = asyncio.create_task(first.run(held))
        await asyncio.wait_for(second.run(quick), DEADLINE)
        assert seen == [pytest.approx(MLS_SWITCH_INTERVAL_S)]
        # The second operation ended; the first still runs: still short.
        assert fair_switching.active == 1
        assert sys.getswitchinterval() == pytest.approx(MLS_SWITCH_INTERVAL_S)
        release.set()
        assert await asyncio.wait_for(slow, DEADLINE) == pytest.approx(MLS_SWITCH_INTERVAL_S)
        assert fair_switching.active == 0
        assert sys.getswitchinterval() == pytest.approx(default_interval)
    finally:
        release.set()
        first.close()
        second.close()


@pytest.mark.anyio
async def test_put_back_when_an_mls_operation_fails(default_interval: float) -> None:
    worker = MLSWorker()

    def fails() -> None:
        raise ValueError("bad input")

    try:
        with pytest.raises(ValueError):
            await asyncio.wait_for(worker.run(fails), DEADLINE)
    finally:
        worker.close()
    assert fair_switching.active == 0
    assert sys.getswitchinterval() == pytest.approx(default_interval)
