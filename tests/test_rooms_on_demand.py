"""Rooms on demand against a real Mosquitto (issue 11): the session watches a room while
something of the process is in it and for the linger after, a room's late joiner gets its
exact retained receipts before anything else of it, and devices carry the session into
their rooms."""

from __future__ import annotations

import json
import threading

import pytest

from components import PresenceSession
from components.events import ChatReceived, ReceiptMoved, RoomSynced
from components.message_ids import MessageIds

from helpers import RawSubscriber, wait_for

pytestmark = pytest.mark.integration


class Events:
    """Every event a session hands its listeners, kept."""

    def __init__(self, session: PresenceSession) -> None:
        self.seen: list[object] = []
        self._lock = threading.Lock()
        session.subscribe(self._on)

    def _on(self, event: object) -> None:
        with self._lock:
            self.seen.append(event)

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e in self.seen if isinstance(e, kind)]


def publisher(settings):
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", settings.port)
    client.loop_start()
    return client


def chat(client, settings, room: str, user: str, text: str) -> str:
    message_id = MessageIds().next()
    topic = f"{settings.topic_prefix}/chat/acme/{room}/{user}"
    client.publish(topic, json.dumps({"id": message_id, "text": text}), qos=1).wait_for_publish(5)
    return message_id


def test_a_room_is_watched_while_something_is_in_it_and_left_after_the_linger(settings, make_session) -> None:
    session = make_session(rooms=(), linger=0.6)
    assert session.wait_synced(5)
    events = Events(session)
    client = publisher(settings)
    try:
        leave = session.enter_room("r1")
        assert wait_for(lambda: session.room_ready("r1"), timeout=5)
        assert [e.room for e in events.of(RoomSynced)] == ["r1"]
        first = chat(client, settings, "r1", "ben", "while watched")
        assert wait_for(lambda: any(e.message.id == first for e in events.of(ChatReceived)), timeout=5)
        leave()
        leave()  # a second call changes nothing
        assert "r1" in session.watched_rooms(), "left before the linger"
        again = session.enter_room("r1")  # back within the linger: never left
        assert session.room_ready("r1")
        again()
        assert wait_for(lambda: "r1" not in session.watched_rooms(), timeout=5)
        assert not session.room_ready("r1")
        unwatched = chat(client, settings, "r1", "ben", "nobody here")
        foreign = session.stats().foreign
        assert wait_for(lambda: session.stats().foreign > foreign or session.stats().received > 0, timeout=2)
        assert not any(e.message.id == unwatched for e in events.of(ChatReceived)), "a left room's chat arrived"
        session.enter_room("r1")  # and in again
        assert wait_for(lambda: session.room_ready("r1"), timeout=5)
        assert len(events.of(RoomSynced)) == 2
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_rooms_late_joiner_gets_its_exact_retained_receipts_first(settings, make_session) -> None:
    client = publisher(settings)
    try:
        ids = [MessageIds().next() for _ in range(3)]
        for user, up_to in (("ana", ids[0]), ("ben", ids[1]), ("cy", ids[2])):
            topic = f"{settings.topic_prefix}/receipts/acme/r2/{user}"
            client.publish(topic, json.dumps({"up_to": up_to}), qos=1, retain=True).wait_for_publish(5)
        client.publish(f"{settings.topic_prefix}/receipts/acme/r2/cy", b"", qos=1, retain=True).wait_for_publish(5)  # cleared
        session = make_session(rooms=())
        assert session.wait_synced(5)
        events = Events(session)
        session.enter_room("r2")
        assert wait_for(lambda: events.of(RoomSynced), timeout=5)
        [synced] = events.of(RoomSynced)
        assert synced.snapshot.receipts == {"ana": ids[0], "ben": ids[1]}
        assert events.of(ReceiptMoved) == [], "the retained receipts came as deltas too"
        later = MessageIds().next()
        client.publish(f"{settings.topic_prefix}/receipts/acme/r2/ana", json.dumps({"up_to": later}), qos=1, retain=True).wait_for_publish(5)
        assert wait_for(lambda: events.of(ReceiptMoved), timeout=5)
        assert session.room_snapshot("r2").receipts == {"ana": later, "ben": ids[1]}
    finally:
        client.loop_stop()
        client.disconnect()


def test_devices_take_the_session_into_their_rooms(settings, make_session) -> None:
    session = make_session(rooms=("fixed",), linger=0.3)
    assert session.wait_synced(5)
    wire = RawSubscriber(settings.port, f"{settings.topic_prefix}/presence/acme/bot/#")
    try:
        bot = session.open_device(user="bot", device="b1", rooms=["r3"])
        assert wait_for(lambda: session.room_ready("r3"), timeout=5)
        bot.set_rooms(("r4",))
        assert wait_for(lambda: session.room_ready("r4"), timeout=5)
        assert wait_for(lambda: "r3" not in session.watched_rooms(), timeout=5), "the room the bot left is still watched"
        assert wait_for(lambda: any(json.loads(p).get("rooms") == ["r4"] for _, p in wire.messages if p), timeout=5)
        epochs = {json.loads(p)["epoch"] for _, p in wire.messages if p}
        assert len(epochs) == 1, "moving rooms is not a new connection"
        assert session.state.presence.user("bot").rooms == frozenset({"r4"})
        bot.close()
        assert wait_for(lambda: session.watched_rooms() == ["fixed"], timeout=5)
    finally:
        wire.close()
