"""The claim tokens of KeyPackages claimed but not yet put in a commit's intent.

A claim hands out, with each KeyPackage, a token only the claimer gets; a
commit that adds the KeyPackage's client presents it as evidence
(``CommitRequest.claims``), so that the commit can be sealed: it proves its
Adds without naming its committer (docs/metadata.md §3). The transport
records each claim's token here; the code that turns claimed KeyPackages
into an ``add`` intent takes them (:meth:`ClaimTokens.take`), and the
intent, persisted in the outbox, keeps them until the commit is accepted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

__all__ = ["ClaimTokens"]

#: Tokens of claims no intent took (a flow that failed after claiming) are
#: forgotten oldest first past this many KeyPackages.
_MAX_KEPT: Final = 1000


class ClaimTokens:
    """KeyPackage bytes → the tokens of its claims, oldest first, bounded."""

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: OrderedDict[bytes, list[bytes]] = OrderedDict()

    def record(self, key_package: bytes, token: bytes) -> None:
        """Remember the token of one claim of ``key_package``."""
        self._tokens.setdefault(key_package, []).append(token)
        self._tokens.move_to_end(key_package)
        while len(self._tokens) > _MAX_KEPT:
            self._tokens.popitem(last=False)

    def take(self, key_packages: Iterable[bytes]) -> tuple[bytes, ...]:
        """One token for each of ``key_packages`` claimed (oldest claim first), removed."""
        taken: list[bytes] = []
        for key_package in key_packages:
            tokens = self._tokens.get(key_package)
            if not tokens:
                continue
            taken.append(tokens.pop(0))
            if not tokens:
                del self._tokens[key_package]
        return tuple(taken)
