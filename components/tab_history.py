"""What a tab is sent of a room's chat from before it opened: the latest messages when
it starts showing the room's chat (its join), and earlier pages when it asks for them
("load earlier messages").

- Join: once the room is watched with its live subscription in place (when its `room`
  frame goes out), the latest `count` messages (the chat panel's `history`) are read
  from the session's history (the store: blocking, so off the event loop, through
  `submit`) and merged by id with what the session holds in memory (messages seen on the
  broker that the history writer may not have written yet, and all there is while the
  store is down). Tabs that join a room with the same count while its read is in flight
  share the read and the frame.
- From the moment a tab starts showing a room's chat until its `history` frame is
  queued, the room's new messages for that tab are held; after the frame it gets those
  the page does not hold, in arrival order. A message the page holds may still be on
  its way from the broker (a server stores a message before it publishes it); its live
  delivery is not sent to the tab again if it comes within IN_FLIGHT. So a message that
  arrives while the history is read is neither lost nor sent twice. (Past HOLD_LIMIT
  held messages they go out as they come; a tab keeps one copy of each id it is sent.)
- Earlier pages are keyset ranges below an id the tab names, so a tab walking back gets
  every message once, in order, whatever arrives meanwhile. A tab has one earlier page
  read at a time; a request while one is read is dropped and counted.
- A store that cannot be read: a join gets what memory holds, marked `unavailable`; an
  earlier page comes back empty, `unavailable`, with `more`, so the tab can ask again.

Runs on the event loop, owned by the fanout (components/tab_fanout.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import HistoryUnavailable
from .events import ChatMessage
from .history import MAX_PAGE
from .message_ids import id_time
from .tab_protocol import NameOf, TabEncoder, dumps

if TYPE_CHECKING:  # tab_fanout imports this module
    from .tab_fanout import Tab

log = logging.getLogger(__name__)

PAGE = 50
"""Messages an earlier page holds when the tab does not say how many."""
HOLD_LIMIT = 500
"""New messages held for one tab while its join is read; past it they go out as they come."""
IN_FLIGHT = 30.0
"""Seconds a message written that recently may still reach this server from the broker
(its id dates its writing; a SQLite writer may wait 10 s for its turn)."""

Read = Callable[..., list[ChatMessage]]
Done = Callable[[Any, "BaseException | None"], None]


@dataclass(frozen=True)
class HistorySource:
    """Where a room's past comes from, and how blocking work runs."""

    read: Read
    """`read(room, before=ID|None, limit=N)`: a page, oldest first (the session's
    `history`: blocking; raises HistoryUnavailable when the store cannot be read)."""
    recent: Callable[[str], tuple[ChatMessage, ...]]
    """The messages of a room the session holds in memory now (never blocks)."""
    submit: Callable[[Callable[[], Any], Done], None]
    """Run `work` off the event loop, then `done(result, None)` or `done(None, error)` on it."""


def latest(read: Read, room: str, count: int) -> tuple[list[ChatMessage], bool]:
    """The latest `count` messages of `room`, oldest first, read a page at a time
    (blocking), and whether there may be earlier ones."""
    if count == 0:
        return [], bool(read(room, before=None, limit=1))
    messages: list[ChatMessage] = []
    before = None
    while len(messages) < count:
        limit = min(MAX_PAGE, count - len(messages))
        page = read(room, before=before, limit=limit)
        messages = page + messages
        if len(page) < limit:
            return messages, False
        before = page[0].id
    return messages, True


def merged(stored: list[ChatMessage], recent: tuple[ChatMessage, ...], count: int) -> tuple[list[ChatMessage], bool]:
    """The latest `count` of both, by id (the store's copy wins), and whether some were left out."""
    by_id = {m.id: m for m in recent}
    by_id.update((m.id, m) for m in stored)
    ordered = sorted(by_id.values(), key=lambda m: m.id)
    return (ordered[-count:] if count else []), len(ordered) > count


@dataclass(eq=False)
class _Join:
    """A tab's join of one room, until its `history` frame is queued."""

    count: int
    held: list[tuple[str, str]] | None = field(default_factory=list)
    """(id, frame) of the room's new messages for the tab, in arrival order (None: too
    many, they are sent as they come)."""
    reading: bool = False


class TabHistory:
    def __init__(
        self,
        source: HistorySource,
        *,
        encoder: TabEncoder,
        name_of: NameOf,
        send: Callable[[Tab, str], None],
        count: Callable[[str], None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._encoder = encoder
        self._name_of = name_of
        self._send = send
        self._count = count
        self._wall = wall
        self._joins: dict[Tab, dict[str, _Join]] = {}
        self._in_page: dict[Tab, dict[str, tuple[float, set[str]]]] = {}
        """Per tab and room: until when, and the recent ids of its last page (see IN_FLIGHT)."""
        self._reads: dict[tuple[str, int], set[Tab]] = {}
        """(room, count) read in flight -> the tabs waiting for it."""
        self._earlier: set[Tab] = set()
        """Tabs whose earlier page is being read."""

    # -- joins ---------------------------------------------------------------------------------
    def join(self, tab: Tab, room: str, count: int, *, ready: bool) -> None:
        """`tab` starts showing the chat of `room` (or now shows `count` messages of it):
        its new messages are held for the tab from now on, and the latest `count` are
        read once the room is `ready` (see `ready`)."""
        rooms = self._joins.setdefault(tab, {})
        join = rooms.get(room)
        if join is None:
            join = rooms[room] = _Join(count)
        elif join.count != count:
            self._reads.get((room, join.count), set()).discard(tab)
            join.count, join.reading = count, False
        if ready:
            self._read(tab, room, join)

    def ready(self, room: str) -> None:
        """The room is watched with its live subscription in place: read what the tabs
        joining it wait for."""
        for tab, rooms in list(self._joins.items()):
            if (join := rooms.get(room)) is not None:
                self._read(tab, room, join)

    def take(self, tab: Tab, room: str, message_id: str, frame: str) -> bool:
        """A new message of `room` for `tab`: True when the tab is not to be sent it now
        (it is held until the tab's join, or the tab's page holds it already)."""
        if tab in self._in_page and self._already_sent(tab, room, message_id):
            return True
        join = self._joins.get(tab, {}).get(room)
        if join is None or join.held is None:
            return False
        if len(join.held) >= HOLD_LIMIT:
            self._count("history_hold_overflow")
            for _, held in join.held:
                self._send(tab, held)
            join.held = None
            return False
        join.held.append((message_id, frame))
        return True

    def _already_sent(self, tab: Tab, room: str, message_id: str) -> bool:
        rooms = self._in_page[tab]
        until, ids = rooms.get(room, (0.0, set()))
        if message_id in ids and self._wall() <= until:
            ids.discard(message_id)
            return True
        if self._wall() > until:
            rooms.pop(room, None)
            if not rooms:
                del self._in_page[tab]
        return False

    def leave(self, tab: Tab, room: str) -> None:
        """`tab` no longer shows the chat of `room`."""
        self._end_join(tab, room)
        self._in_page.get(tab, {}).pop(room, None)
        if self._in_page.get(tab) == {}:
            del self._in_page[tab]

    def _end_join(self, tab: Tab, room: str) -> None:
        """Forget the tab's join of `room` (done, or no longer wanted)."""
        rooms = self._joins.get(tab)
        join = rooms.pop(room, None) if rooms is not None else None
        if join is not None:
            self._reads.get((room, join.count), set()).discard(tab)
        if rooms == {}:
            del self._joins[tab]

    def forget(self, tab: Tab) -> None:
        """The tab is gone."""
        for room in list(self._joins.get(tab, ())) + list(self._in_page.get(tab, ())):
            self.leave(tab, room)
        self._earlier.discard(tab)

    def _read(self, tab: Tab, room: str, join: _Join) -> None:
        if join.reading:
            return
        join.reading = True
        key = (room, count := join.count)
        if key in self._reads:
            self._reads[key].add(tab)
            return
        self._reads[key] = {tab}
        read = self._source.read
        self._source.submit(lambda: latest(read, room, count), lambda result, error: self._joined(room, count, result, error))

    def _joined(self, room: str, count: int, result: tuple[list[ChatMessage], bool] | None, error: BaseException | None) -> None:
        tabs = self._reads.pop((room, count), set())
        if not tabs:
            return
        stored, more = ([], True) if result is None else result
        if error is not None:
            self._failed(error, doing="join")
        page, cut = merged(stored, self._source.recent(room), count)
        text = dumps(self._frame(room, None, page, more=more or cut, unavailable=error is not None))
        ids = {m.id for m in page}
        now = self._wall()
        in_flight = {m.id for m in page if id_time(m.id) >= now - IN_FLIGHT}
        for tab in tabs:
            join = self._joins.get(tab, {}).get(room)
            if join is None or join.count != count:
                continue  # stopped showing the chat, or asked for another count (read anew)
            self._end_join(tab, room)
            self._send(tab, text)
            for message_id, frame in join.held or ():
                if message_id not in ids:
                    self._send(tab, frame)
            unheld = in_flight - {message_id for message_id, _ in join.held or ()}
            if unheld:
                self._in_page.setdefault(tab, {})[room] = (now + IN_FLIGHT, unheld)

    # -- earlier pages ---------------------------------------------------------------------------
    def earlier(self, tab: Tab, room: str, before: str, limit: int) -> None:
        """Send `tab` the `limit` messages of `room` just below `before` (a `history` frame)."""
        if tab in self._earlier:
            self._count("earlier_busy")
            return
        self._earlier.add(tab)
        read = self._source.read

        def done(page: list[ChatMessage] | None, error: BaseException | None) -> None:
            if tab not in self._earlier:
                return  # the tab is gone
            self._earlier.discard(tab)
            if error is not None:
                self._failed(error, doing="earlier page")
            messages = page or []
            self._send(tab, dumps(self._frame(room, before, messages, more=error is not None or len(messages) == limit, unavailable=error is not None)))

        self._source.submit(lambda: read(room, before=before, limit=limit), done)

    # -- frames ------------------------------------------------------------------------------------
    def _frame(self, room: str, before: str | None, messages: list[ChatMessage], *, more: bool, unavailable: bool) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "t": "history", "room": room, "before": before,
            "messages": [self._encoder.message(m, self._name_of(m.user)) for m in messages], "more": more,
        }
        if unavailable:
            frame["unavailable"] = True
        return frame

    def _failed(self, error: BaseException, *, doing: str) -> None:
        if isinstance(error, HistoryUnavailable):
            self._count("history_unavailable")  # the store logged the outage once
            return
        self._count("history_failed")
        log.error("chat history %s failed: %s", doing, error, exc_info=error)
