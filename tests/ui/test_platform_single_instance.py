"""One instance per profile (ui.platform.single_instance), with real local sockets."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from ui.platform.single_instance import (
    SingleInstance,
    instance_key,
    socket_directory,
    socket_name,
)


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
