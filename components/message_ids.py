"""Chat message ids: ULIDs (48-bit millisecond time + 80 random bits, Crockford
base32), strictly increasing within the process, so "read up to" has a total order
and sorting ids sorts messages in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ulid import ULID


class MessageIds:
    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        fresh = int(ULID.from_timestamp(self._wall()))
        with self._lock:
            self._last = max(fresh, self._last + 1)
            return str(ULID.from_int(self._last))
