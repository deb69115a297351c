"""Everything the bridge sends to tabs: each tab gets what its widgets show, and each
frame is built once for all the tabs that show the same thing.

- Presence: the session's events are coalesced per tick (PRESENCE_TICK; a user who
  flips twice in a tick is one update) and applied to a PresenceIndex; each presence
  view that changed sends one `people_delta` to the tabs that show it. A tab joining a
  view gets the view's `people` text, built once and shared.
- Rooms: typing, chat, receipts and reactions go only to the tabs that show that part
  of that room (and who edits which field, its `fields`, whole on each change); cursor
  moves are batched per room (see Cursors below). A tab that
  starts showing a room gets its `room` frame when the session has the room's retained
  state (at once, or on RoomSynced); one that starts showing its chat gets the room's
  latest messages then, as a `history` frame (components/tab_history.py: read off the
  event loop; the room's new messages for the tab wait for it, none lost, none twice).
- A resync (the session's Snapshot) replaces everything every tab holds, and each tab
  that shows a chat is sent its latest messages again (what the session missed while it
  was off the broker may be in the store).
- Cursors: a room's moves go out at once when the room sent no cursor frame in the
  current tick (CURSOR_TICK) yet, else together at the start of the next, each person's
  latest move once: a lone mover is not delayed, and under load every tab still gets
  at most one cursor frame a room and tick (components/throttle.py).
Runs on the event loop; frames are queued per tab (Tab.queue) and written by the bridge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .events import (
    ChatReceived,
    CursorMoved,
    Event,
    FieldsChanged,
    PresenceChanged,
    ReactionReceived,
    ReceiptMoved,
    RoomSnapshot,
    RoomSynced,
    Snapshot,
    TypingChanged,
)
from .presence import UserPresence
from .presence_index import PresenceIndex
from .rate_limit import TokenBucket
from .tab_history import HistorySource, TabHistory
from .tab_protocol import RoomPart, TabEncoder, cursor_move, dumps, names
from .tab_views import PresenceView, ViewKey, Watch
from .throttle import CallLater, Throttle
from .tokens import Claims

if TYPE_CHECKING:  # the bridge hands it Starlette's sockets; nothing here depends on them
    from starlette.websockets import WebSocket

log = logging.getLogger(__name__)

CURSOR_TICK = 0.025
"""A room sends at most one cursor frame in each 25 ms tick (as Ably batches): at once when
the tick has sent none yet, else all moves since in one frame at the next tick. Half the
senders' 50 ms (20 Hz): moves from people at different phases then wait 12 ms at the
median for the next frame, not 25, and a tab gets at most 40 cursor frames a second
however many people move."""
PRESENCE_TICK = 0.1
"""Presence changes are coalesced over 100 ms: at most 10 presence frames a second per view."""
TAB_QUEUE_LIMIT = 2000
"""A tab this far behind is disconnected; it reconnects and gets a fresh snapshot."""
INBOUND_RATE, INBOUND_BURST = 40.0, 80.0
"""Messages a second a tab may send (cursor 20 Hz + typing + chat), and its burst."""


@dataclass(eq=False)
class Tab:
    """One open socket: who it is, what it may see, what it shows, its outgoing frames."""

    websocket: WebSocket
    claims: Claims
    """Who it is (its first valid token; `rooms` are all its tokens' together)."""
    device_id: str
    rooms: frozenset[str]
    """The rooms its tokens grant."""
    watch: Watch = field(default_factory=Watch)
    """What it is shown: what it asked for, less the rooms its tokens do not grant."""
    asked: Watch = field(default_factory=Watch)
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    inbound: TokenBucket = field(default_factory=lambda: TokenBucket(rate=INBOUND_RATE, burst=INBOUND_BURST))
    refused: int = 0


class Timers(Protocol):
    """What the fanout needs of its event loop (an asyncio loop has both)."""

    call_later: CallLater

    def time(self) -> float: ...


class Fanout:
    def __init__(
        self, *, encoder: TabEncoder, room_state: Callable[[str], RoomSnapshot | None], history: HistorySource, count: Callable[[str], None], timers: Timers
    ) -> None:
        """`room_state(room)`: the session's state of a room whose retained state is
        complete, else None; `history`: where rooms' past messages come from;
        `count(reason)` counts what was dropped; `timers`: the event loop it runs on."""
        self._timers = timers
        self.encoder = encoder
        self._room_state = room_state
        self._count = count
        self.history = TabHistory(history, encoder=encoder, name_of=self.name_of, send=self._send, count=count)
        self.index = PresenceIndex()
        self.synced = False
        self._tabs: set[Tab] = set()
        self._views: dict[ViewKey, PresenceView] = {}
        self._view_tabs: dict[ViewKey, set[Tab]] = {}
        self._room_tabs: dict[str, dict[RoomPart, set[Tab]]] = {}
        self._waiting: dict[str, set[Tab]] = {}
        """Tabs that show a room whose retained state is not complete yet."""
        self._presence: dict[str, UserPresence | None] = {}
        self._cursors: dict[str, dict[tuple[str, str], list[Any]]] = {}
        """Per room shown with cursors: each person's latest move not sent yet."""
        self._cursor_throttles: dict[str, Throttle] = {}
        self.frames_sent = 0

    # -- what tabs show ----------------------------------------------------------------------
    def add(self, tab: Tab) -> None:
        self._tabs.add(tab)
        self.show(tab, tab.watch, previous=Watch())

    def remove(self, tab: Tab) -> None:
        self._tabs.discard(tab)
        self.show(tab, Watch(), previous=tab.watch)
        self.history.forget(tab)

    def show(self, tab: Tab, watch: Watch, *, previous: Watch) -> None:
        """`tab` shows `watch` now instead of `previous`: leave what it no longer shows,
        send it what it newly shows."""
        tab.watch = watch
        for key in previous.views - watch.views:
            self._unwatch_view(tab, key)
        for room, parts in previous.rooms.items():
            gone = parts - watch.rooms.get(room, frozenset())
            for part in gone:
                self._room_tabs[room][part].discard(tab)
            if "cursors" in gone and not self._room_tabs[room]["cursors"]:
                throttle = self._cursor_throttles.pop(room, None)
                if throttle is not None:
                    throttle.cancel()
                self._cursors.pop(room, None)
            if "chat" in gone:
                self.history.leave(tab, room)
            if room not in watch.rooms:
                self._waiting.get(room, set()).discard(tab)
                if not any(self._room_tabs[room].values()):
                    del self._room_tabs[room]
        for key in watch.views - previous.views:
            self._watch_view(tab, key)
        for room, parts in watch.rooms.items():
            new = parts - previous.rooms.get(room, frozenset())
            count = watch.history_count(room)
            recount = "chat" in parts - new and count != previous.history_count(room)
            if not new and not recount:
                continue
            held = self._room_tabs.setdefault(room, {})
            for part in new:
                held.setdefault(part, set()).add(tab)
            state = self._room_state(room)
            if state is None:
                self._waiting.setdefault(room, set()).add(tab)
            elif new:
                self._send(tab, dumps(self.encoder.room(room, state, sorted(new), self.name_of)))
            if "chat" in new or recount:
                self.history.join(tab, room, count, ready=state is not None)

    def _watch_view(self, tab: Tab, key: ViewKey) -> None:
        scope = key[0]
        if scope is not None and scope not in self.index.rooms:
            self.index.track(scope)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = PresenceView(key)
            self._view_tabs[key] = set()
        self._view_tabs[key].add(tab)
        self._send(tab, view.people(self.index, self.encoder, complete=self.synced, dumps=dumps))

    def _unwatch_view(self, tab: Tab, key: ViewKey) -> None:
        watching = self._view_tabs.get(key)
        if watching is None:
            return
        watching.discard(tab)
        if watching:
            return
        del self._view_tabs[key], self._views[key]
        scope = key[0]
        if scope is not None and not any(other[0] == scope for other in self._views):
            self.index.untrack(scope)

    def name_of(self, user: str) -> str | None:
        presence = self.index.user(user)
        return presence.name if presence is not None else None

    # -- the session's events (on the event loop) ----------------------------------------------
    def handle(self, event: Event) -> None:
        if isinstance(event, Snapshot):
            self._resync(event)
        elif isinstance(event, PresenceChanged):
            self._presence[event.user] = event.presence  # coalesced until the next tick
        elif isinstance(event, CursorMoved):
            self._cursor_moved(event)
        elif isinstance(event, RoomSynced):
            for tab in self._waiting.pop(event.room, set()):
                self._send(tab, dumps(self.encoder.room(event.room, event.snapshot, sorted(tab.watch.rooms.get(event.room, ())), self.name_of)))
            self.history.ready(event.room)
        elif isinstance(event, TypingChanged):
            self._to_room(event.room, "typing", {"t": "typing", "room": event.room, "typists": list(event.typists), "names": names(event.typists, self.name_of)})
        elif isinstance(event, ChatReceived):
            message = event.message
            text = dumps({"t": "chat", "message": self.encoder.message(message, self.name_of(message.user))})
            for tab in list(self._room_tabs.get(message.room, {}).get("chat", ())):
                if not self.history.take(tab, message.room, message.id, text):
                    self._send(tab, text)
        elif isinstance(event, ReceiptMoved):
            self._to_room(event.room, "receipts", {"t": "receipt", "room": event.room, "user": event.user, "up_to": event.up_to, "name": self.name_of(event.user)})
        elif isinstance(event, ReactionReceived):
            self._to_room(event.room, "reactions", {"t": "reaction", "room": event.room, "user": event.user, "emoji": event.emoji, "count": event.count, "name": self.name_of(event.user)})
        elif isinstance(event, FieldsChanged):
            self._to_room(event.room, "fields", {"t": "fields", "room": event.room, "editors": self.encoder.fields(event.entries)})

    def _resync(self, snapshot: Snapshot) -> None:
        """The session resynced with the broker: every tab replaces what it holds."""
        self.synced = snapshot.complete
        self._presence.clear()
        self.index.reset(snapshot.users.values())
        for key, view in self._views.items():
            view.forget()
            self._broadcast(self._view_tabs[key], view.people(self.index, self.encoder, complete=self.synced, dumps=dumps))
        for room, parts in self._room_tabs.items():
            state = snapshot.rooms.get(room)
            if state is None:
                continue
            self._waiting.pop(room, None)
            for tab in set().union(*parts.values()):
                self._send(tab, dumps(self.encoder.room(room, state, sorted(tab.watch.rooms.get(room, ())), self.name_of)))
            for tab in parts.get("chat", ()):
                self.history.join(tab, room, tab.watch.history_count(room), ready=True)

    def _to_room(self, room: str, part: RoomPart, message: dict[str, Any]) -> None:
        tabs = self._room_tabs.get(room, {}).get(part)
        if tabs:
            self._broadcast(tabs, dumps(message))

    # -- ticks ------------------------------------------------------------------------------------
    def presence_tick(self) -> None:
        """Apply the tick's presence changes: each view that changed computes its delta
        once, and each tab gets one frame with the deltas of its views (tabs that show
        the same views share its text)."""
        if not self._presence:
            return
        changes, self._presence = self._presence, {}
        touched = set()
        for user, presence in changes.items():
            touched |= self.index.apply(user, presence)
        deltas = {key: delta for key, view in self._views.items() if key[0] in touched and (delta := view.delta(self.index, self.encoder)) is not None}
        by_views: dict[tuple[ViewKey, ...], set[Tab]] = {}
        for key in deltas:
            for tab in self._view_tabs[key]:
                by_views.setdefault(tuple(sorted((k for k in tab.watch.views if k in deltas), key=str)), set()).add(tab)
        for keys, tabs in by_views.items():
            message = deltas[keys[0]] if len(keys) == 1 else {"t": "people_batch", "deltas": [deltas[k] for k in keys]}
            self._broadcast(tabs, dumps(message))

    def _cursor_moved(self, event: CursorMoved) -> None:
        room = event.room
        if not self._room_tabs.get(room, {}).get("cursors"):
            return  # nobody here shows it; a tab that starts to gets the room's cursors
        self._cursors.setdefault(room, {})[(event.user, event.device)] = cursor_move(event.user, event.device, event.cursor, self.name_of(event.user))
        throttle = self._cursor_throttles.get(room)
        if throttle is None:
            throttle = self._cursor_throttles[room] = Throttle(
                period=CURSOR_TICK, flush=lambda: self._flush_cursors(room), call_later=self._timers.call_later, clock=self._timers.time
            )
        throttle.poke()

    def _flush_cursors(self, room: str) -> None:
        """The throttle's turn: one frame with each person's latest move since the last."""
        moves = self._cursors.pop(room, None)
        if not moves:
            return
        try:
            self._to_room(room, "cursors", {"t": "cursors", "room": room, "moves": list(moves.values())})
        except Exception:  # noqa: BLE001 - one bad frame must not end the room's cursors
            self._count("fanout_failed")
            log.exception("a cursor frame failed")

    # -- sending --------------------------------------------------------------------------------
    def broadcast_all(self, message: dict[str, Any]) -> None:
        self._broadcast(self._tabs, dumps(message))

    def _broadcast(self, tabs: set[Tab], text: str) -> None:
        for tab in list(tabs):
            self._send(tab, text)

    def _send(self, tab: Tab, text: str) -> None:
        if tab.queue.qsize() >= TAB_QUEUE_LIMIT:
            log.warning("tab %s/%s is %d messages behind; disconnecting it", tab.claims.user, tab.device_id, TAB_QUEUE_LIMIT)
            self._count("too_far_behind")
            asyncio.ensure_future(tab.websocket.close(code=1013, reason="too far behind"))
            return
        tab.queue.put_nowait(text)
