"""Chat message ids: ULIDs (48-bit millisecond time + 80 random bits, Crockford
base32), strictly increasing within the process, so "read up to" has a total order
and sorting ids sorts messages in time.

Ids are chosen by whoever publishes, so a stored id is checked first
(check_message_id): 26 characters of the schema's alphabet whose value fits 128 bits
(first character 0-7), not stamped in the future (MAX_CLOCK_SKEW). Because ids sort by
time, "everything from time t on" is simply `id >= floor_id(t)`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from ulid import ULID

from .epochs import StrictlyIncreasing
from .errors import InvalidMessageId

MESSAGE_ID_PATTERN = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
"""The chat schema's id pattern (`^[0-9A-HJKMNP-TV-Z]{26}$`) narrowed to 128 bits."""


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


def check_message_id(value: object, *, now: float | None = None) -> str:
    """Return `value` if it is a ULID (not from the future of `now`, when given), else
    raise InvalidMessageId naming the value and the rule."""
    if not isinstance(value, str) or not MESSAGE_ID_PATTERN.fullmatch(value):
        raise InvalidMessageId(
            f"invalid message id {value!r}: a message id is a ULID, 26 characters of 0-9 and "
            "A-Z without I, L, O and U, starting with 0-7"
        )
    if now is not None and from_the_future(value, now=now):
        raise InvalidMessageId(f"message id {value!r} is stamped {id_time(value) - now:.0f} s in the future (at most {MAX_CLOCK_SKEW:.0f} s allowed)")
    return value


def floor_id(at: float) -> str:
    """The smallest id of the millisecond `at` (Unix seconds): every id made at or after
    `at` sorts at or after it, every id made before sorts before it."""
    return str(ULID.from_int(max(0, int(at * 1000)) << 80))
