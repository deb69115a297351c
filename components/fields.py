"""Who is editing which field of a room, whom they follow there, and the soft-lock rule.

Presence of a field is presence with a location. A device's presence document may say
which field of which room it is editing (`focus`), whom it follows in a room (`follow`)
and that its user does not want to be followed (`unfollowable`). That is retained with
the presence and goes with it: an offline document (the will included) carries none of
it, so a lock ends exactly when its holder's presence does (a closed tab after the
leave grace, a crash by the will, a frozen client at the keepalive bound, and the ghost
of a broker restart when the observer's probe buries it). No topic of its own, so
nothing of a dead device can stay retained elsewhere.

The lock rule. A focus with `lock: true` is a claim on (room, field). Among the live
claims on one field the holder is the one with the lowest `claimed` epoch, then the
lowest device id, then the lowest user id (strings compared by code point). Every
server and session applies it to the claims it holds, so all agree as soon as they
hold the same claims, in whatever order these arrived. A claimant takes `claimed` as
max(its epoch clock, every claim it already sees on that field + 1) (`RoomFields.floor`):
someone who saw the field held queues behind the holder and never displaces them, and
becomes the holder when everyone before them has let go. So the rule only decides
between claims made at the same moment (neither claimant had seen the other): exactly
one of them wins, everywhere. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .display_names import clean_display_name
from .errors import InvalidId
from .message_ids import MAX_CLOCK_SKEW

if TYPE_CHECKING:
    from .presence import DevicePresence

FIELD_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A field id: the Streamlit key of an input as its container's class names it
(`st-key-title`; Streamlit turns every other character of a key into `-`)."""


def check_field(value: object) -> str:
    """Return `value` if it is a valid field id, else raise InvalidId naming it."""
    if isinstance(value, str) and FIELD_PATTERN.fullmatch(value):
        return value
    raise InvalidId(f"invalid field id {value!r}: field ids are 1-64 characters of A-Z a-z 0-9 _ - (a Streamlit key as its st-key- class names it)")


def claimed_in_the_future(claimed: int, *, now: float) -> bool:
    """Is a claim's epoch (ms) more than MAX_CLOCK_SKEW ahead of `now` (s)? Such a claim
    is refused where it arrives: every later claim on its field would have to queue
    above it, which no epoch may do for long (and 2**53 ms is the schema's end)."""
    return claimed > (now + MAX_CLOCK_SKEW) * 1000


@dataclass(frozen=True, slots=True)
class Focus:
    """The field one device is editing."""

    room: str
    field: str
    label: str | None
    """The field's label as its page shows it (cleaned like a display name)."""
    lock: bool
    """A claim on the field's soft lock."""
    claimed: int
    """Epoch (ms) at which the device began editing the field: the lock rule's first key."""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Focus:
        """From a validated presence payload's `focus`."""
        return cls(doc["room"], doc["field"], clean_display_name(doc.get("label")), doc.get("lock", False), doc["claimed"])

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"room": self.room, "field": self.field, "lock": self.lock, "claimed": self.claimed}
        if self.label:
            doc["label"] = self.label
        return doc


@dataclass(frozen=True, slots=True)
class FieldEntry:
    """One live device's place in one room: the field it edits there (if any), whom it
    follows there (if anyone), and whether its user may be followed."""

    user: str
    device: str | None
    name: str | None
    focus: Focus | None
    follows: str | None
    unfollowable: bool

    def rule_key(self) -> tuple[int, str, str]:
        """The lock rule's order: lowest claim, then device id, then user id."""
        return (self.focus.claimed if self.focus else 0, self.device or "", self.user)


def rooms_of(state: DevicePresence) -> frozenset[str]:
    """The rooms whose field state a device's presence has something to say in."""
    if not state.live or not (state.focus or state.follow or state.unfollowable):
        return frozenset()
    rooms = {state.focus.room} if state.focus else set()
    if state.follow:
        rooms.add(state.follow[0])
    if state.unfollowable:
        rooms |= state.rooms
    return frozenset(rooms)


def entry_in(room: str, user: str, state: DevicePresence) -> FieldEntry | None:
    """What a device's presence says in `room` (None: nothing)."""
    if room not in rooms_of(state):
        return None
    focus = state.focus if state.focus and state.focus.room == room else None
    follows = state.follow[1] if state.follow and state.follow[0] == room else None
    return FieldEntry(user, state.device, state.name, focus, follows, state.unfollowable)


def lock_holders(entries: Iterable[FieldEntry]) -> dict[str, FieldEntry]:
    """Per field, the entry that holds its lock by the rule (fields nobody claims are absent)."""
    holders: dict[str, FieldEntry] = {}
    for entry in entries:
        focus = entry.focus
        if focus is not None and focus.lock:
            held = holders.get(focus.field)
            if held is None or entry.rule_key() < held.rule_key():
                holders[focus.field] = entry
    return holders


class RoomFields:
    """The field state of one room: one entry per live device that has one here."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str | None], FieldEntry] = {}

    def put(self, user: str, device: str | None, entry: FieldEntry | None) -> bool:
        """Set (or with None remove) a device's entry; True when the room's state changed."""
        key = (user, device)
        if entry is None:
            return self._entries.pop(key, None) is not None
        if self._entries.get(key) == entry:
            return False
        self._entries[key] = entry
        return True

    def entries(self) -> tuple[FieldEntry, ...]:
        """Every entry, by field, then in the lock rule's order (holders first)."""
        return tuple(sorted(self._entries.values(), key=lambda e: (e.focus.field if e.focus else "", *e.rule_key())))

    def floor(self, field: str) -> int:
        """The lowest `claimed` a new claim on `field` may take: above every claim held."""
        return max((e.focus.claimed + 1 for e in self._entries.values() if e.focus and e.focus.field == field), default=0)
