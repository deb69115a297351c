"""Capabilities checked against real brokers (capabilities.py): a list of URLs whose
nodes do not share retained messages is refused, a configured lack is refused at once,
an unreachable first URL is skipped for the next, and without QoS 1 publishes the kit
publishes at QoS 0 and still knows what landed."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from components import BrokerSettings, PresenceSession
from components.capabilities import BrokerCapabilities
from components.embedded_broker import MosquittoBroker, free_port

from helpers import end_process, join_process, wait_for

pytestmark = pytest.mark.integration


def test_nodes_that_keep_retained_messages_apart_are_refused(shared_broker: MosquittoBroker, prefix: str) -> None:
    """Two independent Mosquittos stand for a cluster that keeps retained messages per
    node (RabbitMQ's MQTT plugin): watchers on different nodes would see different orgs."""
    with MosquittoBroker() as other:
        settings = BrokerSettings.from_url([shared_broker.url, other.url], topic_prefix=prefix)
        with PresenceSession(settings, org="acme") as session:
            assert wait_for(lambda: session.refusal is not None, timeout=10)
            assert "per node" in session.refusal and other.url in session.refusal
            assert not session.synced and not session.snapshot().complete


def test_nodes_that_share_retained_messages_are_not_refused(shared_broker: MosquittoBroker, prefix: str) -> None:
    unreachable = f"mqtt://127.0.0.1:{free_port()}"
    settings = BrokerSettings.from_url([unreachable, shared_broker.url], topic_prefix=prefix)
    with PresenceSession(settings, org="acme") as session:
        assert session.wait_synced(10), session.stats()
        assert session.observer.connected_url == shared_broker.url  # the unreachable first URL was skipped
        assert session.refusal is None


def test_a_broker_configured_without_retained_wildcards_is_refused_at_once(settings, make_session) -> None:
    told = BrokerSettings(
        host=settings.host, port=settings.port, protocol=settings.protocol, keepalive=settings.keepalive,
        topic_prefix=settings.topic_prefix, capabilities=BrokerCapabilities(retained_to_wildcards=False),
    )  # fmt: skip
    session = make_session(settings_override=told)
    assert not session.wait_synced(5)
    assert "wildcard" in session.refusal


class QosRecorder:
    """A plain paho client subscribed at QoS 1 to everything under a prefix: a message
    arrives at the QoS it was published with (Mosquitto grants min(publish, subscribe))."""

    def __init__(self, port: int, prefix: str) -> None:
        self.received: list[tuple[str, int, bytes]] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda c, u, m: self.received.append((m.topic, m.qos, m.payload))
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"{prefix}/#", qos=1)
        self._client.loop_start()
        assert subscribed.wait(5)

    def qos_of(self, kind: str) -> set[int]:
        return {qos for topic, qos, _ in self.received if f"/{kind}/" in topic}

    def offline_of(self, user: str) -> list[int]:
        """The QoS of each offline of `user`'s devices received."""
        return [qos for topic, qos, payload in self.received if f"/presence/acme/{user}/" in topic and b'"offline"' in payload]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.mark.parametrize("qos1_publishes", [None, False], ids=["default", "qos1_publishes_false"])
def test_without_qos1_publishes_everything_goes_at_qos0_and_acks_still_hold(qos1_publishes, settings, make_session, shared_broker: MosquittoBroker, prefix: str) -> None:
    """`qos1_publishes: false` (docs/BROKERS.md, for NATS): presence, lease, chat and the
    will go at QoS 0, and what the kit must know landed still does: the snapshot's
    retained marker (the session syncs) and a clean leave (close() is acknowledged, by
    the PINGRESP after it)."""
    told = BrokerSettings(
        host=settings.host, port=settings.port, protocol=settings.protocol, keepalive=settings.keepalive,
        topic_prefix=settings.topic_prefix, capabilities=BrokerCapabilities(qos1_publishes=qos1_publishes),
    )  # fmt: skip
    expected = {0} if qos1_publishes is False else {1}
    recorder = QosRecorder(shared_broker.port, prefix)
    try:
        session = make_session(settings_override=told)
        assert session.wait_synced(10), session.stats()
        device = session.open_device(user="ana", device="d1")
        assert wait_for(lambda: recorder.qos_of("presence") and recorder.qos_of("lease"), timeout=5)
        device.send_chat("lobby", "hello")
        assert wait_for(lambda: recorder.qos_of("chat"), timeout=5)
        assert device.close() is True
        assert wait_for(lambda: recorder.offline_of("ana"), timeout=5), recorder.received
        assert recorder.offline_of("ana") == list(expected), recorder.received
        crashing = join_process(told, user="ben", device="d1", keepalive=settings.keepalive, grace=1.0)
        end_process(crashing)  # SIGKILL: its will fires
        assert wait_for(lambda: recorder.offline_of("ben"), timeout=5), recorder.received
        assert set(recorder.offline_of("ben")) == expected, recorder.received
        assert recorder.qos_of("presence") == recorder.qos_of("lease") == recorder.qos_of("chat") == expected, recorder.received
    finally:
        recorder.close()
