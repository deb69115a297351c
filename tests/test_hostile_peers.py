"""Hostile peers against a real server (issue 10): a Streamlit server with the kit on a
Mosquitto that enforces the generated ACL, an attacker holding a user account
(`eve@acme`, held to her own user level) or a tab, and victims who must keep receiving.

Tabs here are raw WebSockets (what a browser's JavaScript could send, and more);
what a person sees is in test_e2e_hostile.py. A victim "keeps receiving" when a canary
(a device that comes online after the attack) reaches it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from components.message_ids import MAX_CLOCK_SKEW, MessageIds
from components.tab_admission import (
    CLOSE_BAD_ORIGIN,
    CLOSE_BAD_REQUEST,
    CLOSE_BAD_TOKEN,
    CLOSE_TOO_MANY_DEVICES,
    CLOSE_TOO_MANY_SOCKETS,
)
from components.tokens import TokenSigner

from helpers import RawTab, wait_for
from secured_broker import SERVER, SecuredBroker, plain_client, start_secured
from e2e_pages import open_tab
from streamlit_server import TOKEN_KEY, StreamlitServer, tab_hello

pytestmark = [pytest.mark.integration]

ORG = "acme"
DEVICES_PER_USER = 3
APP_FILE = f"""\
version: 1
broker: {{keepalive: 5, leave_grace: 1, username: {SERVER}, password: "${{MQTT_PASSWORD}}"}}
org: {ORG}
rooms: [lobby]
identity: {{source: query_param}}
limits: {{devices_per_user: {DEVICES_PER_USER}}}
access: {{avatar_hosts: [127.0.0.1]}}
widgets:
  - type: presence_list
  - type: chat_panel
  - type: reactions
    emojis: ["👍", "🎉"]
  - type: cursor_overlay
    region: canvas
    hide_after: 2
  - type: cursor_overlay
    region: board
    hide_after: 2
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    secured = start_secured(tmp_path_factory.mktemp("hostile"), org=ORG, users=["eve"])
    yield secured
    secured.broker.cleanup()


@pytest.fixture(scope="module")
def server(secured: SecuredBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    folder = tmp_path_factory.mktemp("hostile-server")
    (folder / "app.yaml").write_text(APP_FILE)
    server = StreamlitServer(
        app_file=folder / "app.yaml", broker_url=secured.broker.url, log_dir=folder,
        extra_env={"MQTT_PASSWORD": secured.passwords[SERVER], "PRESENCE_DEMO_BOT": "0"},
    )
    yield server
    server.stop()


@pytest.fixture
def eve(secured: SecuredBroker):
    """A plain MQTT client logged in as eve@acme: she may write only her own user's topics."""
    client = plain_client(secured, "eve@acme", protocol="5")
    yield client
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def tabs(server: StreamlitServer):
    """Open raw tabs (closed at the end): tabs(user) -> RawTab, once it is welcomed."""
    opened: list[RawTab] = []
    count = iter(range(10**6))

    def open_tab(user: str, *, device: str | None = None, wait: bool = True, **options) -> RawTab:
        tab = RawTab(server.port, user=user, device=device or f"tab-{next(count)}", org=ORG, **options)
        opened.append(tab)
        if wait:
            assert tab.wait(lambda m: m["t"] == "room"), (tab.closed, tab.messages)  # its room's state: it is in
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def publish(client, topic: str, payload: dict | bytes, *, retain: bool = False, qos: int = 1) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.publish(topic, raw, qos=qos, retain=retain).wait_for_publish(5)


def canary_reaches(victim: RawTab, tabs, user: str) -> bool:
    """Does a device that comes online now reach `victim`?"""
    canary = tabs(user)
    try:
        return wait_for(lambda: victim.online(user), timeout=5)
    finally:
        canary.close()


def health(server: StreamlitServer) -> dict:
    found = server.health()
    assert found is not None
    return found


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns() % 10**9}"


# -- 1. one message must never silence anyone --------------------------------------------------

def test_a_lone_surrogate_from_an_account_or_a_tab_silences_nobody(server, tabs, eve) -> None:
    victim = tabs(unique("victim"))
    before = health(server)
    epoch = int(time.time() * 1000)
    surrogate_presence = f'{{"status":"online","epoch":{epoch},"name":"Eve\\ud800"}}'.encode()
    publish(eve, f"presence/{ORG}/eve/e1", surrogate_presence, retain=True)
    chat_id = MessageIds().next()
    publish(eve, f"chat/{ORG}/lobby/eve", f'{{"id":"{chat_id}","text":"x\\ud800y"}}'.encode())
    attacker = tabs(unique("mallory"))
    attacker.send('{"t":"chat","room":"lobby","text":"x\\ud800y"}')
    assert canary_reaches(victim, tabs, unique("canary")), "the victim stopped receiving"
    late = tabs(unique("late"))  # a new tab gets a whole snapshot, not just its welcome
    assert late.seen(lambda m: m["t"] == "people") and late.seen(lambda m: m["t"] == "room")
    assert not victim.seen(lambda m: m["t"] == "chat" and m["message"]["id"] == chat_id)
    after = health(server)
    assert after["invalid"] >= before["invalid"] + 2, (before, after)
    assert after["tab_refusals"].get("invalid", 0) >= before["tab_refusals"].get("invalid", 0) + 1
    assert after["tab_refusals"].get("send_failed", 0) == 0
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    publish(eve, f"presence/{ORG}/eve/e1", b"", retain=True)


# -- 2. chat ids chosen by the publisher ---------------------------------------------------------

def test_a_chat_id_from_the_future_is_refused_and_receipts_stay_honest(server, tabs, eve, secured) -> None:
    reader = unique("reader")
    victim = tabs(reader)
    pinned = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
    ahead = MessageIds(wall=lambda: time.time() + MAX_CLOCK_SKEW + 60).next()
    before = health(server)["refused"]
    for message_id in (pinned, ahead):
        publish(eve, f"chat/{ORG}/lobby/eve", {"id": message_id, "text": "pinned at the bottom"})
    real = MessageIds().next()
    publish(eve, f"chat/{ORG}/lobby/eve", {"id": real, "text": "a real one"})
    assert victim.wait(lambda m: m["t"] == "chat" and m["message"]["id"] == real)
    assert not victim.seen(lambda m: m["t"] == "chat" and m["message"]["id"] in (pinned, ahead))
    assert health(server)["refused"] >= before + 2
    # the reader reads the future id anyway: the server knows no such message, so no receipt
    victim.send({"t": "read", "room": "lobby", "id": pinned})
    victim.send({"t": "read", "room": "lobby", "id": real})
    watcher = tabs(unique("watcher"))
    assert watcher.wait(lambda m: m["t"] == "receipt" and m["user"] == reader and m["up_to"] == real) or watcher.seen(
        lambda m: m["t"] == "room" and m["receipts"].get(reader) == real)
    assert not watcher.seen(lambda m: m["t"] == "receipt" and m["up_to"] == pinned)


# -- 4. caps -------------------------------------------------------------------------------------

def test_a_user_holds_at_most_the_device_cap_and_a_freed_place_is_taken(server, tabs) -> None:
    user = unique("hoarder")
    held = [tabs(user) for _ in range(DEVICES_PER_USER)]
    extra = tabs(user, wait=False)
    assert extra.wait_closed() == CLOSE_TOO_MANY_DEVICES
    assert health(server)["tab_refusals"].get("device_cap", 0) >= 1
    held[0].close()
    time.sleep(1.5)  # the leave grace (1 s): then the device is gone and its place free
    again = tabs(user)
    assert again.closed is None


def test_one_address_holds_at_most_the_socket_cap(tmp_path, secured) -> None:
    (tmp_path / "app.yaml").write_text(APP_FILE.replace("limits: {", "limits: {sockets_per_address: 4, "))
    server = StreamlitServer(app_file=tmp_path / "app.yaml", broker_url=secured.broker.url, log_dir=tmp_path,
                             extra_env={"MQTT_PASSWORD": secured.passwords[SERVER], "PRESENCE_DEMO_BOT": "0"})
    opened = []
    try:
        for i in range(4):
            opened.append(RawTab(server.port, user=f"u{i}", device="tab", org=ORG))
            assert opened[-1].wait(lambda m: m["t"] == "welcome")
        fifth = RawTab(server.port, user="u9", device="tab", org=ORG)
        opened.append(fifth)
        assert fifth.wait_closed() == CLOSE_TOO_MANY_SOCKETS
    finally:
        for tab in opened:
            tab.close()
        server.stop()


def test_all_tabs_of_one_user_share_one_rate_limit(server, tabs, secured) -> None:
    from components.bridge import USER_BURST, USER_RATE

    user = unique("flood")
    watcher = plain_client(secured, SERVER, protocol="5")
    seen: list[str] = []
    watcher.on_message = lambda c, u, m: seen.append(m.topic)
    watcher.subscribe(f"typing/{ORG}/lobby/{user}/#", qos=0)
    time.sleep(0.3)
    flooders = [tabs(user) for _ in range(DEVICES_PER_USER)]
    start = time.monotonic()
    for i in range(300):
        for tab in flooders:
            tab.send({"t": "typing", "room": "lobby", "active": i % 2 == 0})
    elapsed = time.monotonic() - start
    time.sleep(1.0)
    watcher.loop_stop()
    watcher.disconnect()
    allowed = USER_BURST + USER_RATE * (elapsed + 1.0)
    assert 1 <= len(seen) <= allowed, (len(seen), allowed, elapsed)
    assert len(seen) < 3 * 300 / 2, "three tabs multiplied the limit"


def test_a_short_lived_device_that_left_cleanly_does_not_stay_retained(secured) -> None:
    from components import PresenceSession

    user = unique("churn")
    settings = secured.settings(SERVER)
    with PresenceSession(settings, org=ORG, surplus_after=0.5, leave_grace=0) as session:
        assert session.wait_synced(5)
        for i in range(12):
            device = session.open_device(user=user, device=f"t{i}")
            assert device.wait_connected(5)
            device.close()
        assert wait_for(lambda: len(session.state.presence.devices_of(user)) == 1, timeout=5), session.state.presence.devices_of(user)
    with PresenceSession(settings, org=ORG) as late:  # what the broker still holds
        assert late.wait_synced(5)
        held = late.state.presence.devices_of(user)
        assert [d.status for d in held] == ["offline"], held  # the user's last seen, one topic


# -- 6, 7, 8: cursors and reactions ---------------------------------------------------------------

def test_phantom_cursors_are_capped_expire_and_keep_their_region(server, tabs, eve) -> None:
    watcher = tabs(unique("watcher"))
    for i in range(300):
        publish(eve, f"cursor/{ORG}/lobby/eve/d{i}", {"x": 0.5, "y": 0.5, "region": "canvas"}, qos=0)
    publish(eve, f"cursor/{ORG}/lobby/eve/last", {"x": 0.25, "y": 0.75, "region": "board"}, qos=1)
    assert watcher.wait(lambda m: m["t"] == "cursors" and ["eve", "last", 0.25, 0.75, True, "board"] in [move[:6] for move in m["moves"]])
    late = tabs(unique("late"))
    [room] = late.seen(lambda m: m["t"] == "room")
    eves = [move[:6] for move in room["cursors"] if move[0] == "eve"]
    assert 1 <= len(eves) <= DEVICES_PER_USER, eves
    assert ["eve", "last", 0.25, 0.75, True, "board"] in eves, "the region travels with the move"
    time.sleep(2.5)  # hide_after 2 s
    later = tabs(unique("later"))
    [room] = later.seen(lambda m: m["t"] == "room")
    assert [move for move in room["cursors"] if move[0] == "eve"] == []


def test_reactions_outside_the_rooms_emojis_are_refused(server, tabs, eve, secured) -> None:
    victim = tabs(unique("victim"))
    sender = tabs(unique("sender"))
    wire = plain_client(secured, SERVER, protocol="5")
    seen: list[str] = []
    wire.on_message = lambda c, u, m: seen.append(json.loads(m.payload)["emoji"])
    wire.subscribe(f"reactions/{ORG}/lobby/#", qos=0)
    time.sleep(0.3)
    try:
        sender.send({"t": "react", "room": "lobby", "emoji": "💩"})
        publish(eve, f"reactions/{ORG}/lobby/eve", {"emoji": "<b>spam</b>"}, qos=0)
        publish(eve, f"reactions/{ORG}/lobby/eve", {"emoji": "🎉"}, qos=0)  # the canary: allowed
        assert victim.wait(lambda m: m["t"] == "reaction" and m["emoji"] == "🎉")
        sender.send({"t": "react", "room": "lobby", "emoji": "👍", "count": 2})
        assert victim.wait(lambda m: m["t"] == "reaction" and m["emoji"] == "👍")
        assert {m["emoji"] for m in victim.seen(lambda m: m["t"] == "reaction")} == {"🎉", "👍"}
        assert "💩" not in seen, "a tab's emoji outside the room's list reached the broker"
    finally:
        wire.loop_stop()
        wire.disconnect()


# -- 9. origin, hello, tokens bound to devices ----------------------------------------------------

def test_a_page_on_another_origin_is_refused(server, tabs) -> None:
    evil = tabs(unique("x"), wait=False, origin="http://evil.example")
    assert evil.wait_closed() == CLOSE_BAD_ORIGIN
    own = tabs(unique("y"), origin=f"http://127.0.0.1:{server.port}")  # the page's own host
    assert own.closed is None


def test_the_token_goes_in_the_first_frame_and_opens_one_device(server, tabs) -> None:
    # the old way, a token in the URL and no hello: refused
    stale = tabs(unique("old"), wait=False, hello='{"t":"chat","room":"lobby","text":"hi"}')
    assert stale.wait_closed() == CLOSE_BAD_REQUEST
    user = unique("copied")
    token = TokenSigner(TOKEN_KEY.encode()).sign(user=user, name=user, org=ORG, rooms=["lobby"])
    first = tabs(user, hello=tab_hello(user=user, device="d1", org=ORG, token=token))
    assert first.closed is None
    other = tabs(user, wait=False, hello=tab_hello(user=user, device="d2", org=ORG, token=token))
    assert other.wait_closed() == CLOSE_BAD_TOKEN, "a copied page token opened a second device"
    first.close()
    time.sleep(1.5)
    again = tabs(user, hello=tab_hello(user=user, device="d1", org=ORG, token=token))  # a reload: the same device
    assert again.closed is None


# -- 11. the minor points --------------------------------------------------------------------------

def test_away_since_the_epoch_is_not_believed(server, tabs) -> None:
    user = unique("idle")
    tab = tabs(user)
    watcher = tabs(unique("watcher"))
    opened = time.time()
    tab.send({"t": "activity", "status": "away", "since": 0})
    assert wait_for(lambda: any(m["user"] == user and m["status"] == "away" for m in watcher.members()), timeout=5)
    [away] = [m for m in watcher.members() if m["user"] == user and m["status"] == "away"]
    assert away["since"] >= opened - 60, "away since 1970"


def test_a_property_any_string_anywhere_leaves_others_receiving_and_health_honest(server, tabs, eve) -> None:
    """Any string (lone surrogates, bidi, zero-width, huge) in any field of any topic an
    account may write, and in any tab message: every other tab keeps receiving, and the
    health route counts exactly the payloads no schema could accept."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    victim = tabs(unique("victim"))
    hostile_tab = tabs(unique("hostile"))
    strings = st.text(max_size=30) | st.sampled_from(
        ["\ud800", "a\udfffb", "Bob\u202e nimda", "Vic\u200btim", "x" * 5000, "<img src=x onerror=alert(1)>", "\u3164"])
    limits = {"name": 200, "text": 4000, "emoji": 16, "avatar": 2048}  # the documented maximum lengths

    def breaks(value: str, field: str) -> bool:
        """Our oracle, from the published limits and UTF-8 itself: can no schema accept it?"""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return len(value) > limits[field] or (field in ("text", "emoji") and not value)

    lock = threading.Lock()

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strings, st.sampled_from(["name", "avatar", "text", "emoji"]))
    def attack(value: str, field: str) -> None:
        with lock:
            before = health(server)
            epoch = int(time.time() * 1000)
            doc = {
                "name": (f"presence/{ORG}/eve/p1", {"status": "online", "epoch": epoch, "name": value}),
                "avatar": (f"presence/{ORG}/eve/p1", {"status": "online", "epoch": epoch, "avatar": value}),
                "text": (f"chat/{ORG}/lobby/eve", {"id": MessageIds().next(), "text": value}),
                "emoji": (f"reactions/{ORG}/lobby/eve", {"emoji": value}),
            }[field]
            publish(eve, doc[0], json.dumps(doc[1], ensure_ascii=True).encode(), retain=field in ("name", "avatar"))
            hostile_tab.send(json.dumps({"t": "chat", "room": "lobby", "text": value}, ensure_ascii=True))
            assert canary_reaches(victim, tabs, unique("canary"))
            after = health(server)
            assert after["invalid"] - before["invalid"] == int(breaks(value, field)), (repr(value)[:80], field, before, after)
            assert after["tab_refusals"].get("send_failed", 0) == 0 and after["tab_refusals"].get("fanout_failed", 0) == 0

    attack()
    publish(eve, f"presence/{ORG}/eve/p1", b"", retain=True)


# -- what a person sees (Chromium) -----------------------------------------------------------------

def entry_name(page, user: str) -> str:
    return page.locator(f'li.pk-member[data-user="{user}"] .pk-name').inner_text(timeout=5000)


@pytest.mark.e2e
def test_look_alike_and_bidi_names_are_told_apart(server, browser_context, eve, secured) -> None:
    from components.identity import user_id_for

    real = unique("Ana Lopez")  # a raw name: its id is "Ana-Lopez-...-hash"
    real_id = user_id_for(real)
    viewer = open_tab(browser_context(), server, unique("viewer"))
    open_tab(browser_context(), server, real)
    epoch = int(time.time() * 1000)
    publish(eve, f"presence/{ORG}/eve/e1", {"status": "online", "epoch": epoch, "name": real}, retain=True)
    assert wait_for(lambda: entry_name(viewer, "eve") == f"{real} (eve)", timeout=5), entry_name(viewer, "eve")
    assert entry_name(viewer, real_id) == f"{real} ({real_id})", "both look-alikes show their ids"
    message_id = MessageIds().next()
    publish(eve, f"chat/{ORG}/lobby/eve", {"id": message_id, "text": "trust me", "name": real})
    sender = viewer.locator(f'.pk-msg[data-id="{message_id}"] .pk-sender')
    assert wait_for(lambda: sender.count() and sender.inner_text() == f"{real} (eve)", timeout=5)
    publish(eve, f"presence/{ORG}/eve/e1", {"status": "online", "epoch": epoch + 1, "name": "Bob\u202e nimda"}, retain=True)
    assert wait_for(lambda: entry_name(viewer, "eve") == "Bob nimda", timeout=5), repr(entry_name(viewer, "eve"))
    assert viewer.locator('li.pk-member[data-user="eve"] .pk-name bdi').count() == 1, "the name is an isolated bidi run"
    publish(eve, f"presence/{ORG}/eve/e1", b"", retain=True)


class AvatarHost:
    """An HTTPS server on 127.0.0.1 that counts the avatar requests it gets, and their Referers."""

    def __init__(self, folder) -> None:
        import http.server
        import ssl

        from components.embedded_broker import free_port
        from secured_broker import make_tls_files

        make_tls_files(folder)
        self.requests: list[tuple[str, str | None]] = []
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                host.requests.append((self.path, self.headers.get("Referer")))
                self.send_response(200)
                self.send_header("Content-Type", "image/svg+xml")
                self.send_header("Cache-Control", "no-store")  # so a re-render would show as a request
                self.end_headers()
                self.wfile.write(b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "server.crt", folder / "server.key")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, name="avatar-host", daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.e2e
def test_avatars_come_only_from_allowed_hosts_once_and_without_a_referrer(server, chromium, secured, tmp_path, eve, tabs) -> None:
    host = AvatarHost(tmp_path / "tls")
    admin = plain_client(secured, SERVER, protocol="5")
    context = chromium.new_context(ignore_https_errors=True)
    try:
        epoch = int(time.time() * 1000)
        avatars = {
            "eve": f"https://127.0.0.1:{host.port}/eve.svg",      # allowed: https on 127.0.0.1
            "zed": f"http://127.0.0.1:{host.port}/zed.svg",       # refused: not https
            "yuri": f"https://localhost:{host.port}/yuri.svg",    # refused: host not listed
        }
        publish(eve, f"presence/{ORG}/eve/e1", {"status": "online", "epoch": epoch, "name": "Eve", "avatar": avatars["eve"]}, retain=True)
        for user in ("zed", "yuri"):
            publish(admin, f"presence/{ORG}/{user}/d1", {"status": "online", "epoch": epoch, "name": user, "avatar": avatars[user]}, retain=True)
        viewer = open_tab(context, server, unique("viewer"))
        image = viewer.locator('li.pk-member[data-user="eve"] img')
        image.wait_for(timeout=5000)
        assert image.get_attribute("referrerpolicy") == "no-referrer"
        for user in ("zed", "yuri"):
            assert viewer.locator(f'li.pk-member[data-user="{user}"] img').count() == 0
            assert viewer.locator(f'li.pk-member[data-user="{user}"] .pk-initials').inner_text() == user[0].upper()
        for i in range(3):  # other people come and go (without browsers): the list re-renders
            passer = tabs(unique(f"passer{i}"))
            viewer.locator(f'li.pk-member[data-user="{passer.seen(lambda m: m["t"] == "welcome")[0]["user"]}"]').wait_for(timeout=5000)
            passer.close()
        time.sleep(1.0)
        assert [path for path, _ in host.requests] == ["/eve.svg"], host.requests
        assert host.requests[0][1] is None, "the avatar request named the page"
    finally:
        context.close()
        for user in ("zed", "yuri"):
            publish(admin, f"presence/{ORG}/{user}/d1", b"", retain=True)
        publish(eve, f"presence/{ORG}/eve/e1", b"", retain=True)
        admin.loop_stop()
        admin.disconnect()
        host.close()


@pytest.mark.e2e
def test_cursor_overlays_on_two_regions_do_not_mix(server, browser_context) -> None:
    from components.identity import user_id_for

    mover, viewer_name = unique("mover"), unique("viewer")
    viewer = open_tab(browser_context(), server, viewer_name)
    page = open_tab(browser_context(), server, mover)
    page.locator(".st-key-canvas").scroll_into_view_if_needed()
    box = page.locator(".st-key-canvas").bounding_box()
    for step in range(5):
        page.mouse.move(box["x"] + 40 + step * 10, box["y"] + 40)
    cursor = viewer.locator(f'.pk-cursor[data-user="{user_id_for(mover)}"]')
    cursor.first.wait_for(timeout=5000)
    time.sleep(0.5)
    assert cursor.count() == 1, "the board overlay drew the canvas cursor too"


# -- the minor points: one clear line, no traceback, no secret ---------------------------------

@pytest.mark.e2e
def test_a_bad_mqtt_url_or_token_key_is_one_clear_line_without_secrets(secured, tmp_path, browser_context) -> None:
    (tmp_path / "app.yaml").write_text(APP_FILE)
    cases = [
        ({"MQTT_URL": "mqtt://ana:hunter2-secret@127.0.0.1:99999"}, "bad broker URL 'mqtt://***@127.0.0.1:99999'"),
        ({"PRESENCE_TOKEN_KEY": "short"}, "PRESENCE_TOKEN_KEY is too short"),
    ]
    for env, said in cases:
        server = StreamlitServer(app_file=tmp_path / "app.yaml", broker_url=env.get("MQTT_URL", secured.broker.url), log_dir=tmp_path,
                                 extra_env={"MQTT_PASSWORD": secured.passwords[SERVER], **env}, wait_for_broker=False)
        try:
            assert wait_for(lambda: "error" in (server.health() or {}), timeout=10), server.health()
            assert said in server.health()["error"]
            page = browser_context().new_page()
            page.goto(f"{server.url}/?user=ana")
            page.get_by_text(said).first.wait_for(timeout=20_000)
            log = server.log_path.read_text()
            assert "Traceback" not in log and "hunter2" not in log and "short" not in log.replace("too short", ""), log[-2000:]
            assert sum(said in line for line in log.splitlines()) == 1, log[-2000:]
        finally:
            server.stop()
