"""``messenger-cli send-file`` and ``download``, and files in ``history`` (docs/attachments.md §4).

The commands run through the CLI's own parser and dispatcher against
clients of the in-process server.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from messenger.client import MessengerClient
from messenger.client.cli import _command, _parser

from .helpers import account_id
from .in_process import InProcessServer

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def cli(client: MessengerClient, *argv: str, status: int = 0) -> str:
    args = _parser().parse_args(["--profile", client.profile.name, *argv])
    args.answers = None
    out = io.StringIO()
    assert await _command(client, args, out) == status
    return out.getvalue()


@pytest.mark.anyio
async def test_send_file_download_and_history(
    server: InProcessServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    group = await alice.create_group("Docs", [await account_id(bob)])
    await alice.flush(FLUSH)
    await bob.sync()
    await bob.set_auto_download_bytes(0)  # on demand: the download command fetches it
    data = os.urandom(300_000)
    source = tmp_path / "report.pdf"
    source.write_bytes(data)

    sent = await cli(alice, "send-file", "Docs", str(source), "--caption", "the report")
    assert sent.splitlines()[-1] == "Sent."
    history = await cli(alice, "history", str(group.id))
    assert "alice: [file report.pdf, 300 KB] the report" in history.replace("You:", "alice:")

    await bob.sync()
    listing = await cli(bob, "history", "Docs")
    line = next(x for x in listing.splitlines() if "[file report.pdf" in x)
    message_id = line.split()[0].lstrip("#")
    output = tmp_path / "got.pdf"
    saved = await cli(bob, "download", message_id, "--output", str(output))
    assert saved.strip() == str(output)
    assert output.read_bytes() == data

    # Without --output: the sender's name, made safe, in the current directory;
    # an existing file there is never replaced.
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert (await cli(bob, "download", message_id)).strip() == str(here / "report.pdf")
    assert (here / "report.pdf").read_bytes() == data
    await cli(bob, "download", message_id, status=1)
    assert (here / "report.pdf").read_bytes() == data


@pytest.mark.anyio
async def test_download_of_a_text_message_fails(server: InProcessServer) -> None:
    alice = await server.client("alice")
    chat = await alice.create_group("Solo")
    message = await alice.send_text(chat.id, "no file here")
    await cli(alice, "download", str(message.id), status=1)
