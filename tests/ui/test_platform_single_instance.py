"""One instance per profile (ui.platform.single_instance), with real local sockets."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray
from PySide6.QtNetwork import QLocalSocket
from pytestqt.qtbot import QtBot

from ui.platform.single_instance import (
    ACTIVATE,
    MAX_LINE,
    SingleInstance,
    forwarded_link,
    instance_key,
    link_message,
    socket_directory,
    socket_name,
)

LINK = "messenger://add?server=https%3A%2F%2Fchat.example.org&account=Abc_123-x&handle=dana"


@pytest.fixture(autouse=True)
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short, like /run/user/1000: a Unix socket's path is limited to ~107 bytes.
    run = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    try:
        yield run
    finally:
        shutil.rmtree(run, ignore_errors=True)


def test_the_second_instance_raises_the_first(qtbot: QtBot, tmp_path: Path) -> None:
    key = instance_key(tmp_path / "data", "alice")
    first = SingleInstance(key)
    second = SingleInstance(key)
    try:
        assert first.acquire() is True
        assert first.primary
        with qtbot.waitSignal(first.activated, timeout=5000):
            assert second.acquire() is False
        assert not second.primary
    finally:
        first.release()
        second.release()


def test_other_profiles_and_data_dirs_are_other_instances(tmp_path: Path) -> None:
    keys = [
        instance_key(tmp_path / "data", "alice"),
        instance_key(tmp_path / "data", "bob"),
        instance_key(tmp_path / "other", "alice"),
    ]
    holders = [SingleInstance(key) for key in keys]
    try:
        assert [h.acquire() for h in holders] == [True, True, True]
        assert len({h.name for h in holders}) == 3
        assert all(h.primary for h in holders)
    finally:
        for holder in holders:
            holder.release()


def test_after_release_the_next_launch_is_the_instance(tmp_path: Path) -> None:
    key = instance_key(tmp_path, "alice")
    first = SingleInstance(key)
    assert first.acquire()
    first.release()
    again = SingleInstance(key)
    try:
        assert again.acquire() is True
    finally:
        again.release()


def test_a_stale_socket_from_a_crash_is_replaced(qtbot: QtBot, tmp_path: Path) -> None:
    key = instance_key(tmp_path, "alice")
    path = socket_name(key)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as crashed:
        crashed.bind(path)  # the file stays after the socket is gone, and no one listens
    assert os.path.exists(path)
    instance = SingleInstance(key)
    later = SingleInstance(key)
    try:
        assert instance.acquire() is True
        with qtbot.waitSignal(instance.activated, timeout=5000):
            assert later.acquire() is False
    finally:
        instance.release()
        later.release()


def test_the_socket_hides_the_profile_and_lives_in_a_private_directory(
    tmp_path: Path, runtime_dir: Path
) -> None:
    key = instance_key(tmp_path / "data", "secret-profile-name")
    name = socket_name(key)
    assert "secret-profile-name" not in name
    assert str(tmp_path / "data") not in name
    directory = socket_directory()
    assert directory == runtime_dir / "messenger"
    assert Path(name).parent == directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    holder = SingleInstance(key)
    try:
        assert holder.acquire()
        mode = stat.S_IMODE(os.stat(name).st_mode)
        assert mode & 0o077 == 0, oct(mode)  # UserAccessOption: this user only
    finally:
        holder.release()


def test_a_directory_open_to_others_is_refused(runtime_dir: Path, tmp_path: Path) -> None:
    shared = runtime_dir / "messenger"
    shared.mkdir(mode=0o700)
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        socket_directory()
    # The app still runs, as the only instance, and places nothing there.
    holder = SingleInstance(instance_key(tmp_path, "alice"))
    assert holder.name is None
    assert holder.acquire() is True
    assert list(shared.iterdir()) == []
    holder.release()


def test_without_a_runtime_dir_a_private_temp_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    directory = socket_directory()
    assert directory == tmp_path / f"messenger-{os.getuid()}"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


# -- forwarded links ----------------------------------------------------------------------


def test_only_invite_links_are_forwarded() -> None:
    assert forwarded_link(LINK) == LINK
    assert forwarded_link(f"  {LINK}\n") == LINK
    assert forwarded_link("messenger://add?server=http://127.0.0.1:8000&account=a") is not None
    for bad in (
        "",
        "https://chat.example.org",
        "messenger://remove?server=https%3A%2F%2Fx.org&account=a",
        "messenger://add?account=a",  # no server
        "messenger://add?server=file%3A%2F%2F%2Fetc&account=a",  # not http(s)
        "messenger://add?server=https%3A%2F%2Fx.org&account=a%20b",
        "messenger://add?server=https%3A%2F%2Fx.org&account=a&account=b",
        "messenger://add?server=https%3A%2F%2Fx.org&account=a&handle=%3Cscript%3E",
        "messenger://add?server=https%3A%2F%2Fx.org&account=a\x07",
        "messenger://add?server=https%3A%2F%2Fx.org&account=" + "a" * MAX_LINE,
    ):
        assert forwarded_link(bad) is None, bad


def test_a_second_launch_forwards_its_link(qtbot: QtBot, tmp_path: Path) -> None:
    key = instance_key(tmp_path / "data", "alice")
    first = SingleInstance(key)
    second = SingleInstance(key)
    try:
        assert first.acquire() is True
        with (
            qtbot.waitSignal(first.activated, timeout=5000),
            qtbot.waitSignal(first.link_received, timeout=5000) as received,
        ):
            assert second.acquire(link=LINK) is False
        assert received.args == [LINK]
    finally:
        first.release()
        second.release()


def test_a_second_launch_with_a_bad_link_only_raises_the_window(
    qtbot: QtBot, tmp_path: Path
) -> None:
    key = instance_key(tmp_path / "data", "alice")
    first = SingleInstance(key)
    second = SingleInstance(key)
    links: list[str] = []
    first.link_received.connect(links.append)
    try:
        assert first.acquire() is True
        with qtbot.waitSignal(first.activated, timeout=5000):
            assert second.acquire(link="https://evil.example/") is False
        assert links == []
    finally:
        first.release()
        second.release()


def _send(name: str, data: bytes) -> QLocalSocket:
    sock = QLocalSocket()
    sock.connectToServer(name)
    assert sock.waitForConnected(5000)
    sock.write(QByteArray(data))
    sock.flush()
    sock.waitForBytesWritten(5000)  # False when flush() wrote it all already
    return sock


def test_garbage_on_the_channel_is_ignored_without_its_content(
    qtbot: QtBot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = SingleInstance(instance_key(tmp_path / "data", "alice"))
    links: list[str] = []
    first.link_received.connect(links.append)
    sockets: list[QLocalSocket] = []
    try:
        assert first.acquire() is True
        assert first.name is not None
        secret = "bob@secret.example"
        garbage = (
            b"hello "
            + secret.encode()
            + b"\n"
            + link_message(f"messenger://add?server=https%3A%2F%2Fx.org&account={secret}")
            + b"link \xff\xfe"
            + secret.encode()
            + b"\n"
            + b"link "
            + secret.encode()
            + b"\n"
        )
        with caplog.at_level(logging.INFO, logger="ui.platform.single_instance"):
            # A valid link after the garbage on the same connection: once it
            # arrives, every earlier line was read.
            sockets.append(_send(first.name, garbage + link_message(LINK)))
            qtbot.waitUntil(lambda: links == [LINK], timeout=5000)
            # A line over the cap (with or without its end) closes that connection.
            long = _send(first.name, b"link " + b"a" * (MAX_LINE + 10) + b"\n")
            sockets.append(long)
            endless = _send(first.name, b"x" * (MAX_LINE * 2))
            sockets.append(endless)
            qtbot.waitUntil(
                lambda: (
                    long.state() == QLocalSocket.LocalSocketState.UnconnectedState
                    or long.waitForDisconnected(10)
                ),
                timeout=5000,
            )
            qtbot.waitUntil(
                lambda: (
                    endless.state() == QLocalSocket.LocalSocketState.UnconnectedState
                    or endless.waitForDisconnected(10)
                ),
                timeout=5000,
            )
            # The channel still works afterwards.
            with qtbot.waitSignal(first.activated, timeout=5000):
                sockets.append(_send(first.name, ACTIVATE))
        assert links == [LINK]
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 6, warnings
        assert not any(secret in w or "secret" in w or "aaaa" in w for w in warnings)
        assert not any("messenger://" in r.getMessage() for r in caplog.records)
    finally:
        for sock in sockets:
            sock.abort()
            sock.deleteLater()
        first.release()
