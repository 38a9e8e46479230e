"""``messenger-cli --allow-insecure-http``: plain HTTP off loopback only when asked.

The server runs on 127.0.0.1. The CLI reaches it as ``http://0.0.0.0:PORT``:
0.0.0.0 is not a loopback address, so the client treats it as another
computer and refuses plain HTTP to it, yet Linux delivers a connection to
0.0.0.0 on this machine, so the override can be shown end to end without
any traffic leaving it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ServerProcess
from .test_cli import cli

pytestmark = pytest.mark.anyio

SENTENCE = "uses plain http://, which is not encrypted"


async def test_plain_http_off_loopback_needs_the_flag(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    # Refused before connecting: this host does not exist.
    status, _, err = await cli(data, "create-account", "http://chat.example.invalid", check=False)
    assert status == 1 and SENTENCE in err

    port = server.url.rsplit(":", 1)[1]
    other = f"http://0.0.0.0:{port}"
    status, _, err = await cli(data, "create-account", other, check=False)
    assert status == 1 and SENTENCE in err

    _, out, _ = await cli(
        data, "--allow-insecure-http", "create-account", other, "--handle", "plain"
    )
    assert f"on {other}" in out

    # The choice made at sign-up is remembered with the account: later
    # commands reach the same server without the flag.
    _, out, _ = await cli(data, "whoami")
    assert f"plain@0.0.0.0:{port}" in out
    await cli(data, "sync")
