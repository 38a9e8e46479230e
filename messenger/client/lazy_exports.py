"""Package attributes imported on first use (PEP 562).

A package's ``__init__`` names what it exports and the module each name
comes from; :func:`lazy_exports` makes the module-level ``__getattr__`` and
``__dir__`` (PEP 562) that import that module when a name is first asked
for, and keep the value in the package's namespace so that the next lookup
is a plain attribute. Importing the package itself then costs nothing: the
desktop app shows its window from the store before the sync machinery
(MLS, HTTP, the OS keyring) is loaded.

For type checkers the package imports the same names under
``if TYPE_CHECKING:``; the ``__getattr__`` is installed only at run time,
so a misspelt name is still an error for mypy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str,
    namespace: MutableMapping[str, Any],
    sources: Mapping[str, tuple[str, ...]],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    ``sources`` maps a module (relative to ``package``, such as ``".errors"``)
    to the names it provides; ``namespace`` is the package's ``globals()``.
    """
    where = {name: module for module, names in sources.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
