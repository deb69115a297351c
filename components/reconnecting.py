"""A logical MQTT client that stays connected: each attempt is a fresh Connection with
a new epoch and client id (never reused), retried with capped exponential backoff.
Devices and the observer build on it; subclasses say what to do on (re)connect.

Failover: with several broker URLs (the nodes of a cluster) the first attempt goes to
the first URL, and each attempt after a failure or a drop goes to the next one, round
the list, with the same backoff. An attempt without CONNACK within CONNACK_TIMEOUT
counts as failed: a NATS node stalls CONNECTs for seconds while its JetStream cluster
elects new leaders after another node died. A broker that refuses MQTT 5 is retried at
once in 3.1.1, and every connection of the session speaks 3.1.1 to it from then on.
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
from .capabilities import ProtocolMemory
from .epochs import EpochClock
from .errors import BrokerUnreachable
from .lease_keeper import LeaseKeeper
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
    lease: LeaseKeeper | None = None
    """Renews the process's lease that every device's presence names (None: no lease)."""
    protocols: ProtocolMemory | None = None
    """Whether the broker refused MQTT 5 (shared by the session's connections); None: a fresh one."""

    def __post_init__(self) -> None:
        if self.protocols is None:
            qos1 = self.settings.capabilities.qos1_subscriptions is not False
            object.__setattr__(self, "protocols", ProtocolMemory(prefer_v5=self.settings.protocol == "5", qos1_subscriptions=qos1))

    @property
    def will_delay(self) -> int:
        """MQTT 5 Will Delay Interval: the leave grace, whole seconds."""
        return math.ceil(self.leave_grace)


CONNACK_TIMEOUT = 5.0
"""Seconds from an attempt's start until its CONNACK, else the next node is tried."""


class ReconnectingClient:
    def __init__(self, wiring: Wiring, *, client_prefix: str) -> None:
        self.wiring = wiring
        self._client_prefix = client_prefix
        self._conn: Connection | None = None
        self._connected = threading.Event()
        self._closing = False
        self._retry: Timer | None = None
        self._backoff = Backoff()
        self._node = 0
        """Index of the URL the next attempt goes to."""
        self.epoch = 0
        self.last_error = ""
        self.connects = 0
        self.failures = 0
        """Attempts that failed or dropped (protocol retries aside)."""

    # -- subclass hooks (run on the network thread) ------------------------------------
    def _will(self, epoch: int) -> Will | None:
        return None

    def _session_expiry(self) -> int:
        return 0

    def _on_connected(self, conn: Connection) -> None:
        """A CONNACK accepted `conn`; call `_up(conn)` once it counts as connected."""
        raise NotImplementedError

    def _up(self, conn: Connection) -> None:
        """`conn` counts as connected (`connected`, `wait_connected`), if still ours."""
        if conn is self._conn and not self._closing:
            self._connected.set()

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

    @property
    def connection(self) -> Connection | None:
        """The live connection, if any."""
        return self._conn if self.connected else None

    @property
    def connected_url(self) -> str | None:
        """The node this client is connected to now."""
        conn = self.connection
        return conn.url if conn is not None else None

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _attempt(self) -> None:
        if self._closing:
            return
        self._retry = None
        epoch = self.wiring.epochs.next()
        endpoint = self.wiring.settings.endpoints[self._node]
        conn = Connection(
            self.wiring.settings,
            endpoint=endpoint,
            v5=self.wiring.protocols.v5,  # type: ignore[union-attr]
            memory=self.wiring.protocols,
            client_id=f"{self._client_prefix}:{epoch}",
            handler=self,
            network=self.wiring.network,
            will=self._will(epoch),
            session_expiry=self._session_expiry(),
        )
        self._conn, self.epoch = conn, epoch
        self.wiring.network.connect(conn, on_error=lambda exc: self._failed(conn, exc))
        self.wiring.network.call_later(CONNACK_TIMEOUT, lambda: self._connack_overdue(conn))

    def _connack_overdue(self, conn: Connection) -> None:
        if conn is self._conn and not conn.connacked:
            conn.abandon(f"no CONNACK within {CONNACK_TIMEOUT:.0f} s")

    def _failed(self, conn: Connection, exc: BrokerUnreachable) -> None:
        self.handle_lost(conn, str(exc))

    # -- ConnectionHandler -------------------------------------------------------------------
    def handle_connected(self, conn: Connection) -> None:
        if conn is not self._conn or self._closing:
            conn.disconnect()  # closed (or replaced) while connecting: nothing was announced, the will goes too
            return
        self._backoff.reset()
        if self.wiring.protocols.connected(v5=conn.v5):  # type: ignore[union-attr]
            log.warning("%s refuses MQTT 5: speaking MQTT 3.1.1 to it (no will delay, message expiry or retain handling; see docs/BROKERS.md)", conn.url)
        self.connects += 1
        self.last_error = ""
        self._on_connected(conn)

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
        if self._protocol_retry(conn):
            self._retry = self.wiring.network.call_later(0, self._attempt)
            return
        self.last_error = reason
        self.failures += 1
        self._node = (self._node + 1) % len(self.wiring.settings.endpoints)
        delay = self._backoff.next()
        log.info("%s: %s; reconnecting to %s in %.2f s", self._client_prefix, reason, self.wiring.settings.endpoints[self._node].url, delay)
        self._retry = self.wiring.network.call_later(delay, self._attempt)

    def _protocol_retry(self, conn: Connection) -> bool:
        """Should the same node be tried again at once, in 3.1.1? (capabilities.ProtocolMemory)"""
        protocols = self.wiring.protocols
        assert protocols is not None
        if not conn.v5:
            protocols.failed(v5=False)
            return False
        if conn.refused_v5:
            if protocols.refused():
                log.warning("%s refuses MQTT 5: speaking MQTT 3.1.1 to it (no will delay, message expiry or retain handling; see docs/BROKERS.md)", conn.url)
            return True
        if not conn.connacked and conn.socket_opened and not conn.abandoned:
            return protocols.closed_before_connack()
        return not protocols.v5  # another connection found out meanwhile

    def _stop_reconnecting(self) -> Connection | None:
        """Stop retrying; return the live connection, if any, for a clean goodbye."""
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
        return self.connection
