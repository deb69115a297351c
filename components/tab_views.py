"""What a tab shows, and the presence views tabs share.

A tab's Watch names its presence views (a scope and how many members it lists), the
parts of the rooms its widgets show, and how many of a room's latest messages it shows
where it shows the chat. Tabs that show the same view share one
PresenceView: its page of members is built and serialised once per change, not once
per tab, and its deltas are computed once per tick against what its tabs were last
sent. Pure: no sockets; the bridge feeds the index and sends the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .presence import UserPresence
from .presence_index import PresenceIndex, Scope
from .tab_protocol import RoomPart, TabEncoder

MAX_PAGE = 500
"""Most members one presence view lists; "show all" asks for pages up to this."""
DEFAULT_HISTORY = 50
"""Messages a tab that shows a room's chat is sent at join when its watch does not say
how many (the chat panel says its `history`)."""
ViewKey = tuple[Scope, int]
"""(room or None for the org, how many members the view lists)."""


@dataclass(frozen=True)
class Watch:
    """What one tab shows: presence views and room parts."""

    views: frozenset[ViewKey] = frozenset()
    rooms: dict[str, frozenset[RoomPart]] = field(default_factory=dict)
    history: dict[str, int] = field(default_factory=dict)
    """Per room whose chat it shows: how many of the latest messages it is sent at join."""

    @classmethod
    def from_message(cls, doc: dict[str, Any]) -> Watch:
        """From a validated `watch` (or the `watch` of a hello)."""
        views = frozenset((view.get("room"), min(view["limit"], MAX_PAGE)) for view in doc.get("presence", ()))
        rooms = {room: frozenset(parts) for room, parts in doc.get("rooms", {}).items()}
        return cls(views, rooms, dict(doc.get("history", {})))  # type: ignore[arg-type]

    def rooms_shown(self) -> frozenset[str]:
        """The rooms a tab showing this is in (its device's presence says them)."""
        return frozenset(self.rooms) | {scope for scope, _ in self.views if scope is not None}

    def history_count(self, room: str) -> int:
        """How many of the room's latest messages a tab showing this is sent at join."""
        return self.history.get(room, DEFAULT_HISTORY)


class PresenceView:
    """One presence view and what its tabs were last sent."""

    def __init__(self, key: ViewKey) -> None:
        self.scope, self.limit = key
        self._sent: dict[str, tuple[UserPresence, dict[str, Any]]] = {}
        self._counts: dict[str, int] = {}
        self._total = 0
        self._full: str | None = None
        """The serialised `people` message for what was last sent (built on demand)."""

    def _page(self, index: PresenceIndex) -> tuple[list[UserPresence], dict[str, int], int]:
        members = index.scope(self.scope)
        counts = {status: members.counts.get(status, 0) for status in ("online", "away", "offline")}
        return members.page(limit=self.limit), counts, len(members)

    def people(self, index: PresenceIndex, encoder: TabEncoder, *, complete: bool, dumps: Any) -> str:
        """The whole view now, as text (cached until the view changes)."""
        if self._full is None:
            page, self._counts, self._total = self._page(index)
            self._sent = {p.user: (p, encoder.member(p, self.scope)) for p in page}
            self._full = dumps({
                "t": "people", "room": self.scope, "limit": self.limit, "counts": self._counts, "total": self._total,
                "members": [json for _, json in self._sent.values()], "complete": complete,
            })
        return self._full

    def delta(self, index: PresenceIndex, encoder: TabEncoder) -> dict[str, Any] | None:
        """What changed since the tabs were last sent this view (None: nothing)."""
        page, counts, total = self._page(index)
        upsert, held = [], {}
        for presence in page:
            sent = self._sent.get(presence.user)
            if sent is not None and sent[0] is presence:
                held[presence.user] = sent
                continue
            json = encoder.member(presence, self.scope)
            held[presence.user] = (presence, json)
            if sent is None or sent[1] != json:
                upsert.append(json)
        remove = [user for user in self._sent if user not in held]
        if not upsert and not remove and counts == self._counts and total == self._total:
            return None
        self._sent, self._counts, self._total, self._full = held, counts, total, None
        return {"t": "people_delta", "room": self.scope, "limit": self.limit, "counts": counts, "total": total, "upsert": upsert, "remove": remove}

    def forget(self) -> None:
        """A resync: the next `people` is built afresh."""
        self._full = None
