"""A device: one identity (user + device id) online through its own MQTT connection,
whose will marks it offline when the connection dies without a goodbye.

On every (re)connect it takes a new epoch and publishes, retained and QoS 1 on
`presence/{org}/{user}/{device}`, its status with that epoch and its lease (`until`
and the process's lease it names, leases.py); the will is the same document with
status offline and `will_delay`, the seconds the broker waits before it publishes it
(its `since` is when the connection started: a watcher that sees it fire dates the
departure, see presence.py). Watchers ignore lower epochs, and the device watches its
own topic: if an older epoch (a stale will, or an observer's "last seen" for it) or an
empty payload overwrites it, it re-asserts itself at once (guarantee 3). An
announcement the broker acknowledges only after SLOW_ACK goes out again
(mqtt_connection.py: NATS may not have kept it). A clean
`close()` publishes offline and waits for the broker's ack, because a clean DISCONNECT
discards the will.

Where the device is goes in the same document while it lives (components/fields.py):
the field it edits (`focus`, with `lock` a claim on the field's soft lock), whom it
follows, whether its user may be followed. Each change re-announces it with the same
epoch; the offline document and the will carry none of it, so nothing outlives the
device.

Methods are safe to call from any thread; MQTT work runs on the network thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from .errors import InvalidPayload
from .display_names import clean_display_name
from .events import ChatMessage
from .fields import Focus, check_field
from .ids import check_id
from .message_ids import MessageIds
from .mqtt_connection import Connection, PublishHandle, Subscription, Will
from .payloads import decode, encode
from .reconnecting import ReconnectingClient, Wiring
from .rooms import DEFAULT_TYPING_TTL
from .throttle import Throttle
from .topics import Topic

log = logging.getLogger(__name__)

LiveStatus = Literal["online", "away"]
MAX_CURSOR_HZ = 20.0
OUTBOX_LIMIT = 100
RESUBSCRIBE_EVERY = 1.0


class Device(ReconnectingClient):
    def __init__(
        self,
        wiring: Wiring,
        *,
        user: str,
        device: str,
        name: str | None = None,
        avatar: str | None = None,
        rooms: tuple[str, ...] = (),
        cursor_hz: float = MAX_CURSOR_HZ,
        message_ids: MessageIds,
        audience: Callable[[str, str], bool] | None = None,
        store_first: Callable[[ChatMessage], object] | None = None,
        on_closed: Callable[[Device], None] | None = None,
        on_rooms: Callable[[Device], None] | None = None,
        claim_floor: Callable[[str, str], int] | None = None,
    ) -> None:
        """`claim_floor(room, field)`: the lowest claim epoch that queues behind every
        claim on the field the session sees (fields.RoomFields.floor)."""
        self.user = check_id(user, kind="user")
        self.device = check_id(device, kind="device")
        self.rooms = tuple(check_id(room, kind="room") for room in rooms)
        super().__init__(wiring, client_prefix=f"{wiring.org}:{user}:{device}")
        self.name = name
        self.avatar = avatar
        self._topic = wiring.scheme.render(Topic("presence", wiring.org, user, device=device))
        self._status: LiveStatus = "online"
        self._since = wiring.wall()
        self._lock = threading.Lock()
        self._receipts: dict[str, str] = {}
        self._outbox: list[tuple[str, bytes]] = []
        self._cursor_interval = 1.0 / min(max(cursor_hz, 0.1), MAX_CURSOR_HZ)
        self._cursor_pending: dict[str, bytes] = {}
        self._cursor_throttles: dict[str, Throttle] = {}
        self._message_ids = message_ids
        self._audience = audience
        self._store_first = store_first
        self._on_closed = on_closed
        self._on_rooms = on_rooms
        self._claim_floor = claim_floor
        self._focus: Focus | None = None
        self._follow: tuple[str, str] | None = None
        self._unfollowable = False
        self.reasserted = 0
        self.cursors_sent = 0
        self.closed = False

    # -- presence documents ------------------------------------------------------------
    def _presence(self, status: str, since: float, *, will_delay: int | None = None) -> bytes:
        doc: dict[str, Any] = {"status": status, "epoch": self.epoch, "since": round(since, 3)}
        if will_delay is not None:
            doc["will_delay"] = will_delay
        lease = self.wiring.lease
        if lease is not None and status != "offline":
            doc["until"] = round(lease.valid_until(), 3)
            doc["lease"] = lease.name
        if self.name:
            doc["name"] = self.name
        if self.avatar:
            doc["avatar"] = self.avatar
        if self.rooms:
            doc["rooms"] = list(self.rooms)
        if status != "offline":  # where a live device is; nothing of it outlives the device
            if self._focus is not None:
                doc["focus"] = self._focus.to_json()
            if self._follow is not None:
                doc["follow"] = {"room": self._follow[0], "user": self._follow[1]}
            if self._unfollowable:
                doc["unfollowable"] = True
        return encode("presence", doc)

    def _will(self, epoch: int) -> Will:
        self.epoch = epoch
        delay = self.wiring.will_delay if self.wiring.settings.protocol == "5" else 0  # 3.1.1 has no will delay
        return Will(
            topic=self._topic,
            payload=self._presence("offline", self.wiring.wall(), will_delay=delay),
            delay=delay,
            expiry=int(self.wiring.last_seen_retention),
        )

    def _session_expiry(self) -> int:
        # at least the will delay, or brokers differ in whether the delay is honoured
        return self.wiring.will_delay

    @property
    def status(self) -> LiveStatus:
        return self._status

    # -- connection hooks (network thread) -------------------------------------------------
    def _on_connected(self, conn: Connection) -> None:
        """Watch our own topic, and announce (then count as connected) on its SUBACK: a
        broker that cannot take the subscription and ends the connection (a NATS node
        stores it in JetStream, which has no leader for seconds after a node died) then
        fires the will of a connection watchers never saw online, which they ignore
        while the device's last connection is leased (org_state), where an announced one
        would show a live device offline."""
        self._watch_own_topic(conn, then=lambda: self._announce_and_resend(conn))

    def _announce_and_resend(self, conn: Connection) -> None:
        if conn is not self._conn:
            return  # this connection is gone
        if self._closing:
            conn.disconnect()  # closed before it was announced: the will goes too
            return
        self._announce(conn)
        self._up(conn)  # connected from now: actions asked earlier were dropped, as before a CONNACK
        with self._lock:
            receipts = dict(self._receipts)
            outbox, self._outbox = self._outbox, []
        for room, up_to in receipts.items():
            self._publish_receipt(conn, room, up_to)
        for topic, payload in outbox:
            conn.publish(topic, payload, qos=1, retain=False)

    def _watch_own_topic(self, conn: Connection, *, then: Callable[[], None] | None = None) -> None:
        """Subscribe to our own presence topic (stale wills, probes), then `then()`; a
        refused subscription is asked again every second while the connection lives."""

        def again(_: list[str]) -> None:
            if then is not None:
                then()
            self.wiring.network.call_later(RESUBSCRIBE_EVERY, lambda: self._watch_own_topic(conn) if conn is self._conn and self.connected else None)

        conn.subscribe([Subscription(self._topic, qos=1)], on_ack=then, on_refused=again)

    def _announce(self, conn: Connection) -> None:
        conn.publish(self._topic, self._presence(self._status, self._since), qos=1, retain=True, again_if_slow=True)

    def _on_message(self, conn: Connection, topic: str, payload: bytes, retained: bool) -> None:
        """Our own presence topic changed. Re-assert when what the broker now holds is
        older than us: a stale will (lower epoch), our epoch's offline while we are
        alive, or an empty payload that cleared us."""
        if topic != self._topic or self._closing:
            return
        if payload:
            try:
                doc = decode("presence", payload)
            except InvalidPayload:
                doc = None
            if doc is not None and doc.get("probe"):
                if doc.get("epoch") == self.epoch and not retained:
                    self._announce(conn)  # a watcher asks whether this connection still lives
                return
            if doc is not None and (doc.get("epoch", 0) > self.epoch or (doc.get("epoch", 0) == self.epoch and doc["status"] != "offline")):
                return  # ours, or a newer connection of this device (a duplicate tab)
        self.reasserted += 1
        log.info("%s/%s: own presence overwritten by an older state; re-asserting", self.user, self.device)
        self._announce(conn)

    # -- the device's actions (any thread) ----------------------------------------------------
    def set_status(self, status: LiveStatus, *, since: float | None = None) -> None:
        """online, or away since `since` (absolute Unix seconds: when input stopped)."""
        if status not in ("online", "away"):
            raise ValueError(f"a live device is online or away, not {status!r}")
        with self._lock:
            if status == self._status:
                return
            self._status = status
            self._since = self.wiring.wall() if since is None else since
        self._on_network(self._announce)

    def set_rooms(self, rooms: tuple[str, ...]) -> None:
        """The rooms this device is in now (what its page shows): re-announced with the
        same epoch, so watchers see it move, never leave."""
        rooms = tuple(dict.fromkeys(check_id(room, kind="room") for room in rooms))
        with self._lock:
            if rooms == self.rooms:
                return
            self.rooms = rooms
        if self._on_rooms is not None:
            self._on_rooms(self)
        self._on_network(self._announce)

    # -- where the device is: the field it edits, whom it follows ---------------------------
    @property
    def focused(self) -> Focus | None:
        return self._focus

    @property
    def following(self) -> str | None:
        """The room in which this device follows someone (None: it follows nobody)."""
        return self._follow[0] if self._follow is not None else None

    def focus(self, room: str, field: str, *, label: str | None = None, lock: bool = False) -> None:
        """Edit `field` of `room` now (one field at a time), with `lock` claiming its
        soft lock. The claim's epoch is above every claim the session sees on the field,
        so a held field is queued for, never taken; focusing the same field again keeps
        the claim. `blur()`, `close()` and the will release it."""
        check_id(room, kind="room")
        check_field(field)
        label = clean_display_name(label)
        with self._lock:
            held = self._focus
            if held is not None and (held.room, held.field) == (room, field):
                claimed = held.claimed
            else:
                floor = self._claim_floor(room, field) if self._claim_floor is not None else 0
                claimed = max(self.wiring.epochs.next(), floor)
            focus = Focus(room, field, label, lock, claimed)
            if focus == held:
                return
            self._focus = focus
        self._on_network(self._announce)

    def blur(self) -> None:
        """Edit no field (releases a lock this device holds or queues for)."""
        with self._lock:
            if self._focus is None:
                return
            self._focus = None
        self._on_network(self._announce)

    def follow(self, room: str, user: str | None) -> None:
        """Follow `user` in `room` (None: nobody): their page then shows it."""
        check_id(room, kind="room")
        follow = (room, check_id(user, kind="user")) if user is not None else None
        with self._lock:
            if follow == self._follow:
                return
            self._follow = follow
        self._on_network(self._announce)

    def set_followable(self, followable: bool) -> None:
        """Whether this device's user may be followed (followers stop when it is not)."""
        with self._lock:
            if self._unfollowable == (not followable):
                return
            self._unfollowable = not followable
        self._on_network(self._announce)

    def typing(self, room: str, *, active: bool = True, ttl: float = DEFAULT_TYPING_TTL) -> None:
        """Signal typing (refresh it while typing) or its stop. The ttl bounds how long
        receivers show it without a refresh; MQTT 5 message expiry is set to it too."""
        check_id(room, kind="room")
        doc: dict[str, Any] = {"typing": active}
        if active:
            doc["ttl"] = int(ttl * 1000)
        payload = encode("typing", doc)
        topic = self._room_topic("typing", room, device=self.device)
        self._on_network(lambda conn: conn.publish(topic, payload, qos=0, retain=False, expiry=max(1, round(ttl))))

    def move_cursor(self, room: str, x: float, y: float, *, region: str | None = None, visible: bool = True) -> None:
        """Queue a cursor position (0..1 in the region). Sent at most once in each tick of
        1/`cursor_hz` seconds (components/throttle.py): at once when this tick sent
        nothing yet (a tab throttling itself to the same rate goes straight through),
        else at the next tick coalesced to the latest position; not at all when nobody
        else is in the room."""
        check_id(room, kind="room")
        doc: dict[str, Any] = {"x": x, "y": y, "visible": visible}
        if region is not None:
            doc["region"] = region
        payload = encode("cursor", doc)
        with self._lock:
            self._cursor_pending[room] = payload
        self.wiring.network.call_soon(lambda: self._cursor_throttle(room).poke())

    def _cursor_throttle(self, room: str) -> Throttle:
        throttle = self._cursor_throttles.get(room)
        if throttle is None:
            throttle = self._cursor_throttles[room] = Throttle(
                period=self._cursor_interval, flush=lambda: self._send_cursor(room),
                call_later=self.wiring.network.call_later, clock=self.wiring.monotonic,
            )
        return throttle

    def _send_cursor(self, room: str) -> None:
        with self._lock:
            payload = self._cursor_pending.pop(room, None)
        conn = self._conn
        if payload is None or conn is None or not self.connected or self._closing:
            return
        if self._audience is not None and not self._audience(room, self.user):
            return  # nobody else would see it
        self.cursors_sent += 1
        conn.publish(self._room_topic("cursor", room, device=self.device), payload, qos=0, retain=False)

    def send_chat(self, room: str, text: str) -> ChatMessage:
        """Publish a chat message (QoS 1). While disconnected it waits in a small outbox
        and goes out on reconnect.

        When the session has a history store, the message is stored first and published
        only once it is: this call then blocks for the write (run it in a worker thread
        from async code, never on the network thread) and raises HistoryUnavailable, or
        what is wrong with the message, without publishing anything when it could not
        be stored."""
        check_id(room, kind="room")
        message = ChatMessage(
            id=self._message_ids.next(), room=room, user=self.user, text=text, name=self.name, at=round(self.wiring.wall(), 3)
        )
        doc: dict[str, Any] = {"id": message.id, "text": text, "at": message.at}
        if self.name:
            doc["name"] = self.name
        payload = encode("chat", doc)
        topic = self._room_topic("chat", room)
        if self._store_first is not None:
            self._store_first(message)

        def publish(conn: Connection | None) -> None:
            if conn is None:
                with self._lock:
                    if len(self._outbox) < OUTBOX_LIMIT:
                        self._outbox.append((topic, payload))
                        return
                log.warning("%s/%s: chat outbox full while disconnected; message %s dropped", self.user, self.device, message.id)
            else:
                conn.publish(topic, payload, qos=1, retain=False)

        self._on_network(publish, offline=True)
        return message

    def mark_read(self, room: str, message: ChatMessage) -> bool:
        """Move this user's "read up to" marker in `room` to `message`. Never for one's
        own messages and never backwards; returns whether a receipt was sent."""
        check_id(room, kind="room")
        if message.user == self.user:
            return False
        with self._lock:
            if self._receipts.get(room, "") >= message.id:
                return False
            self._receipts[room] = message.id
        self._on_network(lambda conn: self._publish_receipt(conn, room, message.id))
        return True

    def _publish_receipt(self, conn: Connection, room: str, up_to: str) -> None:
        payload = encode("receipt", {"up_to": up_to, "at": round(self.wiring.wall(), 3)})
        conn.publish(self._room_topic("receipts", room), payload, qos=1, retain=True)

    def react(self, room: str, emoji: str, *, count: int = 1) -> None:
        check_id(room, kind="room")
        payload = encode("reaction", {"emoji": emoji, "count": count})
        topic = self._room_topic("reactions", room)
        self._on_network(lambda conn: conn.publish(topic, payload, qos=0, retain=False))

    def close(self, *, timeout: float = 3.0, left_at: float | None = None) -> bool:
        """Leave cleanly: publish offline (retained, QoS 1, same epoch), wait for the
        broker's ack, then DISCONNECT. Returns whether the offline was acknowledged;
        if not, the will still marks the device offline. `left_at` (Unix seconds, default
        now) is its "last seen": the bridge closes a tab's device after the leave grace
        and says when the tab went.

        The offline goes out on the network thread after every action asked of the
        device before (a status, a chat, typing), never before them: a status that
        overtook it would stay retained after the device left, a ghost. Anything asked
        after close() is dropped."""
        if self.closed:
            return True
        self.closed = True
        wait = not self.wiring.network.in_loop_thread()  # never wait on the network thread: it receives the ack
        left: list[tuple[Connection, PublishHandle]] = []
        queued = threading.Event()

        def leave() -> None:
            conn = self._stop_reconnecting()
            if conn is not None:
                offline = self._presence("offline", self.wiring.wall() if left_at is None else left_at)
                handle = conn.publish(self._topic, offline, qos=1, retain=True, expiry=int(self.wiring.last_seen_retention))
                left.append((conn, handle))
                if not wait:
                    conn.disconnect()
            queued.set()

        self.wiring.network.call_soon(leave)
        acked = False
        if wait:
            deadline = time.monotonic() + timeout
            if queued.wait(timeout):
                for conn, handle in left:
                    acked = handle.wait(max(0.0, deadline - time.monotonic()))
                    conn.disconnect()
            else:  # the loop was too busy to leave in time: disconnect right after it does
                self.wiring.network.call_soon(lambda: [conn.disconnect() for conn, _ in left])
        if self._on_closed is not None:
            self._on_closed(self)
        return acked

    # -- helpers ---------------------------------------------------------------------------
    def _room_topic(self, kind: Literal["typing", "cursor", "receipts", "chat", "reactions"], room: str, *, device: str | None = None) -> str:
        return self.wiring.scheme.render(Topic(kind, self.wiring.org, self.user, room=room, device=device))

    def _on_network(self, action: Callable[[Any], Any], *, offline: bool = False) -> None:
        """Run `action(conn)` on the network thread if connected (or with None when
        `offline` is set and there is no connection); drop it otherwise."""

        def run() -> None:
            if self._closing:
                return  # asked after close(): the device has left
            conn = self._conn if self.connected else None
            if conn is not None or offline:
                action(conn)

        self.wiring.network.call_soon(run)
