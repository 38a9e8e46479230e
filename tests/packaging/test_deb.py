"""The Linux package, end to end: build, install with apt, smoke-run, remove.

``packaging/linux/build-deb.sh`` builds the PyInstaller bundle and the
``.deb`` (one build, a few minutes); the test checks the package's contents
and control file, installs it with ``apt-get install``, checks that every
bundled binary finds its libraries, then runs the installed
``/usr/bin/messenger`` through ``packaging/smoke_bundle.py`` offscreen and on
Xvfb: against the bundle's own server (``messenger -m messenger.server``) it
signs up, sends a message that a second profile receives, and exits 0. The
bundle's server, which carries no asyncpg, refuses a ``postgresql://`` URL
with a sentence naming ``messenger[server]``.
Finally ``apt-get remove`` must take ``/opt/messenger`` away.

It prints the unpacked size (target ≤200 MB, asserted) and the time from
launch to the shown window (printed only: no timed assertions). It needs
root (or password-less sudo), apt-get, dpkg-deb, desktop-file-validate,
appstreamcli, Xvfb and PyInstaller: in CI (``CI=true``) a missing one is a
failure, elsewhere a skip naming it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.__main__ import QT_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
BUILD_DEB = ROOT / "packaging" / "linux" / "build-deb.sh"
SMOKE = ROOT / "packaging" / "smoke_bundle.py"
PREFIX = Path("/opt/messenger")
MAX_BYTES = 200 * 1024 * 1024
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
#: Qt's run-time libraries for the xcb platform (the architecture guide's list).
QT_RUNTIME = set(QT_PACKAGES.split())

pytestmark = pytest.mark.slow


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the .deb test needs {what} (.ci/run installs it)")
    pytest.skip(f"the .deb test needs {what}")


def _as_root() -> list[str]:
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None or subprocess.run([sudo, "-n", "true"], check=False).returncode != 0:
        _missing("root or password-less sudo (it installs the package)")
    return [str(sudo), "-n"]


def _run(command: list[str], timeout: float, **kwargs: object) -> str:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sys.platform != "linux":
        _missing("Linux")
    for tool in ("apt-get", "dpkg-deb", "desktop-file-validate", "appstreamcli", "Xvfb", "ldd"):
        if shutil.which(tool) is None:
            _missing(tool)
    if (
        subprocess.run(
            [sys.executable, "-m", "PyInstaller", "--version"], check=False, capture_output=True
        ).returncode
        != 0
    ):
        _missing("PyInstaller (pip install -e '.[packaging]')")
    work = tmp_path_factory.mktemp("deb")
    env = {**os.environ, "WORK_DIR": str(work / "build"), "PYTHON": sys.executable}
    out = _run(["bash", str(BUILD_DEB), str(work / "out")], timeout=1800, env=env, cwd=ROOT)
    path = Path(out.strip().splitlines()[-1])
    assert path.is_file() and path.name.endswith(".deb"), out
    return path


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Path]:
    root = _as_root()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run([*root, "apt-get", "install", "-y", "-q", str(deb)], timeout=600, env=env)
    try:
        yield Path("/usr/bin/messenger")
    finally:
        _run([*root, "apt-get", "remove", "-y", "-q", "messenger"], timeout=600, env=env)
        assert not PREFIX.exists(), "apt-get remove left /opt/messenger behind"


def test_package_contents(deb: Path) -> None:
    listing = _run(["dpkg-deb", "--contents", str(deb)], timeout=120)
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {"root/root"}, owners
    assert "/opt/messenger/messenger" in paths
    assert any(
        line.split()[5] == "./usr/bin/messenger" and "-> /opt/messenger/messenger" in line
        for line in listing.splitlines()
    )
    assert "/usr/share/applications/messenger.desktop" in paths
    assert "/usr/share/metainfo/org.example.Messenger.metainfo.xml" in paths
    assert "/usr/share/icons/hicolor/scalable/apps/messenger.svg" in paths
    for size in ICON_SIZES:
        assert f"/usr/share/icons/hicolor/{size}x{size}/apps/messenger.png" in paths
    # the server-only extras are not in the bundle
    assert not [p for p in paths if re.search(r"/(asyncpg|prometheus_client)(/|$)", p)]

    control = _run(["dpkg-deb", "--field", str(deb), "Depends"], timeout=60)
    depends = {item.strip().split()[0] for item in control.split(",")}
    assert depends >= QT_RUNTIME, sorted(QT_RUNTIME - depends)


def test_installed_app_runs(installed: Path, tmp_path: Path) -> None:
    size = int(_run(["du", "-sb", str(PREFIX)], timeout=120).split()[0])
    print(f"\nunpacked size of {PREFIX}: {size / 1024 / 1024:.1f} MiB")
    assert size <= MAX_BYTES, f"{PREFIX} is {size} bytes, over the 200 MB target"

    # every bundled binary finds its libraries (the Depends are complete)
    internal = PREFIX / "_internal"
    env = {**os.environ, "LD_LIBRARY_PATH": f"{internal}:{internal / 'PySide6/Qt/lib'}"}
    unresolved = []
    for binary in [PREFIX / "messenger", *internal.rglob("*.so*")]:
        if binary.is_file():
            result = subprocess.run(
                ["ldd", str(binary)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=60,
            )
            unresolved += [
                f"{binary}: {line.strip()}"
                for line in result.stdout.splitlines()
                if "not found" in line
            ]
    assert not unresolved, "\n".join(unresolved)

    # the bundle's server has no PostgreSQL backend, and says which install has one
    server_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MESSENGER_")},
        "MESSENGER_DATA_DIR": str(tmp_path / "server"),
        "MESSENGER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    refused = subprocess.run(
        [str(installed), "-m", "messenger.server"],
        capture_output=True,
        text=True,
        env=server_env,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert "messenger[server]" in refused.stdout + refused.stderr, refused.stderr

    for name, extra in (("offscreen", []), ("Xvfb (xcb)", ["--platform", "xcb", "--xvfb"])):
        out = _run(
            [sys.executable, str(SMOKE), str(installed), "--server-from-bundle", *extra],
            timeout=900,
            cwd=ROOT,
        )
        assert out.splitlines()[-1] == "ok", out
        assert "smoke: bob received the message" in out, out
        shown = re.search(r"^time-to-window: ([0-9.]+)$", out, re.M)
        assert shown is not None, out
        print(f"{name}: launch to shown window {shown.group(1)} s")
