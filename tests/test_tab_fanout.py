"""What each tab is sent (issue 11), pure: the session's events go in, the frames each
tab would be sent come out. A tab gets what its widgets show and nothing else; presence
is coalesced per tick; a view's text is built once for all its tabs."""

from __future__ import annotations

import asyncio
import json

import pytest

from components.events import ChatMessage, ChatReceived, Cursor, CursorMoved, PresenceChanged, ReactionReceived, RoomSnapshot, RoomSynced, Snapshot, TypingChanged
from components.presence import UserPresence
from components.tab_fanout import Fanout, Tab
from components.tab_protocol import TabEncoder
from components.tab_views import Watch
from components.tokens import Claims

ROOMS: dict[str, RoomSnapshot] = {}


def person(user: str, status: str = "online", *, rooms: tuple[str, ...] = (), name: str | None = None, since: float = 1.0) -> UserPresence:
    return UserPresence(user=user, status=status, since=since, devices=int(status != "offline"), name=name, rooms=frozenset(rooms))  # type: ignore[arg-type]


@pytest.fixture
def fanout() -> Fanout:
    ROOMS.clear()
    return Fanout(encoder=TabEncoder(), room_state=ROOMS.get, count=lambda why: None)


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
    assert [f["t"] for f in sent(in_a)] == ["room"] and [f["t"] for f in sent(in_b)] == ["room"]
    message = ChatMessage(id="01M8NDRW12Y0E4Z042VMTMCG62", room="b", user="cy", text="hi", name="Cy", at=1.0)
    for event in (TypingChanged("b", ("cy",)), ChatReceived(message), ReactionReceived("b", "cy", "🎉", 2), CursorMoved("b", "cy", "d", Cursor(0.5, 0.5, None, True))):
        fanout.handle(event)
    fanout.cursor_tick()
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
    assert [f["room"] for f in sent(moving)] == ["a", "b"]
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
