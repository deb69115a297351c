"""Presence of an org: the latest retained state of every device, aggregated per user.

Rules (DESIGN.md guarantees 3 and 5):
- a device's state carries the epoch of its MQTT connection; a message with a lower
  epoch than the one held is stale and ignored (an old will cannot win);
- a user's status is the best over their devices (online > away > offline), so closing
  some of a user's tabs never shows them leaving;
- an empty retained payload clears a device;
- "last seen" after a crash: a will is composed when its connection starts, so the
  `since` it carries is that start. A watcher that sees a will fire dates the
  departure itself: then, minus the will's `will_delay` (the grace the broker waited).
  One that reads a will retained holds its `since` as a lower bound (`since_is_start`)
  until an observer that saw it fire re-publishes the same offline with the moment
  (observer.py); a repeated offline of the same epoch changes nothing for a watcher
  that already knows when the device left.
- a live device may say where it is (components/fields.py): the field it edits, whom it
  follows; an offline one says nothing of that, whatever its payload holds.
Pure: no clock, no sockets; the caller passes the time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from .display_names import clean_display_name
from .fields import Focus

Status = Literal["online", "away", "offline"]
RANK: dict[Status, int] = {"offline": 0, "away": 1, "online": 2}


@dataclass(frozen=True, slots=True)
class DevicePresence:
    """What one device (or one device-less reference client, device None) last said."""

    device: str | None
    status: Status
    epoch: int
    since: float | None
    name: str | None = None
    avatar: str | None = None
    rooms: frozenset[str] = frozenset()
    since_is_start: bool = False
    """An offline read from a retained will: `since` is when the connection started, a
    lower bound of when the device left, until someone who saw the will fire says."""
    until: float | None = None
    """A live state's lease: it holds until then unless its lease is renewed (leases.py)."""
    lease: str | None = None
    """`owner/holder` of the lease whose renewals extend `until`."""
    focus: Focus | None = None
    follow: tuple[str, str] | None = None
    """(room, user): the person this device follows in that room."""
    unfollowable: bool = False

    @property
    def live(self) -> bool:
        return self.status != "offline"

    def lapsed(self, at: float) -> DevicePresence:
        """The offline this state becomes when its lease lapsed at `at` (same epoch, so
        a renewal or a re-announce of the same connection brings it back)."""
        return DevicePresence(device=self.device, status="offline", epoch=self.epoch, since=at, name=self.name, avatar=self.avatar, rooms=self.rooms)


@dataclass(frozen=True, slots=True)
class UserPresence:
    """A user as watchers see them: one entry however many devices they have."""

    user: str
    status: Status
    since: float | None
    devices: int
    """Live (online or away) devices."""
    name: str | None = None
    avatar: str | None = None
    rooms: frozenset[str] = frozenset()
    focus: Focus | None = None
    """Where the user is editing: the latest focus of their live devices."""

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "status": self.status,
            "devices": self.devices,
            "since": self.since,
            "name": self.name,
            "avatar": self.avatar,
            "rooms": sorted(self.rooms),
        }


def device_presence(device: str | None, doc: dict[str, Any], *, observed_at: float, live: bool) -> DevicePresence:
    """Build a DevicePresence from a validated payload.

    A will delivered live is dated when it was observed minus the delay the broker
    waited before it fired (its own `since` is when its connection started, the earliest
    it can be). A clean offline says when its device left (a tab's is when the tab went,
    a leave grace before the device closed), never later than observed. A payload
    without `since` is dated when observed.
    """
    status: Status = doc["status"]
    since = doc.get("since")
    will = status == "offline" and "will_delay" in doc
    if live and will:
        since = min(observed_at, max(observed_at - doc["will_delay"], since or 0.0))
    elif live and since is not None:
        since = min(since, observed_at)
    elif live:
        since = observed_at
    leased = status != "offline" and "until" in doc
    here = status != "offline"
    focus, follow = doc.get("focus"), doc.get("follow")
    return DevicePresence(
        device=device,
        status=status,
        epoch=doc.get("epoch", 0),
        since=since,
        name=clean_display_name(doc.get("name")),
        avatar=doc.get("avatar"),
        rooms=frozenset(doc.get("rooms", ())),
        since_is_start=will and not live,
        until=doc["until"] if leased else None,
        lease=doc.get("lease") if leased else None,
        focus=Focus.from_json(focus) if focus and here else None,
        follow=(follow["room"], follow["user"]) if follow and here else None,
        unfollowable=here and doc.get("unfollowable", False),
    )


def aggregate(user: str, devices: dict[str | None, DevicePresence]) -> UserPresence:
    """Best status over devices; `since` is when that status began for the user:
    online since the earliest online device, away since the latest idle device went
    away, offline since the last device was last seen. `rooms` are the live devices'
    rooms (a tab closed in one room does not keep its user there), or, with no live
    device, the rooms of the device seen last. `focus` is the field a live device began
    editing last."""
    if len(devices) == 1:  # most users: the same result without the scans below
        (only,) = devices.values()
        return UserPresence(user=user, status=only.status, since=only.since, devices=int(only.live),
                            name=only.name if only.name or only.avatar else None,
                            avatar=only.avatar if only.name or only.avatar else None, rooms=only.rooms, focus=only.focus)
    best = max(devices.values(), key=lambda d: RANK[d.status]).status
    holding = [d.since for d in devices.values() if d.status == best and d.since is not None]
    since = (min(holding) if best == "online" else max(holding)) if holding else None
    newest_named = max(
        (d for d in devices.values() if d.name or d.avatar), key=lambda d: d.epoch, default=None
    )
    live = [d for d in devices.values() if d.live]
    # the rooms a user is in now; with no live device, where they were last seen
    rooms = frozenset().union(*(d.rooms for d in live)) if live else max(devices.values(), key=lambda d: d.since or 0).rooms
    return UserPresence(
        user=user,
        status=best,
        since=since,
        devices=sum(1 for d in devices.values() if d.live),
        name=newest_named.name if newest_named else None,
        avatar=newest_named.avatar if newest_named else None,
        rooms=rooms,
        focus=max((d.focus for d in live if d.focus), key=lambda f: f.claimed, default=None),
    )


def _same_departure(held: DevicePresence, new: DevicePresence) -> bool:
    """The offline of a connection whose offline is held already, with an exact `since`:
    an observer's "last seen" for a will this watcher saw fire, or a duplicate. What is
    held is as true, and keeping it spares every tab a change of a few milliseconds."""
    return not held.live and not new.live and held.epoch == new.epoch and not held.since_is_start


class PresenceBook:
    """Per-device presence of one org with the per-user aggregate kept up to date."""

    def __init__(self) -> None:
        self._devices: dict[str, dict[str | None, DevicePresence]] = {}
        self._users: dict[str, UserPresence] = {}
        self._live_in: Counter[str] = Counter()
        """Per room: users with a live device in it (asked on every cursor a device sends)."""
        self.stale_ignored = 0

    def users(self) -> dict[str, UserPresence]:
        return dict(self._users)

    def user(self, user: str) -> UserPresence | None:
        return self._users.get(user)

    def user_count(self) -> int:
        return len(self._users)

    def any_live_user(self, *, room: str, besides: str) -> bool:
        """Is anyone but `besides` live in `room`?"""
        mine = self._users.get(besides)
        return self._live_in[room] > int(mine is not None and mine.devices > 0 and room in mine.rooms)

    def device(self, user: str, device: str | None) -> DevicePresence | None:
        return self._devices.get(user, {}).get(device)

    def devices_of(self, user: str) -> list[DevicePresence]:
        return list(self._devices.get(user, {}).values())

    def device_count(self) -> int:
        return sum(map(len, self._devices.values()))

    def devices(self) -> list[tuple[str, DevicePresence]]:
        return [(user, d) for user, held in self._devices.items() for d in held.values()]

    def put(self, user: str, state: DevicePresence) -> tuple[bool, UserPresence | None]:
        """Store a device's state unless it is stale. Returns (accepted, new aggregate
        if the user's aggregate changed else None)."""
        held = self._devices.setdefault(user, {})
        current = held.get(state.device)
        if current is not None and state.epoch < current.epoch:
            self.stale_ignored += 1
            return False, None
        if current == state or (current is not None and _same_departure(current, state)):
            return True, None
        held[state.device] = state
        return True, self._refresh(user)

    def clear(self, user: str, device: str | None) -> tuple[bool, UserPresence | None]:
        """Forget a device (its retained topic was cleared). Returns (user removed,
        new aggregate if the user is still known and changed)."""
        held = self._devices.get(user)
        if not held or device not in held:
            return False, None
        del held[device]
        if not held:
            del self._devices[user]
            self._count_live(self._users.pop(user), -1)
            return True, None
        return False, self._refresh(user)

    def _refresh(self, user: str) -> UserPresence | None:
        new = aggregate(user, self._devices[user])
        old = self._users.get(user)
        if old == new:
            return None
        if old is not None:
            self._count_live(old, -1)
        self._count_live(new, +1)
        self._users[user] = new
        return new

    def _count_live(self, presence: UserPresence, change: int) -> None:
        if presence.devices > 0:
            for room in presence.rooms:
                self._live_in[room] += change
