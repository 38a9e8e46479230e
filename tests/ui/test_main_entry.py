"""``python -m ui`` / ``messenger``: arguments, the log, one instance per profile."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from messenger.client import MessengerClient
from tests.client.helpers import FAST_KDF
from tests.ui.conftest import Runner, wait_until
from ui.__main__ import parse_args
from ui.platform.lifecycle import configure_logging, log_path
from ui.platform.single_instance import instance_key, socket_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """keyring's fail backend, as on a machine without a desktop session."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def test_defaults() -> None:
    args = parse_args([])
    assert args.profile == "default"
    assert args.data_dir is None
    assert args.server is None
    assert not args.local_server
    assert not args.demo
    assert args.link is None


def test_options() -> None:
    args = parse_args(
        ["--profile", "work", "--data-dir", "/x/y", "--server", "https://chat.example"]
    )
    assert (args.profile, args.data_dir, args.server) == (
        "work",
        Path("/x/y"),
        "https://chat.example",
    )
    assert parse_args(["--local-server"]).local_server
    assert parse_args(["--demo"]).demo
    assert parse_args(["messenger://add?server=x"]).link == "messenger://add?server=x"


@pytest.mark.parametrize(
    "argv",
    [
        ["--server", "https://a", "--local-server"],
        ["--demo", "--server", "https://a"],
        ["--demo", "--local-server"],
        ["--unknown"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: messenger" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ui", "--help"],
        [str(Path(sys.executable).with_name("messenger")), "--help"],  # the GUI script
    ],
)
def test_help(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for option in ("--profile", "--data-dir", "--server", "--local-server", "--demo"):
        assert option in result.stdout
    assert result.stdout.startswith("usage: messenger")


def test_missing_qt_libraries_are_a_sentence_with_the_packages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ui.__main__ import QT_PACKAGES, main

    monkeypatch.delitem(sys.modules, "ui.platform.lifecycle")
    monkeypatch.setitem(sys.modules, "PySide6.QtWidgets", None)  # as when libEGL is missing
    assert main(["--profile", "alice"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Messenger cannot start: Qt's runtime libraries are missing")
    assert f"sudo apt-get install {QT_PACKAGES}" in err
    assert "Traceback" not in err


def test_the_log_is_private(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        path = configure_logging(tmp_path / "data")
        assert path == log_path(tmp_path / "data") == tmp_path / "data" / "logs" / "ui.log"
        logging.getLogger("ui.test").warning("a line")
        for handler in root.handlers:
            handler.flush()
        assert "a line" in path.read_text()
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()


# -- a second launch raises the first -------------------------------------------------------


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    run = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: a socket path is short
    try:
        yield run
    finally:
        shutil.rmtree(run, ignore_errors=True)


def _wait(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_launch_raises_the_first_and_exits_0(
    tmp_path: Path, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSENGER_")}
    env.update(
        {
            "QT_QPA_PLATFORM": "offscreen",
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
    )
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    command = [sys.executable, "-m", "ui", "--data-dir", str(data), "--profile", "alice"]
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    socket_path = Path(socket_name(instance_key(data, "alice")))
    log = log_path(data)

    first = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait("the first instance to listen", socket_path.exists)
        second = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode == 0, second.stderr
        assert "already running with profile 'alice'; its window was raised" in second.stdout
        _wait(
            "the first instance to be asked to raise its window",
            lambda: "asked to raise the window" in log.read_text(),
        )
        assert first.poll() is None  # the first keeps running

        # A launch with a messenger: link (the desktop's link handler) hands
        # the link to the running instance and exits 0.
        link = "messenger://add?server=https%3A%2F%2Fchat.example.org&account=ABCDEF"
        third = subprocess.run(
            [*command, link], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert third.returncode == 0, third.stderr
        _wait(
            "the first instance to receive the forwarded link",
            lambda: "another launch forwarded an invite link" in log.read_text(),
        )
        assert link not in log.read_text()  # the log never carries the link itself
        assert first.poll() is None

        # Another profile is another instance: it starts (and is stopped below).
        other = subprocess.Popen(
            [*command[:-1], "bob"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            bob_socket = Path(socket_name(instance_key(data, "bob")))
            _wait("the other profile's instance", bob_socket.exists)
        finally:
            other.send_signal(signal.SIGTERM)
            other.communicate(timeout=60)
        assert other.returncode == 128 + signal.SIGTERM

        first.send_signal(signal.SIGTERM)  # a clean quit, as at logout
        _out, err = first.communicate(timeout=60)
        assert first.returncode == 128 + signal.SIGTERM, err
        assert "Traceback" not in err
        assert f"exiting with status {128 + signal.SIGTERM}" in log.read_text()
        assert not socket_path.exists()  # released: the next launch is the instance
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()


# -- the demo -----------------------------------------------------------------------------------


def test_the_demo_opens_two_windows_already_chatting(
    tmp_path: Path, run: Runner, no_keyring: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from ui.demo import DEMO_PASSPHRASE, open_windows
    from ui.platform.lifecycle import quit_all
    from ui.views.main_window import MainWindow

    app = QApplication.instance()
    assert isinstance(app, QApplication)

    def main_windows() -> list[MainWindow]:
        return [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]

    async def scenario() -> int:
        task = asyncio.ensure_future(open_windows(tmp_path / "demo", app, kdf=FAST_KDF))
        try:
            await wait_until(lambda: len(main_windows()) == 2 or task.done(), timeout=90)
            assert not task.done(), task.result()
        finally:
            quit_all()  # also after a failure: no window or client is left behind
            status = await asyncio.wait_for(task, 60)
            for _ in range(10):  # the windows' deferred deletions, inside the loop
                app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
                await asyncio.sleep(0.01)
        return status

    quits = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # as ui.platform.lifecycle.make_application does
    try:
        assert run(scenario(), timeout=150) == 0
    finally:
        app.setQuitOnLastWindowClosed(quits)
    assert main_windows() == []
    out = capsys.readouterr().out
    assert "Preparing the demo" in out
    assert DEMO_PASSPHRASE in out

    async def check() -> None:
        alice = await MessengerClient.open("alice", DEMO_PASSPHRASE, data_dir=tmp_path / "demo")
        bob = await MessengerClient.open("bob", DEMO_PASSPHRASE, data_dir=tmp_path / "demo")
        try:
            assert [c.handle for c in await alice.contacts()] == ["bob"]
            assert [c.handle for c in await bob.contacts()] == ["alice"]
            (chat,) = await alice.conversations()
            texts = [v for v in await alice.messages(chat.id) if v.note is None]
            assert len(texts) == 3
            assert texts[1].reply_to is not None  # Bob's reply to Alice's first message
            assert [r.emoji for r in texts[2].reactions] == ["👍"]
        finally:
            await alice.close()
            await bob.close()

    run(check())


def test_without_the_app_extra_the_sentence_names_it(tmp_path: Path) -> None:
    """``pip install messenger`` without ``[app]``: a sentence, not a traceback."""
    code = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "qasync":
            raise ImportError(f"{name} is blocked by the test", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from ui.__main__ import main
sys.exit(main(["--data-dir", sys.argv[1], "--profile", "alice"]))
"""
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the desktop app's packages are not installed (qasync missing)" in result.stderr
    assert "pip install 'messenger[app]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started or written
