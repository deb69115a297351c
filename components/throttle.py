"""A leading-edge throttle: what comes after a quiet spell goes out at once, what comes
while the cap is reached goes out together as soon as it allows (the caller keeps the
latest of it), so nothing waits longer than one period and nothing is ever dropped.

The cap is a token bucket: `burst` flushes at once, then one per `period`. With
`burst=1` that is at most one flush per period, measured between flushes ("the previous
tick was idle" is "no flush in the last period"). One clock and one timer source (an
asyncio loop, or the network loop with its monotonic clock), single-threaded: every
call comes from that loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Cancellable]


class Throttle:
    def __init__(self, *, period: float, flush: Callable[[], None], call_later: CallLater, clock: Callable[[], float], burst: int = 1) -> None:
        self._period = period
        self._burst = float(burst)
        self._flush = flush
        self._call_later = call_later
        self._clock = clock
        self._tokens = self._burst
        self._counted_at = clock()
        self._timer: Cancellable | None = None

    def poke(self) -> None:
        """Something waits to go out: flush it at once if the cap allows (on the loop's
        next turn, so what arrives in this one goes along), else when it does. A flush
        already due takes it too."""
        if self._timer is None:
            self._timer = self._call_later(max(0.0, (1.0 - self._refill()) * self._period), self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._counted_at) / self._period)
        self._counted_at = now
        return self._tokens

    def _fire(self) -> None:
        self._timer = None
        self._tokens = max(0.0, self._refill() - 1.0)
        self._flush()
