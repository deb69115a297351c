"""Guarantees 1-7 and 10 at the protocol level, against a real Mosquitto, over MQTT 5
and 3.1.1 (the `protocol` fixture runs each test on both)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.harness import MOSQUITTO_KEEPALIVE_SWEEP
from components import InvalidId
from components.observer import LAST_SEEN_STAGGER
from components.topics import Topic, TopicScheme

from helpers import RawSubscriber, Watcher, end_process, join_process, python_child, wait_for

pytestmark = pytest.mark.integration

GRACE = 2.0
WILL_TICK_SLACK = 0.1
"""Mosquitto 2.0 fires a delayed will on its first whole-second tick strictly after the
delay (src/will_delay.c), so the delay G becomes (G, G + 1] s; the crash deadline
G + 1 s is met up to that tick's few milliseconds of processing, which this allows."""


def raw_client(settings, *, client_id: str = "", version: str = "3.1.1") -> paho.Client:
    """A plain paho client standing in for another MQTT client (mqtt.js, a tool)."""
    protocol = MQTTProtocolVersion.MQTTv5 if version == "5" else MQTTProtocolVersion.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.connect("127.0.0.1", settings.port)
    client.loop_start()
    return client


def publish_wait(client: paho.Client, topic: str, payload: bytes | str, *, retain: bool = True) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def retained(settings, topic: str, *, timeout: float = 2.0) -> bytes | None:
    """What the broker holds retained on `topic` now (None: nothing), as a late joiner sees it."""
    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: (got.append(m.payload), done.set())
    client.on_subscribe = lambda *a: threading.Timer(0.3, done.set).start()
    client.connect("127.0.0.1", settings.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    done.wait(timeout)
    client.loop_stop()
    client.disconnect()
    return got[0] if got else None


def presence_topic(settings, user: str, device: str | None = None) -> str:
    return TopicScheme(prefix=settings.topic_prefix).render(Topic("presence", "acme", user, device=device))


# -- guarantee 1: crash deadline ----------------------------------------------------------

def test_sigkilled_device_shows_offline_within_grace_plus_1s(settings, watcher: Watcher) -> None:
    proc = join_process(settings, user="crash", device="d1", grace=GRACE)
    try:
        assert watcher.wait_status("crash", "online", timeout=3) is not None
        os.kill(proc.pid, signal.SIGKILL)
        took = watcher.wait_status("crash", "offline", timeout=GRACE + 3)
    finally:
        end_process(proc)
    assert took is not None and took <= GRACE + 1 + WILL_TICK_SLACK, f"offline after {took} s"


def test_frozen_device_shows_offline_within_keepalive_bound(settings, watcher: Watcher) -> None:
    keepalive = 2
    proc = join_process(settings, user="frozen", device="d1", keepalive=keepalive, grace=GRACE)
    try:
        assert watcher.wait_status("frozen", "online", timeout=3) is not None
        os.kill(proc.pid, signal.SIGSTOP)  # socket stays open; only the keepalive can tell
        bound = 1.5 * keepalive + MOSQUITTO_KEEPALIVE_SWEEP + GRACE + 1
        took = watcher.wait_status("frozen", "offline", timeout=bound + 2)
    finally:
        end_process(proc)
    assert took is not None and took <= bound, f"offline after {took} s (bound {bound} s)"



# -- "last seen" after a crash ----------------------------------------------------------------

def test_a_watcher_that_comes_later_reads_when_a_killed_device_left(settings, watcher: Watcher, make_session) -> None:
    """A will is composed at CONNECT, so the offline the broker keeps for a crashed
    device says when it came online. The live observer (the watcher's) re-publishes it
    with when the device left; a watcher that subscribes afterwards reads that, and so
    does any MQTT client."""
    proc = join_process(settings, user="gone", device="d1", grace=GRACE)
    try:
        assert watcher.wait_status("gone", "online", timeout=3) is not None
        time.sleep(3)  # online for a while: the will's own `since` is 3 s before the kill
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        assert watcher.wait_status("gone", "offline", timeout=GRACE + 3) is not None
    finally:
        end_process(proc)
    assert wait_for(lambda: watcher.session.observer.last_seen_sent == 1, timeout=LAST_SEEN_STAGGER + 1)
    said = lambda: "will_delay" not in json.loads(retained(settings, presence_topic(settings, "gone", "d1")) or b"{}")  # noqa: E731
    assert wait_for(said, timeout=2), "the observer's offline did not replace the will"  # sent is not yet landed
    # on MQTT 5 the will fires on Mosquitto's first whole-second tick after the delay: up to 1 s late
    bound = 1 + WILL_TICK_SLACK if settings.protocol == "5" else 1
    late = make_session()
    assert late.wait_synced(5)
    since = late.snapshot().users["gone"].since
    assert since is not None and killed_at <= since + 0.05 and since - killed_at <= bound, f"since is {since - killed_at:+.2f} s from the kill"
    doc = json.loads(retained(settings, presence_topic(settings, "gone", "d1")) or b"{}")
    assert doc["status"] == "offline" and doc["since"] == since and "will_delay" not in doc, doc
    assert abs(watcher.current("gone").since - since) < 0.05, "live and late watchers agree"


def test_of_two_observers_one_says_when_a_killed_device_left(settings, make_session) -> None:
    first = Watcher(make_session(jitter=lambda: 0.0))  # speaks as soon as it sees the will
    second = Watcher(make_session(jitter=lambda: 0.9))  # would speak 0.45 s later unless it heard the first
    assert first.session.wait_synced(5) and second.session.wait_synced(5)
    wire = RawSubscriber(settings.port, presence_topic(settings, "twice", "d1"))
    proc = join_process(settings, user="twice", device="d1", grace=GRACE)
    try:
        assert second.wait_status("twice", "online", timeout=3) is not None
        os.kill(proc.pid, signal.SIGKILL)
        assert second.wait_status("twice", "offline", timeout=GRACE + 3) is not None
        assert wait_for(lambda: first.session.observer.last_seen_sent == 1, timeout=3)
        time.sleep(LAST_SEEN_STAGGER + 0.5)  # past the second's moment: what it would say has arrived
    finally:
        end_process(proc)
        wire.close()
    offline = [doc for doc in (json.loads(payload) for _, payload in wire.messages) if doc["status"] == "offline"]
    assert ["will_delay" in doc for doc in offline] == [True, False], offline  # the will, then one "last seen"
    assert second.session.observer.last_seen_sent == 0

# -- guarantee 2: graceful leave ------------------------------------------------------------

def test_clean_leave_is_seen_at_once_and_never_stale_later(settings, watcher: Watcher, make_session) -> None:
    proc = join_process(settings, user="leaver", device="d1")
    assert watcher.wait_status("leaver", "online", timeout=3) is not None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    end_process(proc)
    took = watcher.wait_status("leaver", "offline", timeout=GRACE + 1)
    assert took is not None and took <= GRACE + 1
    late = Watcher(make_session())
    assert late.session.wait_synced(5)
    assert wait_for(lambda: late.statuses("leaver"), timeout=2), "the snapshot reaches the listener"
    assert late.statuses("leaver") == ["offline"], "a later subscriber must never see a stale online"



def test_a_device_closed_right_after_acting_ends_offline(settings, watcher: Watcher, make_session) -> None:
    """Found by running the README's bot example: the offline of close() went out before
    the status, chat and typing asked just before it, so the status landed last and
    stayed retained (a ghost 'away' after a clean leave)."""
    session = make_session(observe=False)
    bot = session.open_device(user="quick", device="d1")
    assert bot.wait_connected(5)
    session.network.call_soon(lambda: time.sleep(0.3))  # a busy network thread: what follows queues up
    bot.typing("lobby")
    bot.send_chat("lobby", "Hello!")
    bot.set_status("away", since=time.time())
    assert bot.close()
    assert watcher.wait_status("quick", "offline", timeout=3) is not None
    doc = json.loads(retained(settings, presence_topic(settings, "quick", "d1")) or b"{}")
    assert (doc.get("status"), doc.get("epoch")) == ("offline", bot.epoch), doc
    assert watcher.statuses("quick")[-1] == "offline", watcher.statuses("quick")

# -- guarantee 3: a stale will never wins ----------------------------------------------------

def test_stale_will_is_ignored_and_the_topic_repaired(settings, watcher: Watcher, make_session) -> None:
    bot = make_session(observe=False).open_device(user="ana", device="d1")
    assert bot.wait_connected(5)
    assert watcher.wait_status("ana", "online", timeout=3) is not None
    stale = json.dumps({"status": "offline", "epoch": bot.epoch - 1000, "since": time.time()})
    intruder = raw_client(settings)
    publish_wait(intruder, presence_topic(settings, "ana", "d1"), stale)
    intruder.loop_stop()
    intruder.disconnect()
    assert wait_for(lambda: bot.reasserted >= 1, timeout=3), "device did not re-assert"
    doc = json.loads(retained(settings, presence_topic(settings, "ana", "d1")) or b"{}")
    assert doc.get("status") == "online" and doc.get("epoch") == bot.epoch, doc
    assert "offline" not in watcher.statuses("ana")


def test_reconnect_then_old_will_changes_nothing(settings, watcher: Watcher, make_session) -> None:
    """The old connection dies without DISCONNECT; the device reconnects with a new
    epoch at once; the old will (fired at once on 3.1.1, after the will delay on 5)
    carries the lower epoch, so watchers end on online and the topic is repaired."""
    bot = make_session(observe=False).open_device(user="bo", device="d1")
    assert bot.wait_connected(5)
    assert watcher.wait_status("bo", "online", timeout=3) is not None
    first_epoch = bot.epoch
    bot._conn.socket().shutdown(socket.SHUT_RDWR)  # the connection drops without DISCONNECT
    assert wait_for(lambda: bot.connected and bot.epoch > first_epoch, timeout=5)
    time.sleep(GRACE + 1)  # the window in which the old will fires (on MQTT 5: after the delay)
    assert watcher.status("bo") == "online"
    doc = json.loads(retained(settings, presence_topic(settings, "bo", "d1")) or b"{}")
    assert doc == {**doc, "status": "online", "epoch": bot.epoch}
    if settings.protocol == "5":  # the will delay covers the reconnect: no flicker
        assert "offline" not in watcher.statuses("bo")


# -- guarantee 4/5: one user across devices ------------------------------------------------------

def test_two_devices_aggregate_and_closing_one_keeps_user_online(settings, watcher: Watcher, make_session) -> None:
    session = make_session(observe=False)
    d1 = session.open_device(user="cy", device="laptop")
    d2 = session.open_device(user="cy", device="phone")
    assert wait_for(lambda: (p := watcher.current("cy")) is not None and p.devices == 2, timeout=3)
    d1.close()
    assert wait_for(lambda: watcher.current("cy").devices == 1, timeout=3)
    assert watcher.status("cy") == "online"
    assert "offline" not in watcher.statuses("cy")
    d2.close()
    assert watcher.wait_status("cy", "offline", timeout=GRACE + 1) is not None


def test_away_and_back(settings, watcher: Watcher, make_session) -> None:
    device = make_session(observe=False).open_device(user="di", device="d1")
    assert watcher.wait_status("di", "online", timeout=3) is not None
    idle_since = time.time() - 300
    device.set_status("away", since=idle_since)
    assert watcher.wait_status("di", "away", timeout=1) is not None
    assert watcher.current("di").since == pytest.approx(idle_since, abs=0.01)
    device.set_status("online")
    assert watcher.wait_status("di", "online", timeout=1) is not None


# -- guarantee 6: late joiners get the exact state ---------------------------------------------------

def test_late_joiner_snapshot_is_exact(settings, make_session) -> None:
    session = make_session(observe=False)
    online = session.open_device(user="on", device="d1")
    away = session.open_device(user="aw", device="d1")
    gone = session.open_device(user="off", device="d1")
    for device in (online, away, gone):
        assert device.wait_connected(5)
    away.set_status("away", since=1_700_000_000)
    gone.close()
    publisher = raw_client(settings)
    publish_wait(publisher, presence_topic(settings, "cleared", "d1"), json.dumps({"status": "online", "epoch": 1}))
    publish_wait(publisher, presence_topic(settings, "cleared", "d1"), b"")
    publisher.disconnect()
    time.sleep(0.2)  # the away publish is QoS 1 on another connection; let it land
    late = make_session()
    assert late.wait_synced(5)
    users = {u: (p.status, p.devices) for u, p in late.snapshot().users.items()}
    assert users == {"on": ("online", 1), "aw": ("away", 1), "off": ("offline", 0)}


def test_snapshot_of_10000_retained_users_is_complete_on_a_default_broker(settings, make_session) -> None:
    """A default Mosquitto drops QoS 1 retained deliveries past ~1,000 queued; the QoS 0
    snapshot plus the end-of-snapshot echo must still give all 10,000."""
    n = 10_000
    publisher = raw_client(settings)
    for i in range(n):
        status = "offline" if i % 7 == 0 else "online"
        doc = json.dumps({"status": status, "epoch": 1, "since": 1_700_000_000})
        publisher.publish(presence_topic(settings, f"u{i}", "d1"), doc, qos=0, retain=True)
    publish_wait(publisher, presence_topic(settings, "last", "d1"), json.dumps({"status": "online", "epoch": 1}))
    publisher.loop_stop()
    publisher.disconnect()
    late = make_session(last_seen_retention=10 * 365 * 86400.0)
    assert late.wait_synced(30)
    users = late.snapshot().users
    assert len(users) == n + 1
    assert sum(1 for p in users.values() if p.status == "offline") == len(range(0, n, 7))


def test_a_burst_then_silence_is_applied_whole_at_once(settings, watcher: Watcher) -> None:
    """1,000 live updates sent in one burst, then nothing: the observer reads them in big
    chunks and applies at most MAX_READS_PER_WAKE packets a wake-up, so what is left in
    its read buffer (which no selector sees) must be applied without waiting for more
    traffic (the next would be the keepalive's, 5 s later)."""
    publisher = raw_client(settings)
    for i in range(999):
        publisher.publish(presence_topic(settings, f"b{i}", "d1"), json.dumps({"status": "online", "epoch": 1}), qos=0)
    publish_wait(publisher, presence_topic(settings, "b999", "d1"), json.dumps({"status": "online", "epoch": 1}))
    publisher.loop_stop()
    publisher.disconnect()
    assert wait_for(lambda: all(watcher.status(f"b{i}") == "online" for i in range(1000)), timeout=2.5), (
        f"{sum(watcher.status(f'b{i}') == 'online' for i in range(1000))} of 1000 applied"
    )


# -- guarantee 7: typing expires by itself ---------------------------------------------------------

TYPIST = """
import sys, time
from components import PresenceSession, BrokerSettings
settings = BrokerSettings(host="127.0.0.1", port=int(sys.argv[1]), protocol=sys.argv[2], topic_prefix=sys.argv[3])
session = PresenceSession(settings, org="acme", rooms=["lobby"], leave_grace=30, observe=False).start()
device = session.open_device(user="typist", device="d1")
device.wait_connected(5)
device.typing("lobby", ttl=1.0)
print("typing", flush=True)
time.sleep(60)
"""


def test_typing_expires_when_the_sender_is_killed(settings, watcher: Watcher) -> None:
    proc = python_child("-c", TYPIST, str(settings.port), settings.protocol, settings.topic_prefix)
    try:
        assert proc.stdout.readline().strip() == "typing"
        room = watcher.session.state.rooms["lobby"]
        assert wait_for(lambda: room.typists() == ("typist",), timeout=2)
        os.kill(proc.pid, signal.SIGKILL)
        start = time.monotonic()
        # the will is 30 s away: only the receiver-side ttl can clear it
        assert wait_for(lambda: room.typists() == (), timeout=3)
        assert time.monotonic() - start <= 1.5
    finally:
        end_process(proc)


# -- guarantee 10: receipts only move forward ------------------------------------------------------

def test_receipts_never_move_backwards(settings, watcher: Watcher, make_session) -> None:
    session = make_session(observe=False)
    author = session.open_device(user="author", device="d1")
    reader = session.open_device(user="reader", device="d1")
    assert author.wait_connected(5) and reader.wait_connected(5)
    first = author.send_chat("lobby", "one")
    second = author.send_chat("lobby", "two")
    assert reader.mark_read("lobby", second)
    assert not reader.mark_read("lobby", first), "a receipt must not move backwards"
    assert not author.mark_read("lobby", second), "never a receipt for one's own message"
    room = watcher.session.state.rooms["lobby"]
    assert wait_for(lambda: room.snapshot().receipts.get("reader") == second.id, timeout=3)
    other = raw_client(settings)  # another client tries to move it back
    topic = TopicScheme(prefix=settings.topic_prefix).render(Topic("receipts", "acme", "reader", room="lobby"))
    publish_wait(other, topic, json.dumps({"up_to": first.id}))
    other.disconnect()
    assert wait_for(lambda: watcher.session.state.counters.stale >= 1, timeout=3)
    assert room.snapshot().receipts["reader"] == second.id
    assert "author" not in room.snapshot().receipts


# -- hostile input -----------------------------------------------------------------------------

def test_malformed_payloads_are_counted_and_harmless(settings, watcher: Watcher, make_session) -> None:
    scheme = TopicScheme(prefix=settings.topic_prefix)
    rogue = raw_client(settings)
    bad = [b"not json", b"\xff\xfe", b"[]", b'{"status": "dancing"}', b'{"status": "online", "epoch": -1}', b"NaN", b"{" * 100_000]
    for payload in bad:
        publish_wait(rogue, scheme.render(Topic("presence", "acme", "mallory", device="d1")), payload, retain=False)
    publish_wait(rogue, scheme.render(Topic("typing", "acme", "mallory", room="lobby", device="d1")), b'{"typing": "yes"}', retain=False)
    publish_wait(rogue, scheme.render(Topic("chat", "acme", "mallory", room="lobby")), b'{"id": "x", "text": ""}', retain=False)
    rogue.disconnect()
    counters = watcher.session.state.counters
    assert wait_for(lambda: counters.invalid >= len(bad) + 2, timeout=3), counters
    assert watcher.current("mallory") is None
    device = make_session(observe=False).open_device(user="fine", device="d1")
    assert device.wait_connected(5)
    assert watcher.wait_status("fine", "online", timeout=3) is not None


@pytest.mark.parametrize("bad", ["#", "+", "a/b", "", "x" * 65, "sp ace", "ünï"])
def test_wildcard_and_bad_ids_are_refused(settings, make_session, bad: str) -> None:
    session = make_session(observe=False)
    with pytest.raises(InvalidId, match="invalid user id"):
        session.open_device(user=bad, device="d1")
    with pytest.raises(InvalidId, match="invalid device id"):
        session.open_device(user="ok", device=bad)


def test_cli_refuses_a_wildcard_id_with_one_clear_line(settings) -> None:
    proc = python_child("-m", "components", "join", "--broker", f"mqtt://127.0.0.1:{settings.port}", "--org", "acme", "--user", "#")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [err.strip()] and "invalid user id '#'" in err


# -- interop: the reference app's mqtt.js client ------------------------------------------------------

REFERENCE_CLIENT = """
import json, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, topic = int(sys.argv[1]), sys.argv[2]
# exactly what the blog's mqtt.js snippet does: will offline retained QoS 1, online on connect
client = paho.Client(CallbackAPIVersion.VERSION2, client_id="ref-" + str(time.time()))
client.will_set(topic, json.dumps({"status": "offline"}), qos=1, retain=True)
client.on_connect = lambda c, *a: c.publish(topic, json.dumps({"status": "online"}), qos=1, retain=True)
client.connect("127.0.0.1", port, keepalive=5)
print("connected", flush=True)
client.loop_forever()
"""


def test_reference_app_client_is_shown_online_then_offline_when_killed(settings, watcher: Watcher) -> None:
    proc = python_child("-c", REFERENCE_CLIENT, str(settings.port), presence_topic(settings, "refuser"))
    try:
        assert proc.stdout.readline().strip() == "connected"
        assert watcher.wait_status("refuser", "online", timeout=3) is not None
        assert watcher.current("refuser").devices == 1
        os.kill(proc.pid, signal.SIGKILL)
        assert watcher.wait_status("refuser", "offline", timeout=GRACE + 1) is not None
    finally:
        end_process(proc)
