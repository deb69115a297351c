"""End to end: `streamlit run demo_app.py` servers, a real Mosquitto, and headless
Chromium contexts as people. A watcher session on the same broker records what any
other subscriber would see (for the no-flicker checks)."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chaos.proxy import ChaosProxy
from components.bridge import WS_PATH
from components.embedded_broker import MosquittoBroker, free_port
from components.identity import user_id_for
from components.tokens import TokenSigner

from e2e_pages import app_file, member, open_tab, seconds_until, shown_status
from helpers import wait_for
from helpers import tab_messages
from streamlit_server import TOKEN_KEY, StreamlitServer, tab_hello

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GRACE = 2.0
KEEPALIVE = 2


def presence_app(*, away_after: float = 300) -> str:
    return app_file(f"""
        - type: presence_list
          title: Who's here
          away_after: {away_after}
    """, keepalive=KEEPALIVE, grace=GRACE)


@pytest.fixture(scope="module")
def servers(start_server):
    """Start demo servers with this module's app file (presence list only)."""
    return lambda *, away_after=300: start_server(presence_app(away_after=away_after))


@pytest.fixture(scope="module")
def server(servers) -> StreamlitServer:
    return servers()


def test_each_person_sees_the_others_online_within_1s_of_joining(server, browser_context, people) -> None:
    pages: dict[str, object] = {}
    for name in (people("ana"), people("ben"), people("cy")):
        page = open_tab(browser_context(), server, name)  # returns once the tab shows itself online
        for other_name, other in pages.items():
            took = seconds_until(lambda: shown_status(other, name) == "online", timeout=5)
            assert took is not None and took <= 1.0, f"{other_name} saw {name} after {took} s"
            assert shown_status(page, other_name) == "online"
        pages[name] = page


def test_closing_a_tab_shows_offline_within_grace_plus_1s(server, browser_context, people) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    member(ana_page, ben, "online").wait_for(timeout=5000)
    ben_page.close()
    took = seconds_until(lambda: shown_status(ana_page, ben) == "offline", timeout=GRACE + 5)
    assert took is not None and took <= GRACE + 1, f"offline after {took} s"


def test_silently_blackholed_tab_shows_offline_within_15s_plus_grace(server, browser_context, people) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    proxy = ChaosProxy(server.port).start()
    try:
        open_tab(browser_context(), server, ben, base_url=f"http://127.0.0.1:{proxy.add_route('tab')}")
        member(ana_page, ben, "online").wait_for(timeout=5000)
        proxy.freeze("tab")  # the tab's packets vanish; its sockets stay open
        took = seconds_until(lambda: shown_status(ana_page, ben) == "offline", timeout=15 + GRACE + 5)
        assert took is not None and took <= 15 + GRACE, f"offline after {took} s"
    finally:
        proxy.stop()


def test_idle_user_shows_away_and_comes_back_on_input(servers, browser_context, people) -> None:
    server = servers(away_after=2)
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    took = seconds_until(lambda: shown_status(ana_page, ben) == "away", timeout=10)
    assert took is not None and took <= 2 + 1.5, f"away after {took} s"
    assert "away" in member(ana_page, ben).inner_text()
    ben_page.mouse.move(200, 300)
    ben_page.mouse.move(220, 320)
    took = seconds_until(lambda: shown_status(ana_page, ben) == "online", timeout=5)
    assert took is not None and took <= 1.0, f"back online after {took} s"


def test_reloading_a_tab_makes_no_offline_flicker(server, browser_context, people, e2e_watcher) -> None:
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    assert e2e_watcher.wait_status(ben, "online", timeout=5) is not None
    for _ in range(2):
        ben_page.reload()
        member(ben_page, ben, "online").wait_for(timeout=20_000)
    time.sleep(GRACE + 1)  # past the grace: a device left behind by the reload would show now
    assert "offline" not in e2e_watcher.statuses(ben), e2e_watcher.statuses(ben)
    assert shown_status(ana_page, ben) == "online"
    assert e2e_watcher.current(ben).devices == 1, "the reload adopted the tab's device"


def test_a_user_with_two_tabs_who_closes_one_stays_online(server, browser_context, people, e2e_watcher) -> None:
    ben = people("ben")
    context = browser_context()
    first = open_tab(context, server, ben)
    open_tab(context, server, ben)
    assert wait_for(lambda: (p := e2e_watcher.current(ben)) is not None and p.devices == 2, timeout=5)
    first.close()
    assert wait_for(lambda: e2e_watcher.current(ben).devices == 1, timeout=GRACE + 3)
    assert e2e_watcher.status(ben) == "online"
    assert "offline" not in e2e_watcher.statuses(ben)


def test_a_late_joiner_sees_the_exact_state(server, browser_context, people) -> None:
    ana, ben, cy = people("ana"), people("ben"), people("cy")
    open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), server, ben)
    ben_page.close()
    time.sleep(GRACE + 0.5)
    cy_page = open_tab(browser_context(), server, cy)
    ours = {ana, ben, cy}
    shown = {
        item.get_attribute("data-user"): item.get_attribute("data-status")
        for item in cy_page.locator("li.pk-member").all()
        if item.get_attribute("data-user") in ours
    }
    assert shown == {ana: "online", ben: "offline", cy: "online"}
    assert "(you)" in member(cy_page, cy).inner_text()


def test_a_second_server_on_the_same_broker_sees_the_same_people(servers, server, browser_context, people) -> None:
    other = servers()
    ana, ben = people("ana"), people("ben")
    ana_page = open_tab(browser_context(), server, ana)
    ben_page = open_tab(browser_context(), other, ben)
    member(ana_page, ben, "online").wait_for(timeout=3000)
    member(ben_page, ana, "online").wait_for(timeout=3000)


def test_killing_a_server_shows_its_users_offline_to_a_watcher(servers, browser_context, people, e2e_watcher) -> None:
    doomed = servers()
    dan = people("dan")
    open_tab(browser_context(), doomed, dan)
    assert e2e_watcher.wait_status(dan, "online", timeout=5) is not None
    doomed.kill()
    bound = 1.5 * KEEPALIVE + GRACE + 1
    took = e2e_watcher.wait_status(dan, "offline", timeout=bound + 5)
    assert took is not None and took <= bound, f"offline after {took} s (bound {bound} s)"


def test_a_display_name_with_markup_is_shown_as_text(server, browser_context) -> None:
    name = "<img src=x onerror=alert(1)>"
    page = open_tab(browser_context(), server, name)  # a dialog would fail the test
    entry = member(page, user_id_for(name))
    assert entry.locator(".pk-name").inner_text() == name
    assert entry.locator("img").count() == 0


def ws_close_code(server: StreamlitServer, token: str, device: str = "tab-test") -> tuple[int | None, str]:
    """(close code, None) if the server closed the socket, else (None, first message type)."""
    with connect(f"ws://127.0.0.1:{server.port}{WS_PATH}", open_timeout=5) as socket:
        socket.send(tab_hello(user="x", device=device, org="e2e", token=token))
        try:
            return None, tab_messages(socket.recv(timeout=5))[0]["t"]
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None, ""


def test_forged_expired_and_foreign_tokens_are_refused(server, people, e2e_watcher) -> None:
    good = TokenSigner(TOKEN_KEY.encode()).sign(user=people("eve"), name="Eve", org="e2e", rooms=["lobby"])
    assert ws_close_code(server, good) == (None, "welcome")  # the real thing works
    body, _, _ = good.partition(".")
    forged = TokenSigner(b"someone-elses-key-0123456789").sign(user="mallory", name="M", org="e2e")
    expired = TokenSigner(TOKEN_KEY.encode(), ttl=-1).sign(user="mallory", name="M", org="e2e")
    other_org = TokenSigner(TOKEN_KEY.encode()).sign(user="mallory", name="M", org="elsewhere")
    for token in (forged, expired, other_org, body + ".AAAA", "garbage"):
        assert ws_close_code(server, token)[0] == 4401, token
    time.sleep(0.5)
    assert e2e_watcher.current("mallory") is None


def test_an_unreachable_broker_is_said_on_the_page_and_retried(tmp_path, browser_context, people) -> None:
    port = free_port()  # nothing listens here yet
    app_file = tmp_path / "app.yaml"
    app_file.write_text(presence_app())
    server = StreamlitServer(app_file=app_file, broker_url=f"mqtt://127.0.0.1:{port}", log_dir=tmp_path, wait_for_broker=False)
    broker = None
    try:
        assert wait_for(lambda: "refused" in server.health()["broker"]["last_error"], timeout=5)
        assert server.health()["broker"]["connected"] is False
        page = browser_context().new_page()
        page.goto(f"{server.url}/?user={people('ana')}")
        page.get_by_text("unreachable, retrying").wait_for(timeout=20_000)
        page.locator(".pk-banner").filter(has_text="Reconnecting to the broker").wait_for(timeout=5000)
        broker = MosquittoBroker(port=port).start()
        page.locator(".pk-banner").wait_for(state="hidden", timeout=10_000)
        member(page, user_id_for(people("ana")), "online").wait_for(timeout=10_000)
        assert server.health()["broker"]["synced"] is True
    finally:
        server.stop()
        if broker is not None:
            broker.cleanup()
