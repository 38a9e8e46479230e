"""Choosing a new group's cipher suite from the members' KeyPackages (docs/pq-suites.md).

A group has one cipher suite (RFC 9420 §8.1, §17.1): every member's leaf,
and so every KeyPackage that adds one, is in it (§12.1.1). This client makes
groups in the hybrid post-quantum suite 0xF001 when every member can join
one, and in suite 1 otherwise (:data:`~.identity.GROUP_SUITES`, most wanted
first). The server answers a claim for an account in one suite for all its
clients, the first of the claimer's list that every client can provide
(:mod:`messenger.server.key_packages`), so a client from before suites
(suite 1 only) makes its whole account answer in suite 1.

:func:`claim_in_one_suite` claims account by account with the list, and
when an account answers lower down the list, claims the accounts that
answered higher up again in the lower suite. That costs each such account
one more claim: the KeyPackages of the first answer (one per client,
one-time ones unless the hourly share was used up) are never used, and
count against the claimer's claim limit and the account's hourly share of
one-time KeyPackages like any claim. Once one account answered in suite 1,
the others are claimed in suite 1 only, so at most the accounts before it
are claimed twice; this account's own other devices go first (a new
device can be old, and claims of one's own account are not held to the
one-time limits).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from .errors import ClientError
from .identity import GROUP_SUITES

__all__ = ["SuiteNotSupportedError", "claim_in_one_suite"]

#: Claims the KeyPackages of one account in the first of the suites that all
#: its clients provide; returns that suite and the KeyPackages (checked).
Claim = Callable[[str, Sequence[int]], Awaitable[tuple[int, list[bytes]]]]


class SuiteNotSupportedError(ClientError):
    """A member's app cannot join a group in the group's cipher suite."""

    default_user_message = "Someone's app does not support this conversation's encryption yet."

    def __init__(self, message: str = "", *, who: str | None = None) -> None:
        sentence = (
            None
            if who is None
            else f"{who}'s app does not support this conversation's encryption yet."
        )
        super().__init__(message, user_message=sentence)


async def claim_in_one_suite(
    claim: Claim, accounts: Sequence[str], *, suites: Sequence[int] | None = None
) -> tuple[int, dict[str, list[bytes]]]:
    """KeyPackages of each of ``accounts``, all in one suite of ``suites`` (default:
    :data:`~.identity.GROUP_SUITES`): the first that every account provides.
    Returns the suite and the KeyPackages by account.

    ``claim`` raises (e.g. NoKeyPackageError) when an account has none in the
    listed suites; that error passes through. With no accounts, the first
    suite. An answer in a suite that was not asked for is a bug of ``claim``
    (it must check the KeyPackages), so it raises ValueError.
    """
    wanted = tuple(GROUP_SUITES if suites is None else suites)
    if not wanted:
        raise ValueError("no cipher suite to claim in")
    found: dict[str, tuple[int, list[bytes]]] = {}
    pending = list(dict.fromkeys(accounts))
    while pending:
        account = pending.pop(0)
        suite, key_packages = await claim(account, wanted)
        if suite not in wanted:
            raise ValueError(f"a claim answered in suite 0x{suite:04X}, not in {wanted}")
        found[account] = (suite, key_packages)
        if suite != wanted[0]:
            # Lower down the list: from now on only this suite and lower ones, and
            # the accounts that answered higher up are claimed again.
            wanted = wanted[wanted.index(suite) :]
            again = [a for a, (s, _) in found.items() if s not in wanted or s != wanted[0]]
            pending = [a for a in again if a not in pending] + pending
    chosen = wanted[0]
    assert all(suite == chosen for suite, _ in found.values())
    return chosen, {account: found[account][1] for account in dict.fromkeys(accounts)}
