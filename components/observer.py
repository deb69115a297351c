"""The process's one watching connection: it subscribes to the org's presence and the
configured rooms, feeds an OrgState, and hands the resulting events on.

Snapshot and live stream (a default Mosquitto drops QoS 1 deliveries past ~1,000
queued, and a lost offline is a ghost):
1. live: presence and receipts at QoS 1 with MQTT 5 retain handling 2 (no retained
   copies), typing, cursors and reactions at QoS 0, chat at QoS 1, plus our sync topic;
2. on that SUBACK, snapshot: `presence/{org}/#` and `receipts/{org}/{room}/#` at QoS 0,
   which a default broker delivers in full;
3. end-of-snapshot marker: on the snapshot's SUBACK the observer publishes one QoS 0
   message to its own sync topic. The broker queued every retained message before it
   sent that SUBACK and delivers one client's messages in order, so when the echo
   comes back the snapshot is complete (one round trip, no guessed quiet period).
   Then the snapshot filters are dropped. Epochs make the two streams safe to merge.
On 3.1.1 (no retain handling) the live subscription repeats some retained messages;
they are equal to what is held and change nothing.

Offline device topics older than the last-seen retention are cleared (empty retained)
after each snapshot and periodically, on any broker; MQTT 5 message expiry on offline
messages and wills does the same inside the broker.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from .events import Event, SnapshotComplete, TypingChanged
from .mqtt_connection import Connection, Subscription
from .network_loop import Timer
from .org_state import OrgState
from .reconnecting import ReconnectingClient, Wiring
from .topics import RETAINED_KINDS, ROOM_KINDS

log = logging.getLogger(__name__)

REAP_LIMIT = 500
"""Device topics cleared per sweep, so one sweep never floods the broker."""


class Observer(ReconnectingClient):
    def __init__(self, wiring: Wiring, *, state: OrgState, lock: threading.RLock, emit: Callable[[list[Event]], None], reap_every: float = 300.0) -> None:
        super().__init__(wiring, client_prefix=f"{wiring.org}:observer:{os.getpid()}")
        self.state = state
        self._lock = lock
        self._emit = emit
        self._reap_every = reap_every
        self._sync_topic = ""
        self._expiry_timer: Timer | None = None
        self._expiry_at: float | None = None
        self._reap_timer: Timer | None = None
        self.synced = threading.Event()
        self.snapshots = 0
        self.reaped = 0

    def _live_subscriptions(self) -> list[Subscription]:
        scheme, org = self.wiring.scheme, self.wiring.org
        subs = [Subscription(f, qos=1, retain_handling=2) for f in scheme.presence_filters(org)]
        for room in self.state.rooms:
            for kind in ROOM_KINDS:
                qos = 1 if kind in ("receipts", "chat") else 0
                subs.append(Subscription(scheme.room_filter(kind, org, room), qos=qos, retain_handling=2))
        subs.append(Subscription(self._sync_topic, qos=0))
        return subs

    def _snapshot_filters(self) -> list[str]:
        scheme, org = self.wiring.scheme, self.wiring.org
        filters = [scheme.snapshot_filter("presence", org)]
        filters += [scheme.snapshot_filter(kind, org, room) for room in self.state.rooms for kind in ROOM_KINDS if kind in RETAINED_KINDS]
        return filters

    # -- connection hooks (network thread) -------------------------------------------------
    def _on_connected(self, conn: Connection) -> None:
        self.synced.clear()
        self._sync_topic = self.wiring.scheme.sync_topic(self.wiring.org, f"o{os.getpid()}-{self.epoch}")
        with self._lock:
            self.state.begin_resync()
        snapshot = [Subscription(f, qos=0) for f in self._snapshot_filters()]

        def on_snapshot_ack() -> None:
            conn.publish(self._sync_topic, b"", qos=0, retain=False)

        conn.subscribe(self._live_subscriptions(), on_ack=lambda: conn.subscribe(snapshot, on_ack=on_snapshot_ack))

    def _on_lost(self) -> None:
        self.synced.clear()  # until the next snapshot, what we hold may be stale

    def _on_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self._sync_topic:
            self._snapshot_complete(conn)
            return
        with self._lock:
            events = self.state.receive(topic, payload, retained=retained, wall=self.wiring.wall(), mono=self.wiring.monotonic())
            if events:
                self._emit(events)
        if any(isinstance(event, TypingChanged) for event in events):
            self._schedule_expiry()  # only typing brings a new expiry

    def _snapshot_complete(self, conn: Connection) -> None:
        if self.synced.is_set():
            return  # the echo is QoS 0, but be safe against a duplicate
        with self._lock:
            events = self.state.end_resync()
            self._emit([*events, SnapshotComplete()])
        conn.unsubscribe(self._snapshot_filters())
        self.snapshots += 1
        self.synced.set()
        self._reap(conn)

    # -- typing expiry ----------------------------------------------------------------------
    def _schedule_expiry(self) -> None:
        with self._lock:
            at = self.state.next_expiry()
        if at is None or (self._expiry_at is not None and self._expiry_at <= at):
            return
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        self._expiry_at = at
        self._expiry_timer = self.wiring.network.call_later(max(0.0, at - self.wiring.monotonic()), self._expire)

    def _expire(self) -> None:
        self._expiry_timer = self._expiry_at = None
        with self._lock:
            events = self.state.expire(mono=self.wiring.monotonic())
            if events:
                self._emit(events)
        self._schedule_expiry()

    # -- retained clean-up ------------------------------------------------------------------
    def _reap(self, conn: Connection) -> None:
        if self._reap_timer is not None:
            self._reap_timer.cancel()
        cutoff = self.wiring.wall() - self.wiring.last_seen_retention
        with self._lock:
            topics = self.state.offline_device_topics(older_than=cutoff)[:REAP_LIMIT]
        for topic in topics:
            conn.publish(self.wiring.scheme.render(topic), b"", qos=1, retain=True)
        self.reaped += len(topics)
        if topics:
            log.info("cleared %d device topics offline for longer than %.0f s", len(topics), self.wiring.last_seen_retention)
        self._reap_timer = self.wiring.network.call_later(self._reap_every, lambda: self._reap_if_connected())

    def _reap_if_connected(self) -> None:
        conn = self._conn
        if conn is not None and self.connected and not self._closing:
            self._reap(conn)

    def close(self) -> None:
        conn = self._stop_reconnecting()
        for timer in (self._expiry_timer, self._reap_timer):
            if timer is not None:
                timer.cancel()
        if conn is not None:
            conn.disconnect()
