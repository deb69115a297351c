"""A device that dies while the broker is down leaves no ghost when the broker comes
back with persistence: Mosquitto 2.0.11 restores its retained online but never fires
its will. Watchers probe the devices that did not re-announce and bury the silent ones.
"""

from __future__ import annotations

import socket
import time

import pytest

from components import BrokerSettings, PresenceSession
from components.embedded_broker import MosquittoBroker
from components.observer import PROBE_TIMEOUT, REANNOUNCE_WINDOW

from helpers import Watcher, die_while_the_broker_is_down, end_process, python_child, wait_for

pytestmark = pytest.mark.integration

GRACE = 1.0
DEVICE = """
import sys, time
from components import BrokerSettings, PresenceSession
settings = BrokerSettings(host="127.0.0.1", port=int(sys.argv[1]), keepalive=2, topic_prefix=sys.argv[2])
session = PresenceSession(settings, org="acme", leave_grace=float(sys.argv[3]), observe=False).start()
device = session.open_device(user=sys.argv[4], device="d1")
device.wait_connected(5)
print("up", flush=True)
time.sleep(120)
"""


def device_process(broker: MosquittoBroker, prefix: str, user: str):  # noqa: ANN201
    proc = python_child("-c", DEVICE, str(broker.port), prefix, str(GRACE), user)
    assert proc.stdout.readline().strip() == "up"
    return proc


@pytest.fixture
def persistent_broker():  # noqa: ANN201
    broker = MosquittoBroker(persistence=True).start()
    yield broker
    broker.cleanup()


def test_a_device_that_died_while_the_broker_was_down_is_not_a_ghost(persistent_broker: MosquittoBroker, prefix: str) -> None:
    settings = BrokerSettings(host="127.0.0.1", port=persistent_broker.port, keepalive=2, topic_prefix=prefix)
    dead, alive = device_process(persistent_broker, prefix, "dead"), device_process(persistent_broker, prefix, "alive")
    try:
        with PresenceSession(settings, org="acme", leave_grace=GRACE) as session:
            watcher = Watcher(session)
            assert watcher.wait_status("dead", "online", timeout=5) is not None
            assert watcher.wait_status("alive", "online", timeout=5) is not None
            back = die_while_the_broker_is_down(persistent_broker, dead)
            assert session.wait_synced(10)
            assert watcher.status("dead") == "online", "the broker restored the retained online"
            took = watcher.wait_status("dead", "offline", timeout=5 + GRACE + 5)
            assert took is not None, "a device that died while the broker was down stays online"
            assert time.monotonic() - back <= 5 + GRACE + 0.5
            # the live device answered the probe: never shown offline at any time
            assert "offline" not in watcher.statuses("alive")
            assert session.observer.buried == 1
    finally:
        end_process(dead)
        end_process(alive)


def test_a_watcher_that_only_lost_its_own_connection_probes_without_flicker(shared_broker: MosquittoBroker, prefix: str) -> None:
    settings = BrokerSettings(host="127.0.0.1", port=shared_broker.port, keepalive=2, topic_prefix=prefix)
    alive = device_process(shared_broker, prefix, "alive")
    try:
        with PresenceSession(settings, org="acme", leave_grace=GRACE) as session:
            watcher = Watcher(session)
            assert session.wait_synced(5) and watcher.wait_status("alive", "online", timeout=5) is not None
            session.observer._conn.socket().shutdown(socket.SHUT_RDWR)  # our own link drops, not the broker
            assert wait_for(lambda: session.observer.snapshots >= 2, timeout=5)
            assert wait_for(lambda: session.observer.probed >= 1, timeout=REANNOUNCE_WINDOW + 2)
            time.sleep(PROBE_TIMEOUT + 0.5)
            assert watcher.statuses("alive").count("offline") == 0 and session.observer.buried == 0
    finally:
        end_process(alive)
