"""Loading the sync machinery beside the window: the UI thread keeps the interpreter.

``messenger.client.machinery.load_off_loop`` imports MLS, HTTP and the
pipelines in a worker thread after the window's first load (``ui.app``).
While it does, the switch interval is lowered, so that the event loop's
thread gets the interpreter lock back quickly each time Qt calls into
Python; it is restored afterwards. What the first request imports lazily
(anyio's asyncio backend) is loaded there too, not on the event loop.
Each check runs in a fresh interpreter, where nothing is loaded yet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import asyncio, sys, threading
import messenger.client.machinery as m
assert not m.loaded() and "messenger.mls" not in sys.modules
default = sys.getswitchinterval()
seen = set()

async def main():
    task = asyncio.ensure_future(m.load_off_loop())
    while not task.done():
        seen.add(sys.getswitchinterval())
        await asyncio.sleep(0)
    await task

asyncio.run(main())
from messenger.client.thread_switching import MLS_SWITCH_INTERVAL_S
print(default, min(seen), sys.getswitchinterval(), MLS_SWITCH_INTERVAL_S)
print(m.loaded(), "anyio._backends._asyncio" in sys.modules, "messenger.mls" in sys.modules)
"""


def _run(script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split()


def test_the_switch_interval_is_lowered_while_loading_then_restored() -> None:
    default, lowest, after, loading, loaded, backend, mls = _run(_SCRIPT)
    assert float(default) == 0.005
    # Lowered meanwhile (the interpreter keeps it in microseconds: compare loosely).
    assert float(lowest) == pytest.approx(float(loading)) and float(lowest) < float(default)
    assert float(after) == float(default)  # and restored
    assert (loaded, backend, mls) == ("True", "True", "True")


def test_loading_in_the_calling_thread_leaves_the_switch_interval() -> None:
    script = (
        "import sys, messenger.client.machinery as m\n"
        "sys.setswitchinterval(0.002)\n"
        "m.load()\n"
        "print(sys.getswitchinterval(), m.loaded())\n"
    )
    assert _run(script) == ["0.002", "True"]
