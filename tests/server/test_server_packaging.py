"""The files in ``packaging/server/`` are valid: the example configuration, the unit.

The nginx configuration is checked with ``nginx -t`` and run for real in
``tests/integration/test_tls_proxy.py``. The systemd unit is checked with
``systemd-analyze verify`` and scored with ``systemd-analyze security``
(offline); both need systemd-analyze, which Debian and Ubuntu install with
systemd, so its absence fails the test.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from messenger.server.config import _FILE_KEYS, ServerConfig, load_config

PACKAGING = Path(__file__).parents[2] / "packaging" / "server"
UNIT = PACKAGING / "systemd" / "messenger-server.service"
INSTALLED_PROGRAM = "/opt/messenger-server/bin/messenger-server"


def test_the_example_configuration_names_every_option_and_loads() -> None:
    path = PACKAGING / "server.toml"
    document = tomllib.loads(path.read_text())
    named = {(section, key) for section, table in document.items() for key in table}
    assert named == set(_FILE_KEYS), set(_FILE_KEYS) ^ named
    assert set(_FILE_KEYS.values()) == {f.name for f in dataclasses.fields(ServerConfig)}
    config = load_config(path, {})
    assert config.trust_forwarded_for and config.signup_policy == "invite"
    assert config.data_dir == Path("/var/lib/messenger")
    # Every other value is the server's default.
    defaults = ServerConfig()
    different = {
        f.name
        for f in dataclasses.fields(ServerConfig)
        if getattr(config, f.name) != getattr(defaults, f.name)
    }
    assert different == {"trust_forwarded_for", "signup_policy", "data_dir"}


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return found


def _rendered_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's messenger-server.

    ``verify`` checks that the program exists; everything else is unchanged.
    """
    program = Path(sys.executable).with_name("messenger-server")
    assert program.exists(), program
    text = UNIT.read_text()
    assert INSTALLED_PROGRAM in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED_PROGRAM, str(program)))
    return unit


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = _rendered_unit(tmp_path)
    result = subprocess.run(
        [_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify warns about unknown keys and bad values without failing: no output at all.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
    text = UNIT.read_text()
    for line in (
        "DynamicUser=yes",
        "StateDirectory=messenger",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "MemoryDenyWriteExecute=yes",
    ):
        assert line in text, line


def test_the_systemd_unit_is_well_sandboxed(tmp_path: Path) -> None:
    unit = _rendered_unit(tmp_path)
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    # 0 is a fully locked-down service, 10 an unprotected one; "OK" is below 4.
    assert float(match.group(1)) <= 2.0, result.stdout


def test_the_admin_wrapper_is_valid_shell() -> None:
    script = PACKAGING / "messenger-admin"
    assert script.stat().st_mode & 0o111
    subprocess.run(["sh", "-n", str(script)], check=True, timeout=30)
    text = script.read_text()
    # The same user and state directory as the unit.
    assert "--property=User=messenger" in text and "User=messenger" in UNIT.read_text()
    assert "--property=StateDirectory=messenger messenger/backups" in text
