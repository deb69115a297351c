"""The topic scheme (v1). Every topic a user writes has that user as a whole level, so
broker ACLs can hold each account to its own topics:

    presence/{org}/{user}/{device}      retained, QoS 1   (will: offline, same epoch)
    presence/{org}/{user}               retained, QoS 1   (reference app: no device)
    lease/{org}/{owner}/{holder}        retained, QoS 1   (a process's lease: extends its devices' presence)
    typing/{org}/{room}/{user}/{device} QoS 0, MQTT 5 message expiry = ttl
    cursor/{org}/{room}/{user}/{device} QoS 0, at most 20 Hz
    receipts/{org}/{room}/{user}        retained, QoS 1   ("read up to")
    chat/{org}/{room}/{user}            QoS 1
    reactions/{org}/{room}/{user}       QoS 0

An optional root prefix (levels of ids, e.g. `tenant-a/`) stands before each.
A lease topic's owner is the user level of the account that renews it (leases.py), so
the same ACL rule holds it to its own; its holder is the Topic's `device`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidId
from .ids import ID_PATTERN, check_id
from .payloads import PayloadKind

TopicKind = Literal["presence", "lease", "typing", "cursor", "receipts", "chat", "reactions"]

PAYLOAD_OF: dict[TopicKind, PayloadKind] = {
    "presence": "presence",
    "lease": "lease",
    "typing": "typing",
    "cursor": "cursor",
    "receipts": "receipt",
    "chat": "chat",
    "reactions": "reaction",
}
ROOM_KINDS: tuple[TopicKind, ...] = ("typing", "cursor", "receipts", "chat", "reactions")
_WITH_DEVICE: frozenset[TopicKind] = frozenset({"typing", "cursor"})
RETAINED_KINDS: frozenset[TopicKind] = frozenset({"presence", "lease", "receipts"})

_ID = ID_PATTERN.pattern.strip("^$")
_LEVELS: dict[str, re.Pattern[str]] = {
    "presence": re.compile(rf"({_ID})/({_ID})(?:/({_ID}))?"),  # org/user[/device]
    "lease": re.compile(rf"({_ID})/({_ID})/({_ID})"),  # org/owner/holder
    **dict.fromkeys(_WITH_DEVICE, re.compile(rf"({_ID})/({_ID})/({_ID})/({_ID})")),  # org/room/user/device
    **dict.fromkeys(set(ROOM_KINDS) - _WITH_DEVICE, re.compile(rf"({_ID})/({_ID})/({_ID})")),  # org/room/user
}
"""What follows the kind level in each kind of topic, every level an id."""
PARSE_CACHE = 16_384
"""Topic names whose parse a scheme remembers (a few MB at most)."""


@dataclass(frozen=True, slots=True)
class Topic:
    """One concrete topic of the scheme; validates its ids on construction."""

    kind: TopicKind
    org: str
    user: str
    room: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PAYLOAD_OF:
            raise ValueError(f"unknown topic kind {self.kind!r}")
        check_id(self.org, kind="org")
        check_id(self.user, kind="user")
        if self.kind in ROOM_KINDS:
            check_id(self.room, kind="room")
        elif self.room is not None:
            raise ValueError(f"{self.kind} topics have no room")
        if self.device is not None:
            check_id(self.device, kind="device")
        elif self.kind in _WITH_DEVICE or self.kind == "lease":
            raise ValueError(f"{self.kind} topics need a device (a lease's holder)")
        if self.kind not in _WITH_DEVICE and self.kind not in ("presence", "lease") and self.device is not None:
            raise ValueError(f"{self.kind} topics have no device level")

    @classmethod
    def _checked(cls, kind: TopicKind, org: str, user: str, room: str | None, device: str | None) -> Topic:
        """A topic whose levels the scheme's parse patterns have already checked: built
        without checking them again (parse is on every received message's path)."""
        topic = object.__new__(cls)
        for field_name, value in (("kind", kind), ("org", org), ("user", user), ("room", room), ("device", device)):
            object.__setattr__(topic, field_name, value)
        return topic

    @property
    def payload_kind(self) -> PayloadKind:
        return PAYLOAD_OF[self.kind]

    def levels(self) -> tuple[str, ...]:
        middle = (self.org,) if self.room is None else (self.org, self.room)
        tail = (self.user,) if self.device is None else (self.user, self.device)
        return (self.kind, *middle, *tail)


class TopicScheme:
    """Renders and parses topics under one root prefix (default: none)."""

    def __init__(self, *, prefix: str = "") -> None:
        levels = [level for level in prefix.split("/") if level] if prefix else []
        for level in levels:
            if not ID_PATTERN.fullmatch(level):
                raise InvalidId(f"invalid topic prefix {prefix!r}: each level must be an id")
        self.prefix = "".join(f"{level}/" for level in levels)
        self._depth = len(levels)
        self._parse_cached = functools.lru_cache(maxsize=PARSE_CACHE)(self._parse)

    def render(self, topic: Topic) -> str:
        return self.prefix + "/".join(topic.levels())

    def parse(self, name: str) -> Topic | None:
        """The Topic for a received topic name, or None if it is not one of ours.
        Topics are immutable, so a live stream's repeated names are parsed once."""
        return self._parse_cached(name)

    def _parse(self, name: str) -> Topic | None:
        """The uncached parse.

        Foreign or malformed names (wrong depth, ids outside the id rule) give None,
        so a client that publishes to `presence/acme/a b` cannot inject a bad id.
        """
        if not name.startswith(self.prefix):
            return None
        kind, _, rest = name[len(self.prefix):].partition("/")
        shape = _LEVELS.get(kind)
        match = shape.fullmatch(rest) if shape is not None else None
        if match is None:
            return None
        if kind in ("presence", "lease"):
            org, user, device = match.groups()
            return Topic._checked(kind, org, user, None, device)  # type: ignore[arg-type]
        if kind in _WITH_DEVICE:
            org, room, user, device = match.groups()
            return Topic._checked(kind, org, user, room, device)  # type: ignore[arg-type]
        org, room, user = match.groups()
        return Topic._checked(kind, org, user, room, None)  # type: ignore[arg-type]

    def presence_filters(self, org: str) -> tuple[str, ...]:
        """Live presence of an org: per-device topics and device-less reference topics."""
        check_id(org, kind="org")
        return (f"{self.prefix}presence/{org}/+/+", f"{self.prefix}presence/{org}/+")

    def lease_filter(self, org: str) -> str:
        """Live leases of an org's processes."""
        check_id(org, kind="org")
        return f"{self.prefix}lease/{org}/+/+"

    def room_filter(self, kind: TopicKind, org: str, room: str) -> str:
        check_id(org, kind="org")
        check_id(room, kind="room")
        wildcard = "+/+" if kind in _WITH_DEVICE else "+"
        return f"{self.prefix}{kind}/{org}/{room}/{wildcard}"

    def snapshot_filter(self, kind: TopicKind, org: str, room: str | None = None) -> str:
        """A filter for the retained snapshot, textually distinct from the live filters
        (a second subscription to the same filter would replace the first)."""
        check_id(org, kind="org")
        if room is None:
            return f"{self.prefix}{kind}/{org}/#"
        check_id(room, kind="room")
        return f"{self.prefix}{kind}/{org}/{room}/#"

    def sync_topic(self, org: str, client_id: str) -> str:
        """Where an observer echoes its end-of-snapshot marker to itself."""
        check_id(org, kind="org")
        check_id(client_id, kind="device")
        return f"{self.prefix}sync/{org}/{client_id}"
