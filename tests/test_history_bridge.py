"""Chat history through real `streamlit run` servers and the tab protocol (issue 12,
stage 2), with the history in a real SQLite file and in a schema of the test's own in
the real PostgreSQL: a tab's message is stored before it is published and the tab is
told; a new tab sees the same history after the server restarts (SIGTERM and SIGKILL)
and on either of two servers sharing the broker and the database; paging back gives
every stored message once, in order; read receipts work for stored messages; and an
unreachable database refuses a tab's message, tells the tab why, and costs nothing else.
What is stored is read back with the bare driver (HistoryPlace), and sent messages are
known by the ids the server acknowledged."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from components import ChatMessage
from components.embedded_broker import MosquittoBroker, free_port
from components.message_ids import MessageIds

from helpers import HistoryPlace, RawSubscriber, RawTab, wait_for
from streamlit_server import StreamlitServer, StreamlitServers, tab_hello

pytestmark = pytest.mark.integration

ROOM = "lobby"


def app_text(org: str, table: str) -> str:
    return (
        f"version: 1\nbroker: {{keepalive: 2, leave_grace: 1}}\norg: {org}\nrooms: [{ROOM}]\n"
        f"identity: {{source: query_param}}\nhistory: {{table: {table}}}\n"
        "widgets:\n  - type: presence_list\n  - type: chat_panel\n"
    )


@pytest.fixture
def org() -> str:
    return f"h{uuid.uuid4().hex[:10]}"


@pytest.fixture
def servers(e2e_broker: MosquittoBroker, tmp_path: Path, org: str) -> Iterator:
    """Start servers of this test's org on the module's broker, chat history at `url`
    (PRESENCE_HISTORY_URL) in `table`; all stopped at the end."""
    servers = StreamlitServers(broker_url=e2e_broker.url, directory=tmp_path)
    yield lambda url, table="presence_chat": servers.start(app_text(org, table), env={"PRESENCE_DEMO_BOT": "0", "PRESENCE_HISTORY_URL": url})
    servers.stop()


@pytest.fixture
def tabs(org: str) -> Iterator:
    """Raw tabs showing the room's chat, receipts and presence; each returns once it
    has its join's history frame."""
    opened: list[RawTab] = []

    def open_tab(server: StreamlitServer, user: str, *, history: int = 50) -> RawTab:
        watch = {"presence": [{"room": ROOM, "limit": 20}], "rooms": {ROOM: ["chat", "receipts"]}, "history": {ROOM: history}}
        device = f"d{uuid.uuid4().hex[:6]}"
        tab = RawTab(server.port, user=user, device=device, org=org, hello=tab_hello(user=user, device=device, org=org, watch=watch))
        opened.append(tab)
        assert tab.wait(lambda m: m["t"] == "history", timeout=10), (tab.closed, tab.messages)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def chat(tab: RawTab, text: str) -> dict:
    """Send a chat message with a nonce; the server's answer."""
    nonce = uuid.uuid4().hex[:12]
    tab.send({"t": "chat", "room": ROOM, "text": text, "nonce": nonce})
    assert tab.wait(lambda m: m["t"] == "chat_ack" and m["nonce"] == nonce, timeout=15), tab.messages[-5:]
    [answer] = tab.seen(lambda m: m["t"] == "chat_ack" and m["nonce"] == nonce)
    return answer


def sent_id(tab: RawTab, text: str) -> str:
    answer = chat(tab, text)
    assert "error" not in answer and answer["stored"] is True, answer
    return answer["id"]


def joined(tab: RawTab) -> list[str]:
    """The ids of the tab's join (its first history frame), oldest first."""
    first = tab.seen(lambda m: m["t"] == "history" and m["before"] is None)[0]
    return [m["id"] for m in first["messages"]]


def publish_over_mqtt(port: int, org: str, user: str, text: str) -> str:
    """A chat published by another program's bot: MQTT only, no server stored it."""
    message_id = MessageIds().next()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(f"chat/{org}/{ROOM}/{user}", json.dumps({"id": message_id, "text": text}), qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    return message_id


def stored_before(place: HistoryPlace, org: str, count: int, *, user: str = "old-bot") -> list[ChatMessage]:
    """`count` messages written to the store an hour ago, one a millisecond (by a server
    that has since gone): no running server holds them in memory."""
    clock = [time.time() - 3600]
    ids = MessageIds(wall=lambda: clock[0])
    messages = []
    for i in range(count):
        messages.append(ChatMessage(ids.next(), ROOM, user, f"stored {i}", None, None))
        clock[0] += 0.001
    store = place.store()
    try:
        assert store.add(org, messages) == count
    finally:
        store.close()
    return messages


# -- restarts and replicas ----------------------------------------------------------------------


def test_a_new_tab_sees_the_same_history_after_the_server_restarts(servers, tabs, history_place: HistoryPlace, org, e2e_broker) -> None:
    """SIGTERM (a deploy) and SIGKILL (a crash): what a tab was told was sent is there
    for a tab of the next server process, and so is a bot's message the server had seen
    on the broker before a clean shutdown."""
    server = servers(history_place.url, history_place.table)
    sent: list[str] = []
    for how in ("SIGTERM", "SIGKILL"):
        ana = tabs(server, "ana")
        sent += [sent_id(ana, f"{how} {i}") for i in range(3)]
        bot = publish_over_mqtt(e2e_broker.port, org, "other-bot", f"{how} from a bot")
        assert ana.wait(lambda m: m["t"] == "chat" and m["message"]["id"] == bot), "the server saw the bot's message"
        if how == "SIGTERM":
            server.stop()  # a clean shutdown writes what the observer had queued
            sent.append(bot)
        else:
            server.kill()
        server = servers(history_place.url, history_place.table)
        late = tabs(server, f"late-{how}", history=100)
        shown = joined(late)
        assert set(sent) <= set(shown) and shown == sorted(shown), (how, sent, shown)
        assert set(shown) == set(history_place.ids(room=ROOM))


def test_two_servers_on_one_broker_and_database_show_late_joiners_the_same_history(
    servers, tabs, history_place: HistoryPlace, org, e2e_broker
) -> None:
    a = servers(history_place.url, history_place.table)
    b = servers(history_place.url, history_place.table)
    on_a, on_b = tabs(a, "ana"), tabs(b, "bo")
    sent = [sent_id(on_a, "from a"), sent_id(on_b, "from b")]
    b.stop()
    sent.append(sent_id(on_a, "while b was down"))
    bot = publish_over_mqtt(e2e_broker.port, org, "other-bot", "a bot while b was down")
    sent.append(bot)
    assert wait_for(lambda: bot in history_place.ids(room=ROOM), timeout=10), "a's observer recorded the bot's message"
    b_again = servers(history_place.url, history_place.table)  # b comes back: a new process, same database
    late_a, late_b = tabs(a, "late-a"), tabs(b_again, "late-b")
    assert joined(late_a) == joined(late_b) == sorted(sent)
    after = sent_id(late_b, "after b came back")
    assert late_a.wait(lambda m: m["t"] == "chat" and m["message"]["id"] == after)
    assert history_place.ids(room=ROOM) == sorted(sent + [after])  # one row each, whoever saw it


# -- reading: pages and receipts ------------------------------------------------------------------


def test_paging_back_gives_every_stored_message_once_in_order_while_new_ones_arrive(
    servers, tabs, history_place: HistoryPlace, org
) -> None:
    stored = stored_before(history_place, org, 1000)
    server = servers(history_place.url, history_place.table)
    reader, writer = tabs(server, "reader", history=30), tabs(server, "writer")
    page = reader.seen(lambda m: m["t"] == "history")[0]
    assert len(page["messages"]) == 30 and page["more"] is True
    seen = page["messages"]
    pages = 0
    while page["more"]:
        sent_id(writer, f"new {pages}")  # arrives between two pages
        before = page["messages"][0]["id"]
        reader.send({"t": "earlier", "room": ROOM, "before": before, "limit": 137})
        assert reader.wait(lambda m: m["t"] == "history" and m["before"] == before)
        [page] = reader.seen(lambda m: m["t"] == "history" and m["before"] == before)
        seen = page["messages"] + seen
        pages += 1
    assert [m["id"] for m in seen] == [m.id for m in stored] and [m["text"] for m in seen[:2]] == ["stored 0", "stored 1"]
    assert pages == 8  # 970 in pages of 137, the last one short
    news = reader.seen(lambda m: m["t"] == "chat")
    assert [m["message"]["text"] for m in news] == [f"new {i}" for i in range(pages)], "new messages came live, each once"


def test_a_read_receipt_for_a_stored_message_is_accepted_and_one_for_an_unknown_id_is_not(
    servers, tabs, history_place: HistoryPlace, org, e2e_broker
) -> None:
    stored = stored_before(history_place, org, 300)
    server = servers(history_place.url, history_place.table)
    wire = RawSubscriber(e2e_broker.port, f"receipts/{org}/{ROOM}/#")
    try:
        ben = tabs(server, "ben", history=10)
        assert stored[100].id not in joined(ben), "older than the tab's page, and never in the server's memory"
        unknown = MessageIds().next()  # never stored: newer than every stored id
        ben.send({"t": "read", "room": ROOM, "id": unknown})
        ben.send({"t": "read", "room": ROOM, "id": stored[100].id})
        topic = f"receipts/{org}/{ROOM}/ben"
        assert wait_for(lambda: any(t == topic and json.loads(p)["up_to"] == stored[100].id for t, p in wire.messages), timeout=10)
        assert wait_for(lambda: server.health()["tab_refusals"].get("unknown_message") == 1, timeout=10)
        assert [json.loads(p)["up_to"] for t, p in wire.messages if t == topic] == [stored[100].id]
    finally:
        wire.close()


# -- an unreachable database ------------------------------------------------------------------------


def test_a_tab_message_refused_by_an_unreachable_database_is_not_published_and_the_tab_is_told_why(
    servers, tabs, org, e2e_broker
) -> None:
    url = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/test"
    server = servers(url)
    wire = RawSubscriber(e2e_broker.port, f"+/{org}/#")
    try:
        ana, ben = tabs(server, "ana"), tabs(server, "ben")
        assert ana.seen(lambda m: m["t"] == "history")[0]["unavailable"] is True
        assert wait_for(lambda: ana.online("ben") and ben.online("ana"), timeout=5), "presence keeps working"
        answer = chat(ana, "keep me in the composer")
        assert "id" not in answer and "not stored" in answer["error"] and "hunter2" not in answer["error"]
        assert answer["reason"] == "unavailable"  # the widgets word it in their page's language
        ana.send({"t": "read", "room": ROOM, "id": MessageIds().next()})  # unknown, and the store cannot say
        ana.send({"t": "typing", "room": ROOM, "active": True})  # published after it on ana's connection: a marker
        assert wait_for(lambda: any(t.startswith(f"typing/{org}/{ROOM}/ana/") for t, _ in wire.messages), timeout=5)
        assert not [t for t, _ in wire.messages if t.startswith(("chat/", "receipts/"))], "nothing of it was published"
        assert not ben.seen(lambda m: m["t"] == "chat")
        health = server.health()
        assert health["history"]["available"] is False and "hunter2" not in json.dumps(health)
        assert health["tab_refusals"]["chat_not_stored"] == 1
    finally:
        wire.close()
    server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if "chat history" in line]
    assert len(lines) == 1 and "unavailable" in lines[0] and "app:***@" in lines[0], lines
    assert "hunter2" not in server.log_path.read_text()
