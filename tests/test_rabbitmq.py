"""The kit on a private RabbitMQ 3.10 node with its MQTT plugin: what holds, and what
does not and is refused with one clear message (docs/BROKERS.md).

Holds: the kit finds that the broker refuses MQTT 5 and speaks 3.1.1; live presence
between sessions already connected; a SIGKILLed device shown offline by its will (3.1.1:
at once, no will delay); a clean leave. Does not hold: a late joiner's snapshot, since
the plugin delivers no retained message to wildcard subscriptions, so watchers refuse
the broker (never synced, `refusal` says why; `watch` exits 4) instead of showing an
empty org. Retained messages are also kept per node (not testable on one node)."""

from __future__ import annotations

import os
import signal
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.brokers import RabbitMQNode
from components import BrokerSettings, PresenceSession
from components.cli import EXIT_BROKER_REFUSED

from helpers import Watcher, end_process, join_process, python_child

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

GRACE = 2.0


def settings_for(rabbitmq: RabbitMQNode, prefix: str) -> BrokerSettings:
    return BrokerSettings.from_url(rabbitmq.url, keepalive=5, topic_prefix=prefix)  # protocol "5": detected


def test_what_holds_live_presence_wills_and_leaves(rabbitmq: RabbitMQNode, prefix: str) -> None:
    settings = settings_for(rabbitmq, prefix)
    with PresenceSession(settings, org="acme", leave_grace=GRACE) as watching:
        watcher = Watcher(watching)
        assert not watching.wait_synced(10) and watching.refusal is not None  # refused, yet watching live
        assert not watching.observer.connection.v5, "RabbitMQ 3.10 refuses MQTT 5: the kit must speak 3.1.1"
        crash = join_process(settings, user="crash", device="d1", grace=GRACE)
        try:
            with PresenceSession(settings, org="acme", observe=False) as bots:
                leaver = bots.open_device(user="leaver", device="d1")
                assert leaver.wait_connected(10)
                assert watcher.wait_status("crash", "online", timeout=5) is not None
                assert watcher.wait_status("leaver", "online", timeout=5) is not None
                os.kill(crash.pid, signal.SIGKILL)
                took = watcher.wait_status("crash", "offline", timeout=GRACE + 1)
                assert took is not None and took <= 1.0, "3.1.1 has no will delay: the will fires at once"
                assert leaver.close()
                assert watcher.wait_status("leaver", "offline", timeout=1) is not None
        finally:
            end_process(crash)


def test_what_does_not_hold_a_late_joiner_is_refused_with_one_clear_message(rabbitmq: RabbitMQNode, prefix: str) -> None:
    settings = settings_for(rabbitmq, prefix)
    with PresenceSession(settings, org="acme", observe=False) as bots:
        device = bots.open_device(user="ana", device="d1")
        assert device.wait_connected(10)
        time.sleep(0.3)
        # the fact the refusal rests on, seen by a plain client: nothing retained for a wildcard
        assert retained_for(rabbitmq, f"{prefix}/presence/acme/#") == []
        assert retained_for(rabbitmq, f"{prefix}/presence/acme/ana/d1") != []  # but kept for the exact topic
        with PresenceSession(settings, org="acme") as late:
            start = time.monotonic()
            assert not late.wait_synced(10), "a late joiner on RabbitMQ must not call an empty org synced"
            assert time.monotonic() - start < 5
            assert "wildcard" in late.refusal and rabbitmq.url in late.refusal
            assert late.stats().last_error == late.refusal
            assert not late.snapshot().complete
        watch = python_child("-m", "components", "watch", "--broker", settings.url, "--org", "acme", "--topic-prefix", prefix)
        try:
            assert watch.wait(20) == EXIT_BROKER_REFUSED
            errors = watch.stderr.read().strip().splitlines()
            assert len(errors) == 1 and errors[0].startswith("error: ") and "wildcard" in errors[0], errors
            assert watch.stdout.read() == "", "watch printed users of an org it cannot see whole"
        finally:
            end_process(watch)


def retained_for(rabbitmq: RabbitMQNode, topic_filter: str) -> list[bytes]:
    got: list[bytes] = []
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(m.payload) if m.retain else None
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", rabbitmq.port)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    assert subscribed.wait(5)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()
    return got


def wait_until(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
