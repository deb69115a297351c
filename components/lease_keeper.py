"""The process's side of leases.py: one retained document renews every device's lease.

While the session has devices open, it publishes `{"until": now + lease}` retained, QoS
1, on `lease/{org}/{owner}/{holder}` every `interval` seconds, through any of its live
connections (the observer's first). Each device's presence names that lease and carries
`until` itself, so a watcher that never sees the lease still has a bound.

Cost: one message per process per interval. The interval is max(lease / 3, lease -
RENEWAL_MARGIN): 45 s for the default 60 s lease, so 80 messages an hour per process
whatever its number of devices (docs/BROKERS.md, "Leases"); a short lease keeps two
thirds of itself for a failover. A renewal that is not acknowledged within ACK_WAIT (a
node that died silently) is published again on another connection, or, when there is
none, on the first that works, every RETRY until one acknowledges it or a newer renewal
replaces it, so a live process never lets its lease run out while any of its
connections works. One acknowledged only after SLOW_ACK is published again
(mqtt_connection.py): the broker may not have kept it (NATS, while JetStream has no
leader), and late joiners would read the renewal before.

Runs on the network thread; `start` and `close` may be called from any thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .payloads import encode
from .topics import Topic, TopicScheme

if TYPE_CHECKING:
    from .mqtt_connection import Connection
    from .network_loop import NetworkLoop, Timer

log = logging.getLogger(__name__)

DEFAULT_LEASE = 60.0
MIN_LEASE = 10.0
MAX_LEASE = 86400.0
RENEWAL_MARGIN = 15.0
"""Seconds a renewal comes before the lease runs out: room for a failover (backoff
capped at 3 s, a connect) and one ACK_WAIT."""
ACK_WAIT = 5.0
RETRY = 1.0
"""Seconds before trying again when no connection is up."""


def renewal_interval(lease: float) -> float:
    """Seconds between two renewals of a `lease`-second lease (see the module docstring)."""
    return max(lease / 3, lease - RENEWAL_MARGIN)


def check_lease(lease: float) -> float:
    if not MIN_LEASE <= lease <= MAX_LEASE:
        raise ValueError(f"lease must be {MIN_LEASE:.0f}-{MAX_LEASE:.0f} seconds, not {lease}")
    return lease


class LeaseKeeper:
    def __init__(
        self,
        *,
        network: NetworkLoop,
        scheme: TopicScheme,
        org: str,
        owner: str,
        holder: str,
        lease: float,
        retention: float,
        wall: Callable[[], float],
        connections: Callable[[], Sequence[Connection] | None],
    ) -> None:
        """`connections()` gives the live connections to renew through, best first, or
        None when the process has no device open (then nothing is renewed)."""
        self.lease = check_lease(lease)
        self.interval = renewal_interval(lease)
        self.name = f"{owner}/{holder}"
        self._topic = scheme.render(Topic("lease", org, owner, device=holder))
        self._network = network
        self._retention = int(retention)
        self._wall = wall
        self._connections = connections
        self._until = 0.0
        self._timer: Timer | None = None
        self._running = False
        self._closed = False
        self.renewals = 0
        self.republished = 0

    def valid_until(self) -> float:
        """The `until` a device announcing now writes into its presence."""
        return max(self._until, self._wall() + self.lease)

    def start(self) -> None:
        """A device opened: renew now (if not already renewing) and every interval."""
        if not self._running and not self._closed:
            self._running = True
            self._network.call_soon(self._renew)

    def _renew(self) -> None:
        self._timer = None
        if self._closed:
            return
        connections = self._connections()
        if connections is None:
            self._running = False  # no device left; the next one to open starts us again
            return
        if not connections:
            self._timer = self._network.call_later(RETRY, self._renew)
            return
        self._publish(list(connections), self._wall() + self.lease)
        self._timer = self._network.call_later(self.interval, self._renew)

    def _publish(self, connections: list[Connection], until: float) -> None:
        conn, rest = connections[0], connections[1:]
        try:
            handle = conn.publish(self._topic, encode("lease", {"until": round(until, 3)}), qos=1, retain=True, expiry=self._retention, again_if_slow=True)
        except Exception:  # noqa: BLE001 - a connection that just died: try the next
            log.debug("lease renewal through %s failed", conn.client_id, exc_info=True)
            if rest:
                self._publish(rest, until)
            return
        self.renewals += 1
        self._until = max(self._until, until)

        def acked_or_again() -> None:
            if handle.done or self._closed or until < self._until:
                return  # acknowledged, or a newer renewal took over
            others = rest or [c for c in self._connections() or () if c is not conn]
            if others:
                self.republished += 1
                self._publish(others, until)
            else:  # every connection is down or was this one: the first to come back
                self._network.call_later(RETRY, acked_or_again)

        self._network.call_later(ACK_WAIT, acked_or_again)

    def close(self, conn: Connection | None) -> None:
        """Stop renewing; clear the lease through `conn` (the process left cleanly, its
        devices published their offline). Without a connection the lease simply runs
        out and observers reap it later."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if conn is not None and self.renewals:
            conn.publish(self._topic, b"", qos=1, retain=True)
