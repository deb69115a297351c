"""The live state of one room: typing with expiry, latest cursors, read receipts,
recent chat, and who edits which field (components/fields.py, fed from presence by the
org state). Pure; the caller passes the monotonic time.

Typing expires on the receiver: each signal is valid for its ttl from receipt
(capped at 120 s), whether or not the stop ever arrives (guarantee 7). A cursor that has
not moved for `cursor_ttl` seconds is dropped (widgets hide it after `hide_after`; the
room must not keep it for late joiners either). Typing and cursors are kept for at most
`per_user` devices of one user (the oldest goes first), so a client that invents
device ids costs the room a bounded amount. Receipts only move forward (guarantee 10):
ULIDs order messages, so a lower `up_to` is ignored.
"""

from __future__ import annotations

import bisect
from typing import Any

from .display_names import clean_display_name
from .events import ChatMessage, Cursor, RoomSnapshot
from .fields import RoomFields

DEFAULT_TYPING_TTL = 6.0
MAX_TYPING_TTL = 120.0
DEFAULT_CURSOR_TTL = 5.0
DEFAULT_PER_USER = 10


class RoomState:
    def __init__(self, room: str, *, history: int = 200, cursor_ttl: float = DEFAULT_CURSOR_TTL, per_user: int = DEFAULT_PER_USER) -> None:
        self.room = room
        self._history = history
        self._cursor_ttl = cursor_ttl
        self._per_user = per_user
        self._typing: dict[tuple[str, str], float] = {}
        self._cursors: dict[tuple[str, str], tuple[Cursor, float]] = {}
        """Latest cursor and when it moved, least recently moved first."""
        self._receipts: dict[str, str] = {}
        self._messages: list[ChatMessage] = []
        self._by_id: dict[str, ChatMessage] = {}
        self.fields = RoomFields()

    # typing -------------------------------------------------------------------
    def typists(self) -> tuple[str, ...]:
        return tuple(sorted({user for user, _ in self._typing}))

    def set_typing(self, user: str, device: str, doc: dict[str, Any], *, mono: float) -> bool:
        """Apply a typing signal; True when the set of typists changed."""
        before = self.typists()
        if doc["typing"]:
            ttl = min(doc.get("ttl", DEFAULT_TYPING_TTL * 1000) / 1000, MAX_TYPING_TTL)
            self._make_room_for(self._typing, user, device)
            self._typing[(user, device)] = mono + ttl
        else:
            self._typing.pop((user, device), None)
        return self.typists() != before

    def expire_typing(self, *, mono: float) -> bool:
        """Drop signals past their ttl; True when the set of typists changed."""
        expired = [key for key, until in self._typing.items() if until <= mono]
        if not expired:
            return False
        before = self.typists()
        for key in expired:
            del self._typing[key]
        return self.typists() != before

    def next_expiry(self) -> float | None:
        """When the next typing signal or cursor runs out (monotonic seconds)."""
        typing = min(self._typing.values(), default=None)
        cursor = next(iter(self._cursors.values()), None)  # the least recently moved
        if cursor is None:
            return typing
        cursor_until = cursor[1] + self._cursor_ttl
        return cursor_until if typing is None else min(typing, cursor_until)

    def _make_room_for(self, held: dict[tuple[str, str], Any], user: str, device: str) -> None:
        """Before a new device of `user` is added, drop the user's oldest beyond the cap."""
        if (user, device) in held:
            return
        mine = [key for key in held if key[0] == user]
        for key in mine[: max(0, len(mine) - self._per_user + 1)]:
            del held[key]

    # cursors ------------------------------------------------------------------
    def set_cursor(self, user: str, device: str, doc: dict[str, Any], *, mono: float) -> Cursor:
        cursor = Cursor(x=doc["x"], y=doc["y"], region=doc.get("region"), visible=doc.get("visible", True))
        key = (user, device)
        if self._cursors.pop(key, None) is None:
            self._make_room_for(self._cursors, user, device)
        self._cursors[key] = (cursor, mono)  # re-inserted: the dict stays in moving order
        return cursor

    def expire_cursors(self, *, mono: float) -> list[tuple[str, str]]:
        """Drop cursors that have not moved for the cursor ttl; their keys."""
        gone = []
        for key, (_, moved) in self._cursors.items():
            if moved + self._cursor_ttl > mono:
                break  # the rest moved later
            gone.append(key)
        for key in gone:
            del self._cursors[key]
        return gone

    # a device that left -----------------------------------------------------------
    def forget_device(self, user: str, device: str | None) -> tuple[bool, list[tuple[str, str]]]:
        """Drop a departed device's typing and cursor (device None: all of the user's).
        Returns (typists changed, the (user, device) keys of the cursors removed)."""
        if not self._typing and not self._cursors:
            return False, []  # the common case: nothing to look through
        before = self.typists()
        for key in [k for k in self._typing if k[0] == user and device in (None, k[1])]:
            del self._typing[key]
        gone = [k for k in self._cursors if k[0] == user and device in (None, k[1])]
        for key in gone:
            del self._cursors[key]
        return self.typists() != before, gone

    # receipts -------------------------------------------------------------------
    def set_receipt(self, user: str, up_to: str) -> bool:
        """Move the user's read marker forward; False (ignored) when it would go back."""
        if self._receipts.get(user, "") >= up_to:
            return False
        self._receipts[user] = up_to
        return True

    def clear_receipt(self, user: str) -> bool:
        return self._receipts.pop(user, None) is not None

    # chat -----------------------------------------------------------------------
    def add_message(self, user: str, doc: dict[str, Any]) -> ChatMessage | None:
        """Keep the message in id order (QoS 1 may deliver twice: duplicates give None)."""
        if doc["id"] in self._by_id:
            return None
        message = ChatMessage(
            id=doc["id"], room=self.room, user=user, text=doc["text"], name=clean_display_name(doc.get("name")), at=doc.get("at")
        )
        bisect.insort(self._messages, message, key=lambda m: m.id)
        self._by_id[message.id] = message
        if len(self._messages) > self._history:
            del self._by_id[self._messages.pop(0).id]
        return message

    def message(self, message_id: str) -> ChatMessage | None:
        return self._by_id.get(message_id)

    def snapshot(self) -> RoomSnapshot:
        return RoomSnapshot(
            typists=self.typists(),
            cursors={key: cursor for key, (cursor, _) in self._cursors.items()},
            receipts=dict(self._receipts),
            messages=tuple(self._messages),
            fields=self.fields.entries(),
        )
