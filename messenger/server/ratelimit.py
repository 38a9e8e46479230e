"""Token-bucket rate limits per client address and per account.

Each key (an address, an account ID) has a bucket of ``burst`` tokens that
refills at ``rate`` tokens per second; a request takes one token or is
refused with :attr:`~messenger.api.errors.ErrorCode.RATE_LIMITED` and a
``retry_after`` hint. Buckets live in memory: with several server processes
each enforces its own share, which is why the reverse proxy in front of them
should add a limit per address of its own (docs/server.md). Full buckets
are forgotten, so memory stays bounded by the number of active keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from messenger.api.errors import ApiError, ErrorCode

__all__ = ["RateLimiter"]

_PRUNE_AT = 50_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Buckets of ``burst`` tokens refilled at ``per_second``."""

    def __init__(
        self,
        name: str,
        per_second: float,
        burst: float,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @classmethod
    def per_minute(cls, name: str, count: int, clock: Callable[[], float]) -> RateLimiter:
        """``count`` requests a minute, all of which may come at once."""
        return cls(name, count / 60.0, float(count), clock)

    @classmethod
    def per_hour(cls, name: str, count: int, clock: Callable[[], float]) -> RateLimiter:
        """``count`` requests an hour, all of which may come at once."""
        return cls(name, count / 3600.0, float(count), clock)

    def hit(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens for ``key``, or none: :class:`ApiError` (429) when short."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.per_second)
            bucket.updated = now
        if bucket.tokens < cost:
            wait = math.ceil((cost - bucket.tokens) / self.per_second)
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                f"too many requests ({self.name}); retry later",
                {"retry_after": wait},
            )
        bucket.tokens -= cost

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.per_second >= self.burst
        ]
        for key in full:
            del self._buckets[key]
