"""A local server started by the app dies with the app, even when the app is killed.

Otherwise a crashed app leaves ``messenger.server`` holding the SQLite
database, and the next start fails with "in use by another server process".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

CHILD = """
import asyncio, sys
from pathlib import Path
from messenger.client import start_local_server

async def main() -> None:
    async with start_local_server(Path(sys.argv[1]), pow_difficulty=1) as url:
        print(url, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_server_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    app = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "server")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        url = app.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert _answers(url)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(30)
        deadline = time.monotonic() + 30
        while _answers(url):
            assert time.monotonic() < deadline, "the server outlived the app"
            time.sleep(0.05)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(30)
        if app.stdout is not None:
            app.stdout.close()
