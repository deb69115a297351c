"""The shared session: one per process, headless, used by the widgets, bots and agents.

    session = PresenceSession("mqtt://127.0.0.1:1883", org="acme", rooms=["lobby"])
    session.start()
    unsubscribe = session.subscribe(print)     # a Snapshot, then deltas
    bot = session.open_device(user="helper-bot", device="bot-1", name="Helper")
    bot.typing("lobby"); bot.send_chat("lobby", "Hello!")
    bot.close(); session.close()

One observer connection watches the org (N open tabs cost the broker one
subscription, not N); every device has its own connection and will, and one lease
renewed for all of them bounds their presence where a will cannot fire (a broker node
that dies with them: leases.py). All connections share one network thread. Listeners run on one dispatcher thread, in order; a listener
that raises is logged and counted and the others still run.

Rooms follow demand: the rooms given at construction are watched for the session's
life; any other room is watched while something of this process is in it (a device
opened with it among its rooms, or `enter_room`), and for `linger` seconds after the
last one left, so a tab that reloads or a page that navigates back does not make the
session leave and re-enter. A room's events start with RoomSynced once its retained
state is complete; `room_ready(room)` says whether it is.

Fields and soft locks (components/fields.py): a device says which field of a room it
edits with `device.focus(room, field, lock=True)` and lets go with `blur()`; the
session holds every room's field state like the rest, and `lock_holder(room, field)`
applies the lock rule to it. `wait_for_lock` waits until a device holds a lock.

Chat history: given a `history_store`, a device's chat is stored before it is
published (send_chat blocks for the write and raises HistoryUnavailable when it could
not be stored), and the observer hands every chat it sees on the broker, whoever sent
it, to the history writer thread, which inserts it unless the store has its id. So every
replica on one database records everything and they converge; a replica that was down
finds what it missed in the database, written there by the others. `history()` reads
it back and `stored_message()` finds one message by id (both blocking). An unreachable database is one logged line: presence keeps working and the
writer retries with backoff.
"""

from __future__ import annotations

import logging
import queue
import random
import secrets
from collections import Counter
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .broker import BrokerSettings
from .device import MAX_CURSOR_HZ, Device
from .epochs import EpochClock
from .events import ChatMessage, Event, RoomSnapshot, Snapshot
from .fields import FieldEntry, lock_holders
from .history import HistoryStore, check_page
from .history_writer import HistoryStats, HistoryWriter
from .ids import check_id
from .lease_keeper import DEFAULT_LEASE, LeaseKeeper
from .leases import lease_owner
from .message_ids import MessageIds
from .mqtt_connection import Connection
from .network_loop import NetworkLoop, Timer
from .observer import SURPLUS_AFTER, Observer
from .org_state import OrgState
from .reconnecting import Wiring
from .rooms import DEFAULT_CURSOR_TTL, DEFAULT_PER_USER
from .topics import TopicScheme

log = logging.getLogger(__name__)

DEFAULT_LINGER = 30.0
"""Seconds a room stays watched after the last tab or bot of the process left it."""

Listener = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class SessionStats:
    connected: bool
    synced: bool
    broker: str
    last_error: str
    users: int
    """People the session knows of in the org (live or last seen)."""
    devices: int
    connections: int
    received: int
    invalid: int
    refused: int
    foreign: int
    stale: int
    lapsed: int
    """Devices shown offline because their lease ran out (leases.py)."""
    listener_errors: int
    history: HistoryStats | None
    """None: no history store (chat lives in memory only)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PresenceSession:
    def __init__(
        self,
        broker: BrokerSettings | str | Sequence[str],
        *,
        org: str,
        rooms: Iterable[str] = (),
        leave_grace: float = 2.0,
        last_seen_retention: float = 86400.0,
        lease: float | None = DEFAULT_LEASE,
        history: int = 200,
        cursor_ttl: float = DEFAULT_CURSOR_TTL,
        devices_per_user: int = DEFAULT_PER_USER,
        surplus_after: float = SURPLUS_AFTER,
        history_store: HistoryStore | None = None,
        linger: float = DEFAULT_LINGER,
        observe: bool = True,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """`jitter` is the observer's random fraction in [0, 1) of how long it waits
        before it says when a crashed device was last seen (observer.LAST_SEEN_STAGGER);
        tests pass fixed ones to order several observers."""
        settings = broker if isinstance(broker, BrokerSettings) else BrokerSettings.from_url(broker)
        check_id(org, kind="org")
        rooms = tuple(check_id(room, kind="room") for room in rooms)
        if leave_grace < 0:
            raise ValueError(f"leave_grace must be >= 0 seconds, not {leave_grace}")
        self.network = NetworkLoop(monotonic=monotonic)
        scheme = TopicScheme(prefix=settings.topic_prefix)
        self.lease = None if lease is None else LeaseKeeper(
            network=self.network,
            scheme=scheme,
            org=org,
            owner=lease_owner(settings.username, org),
            holder=f"p{secrets.token_hex(8)}",
            lease=lease,
            retention=last_seen_retention,
            wall=wall,
            connections=self._lease_connections,
        )
        self.wiring = Wiring(
            settings=settings,
            network=self.network,
            scheme=scheme,
            org=org,
            leave_grace=leave_grace,
            last_seen_retention=last_seen_retention,
            epochs=EpochClock(wall=wall),
            wall=wall,
            monotonic=monotonic,
            lease=self.lease,
        )
        self.org = org
        self.rooms = rooms
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        """Notified whenever the state changed (events were queued)."""
        self.state = OrgState(
            scheme=self.wiring.scheme, org=org, rooms=rooms, history=history, cursor_ttl=cursor_ttl, per_user=devices_per_user
        )
        self.history_store = history_store
        """Owned by the session from here on: closed with it."""
        self.history_writer = HistoryWriter(history_store, org=org) if history_store is not None else None
        record = self.history_writer.record if self.history_writer is not None else None
        self.observer = (
            Observer(
                self.wiring, state=self.state, lock=self._lock, emit=self._enqueue, record=record, surplus_after=surplus_after, jitter=jitter
            )
            if observe
            else None
        )
        self._listeners: list[Listener] = []
        self._queue: queue.SimpleQueue[tuple[Listener | None, list[Event]] | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="presence-dispatch", daemon=True)
        self._devices: dict[tuple[str, str], Device] = {}
        self._message_ids = MessageIds(wall=wall)
        self.linger = linger
        self._room_demand: Counter[str] = Counter(rooms)  # the fixed rooms are never left
        self._lingering: dict[str, Timer] = {}
        self._device_rooms: dict[Device, list[Callable[[], None]]] = {}
        """Per open device: how to leave each of its rooms."""
        self.listener_errors = 0
        self._started = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> PresenceSession:
        if not self._started:
            self._started = True
            self.network.start()
            self._dispatcher.start()
            if self.history_writer is not None:
                self.history_writer.start()
            if self.observer is not None:
                self.observer.start()
        return self

    def close(self, *, timeout: float = 3.0) -> None:
        """Close every device cleanly (explicit offline), then the observer and threads."""
        for device in list(self._devices.values()):
            device.close(timeout=timeout)
        if self.lease is not None:
            self.lease.close(self.observer.connection if self.observer is not None else None)
        if self.observer is not None:
            self.observer.close()
        if self.history_writer is not None:
            self.history_writer.close(timeout)  # writes what the observer queued
            self.history_store.close()  # type: ignore[union-attr]
        self._queue.put(None)
        self._dispatcher.join(timeout)
        # let DISCONNECTs reach the socket before the loop stops
        deadline = time.monotonic() + timeout
        while self.network.connection_count and time.monotonic() < deadline:
            time.sleep(0.01)
        self.network.stop(timeout)

    def __enter__(self) -> PresenceSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- watching ------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with a Snapshot of the current state at once, then with every
        event in order. Returns a function that unsubscribes it."""
        with self._lock:
            self._queue.put((listener, [self.snapshot()]))
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self.state.snapshot(complete=self.synced)

    @property
    def synced(self) -> bool:
        return self.observer is not None and self.observer.synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        """Wait until the broker's retained snapshot has fully arrived. False at once
        when the broker was refused for presence (see `refusal`)."""
        return self.observer is not None and self.observer.settled.wait(timeout) and self.observer.synced.is_set()

    @property
    def refusal(self) -> str | None:
        """Why the broker cannot give watchers a correct snapshot, if it cannot
        (capabilities.py): the session then never reports itself synced."""
        return self.observer.refusal if self.observer is not None else None

    def _enqueue(self, events: list[Event]) -> None:
        # called with self._lock held, so deltas queue after any snapshot taken before
        with self._changed:  # the same (re-entrant) lock
            self._queue.put((None, events))
            self._changed.notify_all()

    def _dispatch(self) -> None:
        while (item := self._queue.get()) is not None:
            target, events = item
            with self._lock:
                listeners = [target] if target is not None else list(self._listeners)
            for event in events:
                for listener in listeners:
                    try:
                        listener(event)
                    except Exception:  # noqa: BLE001 - a listener bug must not stop the others
                        self.listener_errors += 1
                        log.exception("presence listener failed")

    # -- rooms on demand ---------------------------------------------------------------------
    def enter_room(self, room: str) -> Callable[[], None]:
        """Watch `room` until the returned function is called (then `linger` seconds
        more); calls nest."""
        check_id(room, kind="room")
        with self._lock:
            self._room_demand[room] += 1
            first = self._room_demand[room] == 1
            lingering = self._lingering.pop(room, None)
        if lingering is not None:
            lingering.cancel()
        elif first and self.observer is not None:
            self.network.call_soon(lambda: self.observer.add_room(room))  # type: ignore[union-attr]
        left = threading.Event()

        def leave() -> None:
            if not left.is_set():
                left.set()
                self._leave_room(room)

        return leave

    def _leave_room(self, room: str) -> None:
        with self._lock:
            self._room_demand[room] -= 1
            if self._room_demand[room] > 0 or self.observer is None:
                return
            del self._room_demand[room]
            self._lingering[room] = self.network.call_later(self.linger, lambda: self._drop_room(room))

    def _drop_room(self, room: str) -> None:
        """Network thread, after the linger: leave the room unless it was entered again."""
        with self._lock:
            if room in self._room_demand or self._lingering.pop(room, None) is None:
                return
        self.observer.remove_room(room)  # type: ignore[union-attr]

    def room_ready(self, room: str) -> bool:
        """Is `room` watched, with its retained state complete?"""
        return self.observer is not None and room in self.observer.ready_rooms

    def room_snapshot(self, room: str) -> RoomSnapshot | None:
        """The state of a watched room now (None: not watched)."""
        with self._lock:
            state = self.state.rooms.get(room)
            return state.snapshot() if state is not None else None

    def watched_rooms(self) -> list[str]:
        with self._lock:
            return list(self.state.rooms)

    # -- devices -----------------------------------------------------------------------------
    def open_device(
        self,
        *,
        user: str,
        device: str,
        name: str | None = None,
        avatar: str | None = None,
        rooms: Iterable[str] | None = None,
        cursor_hz: float = MAX_CURSOR_HZ,
    ) -> Device:
        """Bring a device online with its own will-carrying connection; the session
        watches the device's rooms while it is open."""
        dev = Device(
            self.wiring,
            user=user,
            device=device,
            name=name,
            avatar=avatar,
            rooms=tuple(self.rooms if rooms is None else rooms),
            cursor_hz=cursor_hz,
            message_ids=self._message_ids,
            audience=self._others_in_room if self.observer is not None else None,
            store_first=self._store_first if self.history_store is not None else None,
            on_closed=self._forget_device,
            on_rooms=self._device_moved,
            claim_floor=self._claim_floor,
        )
        with self._lock:
            old = self._devices.get((user, device))
            if old is not None and not old.closed:
                raise ValueError(f"device {user}/{device} is already open in this session")
            self._devices[(user, device)] = dev
            self._device_rooms[dev] = [self.enter_room(room) for room in dev.rooms]
        dev.start()
        if self.lease is not None:
            self.lease.start()
        return dev

    def _device_moved(self, device: Device) -> None:
        """A device's rooms changed: watch its new rooms before leaving the old ones."""
        with self._lock:
            leaves = self._device_rooms.get(device)
            if leaves is None:
                return
            self._device_rooms[device] = [self.enter_room(room) for room in device.rooms]
        for leave in leaves:
            leave()

    # -- fields and soft locks -----------------------------------------------------------------
    def lock_holder(self, room: str, field: str) -> FieldEntry | None:
        """Who holds the soft lock of `field` in `room` by the lock rule, as this session
        sees it now (None: nobody, or the room is not watched)."""
        with self._lock:
            state = self.state.rooms.get(room)
            return lock_holders(state.fields.entries()).get(field) if state is not None else None

    def wait_for_lock(self, device: Device, room: str, field: str, *, timeout: float) -> bool:
        """Wait until `device` holds the lock of `field` in `room` (after its
        `focus(room, field, lock=True)`); False when it does not within `timeout` s."""

        def held() -> bool:
            holder = self.lock_holder(room, field)
            return holder is not None and (holder.user, holder.device) == (device.user, device.device)

        with self._changed:
            return self._changed.wait_for(held, timeout)

    def _claim_floor(self, room: str, field: str) -> int:
        with self._lock:
            state = self.state.rooms.get(room)
            return state.fields.floor(field) if state is not None else 0

    # -- chat history ----------------------------------------------------------------------
    def history(self, room: str, *, before: str | None = None, limit: int = 50) -> list[ChatMessage]:
        """Up to `limit` (1-500) chat messages of `room` with ids below `before` (None:
        the latest), oldest first; walking back with `before=page[0].id` gives each
        message once, in order, while new ones arrive. With a history store this reads
        the database (blocking; raises HistoryUnavailable when it cannot); without one,
        the recent messages this process holds in memory."""
        check_page(room, before=before, limit=limit)
        if self.history_store is not None:
            return self.history_store.page(self.org, room, before=before, limit=limit)
        with self._lock:
            state = self.state.rooms.get(room)
            held = state.snapshot().messages if state is not None else ()
        earlier = [m for m in held if before is None or m.id < before]
        return earlier[-limit:]

    def _store_first(self, message: ChatMessage) -> None:
        """A device's message goes into the store before it is published."""
        assert self.history_store is not None
        self.history_store.add_one(self.org, message)

    def find_message(self, room: str, message_id: str) -> ChatMessage | None:
        """A recent chat message of `room` held in memory, by id (never blocks)."""
        with self._lock:
            state = self.state.rooms.get(room)
            return state.message(message_id) if state is not None else None

    def stored_message(self, room: str, message_id: str) -> ChatMessage | None:
        """A chat message of `room` by id from the history store: blocking; None without
        a store or when it holds no such message; HistoryUnavailable when it cannot read."""
        if self.history_store is None:
            return None
        return self.history_store.message(self.org, room, message_id)

    def _forget_device(self, device: Device) -> None:
        with self._lock:
            if self._devices.get((device.user, device.device)) is device:
                del self._devices[(device.user, device.device)]
            leaves = self._device_rooms.pop(device, [])
        for leave in leaves:
            leave()

    def _lease_connections(self) -> list[Connection] | None:
        """Where the lease is renewed: the observer's connection, then the devices'
        (None: no device open, nothing to renew)."""
        with self._lock:
            devices = [d for d in self._devices.values() if not d.closed]
        if not devices:
            return None
        clients = [self.observer, *devices] if self.observer is not None else devices
        return [conn for client in clients if (conn := client.connection) is not None]

    def _others_in_room(self, room: str, user: str) -> bool:
        with self._lock:
            return self.state.presence.any_live_user(room=room, besides=user)

    # -- health ------------------------------------------------------------------------------
    def stats(self) -> SessionStats:
        counters = self.state.counters
        observer = self.observer
        return SessionStats(
            connected=observer.connected if observer else False,
            synced=self.synced,
            broker=(observer.connected_url if observer else None) or self.wiring.settings.url,
            last_error=(observer.refusal or observer.last_error) if observer else "",
            users=self.state.presence.user_count(),
            devices=len(self._devices),
            connections=self.network.connection_count,
            received=counters.received,
            invalid=counters.invalid,
            refused=counters.refused,
            foreign=counters.foreign,
            stale=counters.stale,
            lapsed=observer.lapsed if observer else 0,
            listener_errors=self.listener_errors,
            history=self.history_writer.stats() if self.history_writer is not None else None,
        )
