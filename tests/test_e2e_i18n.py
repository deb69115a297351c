"""End to end for the widgets' language (issue 17): an app file with `locale: de` and one
`labels` override, one Streamlit server and one Chromium page. Ben is a tab without a
browser (RawTab) and Dora a retained offline presence published straight to the broker,
so the page shows every kind of text with a single browser tab: the typing line, "Seen
by" (overridden), the read receipts line, "last seen" as a German relative time, the
composer's placeholder and the broker banner."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from e2e_pages import app_file, member, open_tab, send_chat
from helpers import RawTab, wait_for
from streamlit_server import tab_hello, tab_token

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

APP_FILE = app_file("""
  - type: presence_list
  - type: chat_panel
    room: lobby
  - type: typing_indicator
    room: lobby
  - type: read_receipts
    room: lobby
""").replace("identity:", "locale: de\nlabels:\n  seen_by: 'Gelesen von {names}'\nidentity:")


def publish_retained(port: int, topic: str, payload: dict | None) -> None:
    """Publish `payload` retained (None: clear the topic)."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, json.dumps(payload) if payload else b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_locale_de_words_every_widget_in_german_and_a_label_overrides_one_text(start_server, e2e_broker, browser_context, people) -> None:
    ana, ben, dora = people("ana"), people("ben"), people("dora")
    # Dora left five minutes ago: the presence list says when, in German
    publish_retained(e2e_broker.port, f"presence/e2e/{dora}/tab-1", {"status": "offline", "epoch": 1, "since": time.time() - 300, "name": "Dora"})
    server = start_server(APP_FILE)
    page = open_tab(browser_context(), server, ana)
    watch = {"presence": [{"room": "lobby", "limit": 50}], "rooms": {"lobby": ["typing", "chat", "receipts"]}}
    tab = RawTab(server.port, user=ben, device="tab", org="e2e",
                 hello=tab_hello(user=ben, device="tab", org="e2e", token=tab_token(user=ben, org="e2e", name="Ben"), watch=watch))
    try:
        assert page.locator("textarea.pk-input").get_attribute("placeholder") == "Nachricht an #lobby"
        assert {page.locator(".pk-widget").nth(i).get_attribute("lang") for i in range(4)} == {"de"}  # read as German
        assert page.locator("button.pk-send").inner_text() == "Senden"
        member(page, dora, "offline").locator(".pk-detail").filter(has_text="offline · zuletzt gesehen vor 5 Minuten").wait_for(timeout=5000)
        assert member(page, ana).locator(".pk-you").inner_text().strip() == "(du)"
        member(page, ben, "online").wait_for(timeout=5000)
        assert member(page, ben).locator(".pk-detail").inner_text() == "online"

        tab.send({"t": "typing", "room": "lobby", "active": True, "ttl": 10})
        page.locator(".pk-typing-indicator .pk-typing").filter(has_text="Ben\u2069 schreibt…").wait_for(timeout=5000)
        assert "Ben\u2069 schreibt…" in page.locator(".pk-chat .pk-typing").inner_text()
        tab.send({"t": "typing", "room": "lobby", "active": False})

        send_chat(page, "Hallo Ben")
        assert tab.wait(lambda m: m["t"] == "chat" and m["message"]["text"] == "Hallo Ben")
        message_id = tab.seen(lambda m: m["t"] == "chat")[-1]["message"]["id"]
        page.locator(".pk-read-receipts .pk-receipts").filter(has_text="Letzte Nachricht: noch nicht gesehen").wait_for(timeout=5000)
        tab.send({"t": "read", "room": "lobby", "id": message_id})
        # the label of the app's own under the message; the German default everywhere else
        page.locator(".pk-chat .pk-seen").filter(has_text="Gelesen von \u2068Ben\u2069").wait_for(timeout=5000)
        page.locator(".pk-read-receipts .pk-receipts").filter(has_text="Letzte Nachricht gesehen von \u2068Ben\u2069").wait_for(timeout=5000)

        # the broker banner: a frame as the server sends it when the broker connection drops
        page.evaluate("window.__presenceKit.socket.onmessage({data: JSON.stringify({t: 'broker', connected: false, error: 'gone'})})")
        assert page.locator(".pk-presence .pk-banner").inner_text() == "Verbindung zum Broker wird wiederhergestellt…"
        page.evaluate("window.__presenceKit.socket.onmessage({data: JSON.stringify({t: 'broker', connected: true, error: ''})})")
        assert wait_for(lambda: not page.locator(".pk-presence .pk-banner").is_visible(), timeout=2)
    finally:
        tab.close()
        publish_retained(e2e_broker.port, f"presence/e2e/{dora}/tab-1", None)
