"""A real window under Xvfb: start the app, sign up, send a message, quit cleanly.

``python -m ui`` runs as a subprocess under ``xvfb-run`` with the xcb
platform (not offscreen), a fresh data directory, and ``MESSENGER_UI_SMOKE=1``
(``ui.smoke``), which fills in the onboarding screen against a real local
server, opens the main window, writes to a second account, and quits
through the app's own quit. The second account, made here through the
public client API, must receive the message. Xvfb missing is a failure, not
a skip (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from messenger.client import MessengerClient, start_local_server
from tests.client.helpers import FAST_KDF, PASSPHRASE
from ui.smoke import HANDLE, MESSAGE, TARGET_ENV

ROOT = Path(__file__).resolve().parents[2]
APP_TIMEOUT = 240


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def _xvfb_run() -> str:
    found = shutil.which("xvfb-run")
    assert found and shutil.which("Xvfb"), (
        "Xvfb is needed for the real-window smoke test: apt-get install xvfb xauth"
    )
    return found


def _app_env(target: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "QT_"))}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env.update(
        {
            "QT_QPA_PLATFORM": "xcb",
            "MESSENGER_UI_SMOKE": "1",
            TARGET_ENV: target,
            # never the user's real keyring from a test
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
    )
    return env


async def _smoke(tmp_path: Path) -> None:
    xvfb_run = _xvfb_run()
    async with start_local_server(tmp_path / "server") as url:
        bob = await MessengerClient.create(
            "bob", PASSPHRASE, data_dir=tmp_path / "bob", kdf=FAST_KDF
        )
        try:
            info = await bob.create_account(url, "bob")
            assert info.address is not None
            app = await asyncio.create_subprocess_exec(
                xvfb_run,
                "-a",
                "-s",
                "-screen 0 1366x768x24",
                sys.executable,
                "-m",
                "ui",
                "--data-dir",
                str(tmp_path / "app"),
                "--profile",
                "smoke",
                "--server",
                url,
                env=_app_env(info.address),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                stdout, stderr = await asyncio.wait_for(app.communicate(), APP_TIMEOUT)
            except TimeoutError:
                app.kill()
                stdout, stderr = await app.communicate()
                raise AssertionError(
                    f"the app did not finish:\n{stdout.decode()}\n{stderr.decode()}"
                ) from None
            output = stdout.decode()
            assert app.returncode == 0, f"{output}\n{stderr.decode()}"
            lines = [line for line in output.splitlines() if line.startswith("smoke: ")]
            assert lines == [
                "smoke: window shown on xcb",
                "smoke: signed up",
                "smoke: main window shown",
                "smoke: message sent",
                "smoke: quit with status 0",
            ], output

            # Bob receives it, from the account the app signed up.
            await bob.start()
            deadline = asyncio.get_running_loop().time() + 60
            received: list[str] = []
            while MESSAGE not in received:
                assert asyncio.get_running_loop().time() < deadline, received
                await asyncio.sleep(0.1)
                for chat in await bob.conversations():
                    received = [
                        view.message.body or ""
                        for view in await bob.messages(chat.id)
                        if not view.message.outgoing
                    ]
            chat = (await bob.conversations())[0]
            sender = next(v for v in await bob.messages(chat.id) if v.message.body == MESSAGE)
            assert sender.sender_name.startswith(HANDLE)
        finally:
            await bob.close()

    # The app left its log, private, and nothing of the message in it.
    log = tmp_path / "app" / "logs" / "ui.log"
    assert log.stat().st_mode & 0o077 == 0
    assert MESSAGE not in log.read_text()


def test_sign_up_and_send_in_a_real_window(tmp_path: Path, no_keyring: None) -> None:
    asyncio.run(_smoke(tmp_path))
