"""Everything an observer knows about one org, fed by received MQTT messages.

`receive()` takes a raw message (topic name, payload bytes, retained flag) and returns
the events it causes. Foreign topics are ignored; invalid payloads are dropped and
counted, never raised; valid ones that break a rule of the kit (a chat id or receipt
stamped in the future, see message_ids.MAX_CLOCK_SKEW) are refused and counted. Display
names are cleaned on the way in (display_names), and so is a field claim stamped in the
future (its focus is ignored). A device that goes offline loses its
typing and cursors at once, and its field state (the field it edits, its lock claim,
whom it follows: components/fields.py), which its presence carries, with its presence.

A will seen as it fires (delivered live, not stale, ending the device's connection)
is left in `fired` after that receive(), for the observer to say when the device was
last seen (observer.py).

Resync: after (re)subscribing, the broker's retained messages are the truth. Between
`begin_resync()` and `end_resync()` every device topic, lease and receipt that shows up
(retained or live) is marked; whatever was held but not seen again was cleared while
we were away and is dropped at the end.

Leases (leases.py): a device whose lease has lapsed is held as offline (same epoch);
`lapse(wall)` applies the lapses that are due, `next_lapse()` says when to call it
next, and a renewal that comes after all brings the device back. An offline of a newer
connection that was never announced online (the will of a failed connection attempt:
a NATS node that stalls a CONNECT while its cluster elects leaders fires it anyway)
does not end a leased live state; the device's next connection or its lease decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import InvalidPayload
from .events import (
    ChatReceived,
    CursorMoved,
    Event,
    FieldsChanged,
    PresenceChanged,
    ReactionReceived,
    ReceiptMoved,
    RoomSnapshot,
    Snapshot,
    TypingChanged,
)
from .fields import claimed_in_the_future, entry_in, rooms_of
from .leases import LeaseBook
from .message_ids import from_the_future
from .payloads import decode
from .presence import DevicePresence, PresenceBook, UserPresence, device_presence
from .rooms import DEFAULT_CURSOR_TTL, DEFAULT_PER_USER, RoomState
from .topics import Topic, TopicScheme

log = logging.getLogger(__name__)


@dataclass
class ReceiveCounters:
    received: int = 0
    invalid: int = 0
    """Not JSON, or breaks its schema."""
    refused: int = 0
    """Valid, but against a rule of the kit (an id from the future)."""
    foreign: int = 0
    stale: int = 0
    unannounced: int = 0
    """Offlines of connections never announced online, not applied (see the docstring)."""


@dataclass(frozen=True, slots=True)
class FiredWill:
    """A device's will, seen as the broker published it."""

    topic: Topic
    doc: dict


@dataclass
class _Resync:
    presence: set[tuple[str, str | None]] = field(default_factory=set)
    leases: set[str] = field(default_factory=set)
    receipts: set[tuple[str, str]] = field(default_factory=set)


class OrgState:
    def __init__(
        self,
        *,
        scheme: TopicScheme,
        org: str,
        rooms: Iterable[str] = (),
        history: int = 200,
        cursor_ttl: float = DEFAULT_CURSOR_TTL,
        per_user: int = DEFAULT_PER_USER,
    ) -> None:
        self.scheme = scheme
        self.org = org
        self.cursor_ttl = cursor_ttl
        self._room_options = {"history": history, "cursor_ttl": cursor_ttl, "per_user": per_user}
        self.presence = PresenceBook()
        self.leases = LeaseBook()
        self._located: dict[tuple[str, str | None], DevicePresence] = {}
        """Live devices whose presence says where they are (fields.rooms_of), to place
        them in a room entered later."""
        self.rooms: dict[str, RoomState] = {}
        for room in rooms:
            self.add_room(room)
        self.counters = ReceiveCounters()
        self._resync: _Resync | None = None
        self.fired: FiredWill | None = None
        """The will the last receive() saw fire, if it saw one."""

    # -- receiving -------------------------------------------------------------
    def receive(self, name: str, payload: bytes, *, retained: bool, wall: float, mono: float) -> list[Event]:
        self.counters.received += 1
        self.fired = None
        topic = self.scheme.parse(name)
        if topic is None or topic.org != self.org or (topic.room is not None and topic.room not in self.rooms):
            self.counters.foreign += 1
            return []
        if not payload:
            return self._cleared(topic, wall=wall)
        try:
            doc = decode(topic.payload_kind, payload)
        except InvalidPayload as exc:
            self.counters.invalid += 1
            log.debug("dropped invalid payload on %s: %s", name, exc)
            return []
        if topic.kind == "presence":
            return self._presence(topic, doc, retained=retained, wall=wall)
        if topic.kind == "lease":
            return self._lease(topic, doc, wall=wall)
        room = self.rooms[topic.room]  # type: ignore[index]
        if topic.kind == "typing":
            if room.set_typing(topic.user, topic.device, doc, mono=mono):  # type: ignore[arg-type]
                return [TypingChanged(room.room, room.typists())]
            return []
        if topic.kind == "cursor":
            cursor = room.set_cursor(topic.user, topic.device, doc, mono=mono)  # type: ignore[arg-type]
            return [CursorMoved(room.room, topic.user, topic.device, cursor)]  # type: ignore[arg-type]
        if topic.kind in ("receipts", "chat") and from_the_future(doc["up_to" if topic.kind == "receipts" else "id"], now=wall):
            self.counters.refused += 1
            log.debug("refused a %s stamped in the future on %s", topic.kind, name)
            return []
        if topic.kind == "receipts":
            if self._resync is not None:
                self._resync.receipts.add((room.room, topic.user))
            if room.set_receipt(topic.user, doc["up_to"]):
                return [ReceiptMoved(room.room, topic.user, doc["up_to"])]
            self.counters.stale += 1
            return []
        if topic.kind == "chat":
            message = room.add_message(topic.user, doc)
            return [ChatReceived(message)] if message else []
        return [ReactionReceived(room.room, topic.user, doc["emoji"], doc.get("count", 1))]

    def _presence(self, topic: Topic, doc: dict, *, retained: bool, wall: float) -> list[Event]:
        if doc.get("probe"):
            return []  # a watcher asking a device whether it lives: not a state (see observer)
        if self._resync is not None:
            self._resync.presence.add((topic.user, topic.device))
        if "focus" in doc and claimed_in_the_future(doc["focus"]["claimed"], now=wall):
            self.counters.refused += 1  # it would queue every later claim on the field behind it for good
            doc = {key: value for key, value in doc.items() if key != "focus"}
        state = device_presence(topic.device, doc, observed_at=wall, live=not retained)
        held = self.presence.device(topic.user, topic.device)
        if not state.live and held is not None and held.live and held.until is not None and state.epoch > held.epoch:
            self.counters.unannounced += 1  # a failed attempt's will: the lease bounds the live state
            return []
        accepted, changed = self.presence.put(topic.user, state)
        if not accepted:
            self.counters.stale += 1
            return []
        if not retained and not state.live and "will_delay" in doc and topic.device is not None and (
            held is None or held.live or held.epoch != state.epoch
        ):
            self.fired = FiredWill(topic, doc)
        if not self.leases.hold(topic.user, state, wall=wall):  # its lease ran out long ago
            state = state.lapsed(self.leases.valid_until(state))
            changed = self.presence.put(topic.user, state)[1] or changed
        return self._device_changed(topic.user, state, changed)

    def _device_changed(self, user: str, state: DevicePresence, changed: UserPresence | None) -> list[Event]:
        events: list[Event] = []
        if not state.live:
            events += self._forget_device(user, state.device, changed)
        events += self._place(user, state.device, state)
        if changed is not None:
            events.append(PresenceChanged(user, changed))
        return events

    def _lease(self, topic: Topic, doc: dict, *, wall: float) -> list[Event]:
        lease = f"{topic.user}/{topic.device}"
        if self._resync is not None:
            self._resync.leases.add(lease)
        events: list[Event] = []
        for user, state in self.leases.renew(lease, doc["until"], wall=wall):  # back from a lapse
            events += self._device_changed(user, state, self.presence.put(user, state)[1])
        return events

    def _show_lapsed(self, lapsed: list[tuple[str, DevicePresence]]) -> list[Event]:
        events: list[Event] = []
        for user, state in lapsed:
            offline = state.lapsed(self.leases.valid_until(state))
            events += self._device_changed(user, offline, self.presence.put(user, offline)[1])
        return events

    def _cleared(self, topic: Topic, *, wall: float) -> list[Event]:
        if topic.kind == "presence":
            self.leases.release(topic.user, topic.device)
            removed, changed = self.presence.clear(topic.user, topic.device)
            events = self._forget_device(topic.user, topic.device, changed) + self._place(topic.user, topic.device, None)
            if removed:
                events.append(PresenceChanged(topic.user, None))
            elif changed is not None:
                events.append(PresenceChanged(topic.user, changed))
            return events
        if topic.kind == "lease":
            return self._show_lapsed(self.leases.end(f"{topic.user}/{topic.device}", wall=wall))
        if topic.kind == "receipts":
            self.rooms[topic.room].clear_receipt(topic.user)  # type: ignore[index]
        return []

    def _forget_device(self, user: str, device: str | None, aggregate: UserPresence | None) -> list[Event]:
        """A departed device's typing and cursors go at once; all of a user's go when the
        user has no live device left."""
        known = aggregate or self.presence.user(user)
        scope = None if known is None or known.devices == 0 else device
        events: list[Event] = []
        for room in self.rooms.values():
            typists_changed, gone = room.forget_device(user, scope)
            if typists_changed:
                events.append(TypingChanged(room.room, room.typists()))
            events += [CursorMoved(room.room, u, d, None) for u, d in gone]
        return events

    def _place(self, user: str, device: str | None, state: DevicePresence | None) -> list[Event]:
        """Update the field state of the rooms a device was or now is placed in (state
        None: its topic was cleared)."""
        key = (user, device)
        before = self._located.pop(key, None)
        if before is None and (state is None or not (state.focus or state.follow or state.unfollowable)):
            return []  # the common case: a presence that says nothing of fields
        now = rooms_of(state) if state is not None else frozenset()
        if now:
            self._located[key] = state  # type: ignore[assignment]
        events: list[Event] = []
        for room in (rooms_of(before) if before is not None else frozenset()) | now:
            held = self.rooms.get(room)
            if held is not None and held.fields.put(user, device, entry_in(room, user, state) if room in now else None):  # type: ignore[arg-type]
                events.append(FieldsChanged(room, held.fields.entries()))
        return events

    # -- rooms on demand ------------------------------------------------------------
    def add_room(self, room: str) -> bool:
        """Start keeping `room`'s state (its topics are being subscribed); False when it
        is kept already."""
        if room in self.rooms:
            return False
        state = self.rooms[room] = RoomState(room, **self._room_options)  # type: ignore[arg-type]
        for (user, device), located in self._located.items():
            state.fields.put(user, device, entry_in(room, user, located))
        return True

    def drop_room(self, room: str) -> None:
        """Forget `room` (nobody here shows it any more); its messages are foreign now."""
        self.rooms.pop(room, None)

    # -- time ---------------------------------------------------------------------
    def expire(self, *, mono: float) -> list[Event]:
        """Typing signals past their ttl (the stop may never come); cursors that stopped
        moving are dropped without an event (widgets hide them on their own clock)."""
        events: list[Event] = []
        for room in self.rooms.values():
            room.expire_cursors(mono=mono)
            if room.expire_typing(mono=mono):
                events.append(TypingChanged(room.room, room.typists()))
        return events

    def next_expiry(self) -> float | None:
        return min((t for r in self.rooms.values() if (t := r.next_expiry()) is not None), default=None)

    def lapse(self, *, wall: float) -> tuple[list[Event], list[tuple[str, DevicePresence]]]:
        """Devices whose lease ran out by `wall` (wall time), shown offline: the events,
        and each lapsed device with the state it had (an observer may publish the
        offline its will would have carried)."""
        lapsed = self.leases.lapse(wall=wall)
        return self._show_lapsed(lapsed), lapsed

    def next_lapse(self) -> float | None:
        """Wall time when `lapse` may have something to do."""
        return self.leases.next_deadline()

    # -- resync ---------------------------------------------------------------------
    def begin_resync(self) -> None:
        self._resync = _Resync()

    @property
    def resyncing(self) -> bool:
        return self._resync is not None

    def end_resync(self, *, wall: float) -> list[Event]:
        """Drop what the broker no longer holds (cleared while we were not looking)."""
        seen, self._resync = self._resync, None
        if seen is None:
            return []
        events: list[Event] = []
        if self.presence.device_count() > len(seen.presence):  # else every held device was seen again
            for user, state in self.presence.devices():
                if (user, state.device) not in seen.presence:
                    events += self._cleared(Topic("presence", self.org, user, device=state.device), wall=wall)
        for lease in set(self.leases.leases()) - seen.leases:
            events += self._show_lapsed(self.leases.end(lease, wall=wall))
        for room in self.rooms.values():
            for user in list(room.snapshot().receipts):
                if (room.room, user) not in seen.receipts:
                    room.clear_receipt(user)
        return events

    # -- reading ------------------------------------------------------------------
    def users(self) -> dict[str, UserPresence]:
        return self.presence.users()

    def room_snapshots(self) -> dict[str, RoomSnapshot]:
        return {name: room.snapshot() for name, room in self.rooms.items()}

    def snapshot(self, *, complete: bool) -> Snapshot:
        return Snapshot(users=self.users(), rooms=self.room_snapshots(), complete=complete)

    def offline_device_topics(self, *, older_than: float) -> list[Topic]:
        """Device topics offline since before `older_than` (wall time), and leases that
        ran out before it: retained state that must not pile up, to be cleared with an
        empty retained message."""
        devices = [
            Topic("presence", self.org, user, device=state.device)
            for user, state in self.presence.devices()
            if state.device is not None and not state.live and (state.since or 0) < older_than
        ]
        leases = []
        for lease in self.leases.stale_leases(older_than=older_than):
            owner, holder = lease.split("/")
            leases.append(Topic("lease", self.org, owner, device=holder))
        return devices + leases

    def surplus_device_topics(self, *, older_than: float) -> list[Topic]:
        """Offline device topics that tell nothing the user's other topics do not: every
        tab is a new device, so a user who opens and closes tabs (or a client opening
        socket after socket) would leave one retained topic each. A user with a live
        device needs none of them; a user without keeps the newest offline (their "last
        seen"). Only those offline since before `older_than` are listed, so a device that
        just left is never cleared while it may still come back."""
        surplus = []
        for user in self.presence.users():
            held = self.presence.devices_of(user)
            offline = sorted((d for d in held if d.device is not None and not d.live), key=lambda d: d.since or 0)
            if not any(d.live for d in held):
                offline = offline[:-1]  # the newest offline is the user's "last seen"
            surplus += [Topic("presence", self.org, user, device=d.device) for d in offline if (d.since or 0) < older_than]
        return surplus
