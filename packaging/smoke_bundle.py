"""Smoke-run a built (or installed) desktop app: sign up, send a message, quit.

::

    python packaging/smoke_bundle.py PROGRAM [--platform offscreen|xcb|native]
                                     [--xvfb] [--server-from-bundle]

Runs from a source checkout with the project installed (``pip install -e .``),
against ``PROGRAM``: ``dist/messenger/messenger``, ``/usr/bin/messenger``,
``dist/Messenger.app/Contents/MacOS/messenger`` or ``dist\\messenger\\messenger.exe``.

1. A server on 127.0.0.1 with SQLite in a temporary folder: with
   ``--server-from-bundle``, ``PROGRAM -m messenger.server`` (the bundle's own
   server, as "run a server on this computer" starts it); otherwise this
   Python's ``python -m messenger.server``.
2. A second account, "bob", made here through the client API.
3. ``PROGRAM`` with ``MESSENGER_UI_SMOKE=1`` (``ui/smoke.py``): it fills in the
   onboarding screen against that server, signs up, opens the main window,
   writes to bob, and quits through the app's own quit (exit status 0).
4. Bob must receive the message.

Prints the program's ``smoke:`` lines, then ``time-to-window: S`` (seconds
from starting ``PROGRAM`` to its ``window shown`` line) and ``ok``. Exits
non-zero, with the app's output, on any failure. The app gets a temporary
HOME and data folder and the keyring's fail backend: nothing of the user's
is touched. Used by ``tests/packaging/test_deb.py`` and
``.github/workflows/desktop.yml``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import keyring
import keyring.backends.fail

from messenger.client import MessengerClient, start_local_server
from messenger.client.store import ScryptParams
from ui.smoke import MESSAGE, TARGET_ENV

#: What ui/smoke.py prints, in order, when everything works.
EXPECTED = [
    "smoke: window shown on {platform}",
    "smoke: signed up",
    "smoke: main window shown",
    "smoke: message sent",
    "smoke: quit with status 0",
]
TIMEOUT = 240.0
#: A cheap key derivation for the throwaway account made here.
FAST_KDF = ScryptParams(n=2**10, r=8, p=1, allow_weak=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env(home: Path) -> dict[str, str]:
    """This environment without MESSENGER_*/QT_*/XDG_* and the session bus, HOME in ``home``.

    DISPLAY stays (``xvfb-run python smoke_bundle.py ... --platform xcb``).
    """
    drop = ("MESSENGER_", "QT_", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for name in ("DBUS_SESSION_BUS_ADDRESS", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["XDG_RUNTIME_DIR"] = str(home / "run")
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    if sys.platform == "win32":
        env["APPDATA"] = str(home / "AppData" / "Roaming")
        env["LOCALAPPDATA"] = str(home / "AppData" / "Local")
    # never the user's real keyring from a smoke run
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return env


@contextlib.asynccontextmanager
async def _bundle_server(program: Path, work: Path) -> AsyncIterator[str]:
    """``PROGRAM -m messenger.server`` on a free loopback port; its URL."""
    port = _free_port()
    env = _clean_env(work / "server-home")
    env.update(
        {
            "MESSENGER_HOST": "127.0.0.1",
            "MESSENGER_PORT": str(port),
            "MESSENGER_DATA_DIR": str(work / "server"),
            "MESSENGER_POW_DIFFICULTY": "16",
            "MESSENGER_LOG_LEVEL": "WARNING",
        }
    )
    process = subprocess.Popen(  # noqa: S603 (the program under test)
        [str(program), "-m", "messenger.server"], env=env, stdin=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the bundle's server exited with {process.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url + "/health")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the bundle's server did not start")
                await asyncio.sleep(0.1)
        print(f"server: {program} -m messenger.server", flush=True)
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 20)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


@contextlib.contextmanager
def _xvfb() -> Iterator[str]:
    """An Xvfb server of its own (started here, so that the time to the window
    does not include the X server's start); its DISPLAY."""
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        raise RuntimeError("--xvfb needs Xvfb (apt-get install xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen(  # noqa: S603
        [xvfb, "-displayfd", str(write), "-screen", "0", "1366x768x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as displayfd:
            number = displayfd.readline().strip()  # written once Xvfb accepts clients
        if not number.isdigit():
            raise RuntimeError(f"Xvfb did not start (exit status {server.poll()})")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(20)


async def _run_app(
    program: Path, platform: str, xvfb: bool, work: Path, url: str, target: str
) -> float:
    """Runs the app's smoke mode; the seconds from launch to its shown window."""
    env = _clean_env(work / "app-home")
    env.update({"MESSENGER_UI_SMOKE": "1", TARGET_ENV: target})
    if platform != "native":
        env["QT_QPA_PLATFORM"] = platform
    with contextlib.ExitStack() as stack:
        if xvfb:
            env["DISPLAY"] = stack.enter_context(_xvfb())
        return await _watch_app(program, platform, env, work, url)


async def _watch_app(
    program: Path, platform: str, env: dict[str, str], work: Path, url: str
) -> float:
    command = [str(program), "--data-dir", str(work / "app"), "--profile", "smoke"]
    started = time.monotonic()
    app = await asyncio.create_subprocess_exec(
        *command,
        "--server",
        url,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert app.stdout is not None
    lines: list[str] = []
    shown_after: float | None = None

    async def read() -> None:
        nonlocal shown_after
        assert app.stdout is not None
        async for raw in app.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if line.startswith("smoke: window shown") and shown_after is None:
                shown_after = time.monotonic() - started
            if line.startswith("smoke: "):
                print(line, flush=True)

    try:
        await asyncio.wait_for(asyncio.gather(read(), app.wait()), TIMEOUT)
    except TimeoutError:
        app.kill()
        await app.wait()
        raise RuntimeError("the app did not finish:\n" + "\n".join(lines)) from None
    output = "\n".join(lines)
    if app.returncode != 0:
        raise RuntimeError(f"the app exited with {app.returncode}:\n{output}")
    smoke = [line for line in lines if line.startswith("smoke: ")]
    shown = smoke[0].removeprefix("smoke: window shown on ") if smoke else ""
    if platform != "native" and shown != platform:
        raise RuntimeError(f"the window was shown on {shown!r}, not {platform}:\n{output}")
    expected = [line.format(platform=shown) for line in EXPECTED]
    if smoke != expected:
        raise RuntimeError(f"unexpected smoke steps:\n{output}")
    assert shown_after is not None
    return shown_after


async def _received(bob: MessengerClient) -> bool:
    for chat in await bob.conversations():
        for view in await bob.messages(chat.id):
            if not view.message.outgoing and view.message.body == MESSAGE:
                return True
    return False


async def smoke(program: Path, platform: str, xvfb: bool, server_from_bundle: bool) -> float:
    """The whole smoke run; the time to the shown window in seconds."""
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    with tempfile.TemporaryDirectory(prefix="messenger-smoke-") as tmp:
        work = Path(tmp)
        server = (
            _bundle_server(program, work)
            if server_from_bundle
            else start_local_server(work / "server")
        )
        async with server as url:
            bob = await MessengerClient.create(
                "bob", "correct horse battery staple", data_dir=work / "bob", kdf=FAST_KDF
            )
            try:
                info = await bob.create_account(url, "bob")
                assert info.address is not None
                shown_after = await _run_app(program, platform, xvfb, work, url, info.address)
                await bob.start()
                deadline = time.monotonic() + 60
                while not await _received(bob):
                    if time.monotonic() > deadline:
                        raise RuntimeError("bob did not receive the app's message")
                    await asyncio.sleep(0.1)
                print("smoke: bob received the message", flush=True)
            finally:
                await bob.close()
    return shown_after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("program", type=Path, help="the app to run")
    parser.add_argument(
        "--platform",
        default="offscreen",
        help="QT_QPA_PLATFORM for the app: offscreen (default), xcb, ... or native (unset)",
    )
    parser.add_argument("--xvfb", action="store_true", help="run the app on an Xvfb display")
    parser.add_argument(
        "--server-from-bundle",
        action="store_true",
        help="run the server as PROGRAM -m messenger.server (the bundle's own server)",
    )
    args = parser.parse_args(argv)
    try:
        shown_after = asyncio.run(
            smoke(args.program, args.platform, args.xvfb, args.server_from_bundle)
        )
    except RuntimeError as exc:
        print(f"smoke failed: {exc}", file=sys.stderr)
        return 1
    print(f"time-to-window: {shown_after:.2f}")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
