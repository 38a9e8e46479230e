"""``scripts/run.sh``: the README's run command.

Without a display it says so in one sentence and runs the CLI demo; with
Qt's libraries missing it names the Debian packages (and installs them with
apt-get as root: a fake apt-get on PATH records the call); otherwise it
opens the app (``--help`` here, so that no window is needed).

The project is already installed in ``.venv`` when the tests run
(``scripts/test.sh`` installs it), so the install stamp is refreshed to let
run.sh skip pip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "run.sh"
NO_DISPLAY_SENTENCE = (
    "There is no display here (DISPLAY and WAYLAND_DISPLAY are unset), "
    "so this runs the command-line demo instead of the app."
)
PACKAGES = (
    "libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon0 "
    "libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 "
    "libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libwayland-cursor0 libwayland-egl1 "
    "fonts-dejavu-core"
)


def test_the_packages_are_the_apps_own_list() -> None:
    from ui.__main__ import QT_PACKAGES

    assert PACKAGES == QT_PACKAGES


@pytest.fixture(autouse=True)
def installed() -> None:
    stamp = ROOT / ".venv" / ".run-installed"
    assert (ROOT / ".venv" / "bin" / "python").exists(), "run scripts/test.sh first"
    stamp.touch()


def _env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("MESSENGER_QT_CHECK", None)
    env.pop("QT_QPA_PLATFORM", None)
    env["MESSENGER_HOME"] = str(tmp_path / "home")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _fake_bin(tmp_path: Path, uid: int) -> Path:
    """``id -u`` says ``uid``; ``apt-get`` records its arguments and 'installs'."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f'#!/bin/sh\n[ "$1" = -u ] && echo {uid} || /usr/bin/id "$@"\n')
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path}/apt.log\n'
        f'[ "$1" = install ] && touch {tmp_path}/installed\nexit 0\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def _run(
    args: list[str], env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_without_a_display_it_says_so_and_runs_the_cli_demo(tmp_path: Path) -> None:
    result = _run([], _env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == NO_DISPLAY_SENTENCE
    assert "Server: http://127.0.0.1:" in result.stdout  # the CLI demo's own output
    assert "Safety number (the same on both sides):" in result.stdout


def test_missing_qt_libraries_are_named_with_their_packages(tmp_path: Path) -> None:
    bin_dir = _fake_bin(tmp_path, uid=1000)
    env = _env(
        tmp_path,
        DISPLAY=":99",
        MESSENGER_QT_CHECK="echo libxcb-cursor.so.0; echo libxkbcommon-x11.so.0",
        PATH=f"{bin_dir}:{os.environ['PATH']}",
    )
    result = _run([], env, timeout=60)
    assert result.returncode == 1
    assert "libxcb-cursor.so.0 libxkbcommon-x11.so.0" in result.stderr
    assert PACKAGES in result.stderr
    assert f"Install them with: sudo apt-get install {PACKAGES}" in result.stderr
    assert not (tmp_path / "apt.log").exists()  # not root: nothing installed
    assert "Traceback" not in result.stderr


def test_as_root_it_installs_the_packages_then_opens_the_app(tmp_path: Path) -> None:
    bin_dir = _fake_bin(tmp_path, uid=0)
    env = _env(
        tmp_path,
        DISPLAY=":99",
        MESSENGER_QT_CHECK=f"[ -e {tmp_path}/installed ] || echo libxcb-cursor.so.0",
        PATH=f"{bin_dir}:{os.environ['PATH']}",
    )
    result = _run(["--help"], env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Installing them with apt-get" in result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == ["update -qq", f"install -y -qq {PACKAGES}"]
    assert "usage: messenger" in result.stdout  # then it ran python -m ui --local-server --help


def test_with_a_display_and_qt_present_it_opens_the_app(tmp_path: Path) -> None:
    env = _env(tmp_path, DISPLAY=":99")  # the built-in check: nothing is missing here
    result = _run(["--help"], env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: messenger" in result.stdout
    assert "--local-server" in result.stdout
    assert NO_DISPLAY_SENTENCE not in result.stdout
