"""Rows 1 and 2: how long until every watcher shows a device offline, when its process
is killed (SIGKILL: the socket closes, the broker fires the will), frozen (SIGSTOP:
the socket stays open and silent, as on a lost network, so only the broker's keepalive
check notices), or leaves cleanly (SIGTERM: the device publishes offline itself).

Devices are real `python -m components join` processes with keepalive 2 s and leave
grace 2 s; the watchers are observer sessions in this process. Runs of one kind are
started a little apart and measured in parallel, so a slow kind (SIGSTOP) takes one
deadline, not five, and their phases against the broker's keepalive sweep differ."""

from __future__ import annotations

import os
import signal
import time
import uuid

from components import BrokerSettings, PresenceSession

from .context import Bench
from .harness import MOSQUITTO_KEEPALIVE_SWEEP, Watcher, end_process, join_process, wait_for
from .report import Line, Section, fmt, median, spread, verdict

ORG = "det"
KEEPALIVE = 2
GRACE = 2.0
SWEEP = MOSQUITTO_KEEPALIVE_SWEEP
WATCHERS = 2
ANCHORS = "Ably 15 s, Yjs 30 s, Phoenix 60 s"
ABLY = 15.0

BOUNDS = {
    "SIGKILL": GRACE + 1,
    "SIGSTOP": 1.5 * KEEPALIVE + SWEEP + GRACE + 1,
    "SIGTERM": GRACE + 1,
}
BOUND_TEXT = {
    "SIGKILL": f"G + 1 s = {fmt(BOUNDS['SIGKILL'])} s",
    "SIGSTOP": f"1.5 x KA + sweep + G + 1 s = {fmt(BOUNDS['SIGSTOP'])} s",
    "SIGTERM": f"G + 1 s = {fmt(BOUNDS['SIGTERM'])} s",
}


def offline_seconds(watchers: list[Watcher], user: str, since: float) -> float | None:
    """Seconds from `since` until the last of the watchers recorded `user` offline."""
    times = []
    for watcher in watchers:
        seen = [s.at for s in list(watcher.history) if s.user == user and s.at >= since and s.presence is not None and s.presence.status == "offline"]
        if not seen:
            return None
        times.append(min(seen) - since)
    return max(times)


def measure(settings: BrokerSettings, watchers: list[Watcher], signum: signal.Signals, runs: int, *, stagger: float) -> list[float]:
    """Start `runs` devices, hit each with `signum` `stagger` seconds apart, and time
    each until every watcher shows it offline."""
    tag = uuid.uuid4().hex[:6]
    users = [f"{signum.name.lower()}-{tag}-{i}" for i in range(runs)]
    procs = [join_process(settings, user=u, device="d", org=ORG, keepalive=KEEPALIVE, grace=GRACE) for u in users]
    try:
        for user in users:
            if not all(wait_for(lambda w=w: w.status(user) == "online", timeout=10) for w in watchers):
                raise TimeoutError(f"{user} never showed online")
        hit: dict[str, float] = {}
        for user, proc in zip(users, procs):
            hit[user] = time.monotonic()
            os.kill(proc.pid, signum)
            time.sleep(stagger)
        deadline = BOUNDS[signum.name] * 2 + 10
        wait_for(lambda: all(offline_seconds(watchers, u, hit[u]) is not None for u in users), timeout=deadline, interval=0.05)
        results = [offline_seconds(watchers, u, hit[u]) for u in users]
        missing = [u for u, r in zip(users, results) if r is None]
        if missing:
            raise TimeoutError(f"{len(missing)} of {runs} {signum.name} devices not offline after {deadline:.0f} s")
        return [r for r in results if r is not None]
    finally:
        for proc in procs:
            end_process(proc)


def detection_line(row: str, what: str, times: list[float], kind: str) -> Line:
    """A detection row: median, max and spread against its bound (and, for crashes,
    the anchors)."""
    worst, bound = max(times), BOUNDS[kind]
    crash = row.startswith("1")
    return Line(
        row,
        what,
        median(times),
        "s",
        f"max {fmt(worst)} s; {spread(times, 's')}",
        f"bound {BOUND_TEXT[kind]}; anchors {ANCHORS} (ratio to Ably)" if crash else f"bound {BOUND_TEXT[kind]}",
        median(times) / ABLY if crash else None,
        f"max <= {fmt(bound)} s",
        verdict(worst <= bound, why_not=f"max {fmt(worst)} s > {fmt(bound)} s"),
    )


def run(bench: Bench) -> Section:
    section = Section("Rows 1 and 2: crash detection and graceful leave")
    runs = 1 if bench.quick else 5
    settings = bench.settings(prefix="b1", keepalive=KEEPALIVE)
    sessions = [PresenceSession(settings, org=ORG, rooms=["lobby"]).start() for _ in range(WATCHERS)]
    try:
        if not all(s.wait_synced(10) for s in sessions):
            raise TimeoutError("watchers did not sync")
        watchers = [Watcher(s) for s in sessions]
        kinds = [
            ("1 SIGKILL", signal.SIGKILL, "crash: device process killed with SIGKILL (socket closes; will, delayed by G on MQTT 5)", 0.7),
            ("1 SIGSTOP", signal.SIGSTOP, "crash: device process frozen with SIGSTOP (socket open and silent; broker keepalive)", 1.3),
            ("2 leave", signal.SIGTERM, "graceful leave: SIGTERM, the device publishes offline and disconnects", 0.3),
        ]
        for row, signum, what, stagger in kinds:
            times = measure(settings, watchers, signum, runs, stagger=stagger)
            section.lines.append(detection_line(row, f"{what}, until all {WATCHERS} watchers show offline (KA {KEEPALIVE} s, G {fmt(GRACE)} s)", times, signum.name))
    finally:
        for session in sessions:
            session.close(timeout=1.0)
    section.notes += [
        f"The MQTT 5 will carries a Will Delay of G = {fmt(GRACE)} s (the grace applied once, by the broker, for a crash), so a SIGKILL shows offline after about G: the broker notices the closed socket at once and waits out the delay. Mosquitto 2.0 fires a delayed will on its first whole-second tick strictly after the delay (src/will_delay.c), so G = 2 s becomes (2, 3] s and the max can sit a few milliseconds over G + 1 s; a shorter Will Delay would close that gap but let a reconnect inside G flicker, which guarantee 4 forbids.",
        f"A frozen process is noticed by the broker's keepalive check (1.5 x KA = {fmt(1.5 * KEEPALIVE)} s, checked by Mosquitto 2.0.11 on a 5 s sweep with a whole-second clock, so up to {fmt(SWEEP)} s late), then the will delay G: that sweep is the physical floor and the spread comes from its phase.",
        "A clean leave publishes offline (QoS 1, retained) and waits for the broker's ack before DISCONNECT; no grace is added for a device that leaves by itself (the bridge adds G for a closed browser tab, measured in row 5's notes as `2 tab close`).",
    ]
    return section
