"""End to end for the room widgets: typing indicator, live cursors, chat, read
receipts and reaction bursts, in real headless Chromium tabs on `streamlit run`
servers and a real Mosquitto (guarantees 7, 9 and 10)."""

from __future__ import annotations

import json
import time

import pytest

from chaos.proxy import ChaosProxy
from components.identity import user_id_for

from e2e_pages import app_file, member, message, open_tab, seconds_until, send_chat
from helpers import RawSubscriber, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GRACE = 2.0
TYPING_TTL = 3.0
APP_FILE = app_file(f"""
  - type: presence_list
  - type: chat_panel
    room: lobby
    height: 160
    typing_ttl: {TYPING_TTL}
  - type: reactions
    room: lobby
    burst_window_ms: 250
    max_per_second: 20
  - type: cursor_overlay
    room: lobby
    region: canvas
""", grace=GRACE)


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(APP_FILE)


def typists(page) -> str:
    return page.locator(".pk-chat .pk-typing").get_attribute("data-typists") or ""


def test_the_demo_bot_is_online_types_and_answers(start_server, browser_context, people) -> None:
    server = start_server(APP_FILE, bot=True)
    try:
        page = open_tab(browser_context(), server, people("ana"))
        member(page, "helper-bot", "online").wait_for(timeout=3000)
        send_chat(page, "hello bot")
        assert wait_for(lambda: "helper-bot" in typists(page), timeout=3), "the bot types before answering"
        answer = page.locator('.pk-msg[data-user="helper-bot"]').filter(has_text="hello bot")
        answer.wait_for(timeout=5000)
        assert "Helper bot" in message(page, "hello bot").first.locator(".pk-seen").inner_text()
    finally:
        server.stop()  # the bot would answer the other tests' messages


def test_typing_shows_within_1s_and_clears_when_the_typist_stops(server, browser_context, people) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    ana_page.locator("textarea.pk-input").click()
    ana_page.keyboard.type("hel")
    took = seconds_until(lambda: ana in typists(ben_page), timeout=5)
    assert took is not None and took <= 1.0, f"typing shown after {took} s"
    assert typists(ben_page).split() == [ana]
    assert ana not in typists(ana_page), "nobody sees their own typing"
    assert "is typing" in ben_page.locator(".pk-chat .pk-typing").inner_text()
    ana_page.locator("h1").click()  # blur: the stop goes out at once
    took = seconds_until(lambda: typists(ben_page) == "", timeout=TYPING_TTL + 2)
    assert took is not None and took <= 1.0, f"typing cleared after {took} s"


def test_typing_clears_within_its_ttl_when_the_stop_is_lost_or_the_tab_killed(server, browser_context, people) -> None:
    ana, ben, cy = people("ana"), people("ben"), people("cy")
    ben_page = open_tab(browser_context(), server, ben)
    proxy = ChaosProxy(server.port).start()
    try:
        ana_page = open_tab(browser_context(), server, ana, base_url=f"http://127.0.0.1:{proxy.add_route('tab')}")
        ana_page.locator("textarea.pk-input").click()
        ana_page.keyboard.type("typing on")
        assert wait_for(lambda: ana in typists(ben_page), timeout=3)
        proxy.freeze("tab")  # the stop (and everything else) from ana's tab is lost
        ana_page.locator("h1").click()
        took = seconds_until(lambda: ana not in typists(ben_page), timeout=TYPING_TTL + 5)
        assert took is not None and took <= TYPING_TTL + 0.5, f"cleared after {took} s"
    finally:
        proxy.stop()
    cy_context = browser_context()
    cy_page = open_tab(cy_context, server, cy)
    cy_page.locator("textarea.pk-input").click()
    cy_page.keyboard.type("about to vanish")
    assert wait_for(lambda: cy in typists(ben_page), timeout=3)
    cy_context.close()  # the tab is gone without a stop
    took = seconds_until(lambda: cy not in typists(ben_page), timeout=TYPING_TTL + 5)
    assert took is not None and took <= TYPING_TTL + 0.5, f"cleared after {took} s"


def test_a_cursor_appears_at_the_same_relative_position_in_another_window_size(server, browser_context, people, chromium) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    small = chromium.new_context(viewport={"width": 800, "height": 700})
    try:
        ben_page = open_tab(small, server, ben)
        for page in (ana_page, ben_page):
            page.locator(".st-key-canvas").scroll_into_view_if_needed()
        box = ana_page.locator(".st-key-canvas").bounding_box()
        ana_page.wait_for_function("() => [...window.__presenceKit.views.values()].some((v) => v.counts.online >= 2)", timeout=5000)
        ana_page.evaluate("""() => { // when ana's pointer moved, and when her tab sent a cursor
            const kit = window.__presenceKit, send = kit.send, log = window.__cursorLog = {moves: [], sends: []};
            window.addEventListener("pointermove", () => log.moves.push(performance.now()), {capture: true});
            kit.send = (m) => { if (m.t === "cursor") log.sends.push([performance.now(), m.x]); return send(m); }; }""")
        for step in range(10):  # a short glide to (30 %, 60 %) of the canvas
            ana_page.mouse.move(box["x"] + box["width"] * (0.2 + step / 100), box["y"] + box["height"] * 0.6)
            time.sleep(0.02)
        cursor = ben_page.locator(f'.pk-cursor[data-user="{user_id_for(ana)}"]')
        cursor.wait_for(timeout=3000)
        # the latest position always goes out (coalescing drops only the ones in between)
        assert wait_for(lambda: abs(float(cursor.get_attribute("data-x")) - 0.29) < 0.005, timeout=2)
        assert float(cursor.get_attribute("data-y")) == pytest.approx(0.6, abs=0.005)
        log = ana_page.evaluate("() => window.__cursorLog")
        sends = [at for at, _ in log["sends"]]
        assert sends[0] - log["moves"][0] < 10, "the first move waited for the throttle (leading edge)"
        assert min(b - a for a, b in zip(sends, sends[1:])) >= 49, f"sends closer than 50 ms: {sends}"
        assert 2 <= len(sends) < len(log["moves"]) and log["sends"][-1][1] == pytest.approx(0.29, abs=0.005), "the last position goes out at the trailing edge"
        ben_box = ben_page.locator(".st-key-canvas").bounding_box()

        def drawn_at_target() -> bool:  # interpolation settles on the same relative point
            tip = cursor.bounding_box()
            return (abs(tip["x"] - (ben_box["x"] + 0.29 * ben_box["width"])) < 3
                    and abs(tip["y"] - (ben_box["y"] + 0.6 * ben_box["height"])) < 3)

        assert wait_for(drawn_at_target, timeout=2)
        assert ben_page.locator(f'.pk-cursor[data-user="{user_id_for(ben)}"]').count() == 0, "no cursor of our own"
    finally:
        small.close()


def test_chat_messages_flow_both_ways_as_text(server, browser_context, people) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    # texts of this test's own: the room's history (kept in the store) holds the module's other tests' messages
    send_chat(ana_page, f"hello <b>{ben}</b>")
    message(ben_page, f"hello <b>{ben}</b>").wait_for(timeout=2000)
    assert ben_page.locator(".pk-msg b").count() == 0, "message text is rendered as text"
    send_chat(ben_page, f"hi {ana}")
    message(ana_page, f"hi {ana}").wait_for(timeout=2000)
    assert message(ana_page, f"hi {ana}").get_attribute("data-user") == ben


def test_receipts_follow_what_was_on_screen_and_never_move_backwards(server, browser_context, people, e2e_watcher) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    for i in range(8):
        send_chat(ana_page, f"filler {i} {ana}")
    message(ben_page, f"filler 7 {ana}").wait_for(timeout=3000)
    first_id = message(ben_page, f"filler 0 {ana}").get_attribute("data-id")
    assert wait_for(lambda: ben in message(ana_page, f"filler 7 {ana}").inner_text(), timeout=3)

    ben_page.locator(".pk-chat .pk-messages").evaluate("list => list.scrollTop = 0")  # ben reads back
    send_chat(ana_page, f"unseen {ana}")
    message(ben_page, f"unseen {ana}").wait_for(state="attached", timeout=3000)
    time.sleep(1.0)
    assert message(ana_page, f"unseen {ana}").locator(".pk-seen").count() == 0, "not on ben's screen yet"

    ben_page.locator(".pk-chat .pk-messages").evaluate("list => list.scrollTop = list.scrollHeight")
    seen = message(ana_page, f"unseen {ana}").locator(".pk-seen")
    seen.wait_for(timeout=3000)
    assert ben in seen.inner_text()
    unseen_id = message(ana_page, f"unseen {ana}").get_attribute("data-id")
    assert wait_for(lambda: e2e_watcher.session.state.rooms["lobby"].snapshot().receipts.get(ben) == unseen_id, timeout=3)

    ben_page.evaluate(f"window.__presenceKit.send({{t: 'read', room: 'lobby', id: '{first_id}'}})")  # try to go back
    time.sleep(1.0)
    assert e2e_watcher.session.state.rooms["lobby"].snapshot().receipts.get(ben) == unseen_id
    assert ben in message(ana_page, f"unseen {ana}").locator(".pk-seen").inner_text()
    assert e2e_watcher.session.state.rooms["lobby"].snapshot().receipts.get(ana) is None or \
        e2e_watcher.session.state.rooms["lobby"].snapshot().receipts.get(ana) < first_id, "never for one's own messages"


def test_a_reaction_animates_in_other_tabs_and_a_flood_arrives_as_a_few_bursts(server, browser_context, people, e2e_broker) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    # (the trailing `true`: Playwright would call a function-valued result, here the unsubscribe)
    ben_page.evaluate("window.__bursts = []; window.__presenceKit.subscribe(m => m.t === 'reaction' && window.__bursts.push(m.count)); true")
    ana_page.locator("button.pk-react").first.click()
    took = seconds_until(lambda: ben_page.locator(".pk-burst").count() > 0, timeout=3)
    assert took is not None and took <= 1.0, f"burst shown after {took} s"
    ben_page.evaluate("window.__bursts = []")

    wire = RawSubscriber(e2e_broker.port, f"reactions/e2e/lobby/{user_id_for(ana)}")
    try:
        flood_ms = ana_page.evaluate("""() => new Promise((done) => {
            const started = performance.now();
            const host = [...document.querySelectorAll('*')].find((n) => n.shadowRoot && n.shadowRoot.querySelector('button.pk-react'));
            const target = host.shadowRoot.querySelector('button.pk-react');
            let clicks = 0;
            const timer = setInterval(() => {
                for (let i = 0; i < 4; i++) target.click();
                clicks += 4;
                if (clicks >= 200) { clearInterval(timer); done(performance.now() - started); }
            }, 20);
        })""")
        assert wait_for(lambda: len(wire.messages) >= 1, timeout=3)
        time.sleep(1.0)
        bursts = ben_page.evaluate("window.__bursts")
        counts = [json.loads(payload)["count"] for _, payload in wire.messages]
    finally:
        wire.close()
    assert 2 <= len(counts) <= 8, f"{len(counts)} messages for 200 clicks: {counts}"
    assert bursts == counts, "every tab shows exactly the bursts that went over the wire"
    assert all(count > 1 for count in counts[:-1]), counts
    # 20 a second with a burst of 20 (less the click above), over the flood and the last
    # burst's coalescing window: a loaded machine stretches the flood, never the cap
    cap = 20 + 20 * (flood_ms / 1000 + 0.5)
    assert sum(counts) <= cap, f"the server caps a flooding tab at 20 clicks a second: {counts} in {flood_ms:.0f} ms"
