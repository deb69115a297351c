"""A token bucket: at most `rate` events a second on average, bursts up to `burst`."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, *, rate: float, burst: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._monotonic = monotonic
        self._last = monotonic()
        self.refused = 0

    def available(self) -> float:
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        return self._tokens

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` if there is enough; count a refusal otherwise."""
        if self.available() >= cost:
            self._tokens -= cost
            return True
        self.refused += 1
        return False
