"""Leases against a real Mosquitto: a presence whose will never fires is shown offline
when its lease runs out (at every watcher and for a late joiner), one retained message
per process renews every device's lease, and a live process never lapses."""

from __future__ import annotations

import json
import os
import signal
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from components.leases import CLOCK_SKEW
from components.topics import Topic, TopicScheme

from helpers import RawSubscriber, Watcher, end_process, python_child, wait_for

pytestmark = pytest.mark.integration


def ghost_client(settings, *, user: str, until: float, lease: str | None = None) -> None:
    """A kit-like device that announces a leased online and then vanishes without its
    will ever firing (a clean DISCONNECT discards it), as when the broker node holding
    the will dies together with the device's process."""
    scheme = TopicScheme(prefix=settings.topic_prefix)
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.will_set(scheme.render(Topic("presence", "acme", user, device="d1")), b'{"status":"offline","epoch":5}', qos=1, retain=True)
    client.connect("127.0.0.1", settings.port)
    client.loop_start()
    doc = {"status": "online", "epoch": 5, "since": round(time.time(), 3), "until": until}
    if lease is not None:
        doc["lease"] = lease
        owner, holder = lease.split("/")
        client.publish(scheme.render(Topic("lease", "acme", owner, device=holder)), json.dumps({"until": until}), qos=1, retain=True).wait_for_publish(5)
    client.publish(scheme.render(Topic("presence", "acme", user, device="d1")), json.dumps(doc), qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_a_presence_whose_will_never_fires_lapses_with_its_lease(settings, make_session) -> None:
    watchers = [Watcher(make_session()) for _ in range(2)]
    assert all(w.session.wait_synced(5) for w in watchers)
    until = time.time() + 3.0
    ghost_client(settings, user="ghost", until=until, lease="srv/p1")
    assert all(w.wait_status("ghost", "online", timeout=3) is not None for w in watchers)
    for watcher in watchers:
        took = watcher.wait_status("ghost", "offline", timeout=3.0 + CLOCK_SKEW + 3)
        assert took is not None, "a presence with a lapsed lease is still shown online"
        assert time.time() <= until + CLOCK_SKEW + 1.0
    assert watchers[0].session.stats().lapsed == 1
    # the watchers published the offline its will would have carried: the broker says so too
    late = make_session()
    assert late.wait_synced(5)
    assert late.snapshot().users["ghost"].status == "offline"
    held = late.state.presence.device("ghost", "d1")
    assert held.epoch == 5 and held.since == pytest.approx(until, abs=0.01)


@pytest.mark.parametrize("protocol", ["5"])  # the timing, not the protocol, is under test
def test_one_message_per_process_renews_the_lease_of_all_its_devices(settings, make_session, prefix) -> None:
    """20 devices, lease 10 s (renewed every 10/3 s) for 12 s: 4 renewals of one lease
    topic and no presence re-published, and no device ever shown offline."""
    watcher = Watcher(make_session())
    assert watcher.session.wait_synced(5)
    counter = RawSubscriber(settings.port, f"{prefix}/#")
    try:
        process = make_session(observe=False, lease=10.0)
        devices = [process.open_device(user=f"u{i}", device="tab") for i in range(20)]
        assert wait_for(lambda: all(watcher.status(f"u{i}") == "online" for i in range(20)), timeout=10)
        start = time.monotonic()
        time.sleep(12.0 - (time.monotonic() - start))
        leases = counter.topics(f"{prefix}/lease/")
        presences = counter.topics(f"{prefix}/presence/")
        assert len(set(leases)) == 1 and 3 <= len(leases) <= 5, leases
        assert len(presences) == 20, "a device re-published its presence to renew"
        assert all("offline" not in watcher.statuses(f"u{i}") for i in range(20))
        assert all(d.connected for d in devices)
    finally:
        counter.close()


def test_a_process_that_leaves_cleanly_clears_its_lease(settings, make_session, prefix) -> None:
    watcher = make_session()
    assert watcher.wait_synced(5)
    process = make_session(lease=10.0)
    process.open_device(user="ana", device="tab")
    assert wait_for(lambda: process.lease.name in watcher.state.leases.leases(), timeout=5)
    process.close(timeout=2)
    assert wait_for(lambda: process.lease.name not in watcher.state.leases.leases(), timeout=5)
    assert watcher.snapshot().users["ana"].status == "offline"


@pytest.mark.parametrize("protocol", ["5"])
def test_a_process_that_was_only_slow_comes_back_by_itself(settings, watcher: Watcher) -> None:
    """Frozen past its lease (but not past the broker's keepalive), a device is shown
    offline, and online again once it runs: it sees the offline the watchers published
    for it and re-asserts its epoch."""
    proc = python_child(
        "-m", "components", "join", "--broker", settings.url, "--org", "acme", "--user", "slow", "--device", "d1",
        "--keepalive", "60", "--lease", "10", "--protocol", settings.protocol, "--topic-prefix", settings.topic_prefix,
    )  # fmt: skip
    try:
        assert '"joined"' in proc.stdout.readline()
        assert watcher.wait_status("slow", "online", timeout=5) is not None
        epoch = watcher.session.state.presence.device("slow", "d1").epoch
        os.kill(proc.pid, signal.SIGSTOP)
        assert watcher.wait_status("slow", "offline", timeout=10 + CLOCK_SKEW + 3) is not None
        os.kill(proc.pid, signal.SIGCONT)
        assert watcher.wait_status("slow", "online", timeout=3) is not None
        assert watcher.session.state.presence.device("slow", "d1").epoch == epoch  # the same connection
    finally:
        end_process(proc)
