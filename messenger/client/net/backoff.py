"""Exponential backoff with jitter, for reconnecting and resending.

``delay(n)`` for the ``n``-th consecutive failure (from 0) is
``min(maximum, base * factor**n)``, scaled by a random factor in
``[1 - jitter, 1]`` so that many clients that lost the server at the same
moment do not come back in step ("equal jitter").
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.5
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.maximum < self.base:
            raise ValueError("need base > 0, factor >= 1 and maximum >= base")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction in [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th consecutive failure."""
        exponent = min(max(attempt, 0), 64)
        ceiling = min(self.maximum, self.base * self.factor**exponent)
        return ceiling * (1 - self.jitter * self.random())
