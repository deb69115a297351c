"""Hostile people in the browser (issue 7): markup in names and messages stays text in
every widget, a tab can only ever act as its own user and device, and a tab that floods
the server with typing or cursor messages is capped."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from websockets.sync.client import connect

from components.bridge import WS_PATH
from components.tab_fanout import INBOUND_BURST, INBOUND_RATE
from components.identity import user_id_for

from e2e_pages import app_file, member, open_tab
from helpers import RawSubscriber, tab_messages, wait_for
from streamlit_server import tab_hello

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

APP_FILE = app_file("""
  - type: presence_list
  - type: chat_panel
    room: lobby
  - type: reactions
    room: lobby
  - type: cursor_overlay
    room: lobby
    region: canvas
""")
EVIL_NAME = '<img src=x onerror="window.__pwned=1">'
EVIL_TEXT = "<script>window.__pwned=2</script><img src=x onerror=\"window.__pwned=3\"><b>bold?</b>"


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP_FILE)


def test_markup_in_names_and_messages_is_shown_as_text_everywhere(server, browser_context, people) -> None:
    ana = people("ana")
    ana_page = open_tab(browser_context(), server, ana)
    evil_page = open_tab(browser_context(), server, EVIL_NAME)
    evil = user_id_for(EVIL_NAME)
    member(ana_page, evil, "online").wait_for(timeout=3000)

    evil_page.locator("textarea.pk-input").fill(EVIL_TEXT)
    evil_page.locator("textarea.pk-input").press("Enter")
    evil_page.locator("textarea.pk-input").type("still typing")
    assert wait_for(lambda: EVIL_NAME in ana_page.locator(".pk-chat .pk-typing").inner_text(), timeout=3)
    for page in (ana_page, evil_page):
        page.locator(".st-key-canvas").scroll_into_view_if_needed()
    box = evil_page.locator(".st-key-canvas").bounding_box()
    evil_page.mouse.move(box["x"] + 50, box["y"] + 50)
    evil_page.mouse.move(box["x"] + 60, box["y"] + 60)
    cursor = ana_page.locator(f'.pk-cursor[data-user="{evil}"]')
    cursor.wait_for(timeout=3000)  # before the pointer leaves the region for a button
    assert cursor.inner_text() == EVIL_NAME
    evil_page.locator("button.pk-react").first.click()

    shown = ana_page.locator(f'.pk-msg[data-user="{evil}"]')
    shown.wait_for(timeout=3000)
    assert shown.locator(".pk-text").inner_text() == EVIL_TEXT
    assert shown.locator(".pk-sender").inner_text() == EVIL_NAME
    assert member(ana_page, evil).locator(".pk-name").inner_text() == EVIL_NAME
    for page in (ana_page, evil_page):
        assert page.locator("img").count() == 0, "no element was created from the markup"
        assert page.locator(".pk-text b, .pk-text script").count() == 0
        assert page.evaluate("window.__pwned === undefined")


@contextlib.contextmanager
def ws_session(server, user: str, device: str):
    """A raw WebSocket tab, returned once its device is online (seen in its own stream)."""
    with connect(f"ws://127.0.0.1:{server.port}{WS_PATH}", open_timeout=5) as socket:
        socket.send(tab_hello(user=user, device=device, org="e2e"))
        first, *rest = tab_messages(socket.recv(timeout=5))
        assert first["t"] == "welcome"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            members = [m for message in rest for m in message.get("members", []) + message.get("upsert", [])]
            if any(m["user"] == user and m["status"] == "online" for m in members):
                break
            rest = tab_messages(socket.recv(timeout=5))
        yield socket


def test_a_tab_acts_only_as_its_own_user_and_device(server, e2e_broker, people) -> None:
    eve, mallory = people("eve"), people("mallory")
    wire = RawSubscriber(e2e_broker.port, "#")
    try:
        with ws_session(server, eve, "tab-1") as socket:
            for forged in (
                {"t": "chat", "room": "lobby", "text": "as mallory", "user": mallory},
                {"t": "chat", "room": "lobby", "text": "as mallory's tab", "device": "mallory-tab"},
                {"t": "typing", "room": "lobby", "active": True, "user": mallory},
                {"t": "activity", "status": "away", "user": mallory},
                {"t": "chat", "room": "../other", "text": "elsewhere"},
                {"t": "presence", "status": "offline"},
            ):
                socket.send(json.dumps(forged))
            socket.send(json.dumps({"t": "chat", "room": "lobby", "text": "as myself"}))
            assert wait_for(lambda: wire.topics("chat/"), timeout=3)
            time.sleep(0.5)
        chats = [(topic, json.loads(payload)["text"]) for topic, payload in wire.messages if topic.startswith("chat/")]
        assert chats == [(f"chat/e2e/lobby/{eve}", "as myself")]
        assert not any(mallory in topic for topic, _ in wire.messages)
        assert f"presence/e2e/{eve}/tab-1" in wire.topics("presence/"), "the tab is eve's own device"
    finally:
        wire.close()


def test_a_flooding_tab_is_capped_by_the_server(server, e2e_broker, browser_context, people) -> None:
    flooder, watcher = people("flood"), people("watch")
    open_tab(browser_context(), server, watcher)  # someone else is in the room, so cursors go out
    typing = RawSubscriber(e2e_broker.port, f"typing/e2e/lobby/{flooder}/#")
    cursors = RawSubscriber(e2e_broker.port, f"cursor/e2e/lobby/{flooder}/#")
    try:
        with ws_session(server, flooder, "tab-1") as socket:
            start = time.monotonic()
            for i in range(1000):
                socket.send(json.dumps({"t": "typing", "room": "lobby", "active": True}))
                socket.send(json.dumps({"t": "cursor", "room": "lobby", "x": (i % 100) / 100, "y": 0.5}))
            elapsed = time.monotonic() - start
            time.sleep(1.0)
        allowed = INBOUND_BURST + INBOUND_RATE * (elapsed + 1.0)
        assert 1 <= len(typing.messages) + len(cursors.messages) <= allowed, (len(typing.messages), len(cursors.messages), elapsed)
        assert len(cursors.messages) <= 20 * (elapsed + 1.0) + 2, "cursors never exceed 20 Hz"
    finally:
        typing.close()
        cursors.close()
