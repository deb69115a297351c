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


MAX_CLOCK_SKEW = 30.0
"""Seconds a received id's time may lie ahead of this clock. A chat id is chosen by its
publisher, and ids order the history and the forward-only read markers: an id stamped
far in the future would stay pinned below every real message and drag every reader's
marker to it for good. Such messages and receipts are refused where they arrive."""


_CROCKFORD = {char: value for value, char in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def id_time(message_id: str) -> float:
    """Unix seconds in an id's time part: its first 10 Crockford base32 digits are
    milliseconds (ids that pass the schema's pattern but no ULID can be give more)."""
    millis = 0
    for char in message_id[:10]:
        millis = millis * 32 + _CROCKFORD[char]
    return millis / 1000


def from_the_future(message_id: str, *, now: float) -> bool:
    """Is this id's time more than MAX_CLOCK_SKEW ahead of `now`?"""
    return id_time(message_id) > now + MAX_CLOCK_SKEW
