"""Chaos on a broker cluster: `python -m chaos --cluster`.

A 3-node NATS JetStream cluster with MQTT (bench/brokers.py), device hosts that each
start on a different node with the whole URL list, and one watcher per node. Rounds
cycle through three faults (victims chosen at random):
    node       SIGKILL one node: every device it held fails over and is online
               elsewhere at every watcher within FAILOVER_BOUND, never shown leaving
    host+node  SIGKILL a host and the node that holds most of its devices, together:
               those wills die with the node, so the lease bounds them: gone at every
               watcher within lease + FAILOVER_BOUND; the other devices never dip
    host       SIGKILL a host alone: its wills fire, offline within G + 1 s (MQTT 3.1.1,
               no will delay: at once)
Killed nodes and hosts come back at the start of the next round. After each round the
watchers and a late joiner on a random node are compared with the truth (no ghost, no
false offline, no stale typing or cursor), as in controller.py, and the devices of
live hosts must not have dipped (no flicker). Which node holds a device is read from
each node's `/connz` (client ids are `org:user:device:epoch`).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import replace

from bench.brokers import NatsCluster
from components import BrokerSettings
from components.capabilities import BrokerCapabilities
from components.lease_keeper import DEFAULT_LEASE
from components.leases import CLOCK_SKEW

from .controller import FAILOVER_BOUND, Chaos, Config, Figures, Host, Key, Watch

NODES = 3
CLUSTER_LEASE = 20.0
"""The devices' lease in cluster runs: longer than a NATS failover (4-12 s measured),
short enough that a host+node round takes half a minute, not one."""
KINDS = ("node", "host+node", "host")
NATS_CAPABILITIES = ("qos1_subscriptions=false", "qos1_publishes=false")
"""docs/BROKERS.md: a NATS QoS 1 subscription is a JetStream consumer, which stalls for a
minute or more after the node leading it dies; QoS 0 is plain NATS delivery."""


class ClusterChaos(Chaos):
    late_sync_wait = 30.0  # with a node down, NATS takes 1-12 s (measured) to serve a new snapshot
    def __init__(self, cfg: Config, *, log=print) -> None:  # noqa: ANN001
        cfg = replace(cfg, capabilities=cfg.capabilities or NATS_CAPABILITIES)
        self.cfg = cfg
        self.log = log
        self.rng = random.Random(cfg.seed)
        self.prefix = f"k{os.getpid()}{int(time.time()) % 100000}"
        self.figures = Figures()
        self.cluster = NatsCluster(NODES)
        self.keys: list[Key] = [(f"u{i % cfg.users}", f"d{i}") for i in range(cfg.devices)]
        self.hosts: list[Host] = []
        self.frozen: set[Key] = set()
        self.watches: list[Watch] = []
        self.lease = cfg.lease or DEFAULT_LEASE

    def urls_from(self, node: int) -> list[str]:
        return self.cluster.urls[node:] + self.cluster.urls[:node]

    def settings_from(self, node: int) -> BrokerSettings:
        return BrokerSettings.from_url(
            self.urls_from(node), keepalive=self.cfg.keepalive, topic_prefix=self.prefix,
            capabilities=BrokerCapabilities.parse(list(self.cfg.capabilities)),
        )  # fmt: skip

    @property
    def settings(self) -> BrokerSettings:
        """A late joiner's: the list from a random live node."""
        live = [i for i in range(NODES) if self.cluster.alive(i)]
        return self.settings_from(self.rng.choice(live))

    # -- lifecycle ------------------------------------------------------------------------------
    ready_wait = 30.0

    def _set_up(self) -> tuple[list[Host], list[BrokerSettings]]:
        self.cluster.start()
        per = -(-len(self.keys) // self.cfg.hosts)
        hosts = []
        for i in range(self.cfg.hosts):
            mine = self.keys[i * per:(i + 1) * per]
            urls = ",".join(self.urls_from(i % NODES))
            hosts.append(Host(i, mine, [f"{u}:{d}" for u, d in mine], self.cfg, self.prefix, broker=urls))
        return hosts, [self.settings_from(node) for node in range(NODES)]

    def _tear_down(self) -> None:
        self.cluster.cleanup()

    def play(self, n: int) -> None:
        self.cluster_round(n, KINDS[(n - 1) % len(KINDS)])

    def run(self) -> Figures:
        """The rounds, then every node and host back and one more check: whatever NATS
        did meanwhile, the state must then be exact everywhere."""
        figures = super().run()
        self._recover()
        time.sleep(1.0)
        self._settle_check("after the last round (recovered)", deadline=time.monotonic() + self.cfg.grace + 1)
        return figures

    def _recover(self) -> None:
        """Nodes and hosts killed last round come back."""
        for node in range(NODES):
            if not self.cluster.alive(node):
                self.cluster.restart(node)
                self.figures.node_restarts += 1
        restarted = [h for h in self.hosts if not h.alive]
        for host in restarted:
            host.start()
            self.figures.host_restarts += 1
        for host in restarted:
            if not host.wait_ready(30):
                self.figures.failures.append(f"host {host.index} did not come back")

    def where(self) -> dict[Key, int]:
        """The node each device's connection is on now."""
        found: dict[Key, int] = {}
        devices = set(self.keys)
        for node in range(NODES):
            if self.cluster.alive(node):
                for client_id in self.cluster.mqtt_clients(node):
                    parts = client_id.split(":")
                    if len(parts) == 4 and (parts[1], parts[2]) in devices:  # not the watchers'
                        found[(parts[1], parts[2])] = node
        return found

    def cluster_round(self, n: int, kind: str) -> None:
        self._recover()
        time.sleep(1.0)  # the recovered devices' announcements reach every watcher
        self._settle_check(f"round {n} (recovered)", deadline=time.monotonic() + self.cfg.grace + 1)
        for key in self.rng.sample(sorted(self.alive()), k=min(4, len(self.alive()))):
            host = self.host_of(key)
            host.tell(f"type {key[0]} {key[1]}")
            host.tell(f"cursor {key[0]} {key[1]} {self.rng.random():.3f} {self.rng.random():.3f}")
        time.sleep(0.3)
        located = self.where()
        epochs = {key: self._epoch(self.watches[0], key) for key in self.keys}
        victim: Host | None = None
        node: int | None = None
        if kind in ("host+node", "host"):
            victim = self.rng.choice(self.hosts)
        if kind == "node":
            node = self.rng.randrange(NODES)
        elif kind == "host+node":
            assert victim is not None
            held = Counter(located[k] for k in victim.keys if k in located)
            node = held.most_common(1)[0][0] if held else self.rng.randrange(NODES)
        moved = {k for k, at in located.items() if at == node and (victim is None or k not in victim.keys)}
        alive_before = {u for u, _ in self.alive()} - ({u for u, _ in victim.keys} if victim else set())
        counts = {u: sum(1 for k in self.alive() if k[0] == u and (victim is None or k not in victim.keys)) for u in alive_before}
        hit = time.monotonic()
        if victim is not None:
            victim.kill()
            self.figures.host_kills += 1
        if node is not None:
            self.cluster.kill(node)
            self.figures.node_kills += 1
        self.log(f"round {n}: {kind}: killed host {victim.index if victim else '-'}, node {node if node is not None else '-'}; {len(moved)} devices to fail over")
        if moved:
            self._wait("failover", hit, lambda: all(self._shown_live(w, k) and self._epoch(w, k) > epochs[k] for w in self.watches for k in moved), FAILOVER_BOUND, self.figures.failover_s, n)
        if kind == "host+node":
            assert victim is not None
            self._wait("lapse", hit, lambda: not any(self._shown_live(w, k) for w in self.watches for k in victim.keys), self.lease + FAILOVER_BOUND, self.figures.lapse_s, n)
        # a host killed with its node: the late joiner checks once the lease alone has
        # run out (the offlines watchers published may reach other nodes later)
        deadline = hit + {"host": self.cfg.grace + 1, "host+node": self.lease + CLOCK_SKEW + 1}.get(kind, 0)
        self._settle_check(f"round {n}", deadline=deadline)
        self._count_dips(n, hit, counts, f"during a {kind} round")

    def _wait(self, what: str, since: float, done, bound: float, record: list[float], n: int) -> None:  # noqa: ANN001
        limit = bound + 5
        while time.monotonic() - since < limit:
            if done():
                record.append(round(time.monotonic() - since, 2))
                return
            time.sleep(0.05)
        record.append(round(limit, 2))
        self.figures.failures.append(f"round {n}: {what} not done {limit:.0f} s after the kill")


def run_cluster(cfg: Config, *, log=print) -> Figures:  # noqa: ANN001
    with ClusterChaos(cfg, log=log) as chaos:
        return chaos.run()
