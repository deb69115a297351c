"""Private read receipts (guarantee 10): a server whose app file makes a room's
receipts private never publishes one, whatever a tab sends; a raw MQTT subscriber to
`#` on the broker (this module has a broker of its own) sees none."""

from __future__ import annotations

import time

import pytest

from e2e_pages import app_file, open_tab
from helpers import RawSubscriber, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

APP_FILE = app_file("""
  - type: chat_panel
    room: lobby
    private_receipts: true
  - type: read_receipts
    room: lobby
    private: true
""")


def test_private_mode_never_publishes_receipts(start_server, e2e_broker, browser_context, people) -> None:
    everything = RawSubscriber(e2e_broker.port, "#")
    try:
        server = start_server(APP_FILE, bot=True)  # the demo bot must respect it too
        ana, ben = people("ana"), people("ben")
        ana_page = open_tab(browser_context(), server, ana)
        ben_page = open_tab(browser_context(), server, ben)
        ana_page.locator("textarea.pk-input").fill("can you see this?")
        ana_page.locator("textarea.pk-input").press("Enter")
        ben_page.locator(".pk-msg").filter(has_text="can you see this?").first.wait_for(timeout=3000)
        message_id = ben_page.locator(".pk-msg").filter(has_text="can you see this?").first.get_attribute("data-id")
        ben_page.evaluate(f"window.__presenceKit.send({{t: 'read', room: 'lobby', id: '{message_id}'}}); true")  # even if asked
        assert wait_for(lambda: everything.topics("chat/"), timeout=3), "the chat itself went over the broker"
        assert wait_for(lambda: len(everything.topics("chat/")) >= 2, timeout=5), "the bot answered"
        time.sleep(1.5)
        assert everything.topics("receipts/") == []
        assert ana_page.locator(".pk-seen").count() == 0
    finally:
        everything.close()
