"""The desktop workflow, the Flatpak manifest and the Inno Setup script, checked as text.

None of them can run here (GitHub's macOS/Windows runners, a Flatpak runtime
from Flathub): these checks catch what can be caught without running them —
the YAML parses, every job builds, smoke-runs and uploads, signing reads its
secrets from the environment only, every shell step is valid bash, and every
file they name exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "desktop.yml"
FLATPAK = ROOT / "packaging" / "flatpak" / "org.example.Messenger.yml"
ISS = ROOT / "packaging" / "windows" / "messenger.iss"
METAINFO = ROOT / "resources" / "org.example.Messenger.metainfo.xml"
REPO_PATH = re.compile(r"\b((?:packaging|resources)/[\w./-]*\w)")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps = job["steps"]
    assert isinstance(steps, list) and steps
    return steps


def _shell(job: dict[str, Any], step: dict[str, Any]) -> str:
    default = job.get("defaults", {}).get("run", {}).get("shell", "bash")
    return str(step.get("shell", default))


def test_workflow_builds_smokes_and_uploads_on_three_systems() -> None:
    workflow = _load(WORKFLOW)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    jobs = workflow["jobs"]
    assert {job["runs-on"] for job in jobs.values()} == {
        "ubuntu-latest",
        "macos-latest",
        "windows-latest",
    }
    for name, job in jobs.items():
        steps = _steps(job)
        for step in steps:
            assert ("uses" in step) != ("run" in step), (name, step)
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
        runs = "\n".join(str(step.get("run", "")) for step in steps)
        assert "packaging/smoke_bundle.py" in runs, name
        assert "--server-from-bundle" in runs, name
        assert any(step.get("uses", "").startswith("actions/upload-artifact@") for step in steps)
    linux = "\n".join(str(s.get("run", "")) for s in _steps(jobs["linux"]))
    assert "packaging/linux/build-deb.sh" in linux
    assert "xvfb-run" in linux
    assert "apt-get install -y ./dist/messenger_" in linux
    macos = "\n".join(str(s.get("run", "")) for s in _steps(jobs["macos"]))
    for tool in ("codesign", "hdiutil create", "xcrun notarytool submit", "xcrun stapler"):
        assert tool in macos, tool
    windows = "\n".join(str(s.get("run", "")) for s in _steps(jobs["windows"]))
    assert "packaging\\windows\\messenger.iss" in windows
    assert windows.count("signtool") >= 2


def test_secrets_reach_steps_only_through_env() -> None:
    text = WORKFLOW.read_text("utf-8")
    for job in _load(WORKFLOW)["jobs"].values():
        for step in _steps(job):
            assert "secrets." not in str(step.get("run", "")), step["name"]
            for value in step.get("env", {}).values():
                if "secrets." in str(value):
                    assert re.fullmatch(r"\$\{\{ secrets\.[A-Z0-9_]+ \}\}", str(value)), value
    assert "secrets." in text  # the signing steps do read them


def test_bash_steps_are_valid_bash() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    for job in _load(WORKFLOW)["jobs"].values():
        for step in _steps(job):
            if "run" in step and _shell(job, step) == "bash":
                result = subprocess.run(
                    [bash, "-n"], input=step["run"], capture_output=True, text=True, check=False
                )
                assert result.returncode == 0, (step.get("name"), result.stderr)


def test_files_named_by_the_packaging_exist() -> None:
    texts = [WORKFLOW.read_text("utf-8"), FLATPAK.read_text("utf-8")]
    named = {match for text in texts for match in REPO_PATH.findall(text)}
    named |= {
        p.replace("\\", "/") for p in re.findall(r"packaging\\[\w\\.]+", WORKFLOW.read_text())
    }
    assert "packaging/messenger.spec" in named
    missing = [p for p in sorted(named) if not (ROOT / p).exists()]
    assert not missing, missing


def test_flatpak_manifest_matches_the_metainfo() -> None:
    manifest = _load(FLATPAK)
    app_id = ET.parse(METAINFO).getroot().findtext("id")
    assert manifest["app-id"] == app_id == METAINFO.name.removesuffix(".metainfo.xml")
    assert manifest["command"] == "messenger"
    assert {"--share=network", "--socket=wayland", "--socket=fallback-x11"} <= set(
        manifest["finish-args"]
    )
    (module,) = manifest["modules"]
    assert module["buildsystem"] == "simple"
    (source,) = module["sources"]
    assert source["type"] == "archive"
    # relative to the manifest: the archive of the Linux bundle in dist/
    assert (FLATPAK.parent / source["path"]).resolve() == (
        ROOT / "dist" / "messenger-linux-x86_64.tar.gz"
    )
    commands = "\n".join(module["build-commands"])
    for installed in (
        "/app/bin/messenger",
        "/app/share/applications/${FLATPAK_ID}.desktop",
        "/app/share/metainfo/${FLATPAK_ID}.metainfo.xml",
        "/app/share/icons/hicolor/",
    ):
        assert installed in commands, installed


def test_inno_setup_script() -> None:
    text = ISS.read_text("utf-8")
    root = (ISS.parent / "../..").resolve()
    assert root == ROOT
    icon = re.search(r"^SetupIconFile=\{#Root\}\\(.+)$", text, re.M)
    assert icon is not None and (ROOT / icon.group(1).replace("\\", "/")).is_file()
    assert 'Source: "{#Root}\\dist\\messenger\\*"' in text
    assert 'Subkey: "Software\\Classes\\messenger\\shell\\open\\command"' in text
    assert "PrivilegesRequired=lowest" in text
