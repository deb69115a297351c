"""Rooms chosen at run time through a real server (issue 11): a tab hears only the rooms
it shows, a tab cannot read or write a room its tokens do not name, and the server
subscribes to a room while a tab shows it."""

from __future__ import annotations

import json
import time

import pytest

from components.embedded_broker import MosquittoBroker

from e2e_pages import app_file
from helpers import RawSubscriber, RawTab, wait_for
from streamlit_server import tab_hello, tab_token

pytestmark = [pytest.mark.integration]

ALL = ["typing", "chat", "receipts", "cursors", "reactions"]
APP = app_file("""
  - type: presence_list
  - type: chat_panel
  - type: reactions
  - type: cursor_overlay
""", grace=1.0).replace("identity:", "rooms_on_demand: {allow: ['ticket-[0-9]+'], linger: 1}\nidentity:")


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP)


@pytest.fixture
def tabs(server, people):
    opened: list[RawTab] = []

    def open_tab(name: str, room: str, *, token_rooms: tuple[str, ...] | None = None, watch: dict | None = None) -> RawTab:
        user = people(name)
        watch = watch or {"presence": [{"room": room, "limit": 50}], "rooms": {room: ALL}}
        hello = tab_hello(user=user, device="tab", org="e2e", token=tab_token(user=user, org="e2e", rooms=token_rooms or (room,)), watch=watch)
        tab = RawTab(server.port, user=user, device="tab", org="e2e", hello=hello)
        tab.user = user  # type: ignore[attr-defined]
        opened.append(tab)
        assert tab.wait(lambda m: m["t"] == "welcome"), (tab.closed, tab.messages)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def test_a_tab_hears_only_the_room_it_shows(server, tabs, e2e_broker: MosquittoBroker) -> None:
    ana, ben = tabs("ana", "ticket-1"), tabs("ben", "ticket-1")
    cy = tabs("cy", "ticket-2")
    assert ana.wait(lambda m: m["t"] == "room" and m["room"] == "ticket-1")
    assert wait_for(lambda: ana.online(ben.user) and ben.online(ana.user) and cy.online(cy.user), timeout=5)
    assert "ticket-1" in server.health()["rooms"] and "ticket-2" in server.health()["rooms"]
    cy.send({"t": "chat", "room": "ticket-2", "text": "in two"})
    cy.send({"t": "typing", "room": "ticket-2", "active": True})
    cy.send({"t": "react", "room": "ticket-2", "emoji": "🎉"})
    ben.send({"t": "chat", "room": "ticket-1", "text": "in one"})
    assert wait_for(lambda: "in one" in ana.chat_texts("ticket-1"), timeout=5)
    assert wait_for(lambda: "in two" in cy.chat_texts("ticket-2"), timeout=5)
    time.sleep(0.5)
    assert not any(m.get("room") == "ticket-2" or m.get("message", {}).get("room") == "ticket-2" for m in ana.messages), "ticket-2 leaked into ticket-1"
    assert cy.user not in {m["user"] for m in ana.members()}, "ticket-1's list shows ticket-2's people"
    assert {m["user"] for m in cy.members()} == {cy.user}


def test_a_tab_cannot_read_or_write_a_room_its_tokens_do_not_name(server, tabs, e2e_broker: MosquittoBroker) -> None:
    wire = RawSubscriber(e2e_broker.port, "#")
    try:
        sneaky = tabs("eve", "ticket-9", token_rooms=("ticket-1",))
        assert sneaky.wait(lambda m: m["t"] == "refused" and m["room"] == "ticket-9")
        sneaky.send({"t": "chat", "room": "ticket-9", "text": "let me in"})
        sneaky.send({"t": "watch", "presence": [{"room": "ticket-9", "limit": 50}], "rooms": {"ticket-9": ALL}})
        time.sleep(0.7)
        assert not sneaky.seen(lambda m: m["t"] in ("room", "people") and m.get("room") == "ticket-9")
        assert not [t for t in wire.topics("") if "ticket-9" in t], "the refused room was written"
        assert server.health()["tab_refusals"].get("room", 0) >= 3
    finally:
        wire.close()


def test_the_server_watches_a_room_while_a_tab_shows_it(server, tabs) -> None:
    tab = tabs("dan", "ticket-7")
    assert tab.wait(lambda m: m["t"] == "room" and m["room"] == "ticket-7")
    assert "ticket-7" in server.health()["rooms"]
    tab.send({"t": "watch", "presence": [], "rooms": {}})  # the page stops showing it
    # the device's rooms change at once; the room is left after the linger (1 s)
    assert wait_for(lambda: "ticket-7" not in server.health()["rooms"], timeout=5)
    tab.send({"t": "watch", "presence": [{"room": "ticket-7", "limit": 5}], "rooms": {"ticket-7": ["chat"]}})
    assert wait_for(lambda: len(tab.seen(lambda m: m["t"] == "room" and m["room"] == "ticket-7")) == 2, timeout=5)
    assert "ticket-7" in server.health()["rooms"]


def test_a_new_token_brings_a_room_the_tab_had_asked_for(server, tabs, people) -> None:
    tab = tabs("fay", "ticket-3", token_rooms=("ticket-4",))  # the page's first render named another room
    assert tab.wait(lambda m: m["t"] == "refused" and m["room"] == "ticket-3")
    tab.send({"t": "auth", "tokens": [tab_token(user=tab.user, org="e2e", rooms=("ticket-3",))]})  # the rerun's token
    assert tab.wait(lambda m: m["t"] == "room" and m["room"] == "ticket-3")
    assert tab.wait(lambda m: m["t"] == "people" and m["room"] == "ticket-3")
    forged = json.dumps({"t": "auth", "tokens": [tab_token(user=people("mallory"), org="e2e", rooms=("ticket-5",))]})
    tab.send(forged)  # another user's token changes nothing
    time.sleep(0.5)
    assert not tab.seen(lambda m: m.get("room") == "ticket-5")


def test_a_closed_tab_is_last_seen_when_it_went_not_a_grace_later(server, tabs) -> None:
    watcher = tabs("gil", "ticket-6")
    leaver = tabs("hal", "ticket-6")
    assert wait_for(lambda: watcher.online(leaver.user), timeout=5)
    went = time.time()
    leaver.close()
    assert wait_for(lambda: any(m["user"] == leaver.user and m["status"] == "offline" for m in watcher.members()), timeout=5)
    [gone] = [m for m in watcher.members() if m["user"] == leaver.user and m["status"] == "offline"]
    assert went - 0.5 <= gone["since"] <= went + 0.5, (gone["since"] - went, "the leave grace is 1 s")
