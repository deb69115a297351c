"""The session's own machinery against a real Mosquitto: reconnect and re-announce
after a broker restart, one network thread for many devices, clean-up of old offline
device topics, and the `watch` command's output."""

from __future__ import annotations

import json
import threading
import time

import pytest

from components import BrokerSettings, PresenceSession
from components.embedded_broker import MosquittoBroker

from helpers import Watcher, end_process, python_child, wait_for

pytestmark = pytest.mark.integration


def settings_for(broker: MosquittoBroker, protocol: str, prefix: str, **extra) -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=broker.port, protocol=protocol, topic_prefix=prefix, keepalive=5, **extra)  # type: ignore[arg-type]


def test_devices_and_observer_come_back_after_a_broker_restart(own_broker: MosquittoBroker, protocol: str, prefix: str) -> None:
    settings = settings_for(own_broker, protocol, prefix)
    with PresenceSession(settings, org="acme", rooms=["lobby"]) as session:
        watcher = Watcher(session)
        device = session.open_device(user="ana", device="d1")
        assert watcher.wait_status("ana", "online", timeout=5) is not None
        assert session.wait_synced(5)  # the first snapshot is in, so a second one is a resync
        first_epoch = device.epoch
        own_broker.kill()  # no persistence: every retained message is gone
        assert wait_for(lambda: not device.connected, timeout=10)
        restarted = time.monotonic()
        own_broker.start()
        assert wait_for(lambda: device.connected and session.synced, timeout=10)
        assert time.monotonic() - restarted < 5, "re-announce took longer than 5 s"
        assert device.epoch > first_epoch
        assert watcher.wait_status("ana", "online", timeout=2) is not None
        assert session.observer.snapshots >= 2


def test_two_hundred_devices_share_one_network_thread(shared_broker: MosquittoBroker, prefix: str) -> None:
    settings = settings_for(shared_broker, "5", prefix)
    before = threading.active_count()
    with PresenceSession(settings, org="acme", rooms=["lobby"]) as session:
        devices = [session.open_device(user=f"u{i}", device="tab") for i in range(200)]
        assert wait_for(lambda: all(d.connected for d in devices), timeout=30)
        assert wait_for(lambda: len(session.snapshot().users) == 200, timeout=10)
        added = threading.active_count() - before
        assert added <= 4, f"{added} threads for 200 devices"  # network + dispatcher + 2 connectors
        assert session.network.connection_count == 201  # 200 devices + 1 observer


def test_offline_device_topics_older_than_retention_are_cleared(shared_broker: MosquittoBroker, protocol: str, prefix: str) -> None:
    settings = settings_for(shared_broker, protocol, prefix)
    with PresenceSession(settings, org="acme", observe=False) as session:
        device = session.open_device(user="old", device="d1")
        assert device.wait_connected(5)
        device.close()
    time.sleep(1.2)  # now offline for longer than the 1 s retention below
    with PresenceSession(settings, org="acme", last_seen_retention=1.0) as janitor:
        assert janitor.wait_synced(5)
        assert wait_for(lambda: janitor.observer.reaped == 1, timeout=3)
        assert wait_for(lambda: "old" not in janitor.snapshot().users, timeout=3)
    with PresenceSession(settings, org="acme") as late:
        assert late.wait_synced(5)
        assert "old" not in late.snapshot().users, "the retained device topic is still there"


def test_watch_prints_the_snapshot_then_changes(shared_broker: MosquittoBroker, prefix: str) -> None:
    settings = settings_for(shared_broker, "5", prefix)
    with PresenceSession(settings, org="acme", observe=False) as session:
        first = session.open_device(user="ana", device="d1")
        assert first.wait_connected(5)
        proc = python_child("-m", "components", "watch", "--broker", settings.url, "--org", "acme", "--topic-prefix", prefix)
        try:
            line = json.loads(proc.stdout.readline())
            assert {k: line[k] for k in ("user", "status", "devices")} == {"user": "ana", "status": "online", "devices": 1}
            assert isinstance(line["since"], float)
            second = session.open_device(user="ana", device="d2")
            assert json.loads(proc.stdout.readline())["devices"] == 2
            second.close()
            assert json.loads(proc.stdout.readline())["devices"] == 1
            first.close()
            line = json.loads(proc.stdout.readline())
            assert (line["status"], line["devices"]) == ("offline", 0)
        finally:
            end_process(proc)


def test_many_devices_leave_one_by_one_quickly_and_acknowledged(shared_broker: MosquittoBroker, prefix: str) -> None:
    """Found by `python -m bench`: with 200 devices each clean close took 150-250 ms (a
    lost network-loop wake-up) and close() reported every acked offline as not acked."""
    settings = settings_for(shared_broker, "5", prefix)
    with PresenceSession(settings, org="acme", observe=False) as session:
        devices = [session.open_device(user=f"u{i}", device="tab") for i in range(200)]
        assert wait_for(lambda: all(d.connected for d in devices), timeout=30)
        start = time.monotonic()
        acked = [device.close(timeout=3) for device in devices[:40]]
        took = time.monotonic() - start
        assert all(acked)
        assert took < 2.0, f"40 clean closes took {took:.2f} s"
