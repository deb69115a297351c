"""Broker access control against a real Mosquitto started with deploy/mosquitto.conf and
the files `python -m components acl` generates: a user account cannot speak for
another user on any topic the kit reads, the server account can speak for all, and
TLS works with a CA made here (and fails without it)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from components import ChatReceived, CursorMoved, PresenceSession, ReactionReceived, ReceiptMoved, TypingChanged
from components.message_ids import MessageIds
from components.topics import Topic, TopicScheme

from helpers import Watcher, wait_for
from secured_broker import SERVER, SecuredBroker, plain_client, start_secured

pytestmark = pytest.mark.integration

ORG = "acme"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    secured = start_secured(tmp_path_factory.mktemp("secured"), org=ORG, users=["ana", "ben"])
    yield secured
    secured.broker.cleanup()


def connack(secured: SecuredBroker, username: str | None, password: str | None) -> str:
    """The reason the broker gives a plain client that logs in this way."""
    result: list[str] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: (result.append(str(rc)), done.set())
    client.connect("127.0.0.1", secured.broker.port)
    client.loop_start()
    done.wait(5)
    client.loop_stop()
    client.disconnect()
    return result[0] if result else "no answer"


def test_anonymous_and_wrong_passwords_are_refused(secured: SecuredBroker) -> None:
    assert connack(secured, None, None) == "Not authorized"
    assert connack(secured, "ana@acme", "wrong") == "Not authorized"
    assert connack(secured, "ana", secured.passwords["ana@acme"]) == "Not authorized"
    assert connack(secured, "ana@acme", secured.passwords["ana@acme"]) == "Success"


class Recorder(Watcher):
    """A watcher that also keeps every room event."""

    def __init__(self, session: PresenceSession) -> None:
        self.events: list[object] = []
        super().__init__(session)

    def _on_event(self, event: object) -> None:
        super()._on_event(event)
        self.events.append(event)

    def by(self, user: str) -> list[object]:
        found = []
        for event in self.events:
            if isinstance(event, (ChatReceived,)) and event.message.user == user:
                found.append(event)
            elif isinstance(event, (ReactionReceived, ReceiptMoved)) and event.user == user:
                found.append(event)
            elif isinstance(event, CursorMoved) and event.user == user and event.cursor is not None:
                found.append(event)
            elif isinstance(event, TypingChanged) and user in event.typists:
                found.append(event)
        return found


def forged(scheme: TopicScheme, user: str, room: str) -> list[tuple[str, bytes, bool]]:
    """A valid message of `user` on every topic the kit reads: (topic, payload, retain)."""
    now = round(time.time(), 3)
    message_id = MessageIds().next()  # a real id: one from the future would be refused anyway
    presence = json.dumps({"status": "online", "epoch": int(now * 1000) + 10**6, "since": now}).encode()
    return [
        (scheme.render(Topic("presence", ORG, user, device="d9")), presence, True),
        (scheme.render(Topic("presence", ORG, user)), presence, True),
        (scheme.render(Topic("typing", ORG, user, room=room, device="d9")), json.dumps({"typing": True, "ttl": 30000}).encode(), False),
        (scheme.render(Topic("cursor", ORG, user, room=room, device="d9")), json.dumps({"x": 0.5, "y": 0.5}).encode(), False),
        (scheme.render(Topic("receipts", ORG, user, room=room)), json.dumps({"up_to": message_id, "at": now}).encode(), True),
        (scheme.render(Topic("chat", ORG, user, room=room)), json.dumps({"id": message_id, "text": "I am ben", "at": now}).encode(), False),
        (scheme.render(Topic("reactions", ORG, user, room=room)), json.dumps({"emoji": "+1", "count": 3}).encode(), False),
        (scheme.render(Topic("lease", ORG, user, device="p9")), json.dumps({"until": now + 3600}).encode(), True),
    ]


def test_a_user_account_cannot_speak_for_another_user(secured: SecuredBroker, protocol: str) -> None:
    scheme = TopicScheme()
    room = f"room-{protocol}"  # one module broker for both protocols: keep their retained state apart
    with PresenceSession(secured.settings(SERVER, protocol=protocol), org=ORG, rooms=[room]) as server:
        assert server.wait_synced(5), server.stats()
        watcher = Recorder(server)
        # ana forges ben on every topic, and leaves a will in ben's name
        will_topic = scheme.render(Topic("presence", ORG, "ben", device="will"))
        ana = plain_client(secured, "ana@acme", protocol=protocol, will=(will_topic, forged(scheme, "ben", room)[0][1]))
        for topic, payload, retain in forged(scheme, "ben", room):
            ana.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
        # ...and the same messages in her own name, which must arrive (so the test sees)
        for topic, payload, retain in forged(scheme, "ana", room):
            ana.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
        ana._sock.shutdown(socket.SHUT_RDWR)  # a death without DISCONNECT (now, not when paho's select lets go): the broker fires the will
        assert wait_for(lambda: len(watcher.by("ana")) >= 5, timeout=5), "\n".join(map(repr, watcher.events))
        assert watcher.current("ana") is not None and watcher.current("ana").status == "online"
        time.sleep(0.5)  # anything forged would have come with or before ana's own
        assert watcher.current("ben") is None
        assert watcher.by("ben") == []
        ana.loop_stop()
        # a late joiner finds nothing retained in ben's name either
        with PresenceSession(secured.settings("ben@acme", protocol=protocol), org=ORG, rooms=[room]) as late:
            assert late.wait_synced(5)
            assert "ben" not in late.snapshot().users
            assert "ben" not in late.snapshot().rooms[room].receipts
            leases = late.state.leases.leases()
            assert "ana/p9" in leases and "ben/p9" not in leases  # a lease is its owner's alone



def test_only_the_server_account_says_when_a_crashed_device_left(secured: SecuredBroker, protocol: str) -> None:
    """Ana's device dies without a goodbye; its will says it came online a minute ago.
    Ben's watcher (a user account) tries first to say when she left and the ACL refuses
    it, unheard; the server's observer then says it, and a late joiner reads it. Without
    the server's, the will's start is all anyone reads."""
    scheme = TopicScheme()
    epoch = int(time.time() * 1000)
    started = round(time.time() - 60, 3)

    def crash(device: str, watchers: list[PresenceSession]) -> float:
        topic = scheme.render(Topic("presence", ORG, "ana", device=device))
        will = json.dumps({"status": "offline", "epoch": epoch, "since": started, "will_delay": 0}).encode()
        ana = plain_client(secured, "ana@acme", protocol=protocol, will=(topic, will))
        ana.publish(topic, json.dumps({"status": "online", "epoch": epoch, "since": started}), qos=1, retain=True).wait_for_publish(5)
        assert all(wait_for(lambda w=w: device_status(w, device) == "online", timeout=5) for w in watchers)
        killed_at = time.time()
        ana._sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT, at once (a close waits for paho's select): the broker fires the will
        assert all(wait_for(lambda w=w: device_status(w, device) == "offline", timeout=5) for w in watchers)
        ana.loop_stop()
        return killed_at

    def device_status(session: PresenceSession, device: str) -> str | None:
        held = session.state.presence.device("ana", device)
        return held.status if held else None

    def read_later(device: str) -> float | None:
        with PresenceSession(secured.settings("ben@acme", protocol=protocol), org=ORG) as late:
            assert late.wait_synced(5)
            held = late.state.presence.device("ana", device)
            return held.since if held else None

    with PresenceSession(secured.settings("ben@acme", protocol=protocol), org=ORG, jitter=lambda: 0.0) as ben:
        assert ben.wait_synced(5)
        with PresenceSession(secured.settings(SERVER, protocol=protocol), org=ORG, jitter=lambda: 0.9) as server:
            assert server.wait_synced(5)
            killed_at = crash(f"with-server-{protocol}", [ben, server])
            assert wait_for(lambda: server.observer.last_seen_sent == 1, timeout=2)
            assert ben.observer.last_seen_sent == 1, "ben's watcher spoke first"
        since = read_later(f"with-server-{protocol}")
        assert since is not None and abs(since - killed_at) < 1, f"{since} vs the crash at {killed_at}"

        crash(f"users-only-{protocol}", [ben])
        assert wait_for(lambda: ben.observer.last_seen_sent == 2, timeout=2)
        assert read_later(f"users-only-{protocol}") == started, "a user account may not write ana's presence"
        assert ben.observer.connects == 1, "a refused write costs the watcher nothing"

def test_the_kit_as_a_user_account_watches_the_org_and_is_held_to_its_own_user(secured: SecuredBroker) -> None:
    with PresenceSession(secured.settings(SERVER), org=ORG, rooms=["lobby"]) as server:
        assert server.wait_synced(5)
        watcher = Watcher(server)
        with PresenceSession(secured.settings("ana@acme"), org=ORG, rooms=["lobby"]) as bot:
            assert bot.wait_synced(5), bot.stats()  # read + the sync echo are allowed
            own = bot.open_device(user="ana", device="bot")
            other = bot.open_device(user="ben", device="bot")
            assert watcher.wait_status("ana", "online", timeout=5) is not None
            assert other.wait_connected(5)
            time.sleep(0.5)
            assert watcher.current("ben") is None, "ana's account published ben's presence"
            assert wait_for(lambda: "ana" in bot.snapshot().users, timeout=3)
            assert own.connected
            # the bot's lease is ana's (lease/acme/ana/...), which her account may renew
            assert bot.lease.name.startswith("ana/")
            assert wait_for(lambda: bot.lease.name in server.state.leases.leases(), timeout=3)


def test_the_server_account_speaks_for_every_user_over_tls(secured: SecuredBroker) -> None:
    with PresenceSession(secured.settings(SERVER, tls=True), org=ORG, rooms=["lobby"]) as server:
        assert server.wait_synced(5), server.stats()
        watcher = Watcher(server)
        for user in ("ana", "ben"):
            server.open_device(user=user, device="tab")
        assert watcher.wait_status("ana", "online", timeout=5) is not None
        assert watcher.wait_status("ben", "online", timeout=5) is not None


def test_tls_without_the_ca_is_refused(secured: SecuredBroker) -> None:
    with PresenceSession(secured.settings(SERVER, tls=True, ca=False), org=ORG) as session:
        assert wait_for(lambda: session.observer.last_error, timeout=5)
        assert "CERTIFICATE_VERIFY_FAILED" in session.observer.last_error or "certificate verify failed" in session.observer.last_error
        assert not session.synced and session.observer.connects == 0
