"""What each tab is sent (issue 11), pure: the session's events go in, the frames each
tab would be sent come out. A tab gets what its widgets show and nothing else; presence
is coalesced per tick; a view's text is built once for all its tabs. A tab that shows a
chat gets the room's past from a history (here a list of stored messages, read when the
test says: the store's reads run off the event loop) merged with what the session holds,
and no message twice or never while that is read (issue 12)."""

from __future__ import annotations

import asyncio
import json

import pytest

from components.errors import HistoryUnavailable
from components.events import ChatMessage, ChatReceived, Cursor, CursorMoved, PresenceChanged, ReactionReceived, RoomSnapshot, RoomSynced, Snapshot, TypingChanged
from components.message_ids import MessageIds
from components.presence import UserPresence
from components.tab_fanout import Fanout, Tab
from components.tab_history import HOLD_LIMIT, HistorySource
from components.tab_protocol import TabEncoder
from components.tab_views import Watch
from components.tokens import Claims
from helpers import FakeLoop

ROOMS: dict[str, RoomSnapshot] = {}
LOOP = FakeLoop()


class Store:
    """The rooms' stored messages, and the reads the fanout handed off: each runs when
    the test calls `finish()` (at once with `deferred=False`)."""

    def __init__(self) -> None:
        self.rooms: dict[str, list[ChatMessage]] = {}
        self.down = False
        self.deferred = False
        self.pending: list = []
        self.reads = 0

    def read(self, room: str, *, before: str | None, limit: int) -> list[ChatMessage]:
        self.reads += 1
        if self.down:
            raise HistoryUnavailable("chat history read failed at sqlite:///x: disk I/O error")
        below = [m for m in sorted(self.rooms.get(room, []), key=lambda m: m.id) if before is None or m.id < before]
        return below[-limit:]

    def submit(self, work, done) -> None:
        self.pending.append((work, done))
        if not self.deferred:
            self.finish()

    def finish(self) -> None:
        while self.pending:
            work, done = self.pending.pop(0)
            try:
                result = work()
            except Exception as exc:  # noqa: BLE001 - handed on, as the bridge does
                done(None, exc)
            else:
                done(result, None)


STORE = Store()


def person(user: str, status: str = "online", *, rooms: tuple[str, ...] = (), name: str | None = None, since: float = 1.0) -> UserPresence:
    return UserPresence(user=user, status=status, since=since, devices=int(status != "offline"), name=name, rooms=frozenset(rooms))  # type: ignore[arg-type]


def recent(room: str) -> tuple[ChatMessage, ...]:
    return ROOMS[room].messages if room in ROOMS else ()


@pytest.fixture
def fanout() -> Fanout:
    global STORE
    ROOMS.clear()
    STORE = Store()
    source = HistorySource(read=STORE.read, recent=recent, submit=lambda work, done: STORE.submit(work, done))
    return Fanout(encoder=TabEncoder(), room_state=ROOMS.get, history=source, count=lambda why: None, timers=LOOP)


def tab(user: str, watch: Watch, rooms: tuple[str, ...] = ("a", "b")) -> Tab:
    claims = Claims(user=user, name=user, org="acme", expires=0, issued=0, nonce="n", rooms=frozenset(rooms))
    return Tab(websocket=None, claims=claims, device_id="d", rooms=frozenset(rooms), asked=watch, watch=watch)  # type: ignore[arg-type]


def sent(t: Tab) -> list[dict]:
    frames = []
    while not t.queue.empty():
        text = t.queue.get_nowait()
        frames.append(json.loads(text))
    return frames


def room_watch(room: str, *parts: str, limit: int | None = None) -> Watch:
    views = frozenset({(room, limit)}) if limit is not None else frozenset()
    return Watch(views, {room: frozenset(parts)})  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def event_loop_for_queues():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()


def test_a_tab_gets_only_the_rooms_and_parts_it_shows(fanout: Fanout) -> None:
    ROOMS["a"] = RoomSnapshot(typists=("ben",))
    ROOMS["b"] = RoomSnapshot()
    in_a = tab("ana", room_watch("a", "typing", "chat"))
    in_b = tab("cy", room_watch("b", "typing", "chat", "cursors", "reactions"))
    for t in (in_a, in_b):
        fanout.add(t)
    assert [f["t"] for f in sent(in_a)] == ["room", "history"] and [f["t"] for f in sent(in_b)] == ["room", "history"]
    message = ChatMessage(id="01M8NDRW12Y0E4Z042VMTMCG62", room="b", user="cy", text="hi", name="Cy", at=1.0)
    for event in (TypingChanged("b", ("cy",)), ChatReceived(message), ReactionReceived("b", "cy", "🎉", 2), CursorMoved("b", "cy", "d", Cursor(0.5, 0.5, None, True))):
        fanout.handle(event)
    LOOP.advance(0)  # the room's cursors were idle: its move goes at once (tests/test_ticks.py)
    assert sent(in_a) == [], "room a's tab heard room b"
    assert [f["t"] for f in sent(in_b)] == ["typing", "chat", "reaction", "cursors"]
    fanout.handle(TypingChanged("a", ("ben",)))
    fanout.handle(ReactionReceived("a", "ben", "🎉", 1))  # a part in_a does not show
    assert [f["t"] for f in sent(in_a)] == ["typing"]


def test_a_room_not_yet_synced_is_sent_when_it_is(fanout: Fanout) -> None:
    waiting = tab("ana", room_watch("a", "receipts"))
    fanout.add(waiting)
    assert sent(waiting) == []
    fanout.handle(RoomSynced("a", RoomSnapshot(receipts={"ben": "01M8NDRW12Y0E4Z042VMTMCG62"})))
    [frame] = sent(waiting)
    assert frame == {"t": "room", "room": "a", "receipts": {"ben": "01M8NDRW12Y0E4Z042VMTMCG62"}, "names": {}}


def test_presence_views_are_coalesced_per_tick_and_scoped(fanout: Fanout) -> None:
    users = {f"u{i}": person(f"u{i}", "offline", rooms=("a" if i % 2 else "b",), since=float(i)) for i in range(10)}
    fanout.handle(Snapshot(users=users, rooms={}, complete=True))
    in_a = tab("u1", Watch(frozenset({("a", 3)})))
    org = tab("u2", Watch(frozenset({(None, 3)})))
    fanout.add(in_a)
    fanout.add(org)
    [people] = sent(in_a)
    assert people["counts"] == {"online": 0, "away": 0, "offline": 5} and people["total"] == 5
    assert [m["user"] for m in people["members"]] == ["u9", "u7", "u5"]  # most recently seen first
    assert "rooms" not in people["members"][0], "a tab is not told where else people are"
    sent(org)
    # u3 (room a) flips online, away, online in one tick: one delta, its last state
    for status in ("online", "away", "online"):
        fanout.handle(PresenceChanged("u3", person("u3", status, rooms=("a",), name="Ula")))
    fanout.handle(PresenceChanged("u4", person("u4", "online", rooms=("b",))))  # room b: not in_a's
    assert sent(in_a) == [], "deltas wait for the tick"
    fanout.presence_tick()
    [delta] = sent(in_a)
    assert delta["upsert"] == [{"user": "u3", "status": "online", "devices": 1, "since": 1.0, "name": "Ula", "avatar": None}]
    assert delta["remove"] == ["u5"] and delta["counts"] == {"online": 1, "away": 0, "offline": 4}
    assert len(sent(org)) == 1, "one frame per tick per view"
    fanout.handle(PresenceChanged("u8", person("u8", "offline", rooms=("b",), since=8.5)))  # changes b only
    fanout.presence_tick()
    assert sent(in_a) == []


def test_tabs_that_show_the_same_view_share_its_text(fanout: Fanout) -> None:
    fanout.handle(Snapshot(users={f"u{i}": person(f"u{i}", rooms=("a",)) for i in range(200)}, rooms={}, complete=True))
    tabs = [tab(f"t{i}", Watch(frozenset({("a", 50)}))) for i in range(100)]
    for t in tabs:
        fanout.add(t)
    texts = [t.queue.get_nowait() for t in tabs]
    assert all(text is texts[0] for text in texts), "the view was serialised more than once"
    assert len(json.loads(texts[0])["members"]) == 50


def test_a_tab_that_stops_showing_a_room_hears_no_more_of_it(fanout: Fanout) -> None:
    ROOMS["a"] = RoomSnapshot()
    ROOMS["b"] = RoomSnapshot()
    moving = tab("ana", room_watch("a", "chat"))
    fanout.add(moving)
    fanout.show(moving, room_watch("b", "chat"), previous=moving.watch)
    assert [(f["t"], f["room"]) for f in sent(moving)] == [("room", "a"), ("history", "a"), ("room", "b"), ("history", "b")]
    fanout.handle(TypingChanged("a", ("ben",)))
    fanout.handle(ChatReceived(ChatMessage(id="01M8NDRW12Y0E4Z042VMTMCG62", room="a", user="ben", text="x", name=None, at=None)))
    assert sent(moving) == []
    fanout.remove(moving)
    fanout.handle(ChatReceived(ChatMessage(id="01M8NDRW12Y0E4Z042VMTMCG63", room="b", user="ben", text="x", name=None, at=None)))
    assert sent(moving) == []


def test_a_tab_gets_one_presence_frame_a_tick_whatever_it_shows(fanout: Fanout) -> None:
    fanout.handle(Snapshot(users={"u1": person("u1", rooms=("a",))}, rooms={}, complete=True))
    both = tab("ana", Watch(frozenset({(None, 10), ("a", 10)})))
    fanout.add(both)
    sent(both)
    for i in range(20):  # churn in the org and in room a within one tick
        fanout.handle(PresenceChanged(f"u{i}", person(f"u{i}", ("online", "away")[i % 2], rooms=("a",) if i % 2 else ("b",))))
    fanout.presence_tick()
    [frame] = sent(both)
    assert frame["t"] == "people_batch" and sorted(str(d["room"]) for d in frame["deltas"]) == ["None", "a"]


# -- chat history at join and "load earlier messages" (issue 12) ----------------------------------


def chats(room: str, count: int, ids: MessageIds, *, tag: str = "m") -> list[ChatMessage]:
    return [ChatMessage(id=ids.next(), room=room, user="ben", text=f"{tag}{i}", name=None, at=None) for i in range(count)]


def texts(frame: dict) -> list[str]:
    return [m["text"] for m in frame["messages"]] if frame["t"] == "history" else [frame["message"]["text"]]


def test_a_join_gets_the_latest_stored_messages_and_what_the_session_has_not_written_yet(fanout: Fanout) -> None:
    ids = MessageIds()
    stored = chats("a", 120, ids)
    unwritten = chats("a", 2, ids, tag="unwritten")  # seen on the broker, still queued for the history writer
    STORE.rooms["a"] = stored
    ROOMS["a"] = RoomSnapshot(messages=tuple(stored[-30:] + unwritten))
    joining = tab("ana", Watch(rooms={"a": frozenset({"chat"})}, history={"a": 100}))
    fanout.add(joining)
    room, history = sent(joining)
    assert room == {"t": "room", "room": "a", "names": {}} and history["before"] is None and history["more"] is True
    assert texts(history) == [m.text for m in stored[-98:] + unwritten]  # the latest 100 of both, each once
    default = tab("cy", room_watch("a", "chat"))  # a watch that does not say: 50
    fanout.add(default)
    assert len(sent(default)[1]["messages"]) == 50


def test_a_message_arriving_while_the_history_is_read_is_neither_lost_nor_sent_twice(fanout: Fanout) -> None:
    ids = MessageIds()
    STORE.rooms["a"] = chats("a", 10, ids)
    ROOMS["a"] = RoomSnapshot()
    STORE.deferred = True
    first, second = tab("ana", room_watch("a", "chat")), tab("ben", room_watch("a", "chat"))
    fanout.add(first)
    fanout.add(second)
    assert STORE.reads == 0 and len(STORE.pending) == 1, "two tabs joining together share one read"
    during = chats("a", 2, ids, tag="during")
    STORE.rooms["a"] += during[:1]  # stored by the server that accepted it, before it published it...
    STORE.finish()  # ...so the read finds it
    fanout.handle(ChatReceived(during[0]))  # and its delivery from the broker comes after the page
    # a join whose read misses a message that arrives meanwhile (a bot's, recorded later)
    third = tab("cy", room_watch("a", "chat"))
    fanout.add(third)
    fanout.handle(ChatReceived(during[1]))
    STORE.finish()
    STORE.rooms["a"] += during[1:]
    for joined in (first, second, third):
        frames = sent(joined)
        assert [f["t"] for f in frames][:2] == ["room", "history"]
        shown = [text for frame in frames[1:] for text in texts(frame)]
        assert shown == [m.text for m in STORE.rooms["a"]], f"{joined.claims.user}: each message once, in order"


def test_a_flood_while_the_history_is_read_is_not_held_without_bound(fanout: Fanout) -> None:
    ids = MessageIds()
    ROOMS["a"] = RoomSnapshot()
    STORE.deferred = True
    joining = tab("ana", room_watch("a", "chat"))
    fanout.add(joining)
    flood = chats("a", HOLD_LIMIT + 3, ids)
    for message in flood:
        fanout.handle(ChatReceived(message))
    STORE.rooms["a"] = flood
    STORE.finish()
    frames = sent(joining)[1:]
    assert [f["t"] for f in frames[:-1]] == ["chat"] * len(flood) and frames[-1]["t"] == "history"
    assert {text for f in frames[:-1] for text in texts(f)} == {m.text for m in flood}


def test_earlier_pages_walk_back_once_each_in_order_while_new_messages_arrive(fanout: Fanout) -> None:
    ids = MessageIds()
    STORE.rooms["a"] = chats("a", 237, ids)
    ROOMS["a"] = RoomSnapshot()
    reader = tab("ana", Watch(rooms={"a": frozenset({"chat"})}, history={"a": 20}))
    fanout.add(reader)
    page = sent(reader)[1]
    seen = texts(page)
    while page["more"]:
        STORE.rooms["a"] += chats("a", 3, ids, tag="new")  # new messages keep coming
        fanout.history.earlier(reader, "a", page["messages"][0]["id"], 50)
        [page] = sent(reader)
        seen = texts(page) + seen
    assert seen == [f"m{i}" for i in range(237)]


def joined_reader(fanout: Fanout, stored: int, ids: MessageIds) -> Tab:
    """A tab showing room a's chat, with `stored` messages in the store, past its join."""
    STORE.rooms["a"] = chats("a", stored, ids)
    ROOMS["a"] = RoomSnapshot()
    reader = tab("ana", room_watch("a", "chat"))
    fanout.add(reader)
    sent(reader)
    return reader


def test_one_earlier_page_a_tab_at_a_time(fanout: Fanout) -> None:
    reader = joined_reader(fanout, 30, MessageIds())
    STORE.deferred = True
    for _ in range(5):
        fanout.history.earlier(reader, "a", STORE.rooms["a"][20].id, 5)
    STORE.finish()
    [page] = sent(reader)
    assert texts(page) == ["m15", "m16", "m17", "m18", "m19"] and page["before"] == STORE.rooms["a"][20].id
    assert STORE.reads == 2  # the join and one page


def test_a_store_that_cannot_be_read_gives_what_memory_holds_and_says_so(fanout: Fanout) -> None:
    ids = MessageIds()
    held = chats("a", 3, ids)
    ROOMS["a"] = RoomSnapshot(messages=tuple(held))
    STORE.down = True
    joining = tab("ana", room_watch("a", "chat"))
    fanout.add(joining)
    history = sent(joining)[1]
    assert texts(history) == ["m0", "m1", "m2"] and history["unavailable"] is True and history["more"] is True
    fanout.history.earlier(joining, "a", held[0].id, 50)
    [page] = sent(joining)
    assert page == {"t": "history", "room": "a", "before": held[0].id, "messages": [], "more": True, "unavailable": True}
    STORE.down = False
    fanout.history.earlier(joining, "a", held[0].id, 50)
    assert "unavailable" not in sent(joining)[0]


def test_a_tab_that_stops_showing_the_chat_while_its_history_is_read_gets_none_of_it(fanout: Fanout) -> None:
    ROOMS["a"] = RoomSnapshot()
    STORE.deferred = True
    leaving = tab("ana", room_watch("a", "chat", "typing"))
    fanout.add(leaving)
    fanout.show(leaving, room_watch("a", "typing"), previous=leaving.watch)
    fanout.handle(ChatReceived(chats("a", 1, MessageIds())[0]))
    STORE.finish()
    assert [f["t"] for f in sent(leaving)] == ["room"]


def test_after_a_resync_a_chat_tab_gets_what_was_stored_while_the_session_was_off_the_broker(fanout: Fanout) -> None:
    ids = MessageIds()
    watching = joined_reader(fanout, 3, ids)
    missed = chats("a", 2, ids, tag="missed")  # stored by another server while this one was reconnecting
    STORE.rooms["a"] += missed
    fanout.handle(Snapshot(users={}, rooms={"a": RoomSnapshot()}, complete=True))
    history = [f for f in sent(watching) if f["t"] == "history"]
    assert len(history) == 1 and texts(history[0])[-2:] == ["missed0", "missed1"]
