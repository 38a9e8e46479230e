"""The import rules of the architecture guide, enforced by an AST walk.

See ../shared/design/architecture.md, "The layers". Each package may import
only what its row allows; the MLS core in particular stays sans-I/O: no
clock, no randomness of its own, no sockets, files or databases.

The desktop app goes further than packages: ``ui/`` may import from
``messenger`` only ``from messenger.client import <name>`` with a name in
``messenger.client.__all__`` -- no submodule (``messenger.client.store``),
no ``import messenger.client`` (whose attributes reach the machinery), no
``*``. Every ``.py`` file under ``ui/`` is checked as soon as it exists.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STDLIB = frozenset(sys.stdlib_module_names)

# Standard-library modules that would give the sans-I/O core a clock, its own
# randomness, or I/O.
MLS_FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio",
        "datetime",
        "http",
        "io",
        "os",
        "random",
        "secrets",
        "select",
        "selectors",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "threading",
        "time",
        "urllib",
    }
)

# package -> (allowed third-party top-level modules, allowed messenger/ui packages)
RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "messenger.mls": (frozenset({"cryptography"}), frozenset({"messenger.mls"})),
    "messenger.api": (frozenset(), frozenset({"messenger.api"})),
    "messenger.client": (
        # segno: only the command line's QR code of a device link, when the [app]
        # extra is installed (messenger/client/linking/commands.py falls back to text).
        # PIL: attachment thumbnails, decoded with a pixel limit (docs/attachments.md §5).
        frozenset(
            {
                "httpx",
                "httpx_ws",
                "sqlcipher3",
                "keyring",
                "platformdirs",
                "cryptography",
                "segno",
                "PIL",
            }
        ),
        frozenset({"messenger.client", "messenger.mls", "messenger.api"}),
    ),
    "messenger.server": (
        frozenset(
            {
                "starlette",
                "uvicorn",
                "websockets",
                "aiosqlite",
                "asyncpg",
                "cryptography",
                "anyio",
                "prometheus_client",
            }
        ),
        frozenset({"messenger.server", "messenger.api", "messenger.mls"}),
    ),
    "ui": (
        frozenset({"PySide6", "qasync", "segno", "desktop_notifier"}),
        frozenset({"ui", "messenger.client"}),
    ),
}


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    base = ROOT.joinpath(*package.split("."))
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            yield node.lineno, name


def _is_within(name: str, packages: frozenset[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _violations(package: str) -> list[str]:
    third_party, internal = RULES[package]
    found: list[str] = []
    for module, path in _modules(package):
        for lineno, name in _imports(module, path):
            top = name.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{lineno} imports {name}"
            if top in ("messenger", "ui"):
                if not _is_within(name, internal) and name != "messenger":
                    found.append(where)
            elif top in STDLIB or top == "__future__":
                if package == "messenger.mls" and top in MLS_FORBIDDEN_STDLIB:
                    found.append(where + " (the MLS core is sans-I/O)")
            elif top not in third_party:
                found.append(where)
    return found


def _client_exports() -> frozenset[str]:
    import messenger.client

    return frozenset(messenger.client.__all__)


def _ui_name_violations(source: str, filename: str) -> list[str]:
    """Imports from ``messenger`` in a ``ui`` module that are not public client names."""
    exports = _client_exports()
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "messenger":
                    found.append(
                        f"{filename}:{node.lineno} imports {alias.name} "
                        "(use `from messenger.client import <name>`)"
                    )
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "messenger.client":
                for alias in node.names:
                    if alias.name not in exports:
                        found.append(
                            f"{filename}:{node.lineno} imports {alias.name} from "
                            "messenger.client, which does not export it"
                        )
            elif node.module.split(".")[0] == "messenger":
                found.append(
                    f"{filename}:{node.lineno} imports from {node.module} "
                    "(only `from messenger.client import <name>` is allowed)"
                )
    return found


def test_ui_imports_only_public_client_names() -> None:
    found: list[str] = []
    for _, path in _modules("ui"):
        found += _ui_name_violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == []


def test_the_ui_name_checker_sees_violations() -> None:
    """The name rule must catch machinery and submodules (so the test above can fail)."""
    good = (
        "from __future__ import annotations\n"
        "from PySide6.QtCore import QObject\n"
        "from messenger.client import MessengerClient, ConversationUpdated\n"
        "from .bridge import Bridge\n"
    )
    assert _ui_name_violations(good, "ui/good.py") == []
    bad = (
        "from messenger.client import MessengerClient, Store\n"
        "from messenger.client.store import AsyncStore\n"
        "from messenger.client import *\n"
        "import messenger.client\n"
        "from messenger import client\n"
        "def f():\n"
        "    from messenger.client.sync import inbound\n"
    )
    found = _ui_name_violations(bad, "ui/bad.py")
    assert [line.split(" ")[0] for line in found] == [
        "ui/bad.py:1",
        "ui/bad.py:2",
        "ui/bad.py:3",
        "ui/bad.py:4",
        "ui/bad.py:5",
        "ui/bad.py:7",
    ]
    assert "Store" in found[0] and "MessengerClient" not in found[0]


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_the_layering(package: str) -> None:
    assert _violations(package) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The walk must catch a forbidden import (so the test above can fail)."""
    source = "from __future__ import annotations\nimport os\nfrom ..client import x\n"
    path = tmp_path / "bad.py"
    path.write_text(source)
    names = [name for _, name in _imports("messenger.mls.bad", path)]
    assert names == ["__future__", "os", "messenger.client"]
    assert not _is_within("messenger.client", RULES["messenger.mls"][1])
    assert "os" in MLS_FORBIDDEN_STDLIB


def test_mls_core_exists_and_is_checked() -> None:
    assert any(True for _ in _modules("messenger.mls"))
