"""Chat history through the shared session, against a real Mosquitto and real databases
(a SQLite file in tmp_path, a schema of the test's own in PostgreSQL): what the
observer sees is recorded, a device's chat is stored before it is published, replicas
on one database converge, history outlives a killed server process, and a database
that cannot be reached costs chat history, never presence. What is stored is read
back with the bare driver (HistoryPlace), not only through the session."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from components import BrokerSettings, ChatMessage, HistoryUnavailable, PresenceSession, Topic, TopicScheme
from components.embedded_broker import MosquittoBroker, free_port
from components.message_ids import MessageIds

from helpers import HistoryPlace, RawSubscriber, Watcher, end_process, python_child, wait_for

pytestmark = pytest.mark.integration

ORG, ROOM = "acme", "lobby"
CHILD = str(Path(__file__).resolve().parent / "history_child.py")


@pytest.fixture
def mqtt(shared_broker: MosquittoBroker, prefix: str) -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=shared_broker.port, topic_prefix=prefix, keepalive=5)


@pytest.fixture
def sessions(request: pytest.FixtureRequest) -> Iterator[list[PresenceSession]]:
    """Sessions a test starts; whatever is still open is closed at the end, before the
    test's history place is dropped (a session still running would create it again)."""
    if "history_place" in request.fixturenames:
        request.getfixturevalue("history_place")  # set up first, so torn down last
    opened: list[PresenceSession] = []
    yield opened
    for session in opened:
        session.close(timeout=1.0)


def start(sessions: list[PresenceSession], mqtt: BrokerSettings, **options) -> PresenceSession:
    session = PresenceSession(mqtt, org=ORG, rooms=[ROOM], **options).start()
    sessions.append(session)
    if options.get("observe", True):
        assert session.wait_synced(5), session.stats()
    return session


def ids(messages: list[ChatMessage]) -> list[str]:
    return [m.id for m in messages]


def publish_raw(mqtt: BrokerSettings, user: str, doc: dict) -> None:
    """A chat published by a plain MQTT client (a bot of another program)."""
    topic = TopicScheme(prefix=mqtt.topic_prefix).render(Topic("chat", ORG, user, room=ROOM))
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mqtt.port)
    client.loop_start()
    try:
        client.publish(topic, json.dumps(doc), qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_chat_seen_only_on_mqtt_lands_in_the_store(mqtt, sessions, history_place: HistoryPlace) -> None:
    server = start(sessions, mqtt, history_store=history_place.store())
    elsewhere = start(sessions, mqtt, observe=False)  # another program's bot: MQTT only, no store
    sent = elsewhere.open_device(user="helper-bot", device="b1").send_chat(ROOM, "hello from a bot")
    publish_raw(mqtt, "raw", {"id": (raw_id := MessageIds().next()), "text": "from paho"})
    publish_raw(mqtt, "eve", {"id": MessageIds(wall=lambda: 4e9).next(), "text": "pinned forever?"})
    assert wait_for(lambda: history_place.ids() == sorted([sent.id, raw_id]), timeout=5), history_place.rows()
    assert wait_for(lambda: server.stats().refused == 1, timeout=5), server.stats()  # the far-future id, on arrival
    assert [(m.user, m.text) for m in server.history(ROOM)] == [("helper-bot", "hello from a bot"), ("raw", "from paho")]


def test_a_device_stores_its_chat_before_publishing_it(mqtt, sessions, history_place: HistoryPlace) -> None:
    server = start(sessions, mqtt, history_store=history_place.store())
    bot = server.open_device(user="bot", device="b1")
    assert bot.wait_connected(5)
    for text in ("one", "two", "three"):
        message = bot.send_chat(ROOM, text)
        assert history_place.ids()[-1] == message.id  # stored when send_chat returns, no waiting
    assert [m.text for m in server.history(ROOM, limit=2)] == ["two", "three"]


def test_a_message_that_cannot_be_stored_is_not_published(mqtt, sessions, caplog) -> None:
    from components import open_history_store

    url = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/test"
    server = start(sessions, mqtt, history_store=open_history_store(url))
    bot = server.open_device(user="bot", device="b1")
    assert bot.wait_connected(5)
    scheme = TopicScheme(prefix=mqtt.topic_prefix)
    listener = RawSubscriber(mqtt.port, f"{mqtt.topic_prefix}/#")
    try:
        with pytest.raises(HistoryUnavailable) as caught:
            bot.send_chat(ROOM, "keep me in the composer")
        assert "hunter2" not in str(caught.value) and "app:***@" in str(caught.value)
        bot.react(ROOM, "👍")  # published after it on the same connection: a marker
        reactions = scheme.render(Topic("reactions", ORG, "bot", room=ROOM))
        assert wait_for(lambda: reactions in listener.topics(mqtt.topic_prefix), timeout=5)
        assert scheme.render(Topic("chat", ORG, "bot", room=ROOM)) not in listener.topics(mqtt.topic_prefix)
    finally:
        listener.close()


def test_unreachable_database_at_start_is_one_line_and_presence_keeps_working(mqtt, sessions, caplog) -> None:
    from components import open_history_store

    caplog.set_level(logging.INFO, logger="components")
    url = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/test"
    server = start(sessions, mqtt, history_store=open_history_store(url))
    watcher = Watcher(start(sessions, mqtt))
    server.open_device(user="ana", device="d1")
    assert watcher.wait_status("ana", "online", timeout=5) is not None
    assert wait_for(lambda: server.stats().history.last_error != "", timeout=5)
    history = server.stats().history
    assert not history.available and "refused" in history.last_error.lower() and "hunter2" not in history.url
    with pytest.raises(HistoryUnavailable):
        server.history(ROOM)
    lines = [r for r in caplog.records if "history" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and lines[0].exc_info is None, [r.getMessage() for r in lines]
    assert "hunter2" not in lines[0].getMessage() and "\n" not in lines[0].getMessage()


def test_two_replicas_on_one_database_converge_including_messages_sent_while_one_was_down(
    mqtt, sessions, history_place: HistoryPlace
) -> None:
    """Replica B is down while A's bot and a bot of another program chat. B cannot have
    seen those messages on MQTT (chat is not retained, and B was not subscribed); it
    finds them in the shared database, where A wrote them: A's bot stored its own
    messages before publishing them, and A's observer recorded the other bot's."""
    a = start(sessions, mqtt, history_store=history_place.store())
    b = start(sessions, mqtt, history_store=history_place.store())
    other = start(sessions, mqtt, observe=False).open_device(user="other-bot", device="o1")
    bot = a.open_device(user="bot-a", device="a1")
    assert bot.wait_connected(5) and other.wait_connected(5)
    before = [bot.send_chat(ROOM, "one"), other.send_chat(ROOM, "outside one")]
    assert wait_for(lambda: len(a.history(ROOM)) == len(b.history(ROOM)) == 2, timeout=5)

    b.close()
    while_down = [bot.send_chat(ROOM, "two"), other.send_chat(ROOM, "outside two"), bot.send_chat(ROOM, "three")]
    assert wait_for(lambda: len(a.history(ROOM)) == 5, timeout=5)

    b = start(sessions, mqtt, history_store=history_place.store())  # B comes back
    expected = sorted(ids(before + while_down))
    assert ids(b.history(ROOM)) == ids(a.history(ROOM)) == expected
    after = b.open_device(user="bot-b", device="b1").send_chat(ROOM, "four")
    assert wait_for(lambda: ids(a.history(ROOM)) == ids(b.history(ROOM)) == expected + [after.id], timeout=5)
    assert history_place.ids() == expected + [after.id]  # one row each, however many replicas saw it


def test_without_a_store_history_is_what_this_process_holds(mqtt, sessions) -> None:
    server = start(sessions, mqtt, history=5)
    bot = server.open_device(user="bot", device="b1")
    sent = [bot.send_chat(ROOM, f"m{i}") for i in range(8)]
    assert wait_for(lambda: len(server.history(ROOM)) == 5, timeout=5)
    assert ids(server.history(ROOM)) == ids(sent[3:])
    assert ids(server.history(ROOM, before=sent[6].id, limit=2)) == ids(sent[4:6])
    assert server.stats().history is None


# -- restarts: the history lives in the database, not in the process ----------------------------


class Child:
    """tests/history_child.py: a server process with a chat history."""

    def __init__(self, mqtt: BrokerSettings, place: HistoryPlace) -> None:
        self.proc = python_child(CHILD, str(mqtt.port), mqtt.topic_prefix, place.url, place.table, stdin=subprocess.PIPE)
        self.seen: list[str] = []
        assert self.read("ready") is True

    def read(self, key: str) -> object:
        while line := self.proc.stdout.readline():
            fields = json.loads(line)
            if "seen" in fields:
                self.seen.append(fields["seen"])
            if key in fields:
                return fields[key]
        raise AssertionError(f"the child ended before {key!r}: {self.proc.stderr.read()[-2000:]}")

    def ask(self, line: str, key: str) -> object:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read(key)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_history_survives_a_restart_of_the_server_process(mqtt, sessions, history_place: HistoryPlace, how: signal.Signals) -> None:
    first = Child(mqtt, history_place)
    try:
        sent = [first.ask(f"send {text}", "sent") for text in ("one", "two", "three")]
        other = start(sessions, mqtt, observe=False).open_device(user="other-bot", device="o1")
        from_mqtt = [other.send_chat(ROOM, "seen on MQTT only").id]
        while not set(from_mqtt) <= set(first.seen):
            first.read("seen")
        first.proc.send_signal(how)
        assert first.proc.wait(10) == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    finally:
        end_process(first.proc)
    second = Child(mqtt, history_place)
    try:
        history = second.ask("history", "history")
    finally:
        end_process(second.proc)
    if how == signal.SIGTERM:  # a clean shutdown also writes what its observer had queued
        assert history == sorted(sent + from_mqtt)
    else:  # what send_chat acknowledged was stored before it was published
        assert set(sent) <= set(history) <= set(sent + from_mqtt) and history == sorted(history)
    assert history_place.ids() == history
