"""The session's history writer: one named daemon thread between the observer and the
history store, so a database write never runs on paho's network thread.

- `record(message)` (any thread, the observer's callback included) only queues: it
  never blocks and never raises. Past QUEUE_LIMIT waiting messages (a database down for
  long under heavy chat) further ones are dropped and counted; the replica that accepted
  them stored them itself, so a shared database still has them.
- The thread takes up to BATCH messages at a time and writes them in one transaction
  (an insert that ignores ids the store has). While the store is unavailable the batch
  waits and the store's backoff says when to try again; the thread also reconnects when
  nothing is queued, so `available` turns true again without traffic.
- It prunes expired messages when the store is first reached and every `prune_every`.
- `close()` sets the stop Event, writes what is queued if the store is up, and joins
  the thread with a timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import HistoryUnavailable
from .events import ChatMessage
from .history import HistoryStore

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
"""Messages waiting for the database before further ones are dropped (and counted)."""
BATCH = 500
"""Messages written in one transaction at most."""
PRUNE_EVERY = 3600.0
"""Seconds between two deletions of expired messages."""
IDLE = 1.0
"""Seconds the thread waits for a message before it looks at the store again."""


@dataclass(frozen=True, slots=True)
class HistoryStats:
    url: str
    """Redacted: never the password."""
    available: bool
    last_error: str
    stored: int
    """Rows this process inserted (ids already stored do not count)."""
    refused: int
    """Rows refused as malformed (bad id, id dated ahead of now, text that cannot be stored)."""
    dropped: int
    """Messages seen on the broker that never reached the store (queue full, or still queued at close)."""
    queued: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class HistoryWriter:
    def __init__(
        self,
        store: HistoryStore,
        *,
        org: str,
        prune_every: float = PRUNE_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.org = org
        self._prune_every = prune_every
        self._monotonic = monotonic
        self._queue: queue.Queue[ChatMessage | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="presence-history", daemon=True)
        self.dropped = 0
        self.pruned = 0

    def start(self) -> HistoryWriter:
        self._thread.start()
        return self

    def record(self, message: ChatMessage) -> None:
        """Queue a message seen on the broker (never blocks: runs on the network thread)."""
        if self._stop.is_set():
            return
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("chat history queue full (%d waiting): %d messages not recorded so far", QUEUE_LIMIT, self.dropped)

    def close(self, timeout: float = 3.0) -> None:
        """Write what is queued (if the store is up), stop the thread and join it."""
        self._stop.set()
        try:
            self._queue.put_nowait(None)  # wake the thread if it waits for messages
        except queue.Full:
            pass  # it is not waiting then
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stats(self) -> HistoryStats:
        store = self.store
        return HistoryStats(
            url=store.url.redacted,
            available=store.available,
            last_error=store.last_error,
            stored=store.stored,
            refused=store.refused,
            dropped=self.dropped,
            queued=self._queue.qsize(),
        )

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        batch: list[ChatMessage] = []
        prune_at = self._monotonic()
        while not self._stop.is_set():
            idle = min(IDLE, max(0.0, prune_at - self._monotonic()))
            batch += self._take(BATCH - len(batch), wait=0.0 if batch else idle)
            if self.store.retry_in() > 0:  # down, and the backoff says not yet
                self._stop.wait(min(self.store.retry_in(), IDLE))
                continue
            try:
                if batch:
                    self.store.add(self.org, batch)
                    batch = []
                elif not self.store.connect():
                    continue
                if self._monotonic() >= prune_at:
                    self.pruned += self.store.prune()
                    prune_at = self._monotonic() + self._prune_every
            except HistoryUnavailable:
                pass  # the store logged it once and set its backoff
        self._flush(batch)

    def _take(self, most: int, *, wait: float) -> list[ChatMessage]:
        taken: list[ChatMessage] = []
        try:
            item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            while True:
                if item is not None:
                    taken.append(item)
                if len(taken) >= most:
                    break
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        return taken

    def _flush(self, batch: list[ChatMessage]) -> None:
        """At close: one last write of everything still queued."""
        while rest := self._take(BATCH, wait=0.0):
            batch += rest
        if not batch:
            return
        try:
            self.store.add(self.org, batch)
        except HistoryUnavailable:
            self.dropped += len(batch)
            log.warning("%d chat messages seen on the broker were not stored: chat history unavailable", len(batch))
