"""One network thread for every MQTT connection of the process.

paho's external-loop API lets a single selector serve many clients: the thread waits
on all sockets at once, calls `loop_read`/`loop_write` on the ready ones and
`loop_misc` (keepalive pings) on all of them a few times a second. Blocking TCP/TLS
connects run on a small pool of connector threads so an unreachable broker never stalls
the others. 200 devices therefore cost 1 network thread plus at most 2 connector
threads, not 200.

Work for the loop thread (subscribing, reacting to a message) is queued with
`call_soon` / `call_later`; those callbacks must not block either.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .errors import BrokerUnreachable

if TYPE_CHECKING:
    from .mqtt_connection import Connection

log = logging.getLogger(__name__)

MISC_INTERVAL = 0.25
"""How often keepalive bookkeeping (`loop_misc`) runs for every connection."""
MAX_READS_PER_WAKE = 256
"""Packets read from one socket before the others get a turn."""


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Alarm:
    """One timer for a deadline that moves: `arm(at)` keeps the earliest deadline asked
    for, and `fire` (run on the loop thread when it is due) re-arms it as needed.
    `clock` is the clock `at` is read on (wall or monotonic)."""

    def __init__(self, network: NetworkLoop, *, clock: Callable[[], float], fire: Callable[[], None]) -> None:
        self._network = network
        self._clock = clock
        self._fire = fire
        self._timer: Timer | None = None
        self._at: float | None = None

    @property
    def at(self) -> float | None:
        """When it fires next (on its clock), if it is armed."""
        return self._at

    def arm(self, at: float | None) -> None:
        if at is None or (self._at is not None and self._at <= at):
            return
        self.cancel()
        self._at = at
        self._timer = self._network.call_later(max(0.0, at - self._clock()), self._due)

    def _due(self) -> None:
        self._timer = self._at = None
        self._fire()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._at = None


class NetworkLoop:
    def __init__(self, *, name: str = "mqtt-network", connectors: int = 2, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._monotonic = monotonic
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._woken = False
        self._ready: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, Connection] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._connectors = ThreadPoolExecutor(max_workers=connectors, thread_name_prefix=f"{name}-connect")
        self.callback_errors = 0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._connectors.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def assert_loop_thread(self) -> None:
        if threading.current_thread() is not self._thread:
            raise RuntimeError("must run on the network thread (use call_soon)")

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    # -- scheduling (any thread) ---------------------------------------------------------
    def call_soon(self, callback: Callable[[], None]) -> None:
        self._ready.append(callback)  # deque.append is atomic
        self._wake()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self._monotonic() + delay, callback)
        with self._lock:
            heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        self._wake()
        return timer

    def connect(self, conn: Connection, *, on_error: Callable[[BrokerUnreachable], None]) -> None:
        """Open `conn`'s socket on a connector thread; failures go to `on_error` on the
        loop thread. Success shows up as the handler's `connected()` after CONNACK."""

        def attempt() -> None:
            try:
                conn.open_socket()
            except BrokerUnreachable as exc:
                error = exc  # `exc` is unbound once the except block ends
                self.call_soon(lambda: on_error(error))

        self._connectors.submit(attempt)

    def _wake(self) -> None:
        if self._woken or threading.current_thread() is self._thread:
            return
        self._woken = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full or closed: the loop is awake or gone anyway

    # -- sockets (called from paho's socket callbacks, any thread) -------------------
    def watch(self, conn: Connection, sock: socket.socket) -> None:
        self.call_soon(lambda: self._register(conn, sock))

    def unwatch(self, sock: socket.socket) -> None:
        if self.in_loop_thread():
            self._unregister(sock)
        else:
            self.call_soon(lambda: self._unregister(sock))

    def want_write(self, sock: socket.socket, wanted: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wanted else 0)
        if self.in_loop_thread():
            self._modify(sock, events)
        else:
            self.call_soon(lambda: self._modify(sock, events))

    def _register(self, conn: Connection, sock: socket.socket) -> None:
        if sock.fileno() < 0:
            return  # closed before we got to it
        self._connections[sock] = conn
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.want_write() else 0)
        self._selector.register(sock, events, conn)

    def _unregister(self, sock: socket.socket) -> None:
        if self._connections.pop(sock, None) is not None:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass  # already gone with its file descriptor

    def _modify(self, sock: socket.socket, events: int) -> None:
        conn = self._connections.get(sock)
        if conn is None:
            return  # not registered yet: _register reads want_write itself
        try:
            self._selector.modify(sock, events, conn)
        except (KeyError, ValueError, OSError):
            pass

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # -- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        next_misc = self._monotonic()
        while not self._stop.is_set():
            now = self._monotonic()
            timeout = max(0.0, min(next_misc, self._next_timer(now)) - now)
            if self._ready:
                timeout = 0.0
            try:
                ready = self._selector.select(timeout)
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                log.exception("selector failed")
                continue
            for key, mask in ready:
                conn = key.data
                if conn is None:
                    self._drain_wake()
                    continue
                self._guard(lambda: self._service(conn, key.fileobj, mask))
            self._run_ready()
            self._run_timers()
            now = self._monotonic()
            if now >= next_misc:
                next_misc = now + MISC_INTERVAL
                for conn in list(self._connections.values()):
                    self._guard(conn.loop_misc)

    def _service(self, conn: Connection, sock: socket.socket, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            conn.acknowledge_promptly()
            # paho reads one packet per loop_read; keep reading while it makes progress,
            # and come back next pass for what waits in a buffer the selector cannot see
            for _ in range(MAX_READS_PER_WAKE):
                if not conn.loop_read() or self._connections.get(sock) is not conn:
                    break
            else:
                if conn.buffered:
                    self.call_soon(lambda: self._service(conn, sock, selectors.EVENT_READ))
        if mask & selectors.EVENT_WRITE and self._connections.get(sock) is conn:
            conn.loop_write()

    def _drain_wake(self) -> None:
        # Drain first, then clear the flag. Clearing first lost wake-ups: a `_wake()`
        # in between set the flag and sent a byte that this drain swallowed, so the
        # flag stayed set with the pipe empty and every later call_soon from another
        # thread waited for the next keepalive tick (MISC_INTERVAL). A `_wake()` that
        # now finds the flag still set skips its byte, but its callback is already
        # queued and `_run_ready` runs after this drain in the same pass.
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._woken = False

    def _run_ready(self) -> None:
        for _ in range(len(self._ready)):
            self._guard(self._ready.popleft())

    def _next_timer(self, now: float) -> float:
        with self._lock:
            return self._timers[0][0] if self._timers else now + 3600

    def _run_timers(self) -> None:
        now = self._monotonic()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._guard(timer.callback)

    def _guard(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # noqa: BLE001 - one bad callback must not stop every connection
            self.callback_errors += 1
            log.exception("network loop callback failed")
