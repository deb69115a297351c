"""Capped exponential backoff with jitter, for anything that reconnects (broker
connections, the chat history database)."""

from __future__ import annotations

import random


class Backoff:
    """first, 2 x first, 4 x first ... capped at `cap`, each with +-20 % jitter so a
    restarted server is not hit by every client in the same millisecond.

    The defaults (0.25 s, capped at 3 s) are the MQTT clients': the low cap keeps a
    promise, every live device re-announces within 5 s of the broker coming back,
    however long it was away (observers rely on it to find ghosts, see observer.py)."""

    def __init__(self, *, first: float = 0.25, cap: float = 3.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return delay * random.uniform(0.8, 1.2)
