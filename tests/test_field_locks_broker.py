"""Soft locks against a real Mosquitto (issue 13): two claims at once have one winner
that every observer sees, a claim on a held field queues, and a lock is released when
its holder leaves cleanly, is SIGKILLed (by the will), freezes (at the keepalive bound)
or dies while the broker is down (no lock stuck by a retained message after a restart
with persistence)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from bench.harness import MOSQUITTO_KEEPALIVE_SWEEP
from components import BrokerSettings, PresenceSession
from components.embedded_broker import MosquittoBroker
from components.observer import PROBE_TIMEOUT, REANNOUNCE_WINDOW

from helpers import RawSubscriber, die_while_the_broker_is_down, end_process, python_child, wait_for
from test_presence_broker import GRACE, WILL_TICK_SLACK, presence_topic, retained

pytestmark = pytest.mark.integration

ROOM = "lobby"
HOLDER = """
import sys, time
from components import BrokerSettings, PresenceSession
port, prefix, protocol, keepalive, grace, user = sys.argv[1:7]
settings = BrokerSettings(host="127.0.0.1", port=int(port), keepalive=int(keepalive), topic_prefix=prefix, protocol=protocol)
session = PresenceSession(settings, org="acme", rooms=["lobby"], leave_grace=float(grace)).start()
session.wait_synced(5)
device = session.open_device(user=user, device="d1", rooms=["lobby"])
device.wait_connected(5)
device.focus("lobby", "title", label="Title", lock=True)
print("held" if session.wait_for_lock(device, "lobby", "title", timeout=5) else "queued", flush=True)
time.sleep(120)
"""


def holder_process(settings: BrokerSettings, user: str, *, keepalive: int = 5, grace: float = GRACE):  # noqa: ANN201
    """A process whose device holds the lock of lobby/title (once this returns)."""
    proc = python_child("-c", HOLDER, str(settings.port), settings.topic_prefix, settings.protocol, str(keepalive), str(grace), user)
    line = proc.stdout.readline().strip()
    if line != "held":
        end_process(proc)
        raise AssertionError(f"the holder did not get the lock: {line!r} {proc.stderr.read()}")
    return proc


def holder_of(session: PresenceSession, field: str = "title") -> str | None:
    held = session.lock_holder(ROOM, field)
    return held.user if held else None


def seconds_until_holder(sessions: list[PresenceSession], user: str | None, *, timeout: float, field: str = "title") -> float | None:
    start = time.monotonic()
    if wait_for(lambda: all(holder_of(s, field) == user for s in sessions), timeout=timeout, interval=0.01):
        return time.monotonic() - start
    return None


def claims_on_the_wire(wire: RawSubscriber, prefix: str, field: str) -> list[tuple[int, str, str]]:
    """(claimed, device, user) of every retained live lock claim on `field`, read from the
    broker by a plain MQTT client: the rule's input, independent of the kit."""
    latest: dict[str, dict] = {}
    for topic, payload in wire.messages:
        if topic.startswith(f"{prefix}/presence/acme/"):
            latest[topic] = json.loads(payload) if payload else {}
    found = []
    for topic, doc in latest.items():
        focus = doc.get("focus")
        if doc.get("status") != "offline" and focus and focus["field"] == field and focus.get("lock"):
            _, _, _, user, device = topic.split("/")
            found.append((focus["claimed"], device, user))
    return found


def test_two_claims_at_once_have_one_winner_that_every_observer_sees(settings, make_session, prefix: str) -> None:
    wire = RawSubscriber(settings.port, f"{prefix}/presence/acme/#")
    try:
        ana_session, ben_session, watcher = make_session(), make_session(), make_session()
        assert all(s.wait_synced(5) for s in (ana_session, ben_session, watcher))
        ana = ana_session.open_device(user="ana", device="d-ana", rooms=[ROOM])
        ben = ben_session.open_device(user="ben", device="d-ben", rooms=[ROOM])
        assert ana.wait_connected(5) and ben.wait_connected(5)
        fields = [f"field{i}" for i in range(6)]
        for field in fields:
            start = threading.Barrier(2)
            claimers = [
                threading.Thread(target=lambda d=device: (start.wait(5), d.focus(ROOM, field, lock=True)))
                for device in (ana, ben)
            ]
            for thread in claimers:
                thread.start()
            for thread in claimers:
                thread.join(5)
            assert wait_for(lambda: len(claims_on_the_wire(wire, prefix, field)) == 2, timeout=5)
            (_, _, expected), _ = sorted(claims_on_the_wire(wire, prefix, field))
            late = make_session()
            observers = [ana_session, ben_session, watcher, late]
            assert late.wait_synced(5)
            took = seconds_until_holder(observers, expected, timeout=5, field=field)
            assert took is not None, f"{field}: holders {[holder_of(s, field) for s in observers]}, expected {expected}"
            assert ana_session.wait_for_lock(ana, ROOM, field, timeout=0.1) == (expected == "ana")
            assert ben_session.wait_for_lock(ben, ROOM, field, timeout=0.1) == (expected == "ben")
    finally:
        wire.close()


def test_a_claim_on_a_held_field_queues_and_takes_over_when_the_holder_leaves(settings, make_session) -> None:
    ana_session, ben_session, watcher = make_session(), make_session(), make_session()
    assert all(s.wait_synced(5) for s in (ana_session, ben_session, watcher))
    ana = ana_session.open_device(user="ana", device="d1", rooms=[ROOM])
    assert ana.wait_connected(5)
    ana.focus(ROOM, "title", lock=True)
    assert ana_session.wait_for_lock(ana, ROOM, "title", timeout=5)
    ben = ben_session.open_device(user="ben", device="d0", rooms=[ROOM])  # a lower device id: would win a tie
    assert ben.wait_connected(5)
    assert wait_for(lambda: holder_of(ben_session) == "ana", timeout=5)
    ben.focus(ROOM, "title", lock=True)
    assert wait_for(lambda: len(watcher.room_snapshot(ROOM).fields) == 2, timeout=5)
    assert holder_of(watcher) == holder_of(ben_session) == holder_of(ana_session) == "ana"
    assert ben.focused.claimed > ana.focused.claimed, "a claim on a held field queues behind the holder"
    ana.close()
    took = seconds_until_holder([watcher, ben_session], "ben", timeout=GRACE + 2)
    assert took is not None and took <= GRACE + 1, f"the lock passed after {took} s"
    ben.blur()
    assert seconds_until_holder([watcher, ben_session], None, timeout=2) is not None, "blur releases the lock"


def test_a_change_made_just_before_close_never_says_online_after_the_offline(settings, make_session) -> None:
    session = make_session(observe=False)
    for i in range(5):  # the blur's re-announce is queued; close() says offline at once
        device = session.open_device(user="quick", device=f"d{i}", rooms=[ROOM])
        assert device.wait_connected(5)
        device.focus(ROOM, "title", lock=True)
        device.blur()
        device.close()
        doc = json.loads(retained(settings, presence_topic(settings, "quick", f"d{i}")) or b"{}")
        assert doc.get("status") == "offline" and "focus" not in doc, doc


def test_a_sigkilled_holder_frees_the_lock_within_grace_plus_1s(settings, make_session) -> None:
    watcher = make_session()
    assert watcher.wait_synced(5)
    proc = holder_process(settings, "crash")
    try:
        assert wait_for(lambda: holder_of(watcher) == "crash", timeout=5)
        os.kill(proc.pid, signal.SIGKILL)
        took = seconds_until_holder([watcher], None, timeout=GRACE + 3)
    finally:
        end_process(proc)
    assert took is not None and took <= GRACE + 1 + WILL_TICK_SLACK, f"lock freed after {took} s"


def test_a_frozen_holder_frees_the_lock_within_the_keepalive_bound(shared_broker: MosquittoBroker, prefix: str) -> None:
    settings = BrokerSettings(host="127.0.0.1", port=shared_broker.port, keepalive=5, topic_prefix=prefix)
    keepalive = 2
    with PresenceSession(settings, org="acme", rooms=[ROOM], leave_grace=GRACE) as watcher:
        assert watcher.wait_synced(5)
        proc = holder_process(settings, "frozen", keepalive=keepalive)
        try:
            assert wait_for(lambda: holder_of(watcher) == "frozen", timeout=5)
            os.kill(proc.pid, signal.SIGSTOP)  # the socket stays open: only the keepalive can tell
            bound = 1.5 * keepalive + MOSQUITTO_KEEPALIVE_SWEEP + GRACE + 1
            took = seconds_until_holder([watcher], None, timeout=bound + 2)
        finally:
            end_process(proc)
    assert took is not None and took <= bound, f"lock freed after {took} s (bound {bound} s)"


def test_no_lock_is_stuck_after_a_broker_restart_by_a_holder_that_died_meanwhile(prefix: str) -> None:
    broker = MosquittoBroker(persistence=True).start()
    settings = BrokerSettings(host="127.0.0.1", port=broker.port, keepalive=2, topic_prefix=prefix)
    proc = holder_process(settings, "dead", keepalive=2, grace=1.0)
    try:
        with PresenceSession(settings, org="acme", rooms=[ROOM], leave_grace=1.0) as watcher:
            assert wait_for(lambda: holder_of(watcher) == "dead", timeout=5)
            back = die_while_the_broker_is_down(broker, proc)
            assert watcher.wait_synced(10)
            assert holder_of(watcher) == "dead", "the broker restored the retained claim"
            bound = REANNOUNCE_WINDOW + PROBE_TIMEOUT + 1
            assert seconds_until_holder([watcher], None, timeout=bound + 3) is not None, "a dead holder's lock is stuck"
            assert time.monotonic() - back <= bound
        with PresenceSession(settings, org="acme", rooms=[ROOM]) as late:
            assert late.wait_synced(5)
            assert late.room_snapshot(ROOM).fields == () and holder_of(late) is None
    finally:
        end_process(proc)
        broker.cleanup()

