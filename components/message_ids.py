"""Chat message ids: ULIDs (48-bit millisecond time + 80 random bits, Crockford
base32), strictly increasing within the process, so "read up to" has a total order
and sorting ids sorts messages in time."""

from __future__ import annotations

import time
from collections.abc import Callable

from ulid import ULID

from .epochs import StrictlyIncreasing


class MessageIds:
    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._values = StrictlyIncreasing()

    def next(self) -> str:
        return str(ULID.from_int(self._values.after(int(ULID.from_timestamp(self._wall())))))
