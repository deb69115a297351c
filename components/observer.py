"""The process's one watching connection: it subscribes to the org's presence and to
the rooms the process shows (added and removed on demand), feeds an OrgState, and
hands the resulting events on.

Snapshot and live stream (a default Mosquitto drops QoS 1 deliveries past ~1,000
queued, and a lost offline is a ghost):
1. live: presence and receipts at QoS 1 with MQTT 5 retain handling 2 (no retained
   copies), typing, cursors and reactions at QoS 0, chat at QoS 1, plus our sync topic;
2. on that SUBACK, snapshot: `presence/{org}/#` and `receipts/{org}/{room}/#` at QoS 0,
   which a default broker delivers in full;
3. end-of-snapshot marker: on the snapshot's SUBACK the observer publishes one QoS 0
   message to its own sync topic, a random marker it remembers. The broker queued
   every retained message before it sent that SUBACK and delivers one client's
   messages in order, so when the marker comes back the snapshot is complete (one
   round trip, no guessed quiet period). Then the snapshot filters are dropped.
   Epochs make the two streams safe to merge. A payload on the sync topic that is not
   a marker in flight (another account may write there) changes nothing.
A room added later (rooms on demand) takes the same three steps for its own topics,
and its own marker emits RoomSynced when its retained receipts are complete.
On 3.1.1 (no retain handling) the live subscription repeats some retained messages;
they are equal to what is held and change nothing. A refused subscription is never taken
for success: the observer records why (`refusal`, `last_error`) and connects again.

Capabilities checked at every snapshot (capabilities.py): before subscribing to the
snapshot, the observer stores a retained marker on its sync topic, and the snapshot
includes `sync/{org}/+`. A broker that delivers retained messages to wildcard
subscriptions hands the marker back before the echo; one that does not (RabbitMQ 3.10)
would show every late joiner an empty org, so the observer refuses: it keeps applying
live messages but never reports itself synced, and says why (`refusal`). With several
broker URLs, a short-lived connection to another node then reads the marker too: a
broker that keeps retained messages per node is refused the same way. The marker is
cleared afterwards.

Leases (leases.py): a timer at the state's next lease deadline shows lapsed devices
offline; the observer then publishes, retained, the offline their will would have
carried (same epoch), so the broker's state says so too. Every watcher does it and the
documents are alike; a device that is alive after all re-asserts itself at once.

Chat history: with a `record` callback (the session's history writer), every chat the
state accepts, whoever sent it, is handed over as it arrives; the callback only queues.

Offline device topics older than the last-seen retention are cleared (empty retained)
after each snapshot and periodically, on any broker; MQTT 5 message expiry on offline
messages and wills does the same inside the broker. So are offline device topics a user
does not need, after SURPLUS_AFTER: every tab is a new device, and a user's newest
offline device already says when they were last seen.

"Last seen" after a crash: a will is composed when its connection starts, so the
offline the broker stores for a crashed device carries the `since` of that start. An
observer that sees a will fire (org_state.FiredWill) re-publishes the same offline,
retained, with the same epoch, without `will_delay`, and `since` set to when the device
left (presence.device_presence), so later joiners read that and not when the device
came online. The same epoch keeps it from winning over a newer connection: watchers
ignore it, and a device that came back meanwhile sees its topic overwritten by an older
epoch and re-asserts at once (guarantee 3); just before publishing the observer checks
that it still holds that offline. Of several observers (one per replica) each waits a
random part of LAST_SEEN_STAGGER and cancels when it hears another's first, so one
speaks; two only when their delays fall within a round trip of each other, which
changes nothing (a watcher that knows when a device left ignores a repeat). Only an
account that may write other users' presence (the server account) can say it: a
watcher under a user account is refused by the broker's ACL, which nobody hears, so
another observer speaks instead.

Ghosts after a broker restart with persistence: a device that died while the broker
was down has its retained online restored and its will never fired (measured on
Mosquitto 2.0.11). Every live device re-announces with a new epoch within
REANNOUNCE_WINDOW of the broker coming back, so after the observer reconnects and
that window passes, the devices it held live before the loss and that still show the
same epoch are probed: a non-retained presence with `"probe": true` and their epoch.
A live device answers by re-announcing (the same document: watchers see no change;
kit watchers ignore probes); one that stays silent for PROBE_TIMEOUT is buried with the
offline its will would have carried. When only the observer's own link dropped, every
device answers and nothing flickers. After a failover to another node of a cluster,
leased devices are not probed: those that died with the old node are the lease's to
bury, and live ones may be unable to answer in time while the cluster re-elects its
leaders (a NATS node then closes connections whose publishes wait on JetStream).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .broker import Endpoint
from .capabilities import REFUSE_PER_NODE, REFUSE_WILDCARDS
from .errors import InvalidPayload
from .events import ChatMessage, ChatReceived, CursorMoved, Event, RoomSynced, TypingChanged
from .mqtt_connection import Connection, Subscription
from .network_loop import Alarm, Timer
from .org_state import FiredWill, OrgState
from .payloads import decode, encode
from .presence import DevicePresence
from .reconnecting import ReconnectingClient, Wiring
from .topics import RETAINED_KINDS, ROOM_KINDS, Topic

log = logging.getLogger(__name__)

REAP_LIMIT = 500
"""Device topics cleared per sweep, so one sweep never floods the broker."""
SURPLUS_AFTER = 60.0
"""Seconds an offline device topic the user does not need (see
OrgState.surplus_device_topics) is kept before it is cleared; also the sweep period."""
REANNOUNCE_WINDOW = 5.0
"""Seconds after a reconnect within which every live device has re-announced itself."""
PROBE_TIMEOUT = 1.0
"""Seconds a probed device has to answer before it is marked offline."""
PROBE_LIMIT = 1000
"""Devices probed after one reconnect, so a probe never floods the broker."""
SNAPSHOT_TIMEOUT = 30.0
"""Seconds from CONNACK to the end of the snapshot, else connect again (a NATS node that
lost its JetStream quorum accepts connections but acknowledges nothing)."""
MARKER = b"retained?"
"""The retained marker of the capability checks (on the observer's own sync topic)."""
MARKER_TRIES = 3
"""Snapshots in a row without the marker (each on a new connection) before refusing."""
MARKER_EXPIRY = 60
"""MQTT 5 message expiry of the marker, in case the observer dies before clearing it."""
REPLICA_TRIES = 3
REPLICA_WAIT = 1.0
"""Seconds another node has, per try, to hand back the retained marker."""
LAST_SEEN_STAGGER = 0.5
"""Most seconds an observer waits (a random part of it) before it says when a device
whose will fired was last seen; the first observer to speak silences the others."""
LAST_SEEN_LIMIT = 1000
"""Wills awaiting their "last seen" at once: beyond it (a mass crash), a will keeps the
`since` of its connection's start for late joiners."""


@dataclass(slots=True)
class _LastSeen:
    """A will seen firing whose "last seen" this observer says unless another does first."""

    topic: Topic
    epoch: int
    will: bytes
    """The will as the broker sent it: anything else on its topic means it was said, or
    the device is back."""
    doc: dict
    timer: Timer


class Observer(ReconnectingClient):
    def __init__(
        self,
        wiring: Wiring,
        *,
        state: OrgState,
        lock: threading.RLock,
        emit: Callable[[list[Event]], None],
        record: Callable[[ChatMessage], None] | None = None,
        surplus_after: float = SURPLUS_AFTER,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(wiring, client_prefix=f"{wiring.org}:observer:{os.getpid()}")
        self.state = state
        self._lock = lock
        self._emit = emit
        self._record = record
        self._surplus_after = surplus_after
        self._reap_every = surplus_after
        self._sync_topic = ""
        self._markers: dict[bytes, tuple[str, ...] | None] = {}
        """End-of-snapshot markers in flight: random payloads echoed on our sync topic,
        for the org's snapshot (None) or some rooms', so nobody else's echo can end one."""
        self._rooms_to_sync: list[str] = []
        """Rooms added since the last loop pass: subscribed together, in one chain."""
        self.ready_rooms: set[str] = set()
        """Rooms whose retained state is complete on the current connection."""
        self._syncing_rooms: set[str] = set()
        """Rooms added on demand whose marker has not come back: their retained messages
        reach listeners in their RoomSynced, not one by one."""
        self._marker_seen = False
        self._marker_misses = 0
        self._replicas_checked = wiring.settings.capabilities.retained_replicated is not None or len(wiring.settings.endpoints) == 1
        self._refusals: dict[str, str] = {}
        """Why this broker cannot give a correct snapshot, by check (then `synced` never sets)."""
        self.settled = threading.Event()
        """A snapshot ended, synced or refused."""
        self._lapse_alarm = Alarm(wiring.network, clock=wiring.wall, fire=self._lapse)
        self.lapsed = 0
        self._expiry_alarm = Alarm(wiring.network, clock=wiring.monotonic, fire=self._expire)
        self._reap_timer: Timer | None = None
        self.synced = threading.Event()
        self.snapshots = 0
        self.reaped = 0
        self._suspects: dict[tuple[str, str], int] = {}
        self._endpoints: tuple[Endpoint | None, Endpoint | None] = (None, None)
        """The node of the connection before this one, and of this one."""
        self._probed: dict[str, tuple[str, str, int]] = {}
        self._probe_timer: Timer | None = None
        self.probed = 0
        self.buried = 0
        self._pending: list[Event] = []
        self._jitter = jitter
        """A fraction in [0, 1): which part of LAST_SEEN_STAGGER to wait."""
        self._last_seen: dict[str, _LastSeen] = {}
        self.last_seen_sent = 0

    def _live_subscriptions(self) -> list[Subscription]:
        scheme, org = self.wiring.scheme, self.wiring.org
        subs = [Subscription(f, qos=1, retain_handling=2) for f in (*scheme.presence_filters(org), scheme.lease_filter(org))]
        for room in self.state.rooms:
            subs += self._room_live(room)
        subs.append(Subscription(self._sync_topic, qos=0))
        return subs

    def _room_live(self, room: str) -> list[Subscription]:
        scheme, org = self.wiring.scheme, self.wiring.org
        return [
            Subscription(scheme.room_filter(kind, org, room), qos=1 if kind in ("receipts", "chat") else 0, retain_handling=2)
            for kind in ROOM_KINDS
        ]

    def _room_snapshot_filters(self, room: str) -> list[str]:
        return [self.wiring.scheme.snapshot_filter(kind, self.wiring.org, room) for kind in ROOM_KINDS if kind in RETAINED_KINDS]

    def _snapshot_filters(self) -> list[str]:
        scheme, org = self.wiring.scheme, self.wiring.org
        filters = [scheme.snapshot_filter("presence", org), scheme.snapshot_filter("lease", org), self._sync_topic.rpartition("/")[0] + "/+"]
        for room in self.state.rooms:
            filters += self._room_snapshot_filters(room)
        return filters

    def _echo(self, conn: Connection, rooms: tuple[str, ...] | None) -> None:
        """Publish an end-of-snapshot marker for the org (None) or `rooms` to ourselves."""
        marker = secrets.token_hex(8).encode()
        self._markers[marker] = rooms
        conn.publish(self._sync_topic, marker, qos=0, retain=False)

    # -- connection hooks (network thread) -------------------------------------------------
    def _on_connected(self, conn: Connection) -> None:
        self._endpoints = (self._endpoints[1], conn.endpoint)
        self.synced.clear()
        self.settled.clear()
        self._marker_seen = False
        self._markers.clear()
        self._sync_topic = self.wiring.scheme.sync_topic(self.wiring.org, f"o{os.getpid()}-{self.epoch}")
        with self._lock:
            self.state.begin_resync()
            self.ready_rooms.clear()
        self._subscribe_then_echo(conn, self._live_subscriptions(), self._snapshot_filters(), rooms=None)
        self.wiring.network.call_later(SNAPSHOT_TIMEOUT, lambda: self._snapshot_overdue(conn))
        self._up(conn)

    def _subscribe_then_echo(self, conn: Connection, live: list[Subscription], snapshot: list[str], *, rooms: tuple[str, ...] | None) -> None:
        """Live first (so nothing is missed between the two), then the retained snapshot
        at QoS 0, then our marker: when it comes back, the snapshot is complete. The
        org's snapshot (rooms None) first stores the capability checks' retained marker,
        acknowledged, so the snapshot can hand it back."""
        retained = [Subscription(f, qos=0) for f in snapshot]

        def take_snapshot() -> None:
            conn.subscribe(retained, on_ack=lambda: self._echo(conn, rooms), on_refused=lambda refused: self._refused(conn, refused))

        def after_live() -> None:
            if rooms is None:
                conn.publish(self._sync_topic, MARKER, qos=1, retain=True, expiry=MARKER_EXPIRY, on_ack=take_snapshot)
            else:
                take_snapshot()

        conn.subscribe(live, on_ack=after_live, on_refused=lambda refused: self._refused(conn, refused))

    def _snapshot_overdue(self, conn: Connection) -> None:
        if conn is self._conn and not self.settled.is_set():
            conn.abandon(f"no snapshot within {SNAPSHOT_TIMEOUT:.0f} s")

    # -- rooms on demand (network thread) ----------------------------------------------------
    def add_room(self, room: str) -> None:
        """Keep `room`: subscribe to its topics in this loop pass (with every room added
        in it: 100 tabs joining 100 rooms at once are one chain of three packets, not a
        hundred), or with everything on the next connect; RoomSynced is emitted when its
        retained receipts are complete."""
        with self._lock:
            if not self.state.add_room(room):
                return
        if self.connected:
            self._syncing_rooms.add(room)
            if not self._rooms_to_sync:  # after this pass's callbacks: every room added in it
                self.wiring.network.call_later(0.0, self._sync_added_rooms)
            self._rooms_to_sync.append(room)

    def _sync_added_rooms(self) -> None:
        rooms, self._rooms_to_sync = tuple(r for r in self._rooms_to_sync if r in self._syncing_rooms), []
        conn = self._conn
        if rooms and conn is not None and self.connected:
            live = [sub for room in rooms for sub in self._room_live(room)]
            snapshot = [f for room in rooms for f in self._room_snapshot_filters(room)]
            self._subscribe_then_echo(conn, live, snapshot, rooms=rooms)

    def remove_room(self, room: str) -> None:
        """Forget `room` and leave its topics."""
        with self._lock:
            if room not in self.state.rooms:
                return
            self.state.drop_room(room)
            self.ready_rooms.discard(room)
        self._syncing_rooms.discard(room)
        conn = self._conn
        if conn is not None and self.connected:
            conn.unsubscribe([s.filter for s in self._room_live(room)])

    def _refused(self, conn: Connection, refused: list[str]) -> None:
        """A subscription the state needs was refused (each entry names a filter and the
        broker's reason): never synced on this connection, `refusal`, `last_error` and
        the health route say which and why, and the observer connects again (half a view
        is no view; a broker that was electing leaders may grant it next time)."""
        why = f"broker refused the subscription to {', '.join(refused)}"
        self._refuse("subscription", why)
        conn.abandon(why)

    def _on_lost(self) -> None:
        self.synced.clear()  # until the next snapshot, what we hold may be stale
        self.settled.clear()
        if self._probe_timer is not None:
            self._probe_timer.cancel()
        self._forget_last_seen()  # another observer may say it; we would say it late
        self._syncing_rooms.clear()  # the next connect's snapshot covers every room
        self._rooms_to_sync.clear()
        with self._lock:  # live devices as of now: each must show a new epoch or answer a probe
            self.ready_rooms.clear()
            for user, state in self.state.presence.devices():
                # only the kit's own devices (epoch > 0) know to answer a probe
                if state.device is not None and state.live and state.epoch > 0:
                    self._suspects[(user, state.device)] = state.epoch

    def _on_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self._sync_topic:
            if payload == MARKER:
                self._marker_seen |= retained  # its live copy is not retained
            elif payload in self._markers:  # anything else on our topic is somebody else's
                rooms = self._markers.pop(payload)
                self._snapshot_complete(conn) if rooms is None else self._rooms_complete(conn, rooms)
            return
        if self._probed and not retained and topic in self._probed and self._answers_probe(payload):
            del self._probed[topic]  # the device answered: it lives
        if self._last_seen and topic in self._last_seen and payload != self._last_seen[topic].will:
            self._last_seen.pop(topic).timer.cancel()  # another observer said it, or the device moved on
        with self._lock:
            events = self.state.receive(topic, payload, retained=retained, wall=self.wiring.wall(), mono=self.wiring.monotonic())
            fired = self.state.fired
        if fired is not None:
            self._await_last_seen(conn, topic, payload, fired)
        if self._record is not None:  # every chat seen, whoever sent it, goes to the history
            for event in events:
                if isinstance(event, ChatReceived):
                    self._record(event.message)  # only queues: never blocks this thread
        if retained and events and self._syncing_rooms:
            events = [e for e in events if getattr(e, "room", None) not in self._syncing_rooms]  # in its RoomSynced
        if not events or (retained and self.state.resyncing):
            return  # a resync's retained state reaches listeners as one Snapshot at its end
        if not self._pending:
            self.wiring.network.call_soon(self._flush)
        self._pending += events
        if any(isinstance(event, TypingChanged) for event in events):
            self._schedule_expiry()  # a typing ttl may end before the pending expiry
        elif isinstance(events[-1], CursorMoved) and (self._expiry_alarm.at is None or self._expiry_alarm.at > self.wiring.monotonic() + self.state.cursor_ttl):
            self._schedule_expiry()  # the cursor ends before the pending expiry (if any)
        self._schedule_lapse()

    def _flush(self) -> None:
        """Hand the events of one network-loop pass to the listeners in one batch."""
        with self._lock:
            events, self._pending = self._pending, []
            self._emit(events)

    def _snapshot_complete(self, conn: Connection) -> None:
        if self.settled.is_set():
            return  # the echo is QoS 0, but be safe against a duplicate
        configured = self.wiring.settings.capabilities.retained_to_wildcards
        missed = configured is None and not self._marker_seen
        self._marker_misses = self._marker_misses + 1 if missed else 0
        if missed and self._marker_misses < MARKER_TRIES:  # a NATS node electing leaders can miss it once
            conn.abandon("the retained marker did not come back with the snapshot; checking again")
            return
        wall = self.wiring.wall()
        with self._lock:
            self.state.end_resync(wall=wall)
            _, lapsed = self.state.lapse(wall=wall)  # before the Snapshot: a late joiner sees no ghost
            self._refusals.pop("subscription", None)  # every subscription was granted this time
            if configured is False or missed:
                self._refuse("wildcards", REFUSE_WILDCARDS.format(url=conn.url))
            else:
                self._refusals.pop("wildcards", None)
            self.ready_rooms.update(self.state.rooms)
            self._emit([*self._pending, self.state.snapshot(complete=self.refusal is None)])
            self._pending = []
        conn.unsubscribe(self._snapshot_filters())
        self.snapshots += 1
        if self.refusal is None:
            self.synced.set()
        self.settled.set()
        if self._replicas_checked:
            conn.publish(self._sync_topic, b"", qos=1, retain=True)  # the marker served
        else:
            self._check_replicas(conn)
        self._bury_lapsed(conn, lapsed)
        self._schedule_lapse()
        self._reap(conn)
        if self._endpoints[0] != conn.endpoint:  # failed over: the lease bounds leased devices
            with self._lock:
                self._suspects = {key: epoch for key, epoch in self._suspects.items() if (held := self.state.presence.device(*key)) is None or held.until is None}
        if self._suspects:
            self._probe_timer = self.wiring.network.call_later(REANNOUNCE_WINDOW, lambda: self._probe(conn))

    def _rooms_complete(self, conn: Connection, rooms: tuple[str, ...]) -> None:
        synced = []
        with self._lock:
            for room in rooms:
                self._syncing_rooms.discard(room)
                state = self.state.rooms.get(room)
                if state is not None:  # else left again meanwhile
                    self.ready_rooms.add(room)
                    synced.append(RoomSynced(room, state.snapshot()))
            self._emit([*self._pending, *synced])
            self._pending = []
        conn.unsubscribe([f for room in rooms for f in self._room_snapshot_filters(room)])

    @property
    def refusal(self) -> str | None:
        """Why this broker cannot give a correct snapshot (then `synced` never sets)."""
        return next(iter(self._refusals.values()), None)

    def _refuse(self, check: str, why: str) -> None:
        if check not in self._refusals:
            log.error("presence refused: %s", why)
        self._refusals[check] = why
        self.synced.clear()

    # -- capabilities: retained messages across nodes -----------------------------------------
    def _check_replicas(self, conn: Connection) -> None:
        """Read the marker (still retained on `conn`'s node) from another node."""
        self._replicas_checked = True
        endpoints = self.wiring.settings.endpoints
        other = endpoints[(endpoints.index(conn.endpoint) + 1) % len(endpoints)]
        _ReplicaCheck(self, conn, other).start()

    def _replicas_answered(self, marker_topic: str, first_url: str, replicated: bool | None, other_url: str) -> None:
        """`replicated` None: the other node could not be reached; checked next time."""
        conn = self.connection
        if conn is not None:
            conn.publish(marker_topic, b"", qos=1, retain=True)
        if replicated is None:
            self._replicas_checked = False
        elif not replicated:
            with self._lock:
                self._refuse("replicas", REFUSE_PER_NODE.format(first=first_url, second=other_url))
                self._emit([self.state.snapshot(complete=False)])

    # -- leases ---------------------------------------------------------------------------------
    def _schedule_lapse(self) -> None:
        with self._lock:
            self._lapse_alarm.arm(self.state.next_lapse())

    def _lapse(self) -> None:
        with self._lock:
            events, lapsed = self.state.lapse(wall=self.wiring.wall())
            if events:
                self._emit(events)
        conn = self._conn
        if conn is not None and self.connected:
            self._bury_lapsed(conn, lapsed)
        self._schedule_lapse()

    def _bury_lapsed(self, conn: Connection, lapsed: list[tuple[str, DevicePresence]]) -> None:
        """Publish the offline each lapsed device's will would have carried."""
        buried = [(user, state) for user, state in lapsed if state.device is not None][:REAP_LIMIT]
        for user, state in buried:
            doc = {"status": "offline", "epoch": state.epoch, "since": round(self.state.leases.valid_until(state), 3)}
            conn.publish(self._device_topic(user, state.device), encode("presence", doc), qos=1, retain=True, expiry=int(self.wiring.last_seen_retention))  # type: ignore[arg-type]
        self.lapsed += len(lapsed)
        if lapsed:
            log.warning("%d devices shown offline: their lease ran out (a broker node died with them?)", len(lapsed))

    # -- ghosts of a broker restart --------------------------------------------------------------
    def _still_silent(self) -> list[tuple[str, str, int]]:
        """Suspects still live with the epoch they had when we lost the broker."""
        with self._lock:
            found = []
            for (user, device), epoch in self._suspects.items():
                held = self.state.presence.device(user, device)
                if held is not None and held.live and held.epoch == epoch:
                    found.append((user, device, epoch))
            return found

    def _probe(self, conn: Connection) -> None:
        if conn is not self._conn or not self.connected:
            return  # lost again: the next reconnect probes
        silent = self._still_silent()[:PROBE_LIMIT]
        self._suspects = {}
        self._probed = {self._device_topic(user, device): (user, device, epoch) for user, device, epoch in silent}
        for topic, (_, _, epoch) in list(self._probed.items()):
            doc = {"status": "online", "epoch": epoch, "probe": True}
            conn.publish(topic, encode("presence", doc), qos=1, retain=False)
        self.probed += len(silent)
        if silent:
            self._probe_timer = self.wiring.network.call_later(PROBE_TIMEOUT, lambda: self._bury(conn))

    def _bury(self, conn: Connection) -> None:
        if conn is not self._conn or not self.connected:
            return
        probed, self._probed = self._probed, {}
        with self._lock:
            silent = [(u, d, e) for u, d, e in probed.values() if (held := self.state.presence.device(u, d)) is not None and held.live and held.epoch == e]
        for user, device, epoch in silent:
            doc = {"status": "offline", "epoch": epoch, "since": round(self.wiring.wall(), 3)}
            topic = self._device_topic(user, device)
            conn.publish(topic, encode("presence", doc), qos=1, retain=True, expiry=int(self.wiring.last_seen_retention))
        self.buried += len(silent)
        if silent:
            log.warning("marked %d devices offline that did not answer after a reconnect (died while the broker was down?)", len(silent))

    @staticmethod
    def _answers_probe(payload: bytes) -> bool:
        try:
            doc = decode("presence", payload)
        except InvalidPayload:
            return False
        return doc["status"] != "offline" and not doc.get("probe")

    def _device_topic(self, user: str, device: str) -> str:
        return self.wiring.scheme.render(Topic("presence", self.wiring.org, user, device=device))

    # -- "last seen" after a crash -------------------------------------------------------------
    def _await_last_seen(self, conn: Connection, name: str, will: bytes, fired: FiredWill) -> None:
        if len(self._last_seen) >= LAST_SEEN_LIMIT:
            return
        timer = self.wiring.network.call_later(LAST_SEEN_STAGGER * self._jitter(), lambda: self._say_last_seen(conn, name))
        self._last_seen[name] = _LastSeen(fired.topic, fired.doc.get("epoch", 0), will, fired.doc, timer)

    def _say_last_seen(self, conn: Connection, name: str) -> None:
        pending = self._last_seen.pop(name, None)
        if pending is None or conn is not self._conn or not self.connected:
            return
        with self._lock:
            held = self.state.presence.device(pending.topic.user, pending.topic.device)
        if held is None or held.live or held.epoch != pending.epoch or held.since is None:
            return  # the device came back, or its topic was cleared
        doc = {key: value for key, value in pending.doc.items() if key != "will_delay"}
        doc["since"] = round(held.since, 3)
        conn.publish(name, encode("presence", doc), qos=1, retain=True, expiry=int(self.wiring.last_seen_retention))
        self.last_seen_sent += 1

    def _forget_last_seen(self) -> None:
        for pending in self._last_seen.values():
            pending.timer.cancel()
        self._last_seen.clear()

    # -- typing expiry ----------------------------------------------------------------------
    def _schedule_expiry(self) -> None:
        with self._lock:
            self._expiry_alarm.arm(self.state.next_expiry())

    def _expire(self) -> None:
        with self._lock:
            events = self.state.expire(mono=self.wiring.monotonic())
            if events:
                self._emit(events)
        self._schedule_expiry()

    # -- retained clean-up ------------------------------------------------------------------
    def _reap(self, conn: Connection) -> None:
        if self._reap_timer is not None:
            self._reap_timer.cancel()
        now = self.wiring.wall()
        with self._lock:
            expired = self.state.offline_device_topics(older_than=now - self.wiring.last_seen_retention)
            surplus = self.state.surplus_device_topics(older_than=now - self._surplus_after)
        topics = list(dict.fromkeys(expired + surplus))[:REAP_LIMIT]
        for topic in topics:
            conn.publish(self.wiring.scheme.render(topic), b"", qos=1, retain=True)
        self.reaped += len(topics)
        if topics:
            log.info("cleared %d offline device topics (older than %.0f s, or not the user's last seen)", len(topics), self.wiring.last_seen_retention)
        self._reap_timer = self.wiring.network.call_later(self._reap_every, lambda: self._reap_if_connected())

    def _reap_if_connected(self) -> None:
        conn = self._conn
        if conn is not None and self.connected and not self._closing:
            self._reap(conn)

    def close(self) -> None:
        conn = self._stop_reconnecting()
        for timer in (self._reap_timer, self._probe_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_alarm.cancel()
        self._lapse_alarm.cancel()
        self._forget_last_seen()
        if conn is not None:
            conn.disconnect()


class _ReplicaCheck:
    """A short-lived connection to another node that subscribes to the observer's sync
    topic and reports whether the retained marker is there (REPLICA_TRIES tries,
    REPLICA_WAIT apart, for brokers that replicate asynchronously)."""

    def __init__(self, observer: Observer, conn: Connection, other: object) -> None:
        self._observer = observer
        self._origin_url = conn.url
        wiring = observer.wiring
        self._topic = observer._sync_topic
        self._conn = Connection(
            wiring.settings,
            endpoint=other,  # type: ignore[arg-type]
            v5=conn.v5,  # the nodes of one cluster speak the same protocols
            client_id=f"{observer._client_prefix}:replicas:{wiring.epochs.next()}",
            handler=self,
            network=wiring.network,
        )
        self._tries = 0
        self._done = False

    def start(self) -> None:
        self._observer.wiring.network.connect(self._conn, on_error=lambda exc: self._finish(None))

    def _subscribe(self) -> None:
        if self._done:
            return
        self._tries += 1
        self._conn.unsubscribe([self._topic])
        self._conn.subscribe([Subscription(self._topic, qos=0)], on_refused=lambda _: self._finish(None))
        self._observer.wiring.network.call_later(REPLICA_WAIT, self._timed_out)

    def _timed_out(self) -> None:
        if not self._done:
            self._subscribe() if self._tries < REPLICA_TRIES else self._finish(False)

    def _finish(self, replicated: bool | None) -> None:
        if self._done:
            return
        self._done = True
        if self._conn.connacked:
            self._conn.disconnect()
        self._observer._replicas_answered(self._topic, self._origin_url, replicated, self._conn.url)

    # -- ConnectionHandler (network thread) ------------------------------------------------
    def handle_connected(self, conn: Connection) -> None:
        self._subscribe()

    def handle_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self._topic and payload == MARKER and retained:
            self._finish(True)

    def handle_lost(self, conn: Connection, reason: str) -> None:
        net = self._observer.wiring.network
        if not net.in_loop_thread():
            net.call_soon(lambda: self.handle_lost(conn, reason))
            return
        self._finish(None)
