"""Capabilities checked against real brokers (capabilities.py): a list of URLs whose
nodes do not share retained messages is refused, a configured lack is refused at once,
and an unreachable first URL is skipped for the next."""

from __future__ import annotations

import pytest

from components import BrokerSettings, PresenceSession
from components.capabilities import BrokerCapabilities
from components.embedded_broker import MosquittoBroker, free_port

from helpers import wait_for

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
