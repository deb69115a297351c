"""The chaos controller: runs device hosts behind a ChaosProxy, acts on them at random
round after round, and after each round settles compares every watcher with the truth.

Truth model: the controller knows which devices are alive (host running, route not
frozen). A round acts, then waits until the deadline of DESIGN.md's formulas for what
it did (KA keepalive, G leave grace, SWEEP the broker's keepalive sweep):
    SIGKILL of a host          G + 1 s
    frozen route               1.5 x KA + SWEEP + G + 1 s
    cut route (quick reconnect) the device must never be shown leaving (no flicker)
    broker restart, no persistence: every live device shown online within 5 s
    broker restart, persistence: devices killed while it was down gone within 5 s + G
Then, at every watcher and at a late joiner: no ghost (a dead device shown live), no
false offline (a live device not shown live), no typing or cursor of a dead device.
Runs on MQTT 5: on 3.1.1 there is no will delay, so a network-level reconnect can
flicker by design.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components import BrokerSettings, PresenceChanged, PresenceSession
from components.embedded_broker import MosquittoBroker
from components.lease_keeper import DEFAULT_LEASE

from .proxy import ChaosProxy

ORG = "chaos"
ROOM = "floor"
SWEEP = 6.0
"""Mosquitto 2.0 checks keepalives on a ~5 s sweep with a whole-second clock."""
REANNOUNCE = 5.0
FAILOVER_BOUND = 15.0
"""Cluster mode: a node killed until its devices are online elsewhere at every watcher;
also added to the lease for a device killed with its node (issue 14)."""
REPO = Path(__file__).resolve().parent.parent

Key = tuple[str, str]


@dataclass
class Config:
    rounds: int = 4
    soak: float = 0.0
    """When > 0: run rounds until this many seconds have passed (rounds is then a cap)."""
    devices: int = 30
    users: int = 15
    hosts: int = 5
    watchers: int = 2
    keepalive: int = 2
    grace: float = 2.0
    broker_every: int = 2
    """Every n-th round restarts the broker (alternating without and with persistence)."""
    lease: float | None = None
    """Devices' lease (None: the kit's default)."""
    capabilities: tuple[str, ...] = ()
    """Broker capabilities as NAME=VALUE (the CLI's --capability), for every session."""
    seed: int | None = None


@dataclass
class Figures:
    rounds: int = 0
    checks: int = 0
    ghosts: int = 0
    false_offlines: int = 0
    flickers: int = 0
    stale_typing: int = 0
    stale_cursors: int = 0
    host_kills: int = 0
    host_restarts: int = 0
    freezes: int = 0
    cuts: int = 0
    broker_restarts: int = 0
    broker_restarts_persistent: int = 0
    reannounce_s: list[float] = field(default_factory=list)
    """Broker back (no persistence) until every watcher showed every live device."""
    ghost_cleared_s: list[float] = field(default_factory=list)
    """Broker back (persistence) until no watcher showed a device killed while it was down."""
    node_kills: int = 0
    node_restarts: int = 0
    failover_s: list[float] = field(default_factory=list)
    """Cluster mode: a node killed until every device it held showed a new connection at every watcher."""
    lapse_s: list[float] = field(default_factory=list)
    """Cluster mode: a host killed with its devices' node until no watcher showed them."""
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def bounds_kept(self, grace: float, *, lease: float = DEFAULT_LEASE) -> bool:
        return (
            not (self.ghosts or self.false_offlines or self.flickers or self.stale_typing or self.stale_cursors)
            and all(t <= REANNOUNCE for t in self.reannounce_s)
            and all(t <= REANNOUNCE + grace for t in self.ghost_cleared_s)
            and all(t <= FAILOVER_BOUND for t in self.failover_s)
            and all(t <= lease + FAILOVER_BOUND for t in self.lapse_s)
        )

    def to_json(self) -> dict:
        return asdict(self)


class Host:
    """One device-host process (its devices, the command pipe, its pid). Each device is
    `user:device:PORT` (one proxy port each) or, with `broker`, `user:device` on that
    comma-separated URL list."""

    def __init__(self, index: int, keys: list[Key], targets: list[str], cfg: Config, prefix: str, *, broker: str | None = None) -> None:
        self.index = index
        self.keys = keys
        self.broker = broker
        self._args = [
            sys.executable, "-m", "chaos.host", "--org", ORG, "--room", ROOM, "--topic-prefix", prefix,
            "--keepalive", str(cfg.keepalive), "--leave-grace", str(cfg.grace),
            *(["--broker", broker] if broker else []), *(["--lease", str(cfg.lease)] if cfg.lease else []),
            *(arg for item in cfg.capabilities for arg in ("--capability", item)), *targets,
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(self._args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def wait_ready(self, timeout: float = 20.0) -> bool:
        assert self.proc is not None and self.proc.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        return bool(line) and line[0].strip() == "ready"

    def tell(self, command: str) -> None:
        if self.alive and self.proc and self.proc.stdin:
            try:
                self.proc.stdin.write(command + "\n")
                self.proc.stdin.flush()
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL by pid (resumed first in case it was stopped), then reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass


class Watch:
    """A watcher session plus the presence changes it was told about."""

    def __init__(self, session: PresenceSession) -> None:
        self.session = session
        self.changes: list[tuple[float, PresenceChanged]] = []
        self._lock = threading.Lock()
        session.subscribe(self._on_event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, PresenceChanged):
            with self._lock:
                self.changes.append((time.monotonic(), event))

    def changes_since(self, at: float, user: str) -> list[PresenceChanged]:
        with self._lock:
            return [e for t, e in self.changes if t >= at and e.user == user]


class Chaos:
    late_sync_wait = 10.0
    """Seconds a late joiner has to get its snapshot."""

    def __init__(self, cfg: Config, *, log=print) -> None:  # noqa: ANN001
        self.cfg = cfg
        self.log = log
        self.rng = random.Random(cfg.seed)
        self.prefix = f"c{os.getpid()}{int(time.time()) % 100000}"
        self.figures = Figures()
        self.broker = MosquittoBroker(persistence=True)
        self.proxy = ChaosProxy(self.broker.port)
        keys = [(f"u{i % cfg.users}", f"d{i}") for i in range(cfg.devices)]
        self.ports = {key: 0 for key in keys}
        self.hosts: list[Host] = []
        self.frozen: set[Key] = set()
        self.watches: list[Watch] = []

    # -- truth --------------------------------------------------------------------------------
    def host_of(self, key: Key) -> Host:
        return next(h for h in self.hosts if key in h.keys)

    def alive(self) -> set[Key]:
        return {k for h in self.hosts if h.alive for k in h.keys} - self.frozen

    @property
    def settings(self) -> BrokerSettings:
        return BrokerSettings(host="127.0.0.1", port=self.broker.port, keepalive=self.cfg.keepalive, topic_prefix=self.prefix)

    # -- lifecycle ------------------------------------------------------------------------------
    ready_wait = 20.0
    """Seconds hosts (and, halved, watchers) have to come online at the start."""

    def __enter__(self) -> Chaos:
        self.hosts, watcher_settings = self._set_up()
        for host in self.hosts:
            host.start()
        for settings in watcher_settings:
            self.watches.append(Watch(PresenceSession(settings, org=ORG, rooms=[ROOM], leave_grace=self.cfg.grace).start()))
        if not all(h.wait_ready(self.ready_wait) for h in self.hosts):
            raise RuntimeError("device hosts did not come online")
        if not all(w.session.wait_synced(self.ready_wait / 2) for w in self.watches):
            raise RuntimeError("watchers did not sync")
        self._settle_check("start", deadline=time.monotonic() + self.cfg.grace + 1)
        return self

    def _set_up(self) -> tuple[list[Host], list[BrokerSettings]]:
        """Start the broker side; the hosts to run and each watcher's settings."""
        self.broker.start()
        self.proxy.start()
        for key in self.ports:
            self.ports[key] = self.proxy.add_route(f"{key[0]}/{key[1]}")
        keys = list(self.ports)
        per = -(-len(keys) // self.cfg.hosts)
        hosts = []
        for i in range(self.cfg.hosts):
            mine = keys[i * per:(i + 1) * per]
            hosts.append(Host(i, mine, [f"{u}:{d}:{self.ports[(u, d)]}" for u, d in mine], self.cfg, self.prefix))
        return hosts, [self.settings] * self.cfg.watchers

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            host.kill()
        for watch in self.watches:
            watch.session.close(timeout=1.0)
        self._tear_down()

    def _tear_down(self) -> None:
        self.proxy.stop()
        self.broker.cleanup()

    # -- rounds -----------------------------------------------------------------------------------
    def run(self) -> Figures:
        started = time.monotonic()
        n = 0
        while n < self.cfg.rounds or (self.cfg.soak and time.monotonic() - started < self.cfg.soak):
            n += 1
            if self.cfg.soak and n > 100_000:
                break
            self.play(n)
            self.figures.rounds = n
            self.log(json.dumps({"round": n, **{k: v for k, v in self.figures.to_json().items() if isinstance(v, int)}}))
        self.figures.seconds = round(time.monotonic() - started, 1)
        return self.figures

    def play(self, n: int) -> None:
        if self.cfg.broker_every and n % self.cfg.broker_every == 0:
            self.broker_round(n, persistent=(n // self.cfg.broker_every) % 2 == 0)
        else:
            self.device_round(n)

    def device_round(self, n: int) -> None:
        cfg, rng = self.cfg, self.rng
        # the frozen come back, the killed hosts restart
        thawed = set(self.frozen)
        for key in thawed:
            self.proxy.thaw(f"{key[0]}/{key[1]}")
        self.frozen.clear()
        restarted = [h for h in self.hosts if not h.alive]
        for host in restarted:
            host.start()
            self.figures.host_restarts += 1
        for host in restarted:
            if not host.wait_ready():
                self.figures.failures.append(f"round {n}: host {host.index} did not come back")
        live_hosts = [h for h in self.hosts if h.alive]
        # typing and cursors, among them on the devices about to die
        for key in rng.sample(sorted(self.alive()), k=min(8, len(self.alive()))):
            host = self.host_of(key)
            host.tell(f"type {key[0]} {key[1]}")
            host.tell(f"cursor {key[0]} {key[1]} {rng.random():.3f} {rng.random():.3f}")
        time.sleep(0.3)  # let the signals reach the watchers before anyone dies
        touched_users: set[str] = set()
        victim = rng.choice(live_hosts) if live_hosts and not restarted else None
        if victim is not None:
            victim.kill()
            self.figures.host_kills += 1
            touched_users |= {u for u, _ in victim.keys}
        candidates = sorted(self.alive())
        rng.shuffle(candidates)
        freeze = [k for k in candidates if k[0] not in touched_users][:2]
        touched_users |= {u for u, _ in freeze}
        # cuts: users with every device alive and nothing else done to them this round
        alive = self.alive()
        whole = [k for k in candidates if k[0] not in touched_users and all(d in alive for d in self.ports if d[0] == k[0])]
        cut = []
        for key in whole:
            if len(cut) < 2 and key[0] not in {u for u, _ in cut}:
                cut.append(key)
        for key in freeze:
            self.proxy.freeze(f"{key[0]}/{key[1]}")
            self.frozen.add(key)
            self.figures.freezes += 1
        cut_at = time.monotonic()
        expected = {u: sum(1 for k in alive if k[0] == u) for u, _ in cut}
        for key in cut:
            self.proxy.cut(f"{key[0]}/{key[1]}")
            self.figures.cuts += 1
        deadline = cut_at + cfg.grace + 1
        if freeze or thawed:
            deadline = cut_at + 1.5 * cfg.keepalive + SWEEP + cfg.grace + 1
        self.log(f"round {n}: killed host {victim.index if victim else '-'}, restarted {[h.index for h in restarted]}, froze {freeze}, thawed {sorted(thawed)}, cut {cut}")
        self._settle_check(f"round {n}", deadline=deadline)
        self._count_dips(n, cut_at, expected, "after a quick reconnect")

    def _count_dips(self, n: int, since: float, expected: dict[str, int], when: str) -> None:
        """Flickers: a watcher showed one of these users with fewer live devices than
        they kept (`expected`) at some moment since `since`."""
        for watch in self.watches:
            for user, count in expected.items():
                dips = [e for e in watch.changes_since(since, user) if e.presence is None or e.presence.devices < count]
                if dips:
                    self.figures.flickers += len(dips)
                    self.figures.failures.append(f"round {n}: {user} flickered {when}: {dips}")

    def broker_round(self, n: int, *, persistent: bool) -> None:
        cfg = self.cfg
        thawed = set(self.frozen)
        for key in thawed:
            self.proxy.thaw(f"{key[0]}/{key[1]}")
        self.frozen.clear()
        for host in [h for h in self.hosts if not h.alive]:
            host.start()
            self.figures.host_restarts += 1
            host.wait_ready()
        settle = 1.5 * cfg.keepalive + SWEEP + cfg.grace + 1 if thawed else cfg.grace + 1
        self._settle_check(f"round {n} (before the broker restart)", deadline=time.monotonic() + settle)
        self.broker.save()  # on disk now: a persistent restart brings back the current state
        before = {k: self._epoch(self.watches[0], k) for k in self.ports}
        snapshots = [w.session.observer.snapshots for w in self.watches]
        self.broker.kill()
        died: set[Key] = set()
        if persistent:  # a host dies while nobody can fire its wills
            victim = self.rng.choice([h for h in self.hosts if h.alive])
            victim.kill()
            self.figures.host_kills += 1
            died = set(victim.keys)
        else:
            for name in ("mosquitto.db", "mosquitto.db.new"):
                (self.broker.dir / name).unlink(missing_ok=True)
        time.sleep(0.3)
        self.broker.start()
        back = time.monotonic()
        self.figures.broker_restarts += 1
        self.figures.broker_restarts_persistent += persistent
        self.log(f"round {n}: broker restarted {'with' if persistent else 'without'} persistence; died while down: {sorted(died)}")
        limit = REANNOUNCE + cfg.grace + 3
        while time.monotonic() - back < limit:
            if persistent and not any(self._shown_live(w, k) for w in self.watches for k in died):
                self.figures.ghost_cleared_s.append(round(time.monotonic() - back, 2))
                break
            resynced = all(w.session.synced and w.session.observer.snapshots > seen for w, seen in zip(self.watches, snapshots))
            if not persistent and resynced and all(self._shown_live(w, k) and self._epoch(w, k) > before[k] for w in self.watches for k in self.alive()):
                self.figures.reannounce_s.append(round(time.monotonic() - back, 2))
                break
            time.sleep(0.05)
        else:
            what = "devices killed while the broker was down still shown" if persistent else "live devices not re-announced"
            self.figures.failures.append(f"round {n}: {what} {limit:.0f} s after the broker came back")
            (self.figures.ghost_cleared_s if persistent else self.figures.reannounce_s).append(float(limit))
        self._settle_check(f"round {n}", deadline=back + REANNOUNCE + cfg.grace + 1)

    # -- checking ---------------------------------------------------------------------------------
    @staticmethod
    def _epoch(watch: Watch, key: Key) -> int:
        with watch.session._lock:
            held = watch.session.state.presence.device(*key)
        return held.epoch if held is not None else -1

    @staticmethod
    def _shown_live(watch: Watch, key: Key) -> bool:
        with watch.session._lock:
            held = watch.session.state.presence.device(*key)
        return held is not None and held.live

    def _settle_check(self, label: str, *, deadline: float) -> None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        alive = self.alive()
        alive_users = {u for u, _ in alive}
        late = PresenceSession(self.settings, org=ORG, rooms=[ROOM], leave_grace=self.cfg.grace).start()
        try:
            if not late.wait_synced(self.late_sync_wait):
                self.figures.failures.append(f"{label}: a late joiner did not sync")
            for name, session in [*((f"watcher {i}", w.session) for i, w in enumerate(self.watches)), ("late joiner", late)]:
                self.figures.checks += 1
                with session._lock:
                    shown = {(u, d.device) for u, d in session.state.presence.devices() if d.live}
                    room = session.state.room_snapshots()[ROOM]
                ghosts, missing = shown - alive, alive - shown
                stale_typing = [u for u in room.typists if u not in alive_users]
                stale_cursors = [k for k in room.cursors if k not in alive]
                self.figures.ghosts += len(ghosts)
                self.figures.false_offlines += len(missing)
                self.figures.stale_typing += len(stale_typing)
                self.figures.stale_cursors += len(stale_cursors)
                if ghosts or missing or stale_typing or stale_cursors:
                    self.figures.failures.append(
                        f"{label}: {name}: ghosts {sorted(ghosts)}, false offline {sorted(missing)}, typing {stale_typing}, cursors {stale_cursors}"
                    )
        finally:
            late.close(timeout=1.0)


def run(cfg: Config, *, log=print) -> Figures:  # noqa: ANN001
    with Chaos(cfg, log=log) as chaos:
        return chaos.run()
