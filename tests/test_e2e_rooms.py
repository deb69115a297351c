"""Rooms chosen at run time, as people see them in Chromium (issue 11): `?room=` puts
every widget of the demo page in that room, and a tab joining a room of an org with
10,000 retained users receives a room's worth of bytes, not the org's."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion


from e2e_pages import member, open_tab
from helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ORG = "big"
USERS, ROOMS = 10_000, 100
JOIN_BYTES_GOAL = 64 * 1024
APP = f"""\
version: 1
broker: {{keepalive: 5, leave_grace: 1}}
org: {ORG}
rooms: [lobby]
rooms_on_demand: {{allow: ["r[0-9]+", "ticket-[0-9]+"], query_param: room}}
identity: {{source: query_param}}
widgets:
  - type: presence_list
    counter_above: 30
  - type: chat_panel
  - type: typing_indicator
  - type: cursor_overlay
    region: canvas
  - type: reactions
  - type: read_receipts
"""


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP)


def test_three_people_in_two_rooms_see_exactly_their_own(server, browser_context, people) -> None:
    ana, ben, cy = people("ana"), people("ben"), people("cy")
    ana_page = open_tab(browser_context(), server, ana, room="ticket-1")
    ben_page = open_tab(browser_context(), server, ben, room="ticket-1")
    cy_page = open_tab(browser_context(), server, cy, room="ticket-2")
    member(ana_page, ben, "online").wait_for(timeout=5000)
    member(ben_page, ana, "online").wait_for(timeout=5000)
    ben_page.locator("textarea.pk-input").fill("about ticket 1")
    ben_page.locator("textarea.pk-input").press("Enter")
    ana_page.locator(".pk-msg", has_text="about ticket 1").wait_for(timeout=5000)
    time.sleep(1.0)
    assert member(ana_page, cy).count() == 0 and member(ben_page, cy).count() == 0
    assert [li.get_attribute("data-user") for li in cy_page.locator("li.pk-member").all()] == [cy]
    assert cy_page.locator(".pk-msg", has_text="about ticket 1").count() == 0
    assert "ticket-2" in cy_page.locator(".pk-chat-title").inner_text()


def test_every_widget_works_in_a_room_chosen_at_run_time(server, browser_context, people) -> None:
    """Typing, receipts, cursors and reactions, as the fixed-room tests check them, in ?room=."""
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana, room="ticket-5")
    ben_page = open_tab(browser_context(), server, ben, room="ticket-5")
    ana_page.locator("textarea.pk-input").click()
    ana_page.keyboard.type("hel")
    typing = ben_page.locator(".pk-chat .pk-typing")
    assert wait_for(lambda: ana in (typing.get_attribute("data-typists") or ""), timeout=3)
    ana_page.keyboard.press("Enter")
    ben_page.locator(".pk-msg", has_text="hel").wait_for(timeout=5000)
    ana_page.locator(".pk-msg .pk-seen", has_text=ben).wait_for(timeout=5000)  # ben saw it: a receipt in ticket-5
    for page in (ana_page, ben_page):
        page.locator(".st-key-canvas").scroll_into_view_if_needed()
    box = ana_page.locator(".st-key-canvas").bounding_box()
    for step in range(4):
        ana_page.mouse.move(box["x"] + 30 + step * 10, box["y"] + 30)
    ben_page.locator(f'.pk-cursor[data-user="{ana}"]').wait_for(timeout=5000)
    ben_page.evaluate("window.__bursts = []; window.__presenceKit.subscribe(m => window.__bursts.push(m.emoji), ['reaction']); true")
    ana_page.locator("button.pk-react").first.click()
    assert wait_for(lambda: ben_page.evaluate("window.__bursts.length") > 0, timeout=5)


def test_a_page_on_a_room_it_may_not_show_says_so(server, browser_context, people) -> None:
    page = browser_context().new_page()
    page.goto(f"{server.url}/?user={people('eve')}&room=secret")
    page.get_by_text("room 'secret' is not open to").first.wait_for(timeout=20_000)
    assert page.locator("li.pk-member").count() == 0


def publish_org(port: int) -> None:
    """10,000 retained users of the org in 100 rooms: a third online, a third away, a
    third offline (last seen at different times)."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    now = time.time()
    try:
        for i in range(USERS):
            status = ("online", "away", "offline")[i % 3]
            doc = {"status": status, "epoch": int(now * 1000), "since": round(now - i, 3), "name": f"Person {i}", "rooms": [f"r{i % ROOMS}"]}
            info = client.publish(f"presence/{ORG}/u{i:05}/d", json.dumps(doc), qos=1, retain=True)
        info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def test_joining_a_room_of_a_10000_user_org_costs_a_room_not_the_org(start_server, chromium, e2e_broker, people) -> None:
    publish_org(e2e_broker.port)
    server = start_server(APP)  # it reads the org as a retained snapshot (a burst of 10,000 live
    # QoS 1 messages would overflow a default Mosquitto's queue of 1,000 for the server)
    assert wait_for(lambda: server.health()["users"] >= USERS, timeout=30), server.health()["users"]
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    received: list[int] = []

    def on_socket(socket) -> None:
        if socket.url.endswith("/presence-kit/ws"):
            socket.on("framereceived", lambda payload: received.append(len(payload.encode() if isinstance(payload, str) else payload)))

    try:
        page = context.new_page()
        page.on("websocket", on_socket)
        viewer = people("viewer")
        page.goto(f"{server.url}/?user={viewer}&room=r7")
        page.locator(".pk-counter").first.wait_for(timeout=20_000)
        page.wait_for_timeout(2000)  # everything the join brings (Playwright delivers frame events while it waits)
        joined = sum(received)
        counts = page.locator(".pk-counter").first
        assert counts.get_attribute("data-online") == str(1 + len([i for i in range(7, USERS, ROOMS) if i % 3 == 0]))  # the viewer too
        assert joined <= JOIN_BYTES_GOAL, f"{joined} bytes at join (goal {JOIN_BYTES_GOAL})"
        page.locator("button.pk-more").first.click()  # "Show all": a page of the room's members
        page.locator("li.pk-member").nth(10).wait_for(timeout=5000)
        shown = {li.get_attribute("data-user") for li in page.locator("li.pk-member").all()}
        assert shown <= {f"u{i:05}" for i in range(7, USERS, ROOMS)} | {viewer}, "people of other rooms are listed"
    finally:
        context.close()
