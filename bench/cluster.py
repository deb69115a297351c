"""Row 1 on a broker cluster: the same crash detection as detection.py (SIGKILL, SIGSTOP)
on a 3-node NATS JetStream cluster, devices on node 0 and watchers on nodes 1 and 2, so
every will and every offline crosses nodes; and what only a cluster has: a device
killed together with its node, whose will dies with the node, shown offline by its
lease. NATS 2.9 speaks MQTT 3.1.1: no will delay, so a crash shows offline at once."""

from __future__ import annotations

import os
import signal
import time
import uuid

from components import BrokerSettings, PresenceSession
from components.capabilities import BrokerCapabilities
from components.leases import CLOCK_SKEW

from .brokers import NatsCluster, nats_binary
from .context import Bench
from .detection import GRACE, KEEPALIVE, WATCHERS, detection_line, measure, offline_seconds
from .harness import Watcher, end_process, join_process, wait_for
from .report import Line, Section, fmt, median, spread, verdict

ORG = "det"
LEASE = 10.0
NATS = BrokerCapabilities(qos1_subscriptions=False, qos1_publishes=False)  # docs/BROKERS.md
FAILOVER_BOUND = 15.0


def _settings(cluster: NatsCluster, node: int, prefix: str) -> BrokerSettings:
    urls = cluster.urls[node:] + cluster.urls[:node]
    return BrokerSettings.from_url(urls, keepalive=KEEPALIVE, topic_prefix=prefix, capabilities=NATS)


def run(bench: Bench) -> Section:
    section = Section("Row 1 on a NATS cluster: crash detection across nodes")
    if nats_binary() is None:
        section.error = "nats-server is not installed (apt-get install nats-server)"
        return section
    runs = 1 if bench.quick else 5
    cluster = NatsCluster(3).start()
    sessions: list[PresenceSession] = []
    try:
        prefix = f"b1n{uuid.uuid4().hex[:6]}"
        sessions = [PresenceSession(_settings(cluster, node, prefix), org=ORG, rooms=["lobby"]).start() for node in (1, 2)]
        if not all(s.wait_synced(20) for s in sessions):
            raise TimeoutError("watchers did not sync")
        watchers = [Watcher(s) for s in sessions]
        devices = _settings(cluster, 0, prefix)
        for row, signum, what, stagger in [
            ("1 NATS SIGKILL", signal.SIGKILL, "crash on a NATS cluster: SIGKILL (will fired by the device's node, no will delay on 3.1.1)", 0.7),
            ("1 NATS SIGSTOP", signal.SIGSTOP, "crash on a NATS cluster: SIGSTOP (socket open and silent; the node's keepalive check)", 1.3),
        ]:
            times = measure(devices, watchers, signum, runs, stagger=stagger)
            section.lines.append(detection_line(row, f"{what}, device on node 0 until {WATCHERS} watchers on nodes 1 and 2 show offline (KA {KEEPALIVE} s)", times, signum.name))
        section.lines.append(_node_and_process(bench, cluster, devices, watchers))
    finally:
        for session in sessions:
            session.close(timeout=1.0)
        cluster.cleanup()
    section.notes += [
        "Devices connect to node 0 first, each watcher to another node, with the whole URL list; NATS 2.9 refuses MQTT 5, which the kit detects, so these are MQTT 3.1.1 connections: a will fires as soon as the node notices the death (no will delay, so a reconnect of a device whose node lives shows a short offline on 3.1.1).",
        "Subscriptions and publishes at QoS 0 (`qos1_subscriptions: false`, `qos1_publishes: false`, as docs/BROKERS.md says for NATS): a NATS QoS 1 subscription is a JetStream consumer, which stalls for a minute or more when the node leading it dies, and a QoS 1 publish is a JetStream store, whose timeout closes the publisher's connection.",
        f"`1 NATS node+process`: the device's process and node 0 are killed together, so no will can fire; watchers show it offline when its lease (here {fmt(LEASE)} s, the default is 60 s) runs out, at most lease + {fmt(CLOCK_SKEW)} s after the last renewal. One kill per run, then node 0 restarts; full run only.",
    ]
    return section


def _node_and_process(bench: Bench, cluster: NatsCluster, devices: BrokerSettings, watchers: list[Watcher]) -> Line:
    what = f"a device killed together with its node (no will can fire), until {WATCHERS} watchers on other nodes show offline: the lease ({fmt(LEASE)} s)"
    bound = LEASE + FAILOVER_BOUND
    goal = f"max <= lease + {fmt(FAILOVER_BOUND)} s = {fmt(bound)} s"
    if bench.quick:
        return Line("1 NATS node+process", what, None, "s", "full run only", "issue 14: lease + 15 s", None, goal, "")
    times = []
    for run_index in range(3):
        user = f"ghost-{run_index}-{uuid.uuid4().hex[:4]}"
        proc = join_process(devices, user=user, device="d", org=ORG, keepalive=KEEPALIVE, grace=GRACE, lease=LEASE)
        try:
            if not all(wait_for(lambda w=w: w.status(user) == "online", timeout=10) for w in watchers):
                raise TimeoutError(f"{user} never showed online")
            time.sleep(run_index * 1.7 % LEASE)  # different phases against the renewal interval
            hit = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            cluster.kill(0)
            wait_for(lambda: offline_seconds(watchers, user, hit) is not None, timeout=bound + 5, interval=0.05)
            took = offline_seconds(watchers, user, hit)
            if took is None:
                raise TimeoutError(f"{user} still shown online {bound + 5:.0f} s after it and its node died")
            times.append(took)
        finally:
            end_process(proc)
            cluster.restart(0)
    worst = max(times)
    return Line(
        "1 NATS node+process", what, median(times), "s", f"max {fmt(worst)} s; {spread(times, 's')}",
        "issue 14: lease + 15 s; without a lease: never (a ghost)", None, goal, verdict(worst <= bound, why_not=f"max {fmt(worst)} s > {fmt(bound)} s"),
    )  # fmt: skip
