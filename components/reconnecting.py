"""A logical MQTT client that stays connected: each attempt is a fresh Connection with
a new epoch and client id (never reused), retried with capped exponential backoff.
Devices and the observer build on it; subclasses say what to do on (re)connect.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .backoff import Backoff
from .broker import BrokerSettings
from .epochs import EpochClock
from .errors import BrokerUnreachable
from .mqtt_connection import Connection, Will
from .network_loop import NetworkLoop, Timer
from .topics import TopicScheme

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wiring:
    """What every client of one session shares."""

    settings: BrokerSettings
    network: NetworkLoop
    scheme: TopicScheme
    org: str
    leave_grace: float
    last_seen_retention: float
    epochs: EpochClock = field(default_factory=EpochClock)
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic

    @property
    def will_delay(self) -> int:
        """MQTT 5 Will Delay Interval: the leave grace, whole seconds."""
        return math.ceil(self.leave_grace)


class ReconnectingClient:
    def __init__(self, wiring: Wiring, *, client_prefix: str) -> None:
        self.wiring = wiring
        self._client_prefix = client_prefix
        self._conn: Connection | None = None
        self._connected = threading.Event()
        self._closing = False
        self._retry: Timer | None = None
        self._backoff = Backoff()
        self.epoch = 0
        self.last_error = ""
        self.connects = 0

    # -- subclass hooks (run on the network thread) ------------------------------------
    def _will(self, epoch: int) -> Will | None:
        return None

    def _session_expiry(self) -> int:
        return 0

    def _on_connected(self, conn: Connection) -> None:
        raise NotImplementedError

    def _on_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None:
        raise NotImplementedError

    def _on_lost(self) -> None:
        """The connection is gone (a retry may follow)."""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.wiring.network.call_soon(self._attempt)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _attempt(self) -> None:
        if self._closing:
            return
        self._retry = None
        epoch = self.wiring.epochs.next()
        conn = Connection(
            self.wiring.settings,
            client_id=f"{self._client_prefix}:{epoch}",
            handler=self,
            network=self.wiring.network,
            will=self._will(epoch),
            session_expiry=self._session_expiry(),
        )
        self._conn, self.epoch = conn, epoch
        self.wiring.network.connect(conn, on_error=lambda exc: self._failed(conn, exc))

    def _failed(self, conn: Connection, exc: BrokerUnreachable) -> None:
        self.handle_lost(conn, str(exc))

    # -- ConnectionHandler -------------------------------------------------------------------
    def handle_connected(self, conn: Connection) -> None:
        if conn is not self._conn or self._closing:
            conn.disconnect()  # closed (or replaced) while connecting: nothing was announced, the will goes too
            return
        self._backoff.reset()
        self.connects += 1
        self.last_error = ""
        self._on_connected(conn)
        self._connected.set()

    def handle_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None:
        if conn is self._conn:
            self._on_message(conn, topic, payload, retained)

    def handle_lost(self, conn: Connection, reason: str) -> None:
        if not self.wiring.network.in_loop_thread():
            self.wiring.network.call_soon(lambda: self.handle_lost(conn, reason))
            return
        if conn is not self._conn:
            return
        self._connected.clear()
        self._conn = None
        self._on_lost()
        if self._closing:
            return
        self.last_error = reason
        delay = self._backoff.next()
        log.info("%s: %s; reconnecting in %.2f s", self._client_prefix, reason, delay)
        self._retry = self.wiring.network.call_later(delay, self._attempt)

    def _stop_reconnecting(self) -> Connection | None:
        """Stop retrying; return the live connection, if any, for a clean goodbye."""
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
        return self._conn if self.connected else None
