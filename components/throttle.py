"""Ticks with a leading edge: at most one flush in each tick of a fixed grid (every
`period` from when it was made), at once when nothing went out in the current tick yet,
else at the start of the next tick, with everything that came meanwhile (the caller
keeps the latest of it). So a lone move after a quiet tick waits for nothing, under load
it is one flush a tick as with a plain timer, and nothing waits longer than one tick.

The grid is fixed, not counted from the last flush: a stream at exactly the cap's rate
(a 20 Hz tab into a 20 Hz cap) then lands one move in each tick and goes straight
through, where a cap timed from the last send would drift behind the stream by the
loop's lateness on every send until each move waited up to a whole period. One clock
and one timer source (an asyncio loop, or the network loop and its monotonic clock),
single-threaded: every call comes from that loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Cancellable]


class Throttle:
    def __init__(self, *, period: float, flush: Callable[[], None], call_later: CallLater, clock: Callable[[], float]) -> None:
        self._period = period
        self._flush = flush
        self._call_later = call_later
        self._clock = clock
        self._origin = clock()
        self._used = -1
        """The last tick that has (or is promised) its flush."""
        self._timer: Cancellable | None = None

    def poke(self) -> None:
        """Something waits to go out: flush it at once if this tick has had no flush (on
        the loop's next turn, so what arrives in this one goes along), else at the start
        of the next tick. A flush already due takes it too."""
        if self._timer is not None:
            return
        now = self._clock()
        tick = self._tick(now)
        if tick > self._used:
            self._used, wait = tick, 0.0
        else:
            self._used, wait = tick + 1, self._origin + (tick + 1) * self._period - now
        self._timer = self._call_later(max(0.0, wait), self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, at: float) -> int:
        return math.floor((at - self._origin) / self._period)

    def _fire(self) -> None:
        self._timer = None
        self._used = max(self._used, self._tick(self._clock()))  # a late loop uses up the tick it fires in
        self._flush()
