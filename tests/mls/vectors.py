"""Loading the mlswg conformance vectors in ``tests/mls/vectors/``.

Shared by every vector runner: :func:`load` reads a file, :func:`h` decodes
hex, :func:`assert_eq` names the intermediate value that differs, and
:func:`cases` gives ``pytest.param`` objects with ids like ``suite-1-case-0``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

__all__ = ["VECTORS_DIR", "assert_eq", "cases", "h", "load"]

VECTORS_DIR = Path(__file__).parent / "vectors"


@cache
def _load(name: str) -> tuple[dict[str, Any], ...]:
    path = VECTORS_DIR / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text())
    return tuple(data)


def load(name: str) -> list[dict[str, Any]]:
    """Every test case of ``vectors/<name>.json`` (the ``.json`` is optional)."""
    return list(_load(name))


def h(value: str | None) -> bytes:
    """Hex string (or ``None`` for an absent optional) to bytes."""
    return b"" if value is None else bytes.fromhex(value)


def assert_eq(name: str, got: object, want: object) -> None:
    """Fail naming ``name`` and showing both values (hex for bytes)."""
    if got != want:
        if isinstance(got, bytes | bytearray) and isinstance(want, bytes | bytearray):
            got, want = bytes(got).hex(), bytes(want).hex()
        pytest.fail(f"{name} differs:\n  got  {got!r}\n  want {want!r}", pytrace=False)


def cases(name: str, *, key: str = "cipher_suite") -> list[Any]:
    """``pytest.param`` per case, id ``suite-<n>-case-<i>`` (or ``case-<i>``).

    The case index counts within each suite, so ids stay stable when other
    suites are added to a file.
    """
    out: list[Any] = []
    per_suite: dict[object, int] = {}
    for tc in load(name):
        suite = tc.get(key)
        i = per_suite.get(suite, 0)
        per_suite[suite] = i + 1
        test_id = f"case-{i}" if suite is None else f"suite-{suite}-case-{i}"
        out.append(pytest.param(tc, id=test_id))
    return out
