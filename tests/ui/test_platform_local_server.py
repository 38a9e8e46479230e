"""The local server the app can run (ui.local_server), as a real subprocess on 127.0.0.1."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from tests.ui.conftest import Runner
from ui.local_server import FOLDER, LocalServerStarter


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=5) as response:
        return bool(response.status == 200)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_start_remember_the_port_and_stop(tmp_path: Path, run: Runner) -> None:
    starter = LocalServerStarter(tmp_path)
    assert starter.url is None
    assert starter.remembered_port() == 0
    url = run(starter.start())
    try:
        assert url.startswith("http://127.0.0.1:")
        assert _healthy(url)
        assert run(starter.start()) == url  # already running: the same server
        assert starter.remembered_port() == _port(url)
        assert (tmp_path / FOLDER).is_dir()
        assert (tmp_path / FOLDER).stat().st_mode & 0o077 == 0
    finally:
        run(starter.stop())
    assert starter.url is None
    run(starter.stop())  # stopping twice is harmless

    again = LocalServerStarter(tmp_path)
    url_again = run(again.start())
    try:
        assert url_again == url  # accounts made on it find it at the same address
        assert _healthy(url_again)
    finally:
        run(again.stop())


def test_a_taken_port_gives_a_new_one(tmp_path: Path, run: Runner) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        (tmp_path / FOLDER).mkdir(mode=0o700)
        (tmp_path / FOLDER / "port").write_text(f"{taken}\n")
        starter = LocalServerStarter(tmp_path)
        assert starter.remembered_port() == taken
        url = run(starter.start())
        try:
            assert _port(url) != taken
            assert _healthy(url)
            assert starter.remembered_port() == _port(url)
        finally:
            run(starter.stop())


def test_a_damaged_port_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / FOLDER).mkdir()
    for text in ("", "x", "0", "70000", "-5"):
        (tmp_path / FOLDER / "port").write_text(text)
        assert LocalServerStarter(tmp_path).remembered_port() == 0
