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
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .broker import BrokerSettings
from .device import MAX_CURSOR_HZ, Device
from .epochs import EpochClock
from .events import ChatMessage, Event, Snapshot
from .ids import check_id
from .lease_keeper import DEFAULT_LEASE, LeaseKeeper
from .leases import lease_owner
from .message_ids import MessageIds
from .mqtt_connection import Connection
from .network_loop import NetworkLoop
from .observer import Observer
from .org_state import OrgState
from .reconnecting import Wiring
from .topics import TopicScheme

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class SessionStats:
    connected: bool
    synced: bool
    broker: str
    last_error: str
    devices: int
    connections: int
    received: int
    invalid: int
    foreign: int
    stale: int
    lapsed: int
    """Devices shown offline because their lease ran out (leases.py)."""
    listener_errors: int

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
        observe: bool = True,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
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
        self.state = OrgState(scheme=self.wiring.scheme, org=org, rooms=rooms, history=history)
        self.observer = Observer(self.wiring, state=self.state, lock=self._lock, emit=self._enqueue) if observe else None
        self._listeners: list[Listener] = []
        self._queue: queue.SimpleQueue[tuple[Listener | None, list[Event]] | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="presence-dispatch", daemon=True)
        self._devices: dict[tuple[str, str], Device] = {}
        self._message_ids = MessageIds(wall=wall)
        self.listener_errors = 0
        self._started = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> PresenceSession:
        if not self._started:
            self._started = True
            self.network.start()
            self._dispatcher.start()
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
        self._queue.put((None, events))

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
        """Bring a device online with its own will-carrying connection."""
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
            on_closed=self._forget_device,
        )
        with self._lock:
            old = self._devices.get((user, device))
            if old is not None and not old.closed:
                raise ValueError(f"device {user}/{device} is already open in this session")
            self._devices[(user, device)] = dev
        dev.start()
        if self.lease is not None:
            self.lease.start()
        return dev

    def find_message(self, room: str, message_id: str) -> ChatMessage | None:
        """A recent chat message of `room` held in memory, by id."""
        with self._lock:
            state = self.state.rooms.get(room)
            return state.message(message_id) if state is not None else None

    def _forget_device(self, device: Device) -> None:
        with self._lock:
            if self._devices.get((device.user, device.device)) is device:
                del self._devices[(device.user, device.device)]

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
            devices=len(self._devices),
            connections=self.network.connection_count,
            received=counters.received,
            invalid=counters.invalid,
            foreign=counters.foreign,
            stale=counters.stale,
            lapsed=observer.lapsed if observer else 0,
            listener_errors=self.listener_errors,
        )
