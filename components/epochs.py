"""Connection epochs: integer milliseconds since the Unix epoch, taken as
max(now, last + 1), so they only grow within a process and never wrap (Sparkplug's
8-bit bdSeq wrapped and broke; it moved to timestamps). Watchers ignore lower epochs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StrictlyIncreasing:
    """Hands out max(fresh, last + 1): time-based values that never repeat or go back,
    even when the clock stands still or steps backwards. Thread-safe."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def after(self, fresh: int) -> int:
        with self._lock:
            self._last = max(fresh, self._last + 1)
            return self._last


class EpochClock:
    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._values = StrictlyIncreasing()

    def next(self) -> int:
        return self._values.after(int(self._wall() * 1000))
