"""Who is in which presence scope, in display order, kept up to date change by change.

A scope is the whole org (None) or one room. A user is a member of a room while one of
their live devices is in it; a user with no live device is a member of the rooms their
last devices were in (so a room's list can say "last seen"). Display order is online,
then away, each by name (case-folded), then offline, most recently seen first; ties go
by user id. Each scope keeps its members sorted (a SortedList: O(log n) per change), so
the first page of a 10,000-member scope costs the page, not the scope, and counts by
status are kept as changes arrive.

Rooms are indexed on demand (`track`) and dropped when nobody watches them (`untrack`).
Pure: no I/O, no threads; the bridge feeds it from the session's events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sortedcontainers import SortedList

from .presence import RANK, UserPresence

Scope = str | None
"""A room id, or None for the whole org."""
SortKey = tuple[int, str | float, str]


def sort_key(presence: UserPresence) -> SortKey:
    if presence.status == "offline":
        return (2, -(presence.since or 0.0), presence.user)
    return (2 - RANK[presence.status], (presence.name or presence.user).casefold(), presence.user)


class ScopeMembers:
    """The members of one scope, in display order, with counts by status."""

    def __init__(self, members: Iterable[UserPresence] = ()) -> None:
        self._held: dict[str, tuple[SortKey, UserPresence]] = {p.user: (sort_key(p), p) for p in members}
        self._order: SortedList = SortedList(key for key, _ in self._held.values())  # sorted once
        self.counts: Counter[str] = Counter(p.status for _, p in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, user: str) -> bool:
        return user in self._held

    def put(self, presence: UserPresence) -> None:
        self.remove(presence.user)
        key = sort_key(presence)
        self._held[presence.user] = (key, presence)
        self._order.add(key)
        self.counts[presence.status] += 1

    def remove(self, user: str) -> None:
        held = self._held.pop(user, None)
        if held is not None:
            self._order.remove(held[0])
            self.counts[held[1].status] -= 1

    def page(self, *, limit: int, offset: int = 0) -> list[UserPresence]:
        return [self._held[key[2]][1] for key in self._order[offset:offset + limit]]

    def get(self, user: str) -> UserPresence | None:
        held = self._held.get(user)
        return held[1] if held else None


class PresenceIndex:
    """The org's users by scope. `apply` takes a user's new aggregate (None: gone) and
    says which tracked scopes it touched."""

    def __init__(self) -> None:
        self.org = ScopeMembers()
        self.rooms: dict[str, ScopeMembers] = {}
        self._users: dict[str, UserPresence] = {}
        self._in_room: dict[str, set[str]] = {}
        """Every room's members, tracked or not, so tracking a room costs the room, not the org."""

    def user(self, user: str) -> UserPresence | None:
        return self._users.get(user)

    def scope(self, scope: Scope) -> ScopeMembers:
        return self.org if scope is None else self.rooms[scope]

    def reset(self, users: Iterable[UserPresence]) -> None:
        """Replace everything (a resync's snapshot)."""
        self._users = {p.user: p for p in users}
        self.org = ScopeMembers(self._users.values())
        self._in_room = {}
        for presence in self._users.values():
            for room in presence.rooms:
                self._in_room.setdefault(room, set()).add(presence.user)
        for room in list(self.rooms):
            self.track(room)

    def track(self, room: str) -> None:
        """Index `room` (again) from the users known now."""
        self.rooms[room] = ScopeMembers(self._users[user] for user in self._in_room.get(room, ()))

    def untrack(self, room: str) -> None:
        self.rooms.pop(room, None)

    def apply(self, user: str, presence: UserPresence | None) -> set[Scope]:
        old = self._users.pop(user, None)
        touched: set[Scope] = {None}
        if presence is None:
            self.org.remove(user)
        else:
            self._users[user] = presence
            self.org.put(presence)
        for room in (old.rooms if old else frozenset()) | (presence.rooms if presence else frozenset()):
            stays = presence is not None and room in presence.rooms
            if stays:
                self._in_room.setdefault(room, set()).add(user)
            elif (held := self._in_room.get(room)) is not None:
                held.discard(user)
                if not held:
                    del self._in_room[room]
            members = self.rooms.get(room)
            if members is None:
                continue
            touched.add(room)
            if stays:
                members.put(presence)  # type: ignore[arg-type]
            else:
                members.remove(user)
        return touched
