"""Fields as tabs see them (issue 13): the `fields` part of a room goes only to the tabs
that show it, with each field's lock holder marked; a presence list says where a
member edits only where the viewer may see that room; and through a real server, a
tab's focus reaches the others while a tab cannot edit where it shows no fields."""

from __future__ import annotations

import json
import time

import pytest

from components.events import FieldsChanged, RoomSnapshot
from components.fields import FieldEntry, Focus
from components.presence import UserPresence
from components.tab_fanout import Fanout
from components.tab_protocol import TabEncoder

from e2e_pages import app_file
from helpers import RawSubscriber, RawTab, wait_for
import test_rooms_bridge
import test_tab_fanout
from test_tab_fanout import ROOMS, room_watch, sent, tab

# the fixtures of those tests, used here too
fanout, event_loop_for_queues, tabs = test_tab_fanout.fanout, test_tab_fanout.event_loop_for_queues, test_rooms_bridge.tabs

ANA = FieldEntry("ana", "d1", "Ana", Focus("a", "title", "Title", True, 100), None, False)
BEN = FieldEntry("ben", "d0", "Ben", Focus("a", "title", "Title", True, 101), None, False)
CY = FieldEntry("cy", "d2", None, None, "ana", True)


def test_fields_go_only_to_the_tabs_that_show_them_with_each_holder_marked(fanout: Fanout) -> None:
    ROOMS["a"] = RoomSnapshot(fields=(ANA, CY))
    editing = tab("ben", room_watch("a", "fields"))
    chatting = tab("dan", room_watch("a", "chat"))
    fanout.add(editing)
    fanout.add(chatting)
    [room] = sent(editing)
    assert room["fields"] == [
        {"user": "ana", "device": "d1", "name": "Ana", "field": "title", "label": "Title", "lock": True, "holds": True},
        {"user": "cy", "device": "d2", "name": None, "follows": "ana", "unfollowable": True},
    ]
    assert "fields" not in sent(chatting)[0]
    fanout.handle(FieldsChanged("a", (ANA, BEN)))  # ben's later claim queues behind ana's
    [frame] = sent(editing)
    assert [(e["user"], e["holds"]) for e in frame["editors"]] == [("ana", True), ("ben", False)]
    assert frame["t"] == "fields" and frame["room"] == "a"
    assert sent(chatting) == []


def test_a_member_says_where_they_edit_only_where_the_viewer_may_see_the_room() -> None:
    encoder = TabEncoder(location_rooms=frozenset({"lobby"}))
    in_lobby = UserPresence("ana", "online", 1.0, 1, "Ana", focus=Focus("lobby", "title", "Title", True, 1))
    in_ticket = UserPresence("ben", "online", 1.0, 1, "Ben", focus=Focus("ticket-1", "notes", None, False, 1))
    where = {"room": "lobby", "field": "title", "label": "Title"}
    assert encoder.member(in_lobby, "lobby")["location"] == where
    assert encoder.member(in_lobby, None)["location"] == where, "the org's list names an open room"
    assert "location" not in encoder.member(in_lobby, "ticket-1")
    assert encoder.member(in_ticket, "ticket-1")["location"] == {"room": "ticket-1", "field": "notes", "label": None}
    assert "location" not in encoder.member(in_ticket, None), "a room chosen at run time is nobody else's business"
    assert "location" not in TabEncoder().member(in_lobby, None)


# -- through a real server ----------------------------------------------------------------------

APP = app_file("""
  - type: presence_list
""", grace=1.0)


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP)


def in_lobby(tabs, name: str, parts: tuple[str, ...] = ("fields",)) -> RawTab:
    """A raw tab showing the lobby's presence and these parts of it."""
    tab = tabs(name, "lobby", watch={"presence": [{"room": "lobby", "limit": 50}], "rooms": {"lobby": list(parts)}})
    assert tab.wait(lambda m: m["t"] == "room")
    return tab


def editors(tab: RawTab) -> list[tuple[str, str | None, bool | None]]:
    """(user, field, holds) of the last field state `tab` was sent."""
    frames = tab.seen(lambda m: m["t"] == "fields" or (m["t"] == "room" and "fields" in m))
    last = frames[-1].get("editors", frames[-1].get("fields")) if frames else []
    return [(e["user"], e.get("field"), e.get("holds")) for e in last]


@pytest.mark.integration
def test_a_tabs_focus_reaches_the_others_and_a_queued_claim_takes_over_on_blur(server, tabs) -> None:
    ana, ben = in_lobby(tabs, "ana"), in_lobby(tabs, "ben")
    ana.send({"t": "focus", "room": "lobby", "field": "title", "label": "Title", "lock": True})
    assert wait_for(lambda: editors(ben) == [(ana.user, "title", True)], timeout=2), editors(ben)
    ben.send({"t": "focus", "room": "lobby", "field": "title", "lock": True})
    assert wait_for(lambda: editors(ana) == [(ana.user, "title", True), (ben.user, "title", False)], timeout=2), editors(ana)
    ana.send({"t": "blur"})
    assert wait_for(lambda: editors(ana) == [(ben.user, "title", True)], timeout=2), editors(ana)
    where = {"room": "lobby", "field": "title", "label": None}
    assert wait_for(lambda: [m.get("location") for m in ana.members() if m["user"] == ben.user][-1:] == [where], timeout=2)


@pytest.mark.integration
def test_a_tab_edits_only_where_it_shows_the_fields(server, tabs, e2e_broker) -> None:
    wire = RawSubscriber(e2e_broker.port, "presence/e2e/#")
    try:
        chat_only = in_lobby(tabs, "eve", ("chat",))
        chat_only.send({"t": "focus", "room": "lobby", "field": "title", "lock": True})
        ana = in_lobby(tabs, "ana")
        ana.send({"t": "focus", "room": "lobby", "field": "notes"})
        assert wait_for(lambda: editors(ana) == [(ana.user, "notes", False)], timeout=2)
        ana.send({"t": "watch", "presence": [], "rooms": {"lobby": ["chat"]}})  # another page: no fields there
        time.sleep(0.5)

        def focus_on_the_wire(user: str) -> list:
            return [json.loads(p).get("focus") for t, p in wire.messages if t.startswith(f"presence/e2e/{user}/") and p]

        assert wait_for(lambda: focus_on_the_wire(ana.user)[-1:] == [None], timeout=2), "leaving the page leaves the field"
        assert not any(focus_on_the_wire(chat_only.user)), "a tab that shows no fields edited one"
        assert server.health()["tab_refusals"].get("room", 0) >= 1
        flood = server.health()["tab_refusals"].get("flood", 0)
        fay = in_lobby(tabs, "fay")
        for i in range(40):  # each would re-announce a retained presence
            fay.send({"t": "blur"} if i % 2 else {"t": "focus", "room": "lobby", "field": f"f{i}"})
        assert wait_for(lambda: server.health()["tab_refusals"].get("flood", 0) - flood >= 15, timeout=2), "focus changes are not rate limited"
    finally:
        wire.close()
