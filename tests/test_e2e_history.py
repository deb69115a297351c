"""Chat history in headless Chromium on real `streamlit run` servers (issue 12), with
the default store (a SQLite file beside the app file): a message sent, the server
killed and started again, a new tab sees it in the chat panel; scrolling to the top of
the panel, then its "Load earlier messages" button reached by keyboard, load earlier
messages, each once and in order; an unreachable database is said on the page,
presence works, and the composer keeps a message it could not send and says why."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from components import ChatMessage, open_history_store
from components.embedded_broker import free_port
from components.identity import user_id_for
from components.message_ids import MessageIds

from e2e_pages import app_file, message, open_tab, send_chat
from helpers import wait_for
from streamlit_server import StreamlitServers

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

HISTORY = 20
APP = app_file(f"""
  - type: presence_list
  - type: chat_panel
    room: lobby
    height: 160
    history: {HISTORY}
""", grace=1.0)
NO_BOT = {"PRESENCE_DEMO_BOT": "0"}


@pytest.fixture
def servers(e2e_broker, tmp_path) -> Iterator[StreamlitServers]:
    """Servers of app files in tmp_path: their history is tmp_path/.presence-kit/history.sqlite3."""
    started = StreamlitServers(broker_url=e2e_broker.url, directory=tmp_path)
    yield started
    started.stop()


def shown(page) -> list[str]:
    return page.locator(".pk-chat .pk-msg .pk-text").all_inner_texts()


def test_a_message_sent_before_the_server_was_killed_is_in_a_new_tab_after_it(servers, browser_context, people) -> None:
    first = servers.start(APP, env=NO_BOT)
    ana = people("ana")
    page = open_tab(browser_context(), first, ana)
    text = f"before the restart {ana}"
    send_chat(page, text)
    message(page, text).wait_for(timeout=5000)
    assert wait_for(lambda: page.locator("textarea.pk-input").input_value() == "", timeout=5), "the composer clears once it is sent"
    first.kill()  # a crash: a message the tab was told was sent had been stored before it was published
    second = servers.start(APP, env=NO_BOT)
    later = open_tab(browser_context(), second, people("ben"))
    message(later, text).wait_for(timeout=5000)
    assert message(later, text).get_attribute("data-user") == user_id_for(ana)


def test_scrolling_up_then_the_button_load_earlier_messages_each_once_in_order(servers, browser_context, people, tmp_path) -> None:
    clock = [time.time() - 600]
    ids = MessageIds(wall=lambda: clock[0])
    stored = []
    for i in range(120):
        stored.append(ChatMessage(ids.next(), "lobby", "old-bot", f"stored {i}", None, None))
        clock[0] += 0.01
    store = open_history_store(f"sqlite:///{tmp_path}/.presence-kit/history.sqlite3")  # the app file's default
    store.add("e2e", stored)
    store.close()
    texts = [m.text for m in stored]
    page = open_tab(browser_context(), servers.start(APP, env=NO_BOT), people("ana"))
    assert wait_for(lambda: shown(page) == texts[-HISTORY:], timeout=5), shown(page)

    panel = page.locator(".pk-chat .pk-messages")
    panel.hover()
    page.mouse.wheel(0, -10_000)  # scroll to the top of the panel
    assert wait_for(lambda: shown(page) == texts[-HISTORY - 50:], timeout=5), shown(page)[:3]
    assert panel.evaluate("list => list.scrollTop") > 0, "what was read stays in view while earlier messages come in above"

    button = page.get_by_role("button", name="Load earlier messages")
    page.locator("textarea.pk-input").focus()
    for _ in range(3):  # from the composer back to the button (past the scrollable list, which Chromium focuses too)
        page.keyboard.press("Shift+Tab")
        if button.evaluate("b => b.getRootNode().activeElement === b"):
            break
    else:
        pytest.fail("the button is not reachable by keyboard from the composer")
    page.keyboard.press("Enter")
    assert wait_for(lambda: shown(page) == texts, timeout=5), len(shown(page))
    button.focus()
    page.keyboard.press("Enter")  # a page below the first message: empty, and nothing more to load
    assert wait_for(lambda: not button.is_visible(), timeout=5)
    assert shown(page) == texts


def test_an_unreachable_database_is_said_and_the_composer_keeps_what_it_could_not_send(servers, browser_context, people) -> None:
    server = servers.start(APP, env={**NO_BOT, "PRESENCE_HISTORY_URL": f"postgresql://app:hunter2@127.0.0.1:{free_port()}/test"})
    page = open_tab(browser_context(), server, people("ana"))  # returns once the tab shows itself online: presence works
    page.get_by_text("Chat history is unavailable (retrying)").wait_for(timeout=5000)  # the page's note
    page.get_by_text("Chat history is unavailable right now").wait_for(timeout=5000)  # the chat panel's
    send_chat(page, "keep me in the composer")
    page.locator(".pk-send-status").filter(has_text="Not sent").wait_for(timeout=10_000)
    assert "cannot be reached" in page.locator(".pk-send-status").inner_text()
    assert page.locator("textarea.pk-input").input_value() == "keep me in the composer"
    assert message(page, "keep me in the composer").count() == 0, "not shown as sent"
    assert "hunter2" not in page.content()
