"""What listeners of a session receive: immutable facts about the org and its rooms.

A listener gets one Snapshot first (the state when it subscribed), then these deltas in
order. Each time the observer has (re)synced with the broker's retained state it gets a
new Snapshot with `complete=True` that replaces everything it held: retained messages of
a resync are not sent one by one (10,000 users are one Snapshot, not 10,000 deltas).
Deltas carry full values (the user's whole aggregate, the full list of typists), so
applying one twice does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fields import FieldEntry
from .presence import UserPresence


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: str
    """ULID: sorting ids sorts messages in time."""
    room: str
    user: str
    text: str
    name: str | None
    at: float | None


@dataclass(frozen=True, slots=True)
class Cursor:
    x: float
    y: float
    region: str | None
    visible: bool


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    typists: tuple[str, ...] = ()
    cursors: dict[tuple[str, str], Cursor] = field(default_factory=dict)
    receipts: dict[str, str] = field(default_factory=dict)
    messages: tuple[ChatMessage, ...] = ()
    fields: tuple[FieldEntry, ...] = ()
    """Who edits which field and follows whom, by field in the lock rule's order."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    users: dict[str, UserPresence]
    rooms: dict[str, RoomSnapshot]
    complete: bool
    """False while the broker's retained snapshot has not fully arrived yet."""


@dataclass(frozen=True, slots=True)
class RoomSynced:
    """A room entered on demand has its retained state complete: its state now, after
    which its events are deltas."""

    room: str
    snapshot: RoomSnapshot


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    user: str
    presence: UserPresence | None
    """None: the user's last device topic was cleared."""


@dataclass(frozen=True, slots=True)
class TypingChanged:
    room: str
    typists: tuple[str, ...]
    """Users typing now, sorted; views leave out the viewer's own user."""


@dataclass(frozen=True, slots=True)
class CursorMoved:
    room: str
    user: str
    device: str
    cursor: Cursor | None
    """None: the cursor is gone (its device left)."""


@dataclass(frozen=True, slots=True)
class ReceiptMoved:
    room: str
    user: str
    up_to: str


@dataclass(frozen=True, slots=True)
class ChatReceived:
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class ReactionReceived:
    room: str
    user: str
    emoji: str
    count: int


@dataclass(frozen=True, slots=True)
class FieldsChanged:
    """Someone began or stopped editing a field of a room, or following someone there."""

    room: str
    entries: tuple[FieldEntry, ...]
    """The room's whole field state, by field in the lock rule's order (fields.lock_holders)."""


Event = (
    Snapshot
    | RoomSynced
    | PresenceChanged
    | TypingChanged
    | CursorMoved
    | ReceiptMoved
    | ChatReceived
    | ReactionReceived
    | FieldsChanged
)
