"""Connection epochs: integer milliseconds since the Unix epoch, taken as
max(now, last + 1), so they only grow within a process and never wrap (Sparkplug's
8-bit bdSeq wrapped and broke; it moved to timestamps). Watchers ignore lower epochs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class EpochClock:
    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self._wall() * 1000), self._last + 1)
            return self._last
