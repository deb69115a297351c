"""Row 6, scale in one process: N devices (tabs) and the observer in one server process.
Threads, resident memory per device, broker connections and subscriptions.

The devices live in a child process (`python -m bench.scale --port P --devices N`) so
its thread count and memory are the session's alone; it prints its figures as JSON once
every device is online, then holds them until told to close, while the parent reads the
broker's own `$SYS` counters (connections and subscriptions, as the difference between up and after the child closed)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time

from components import BrokerSettings, PresenceSession

from .bare import SysReader
from .context import Bench
from .harness import end_process, python_child
from .report import Line, Section, fmt

ORG = "scale"


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(port: int, devices: int, prefix: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, devices * 2 + 256)), hard))
    settings = BrokerSettings(host="127.0.0.1", port=port, topic_prefix=prefix)
    threads_before, rss_before = threading.active_count(), _status_kb("VmRSS")
    start = time.monotonic()
    session = PresenceSession(settings, org=ORG, rooms=["lobby"]).start()
    opened = [session.open_device(user=f"u{i}", device="tab", name=f"User {i}") for i in range(devices)]
    deadline = time.monotonic() + 60 + devices / 10
    while time.monotonic() < deadline and not (all(d.connected for d in opened) and session.synced and len(session.state.users()) == devices):
        time.sleep(0.05)
    online = sum(d.connected for d in opened)
    took = time.monotonic() - start
    print(json.dumps({
        "devices": devices,
        "online": online,
        "seen": len(session.state.users()),
        "seconds": took,
        "threads": threading.active_count() - threads_before,
        "thread_names": sorted({t.name.rstrip("0123456789_-") for t in threading.enumerate()}),
        "rss_kb": _status_kb("VmRSS") - rss_before,
        "os_threads": _status_kb("Threads"),
        "connections": session.network.connection_count,
        # what the session asked the broker for: one own-topic filter per device, and
        # the observer's live filters (its snapshot filters are gone once synced)
        "subscriptions": sum(1 for d in opened if d.connected) + len(session.observer._live_subscriptions()),
    }), flush=True)
    sys.stdin.readline()  # hold every device until the parent has read the broker's counters
    session.close(timeout=5.0)


def _settled(sys_reader: SysReader, counters: tuple[str, ...]) -> dict[str, float]:
    """The broker's counters after two full $SYS periods (1 s each) from now, so that
    connections and subscriptions that just came or went are in them."""
    time.sleep(2.2)
    return {k: sys_reader.number(k) or 0 for k in counters}


def measure(bench: Bench, devices: int, sys_reader: SysReader) -> dict:
    settings = bench.settings(prefix=f"b6n{devices}")
    counters = ("clients/connected", "subscriptions/count")
    proc = python_child("-m", "bench.scale", "--port", str(settings.port), "--devices", str(devices), "--prefix", settings.topic_prefix, stdin=subprocess.PIPE)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"the scale child died: {proc.stderr.read()[-1500:] if proc.stderr else ''}")
        figures = json.loads(line)
        up = _settled(sys_reader, counters)
        started = time.monotonic()
        _, errors = proc.communicate("close\n", timeout=60)
        figures["close_seconds"] = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"the scale child failed: {errors[-1500:]}")
        down = _settled(sys_reader, counters)
        # against the broker once the child has gone: steadier than before it came,
        # when the previous row's clients may still be leaving
        figures["broker_connections"] = up["clients/connected"] - down["clients/connected"]
        figures["broker_subscriptions"] = up["subscriptions/count"] - down["subscriptions/count"]
    finally:
        end_process(proc)
    return figures


def run(bench: Bench) -> Section:
    section = Section("Row 6: scale in one process")
    sizes = (200,) if bench.quick else (200, 1000)
    sys_reader = SysReader(bench.settings(prefix="b6"))
    try:
        results = [measure(bench, n, sys_reader) for n in sizes]
    finally:
        sys_reader.close()
    for r in results:
        n = r["devices"]
        ok_threads = r["threads"] <= 4
        section.lines += [
            Line(f"6 n={n} threads", f"threads added by the session with {n:,} devices + observer ({r['online']:,} online, all seen by the observer: {r['seen'] == n})", r["threads"], "threads", f"{r['os_threads']} OS threads in the process", "one thread per device would be " + f"{n:,}", None, "<= 4 (network, dispatcher, 2 connectors)", "met" if ok_threads else f"not met: {r['threads']} threads"),
            Line(f"6 n={n} memory", "resident memory per device (VmRSS delta / devices)", r["rss_kb"] / n, "KiB", f"{fmt(r['rss_kb'] / 1024)} MiB in all; online in {fmt(r['seconds'])} s, all closed cleanly in {fmt(r['close_seconds'])} s", "", None, "(information)", ""),
            Line(f"6 n={n} connections", "broker connections ($SYS/broker/clients/connected, up less after close)", r["broker_connections"], "connections", f"session's own count: {r['connections']}", f"{n:,} devices + 1 observer = {n + 1:,}", None, f"= {n + 1:,} (one will each)", "met" if r["broker_connections"] == n + 1 else f"not met: {fmt(r['broker_connections'])}"),
            Line(f"6 n={n} subscriptions", "subscriptions the session holds on the broker (own topic per device + observer's live filters)", r["subscriptions"], "subscriptions", f"broker's $SYS subscriptions/count, up less after close: {fmt(r['broker_subscriptions'])} (Mosquitto drops a gone client's entries lazily, so this delta undercounts)", f"{n:,} device filters + {r['subscriptions'] - n} observer filters", None, "(information)", ""),
        ]
    section.notes += [
        "Every device has its own MQTT connection, because each must carry its own will; all of them share one network thread (paho's external loop API), so threads stay constant as devices grow.",
        "Each device subscribes to its own presence topic (guarantee 3: re-assert when a stale will overwrites it); the observer holds the org's live filters (its snapshot filters are dropped once the snapshot is complete). Thread names seen: listed in the JSON of `python -m bench.scale`.",
    ]
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    child(args.port, args.devices, args.prefix)
