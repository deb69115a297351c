"""Presence of an org: the latest retained state of every device, aggregated per user.

Rules (DESIGN.md guarantees 3 and 5):
- a device's state carries the epoch of its MQTT connection; a message with a lower
  epoch than the one held is stale and ignored (an old will cannot win);
- a user's status is the best over their devices (online > away > offline), so closing
  some of a user's tabs never shows them leaving;
- an empty retained payload clears a device.
Pure: no clock, no sockets; the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
    until: float | None = None
    """A live state's lease: it holds until then unless its lease is renewed (leases.py)."""
    lease: str | None = None
    """`owner/holder` of the lease whose renewals extend `until`."""

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

    A will's `since` is fixed when the connection starts, so an offline delivered live
    is dated when it was observed; a payload without `since` is dated likewise.
    """
    status: Status = doc["status"]
    since = doc.get("since")
    if live and (status == "offline" or since is None):
        since = observed_at
    leased = status != "offline" and "until" in doc
    return DevicePresence(
        device=device,
        status=status,
        epoch=doc.get("epoch", 0),
        since=since,
        name=doc.get("name"),
        avatar=doc.get("avatar"),
        rooms=frozenset(doc.get("rooms", ())),
        until=doc["until"] if leased else None,
        lease=doc.get("lease") if leased else None,
    )


def aggregate(user: str, devices: dict[str | None, DevicePresence]) -> UserPresence:
    """Best status over devices; `since` is when that status began for the user:
    online since the earliest online device, away since the latest idle device went
    away, offline since the last device was last seen."""
    if len(devices) == 1:  # most users: the same result without the scans below
        (only,) = devices.values()
        return UserPresence(user=user, status=only.status, since=only.since, devices=int(only.live),
                            name=only.name if only.name or only.avatar else None,
                            avatar=only.avatar if only.name or only.avatar else None, rooms=only.rooms)
    best = max(devices.values(), key=lambda d: RANK[d.status]).status
    holding = [d.since for d in devices.values() if d.status == best and d.since is not None]
    since = (min(holding) if best == "online" else max(holding)) if holding else None
    newest_named = max(
        (d for d in devices.values() if d.name or d.avatar), key=lambda d: d.epoch, default=None
    )
    rooms = frozenset().union(*(d.rooms for d in devices.values()))
    return UserPresence(
        user=user,
        status=best,
        since=since,
        devices=sum(1 for d in devices.values() if d.live),
        name=newest_named.name if newest_named else None,
        avatar=newest_named.avatar if newest_named else None,
        rooms=rooms,
    )


class PresenceBook:
    """Per-device presence of one org with the per-user aggregate kept up to date."""

    def __init__(self) -> None:
        self._devices: dict[str, dict[str | None, DevicePresence]] = {}
        self._users: dict[str, UserPresence] = {}
        self.stale_ignored = 0

    def users(self) -> dict[str, UserPresence]:
        return dict(self._users)

    def user(self, user: str) -> UserPresence | None:
        return self._users.get(user)

    def any_live_user(self, *, room: str, besides: str) -> bool:
        """Is anyone but `besides` live in `room` (or in no particular room)?"""
        return any(
            u.user != besides and u.devices > 0 and (room in u.rooms or not u.rooms) for u in self._users.values()
        )

    def device(self, user: str, device: str | None) -> DevicePresence | None:
        return self._devices.get(user, {}).get(device)

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
        if current == state:
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
            del self._users[user]
            return True, None
        return False, self._refresh(user)

    def _refresh(self, user: str) -> UserPresence | None:
        new = aggregate(user, self._devices[user])
        if self._users.get(user) == new:
            return None
        self._users[user] = new
        return new
