"""Row 9, big org: what one tab costs in an org of 10,000 retained users (issue 11).

The org's users are retained on the bench's broker, spread over 100 rooms. Simulated
tabs (WebSockets from this process, speaking the tab protocol) join a real `streamlit
run` server, each showing one room the way the demo page does (a presence list, the
chat panel, typing, cursors, reactions, receipts). Measured, each beside the broadcast
design this kit had before rooms on demand (the same server code at BASELINE, checked
out from git into a scratch folder):

- join: bytes and seconds from the socket opening until the tab holds what it shows
  (p50/p95), with 100 tabs joining at once, into rooms nobody showed before (the server
  subscribes to each) and into rooms it watches already;
- churn: a publisher flips 100 org members a second (each in their own room); frames
  and bytes each tab receives a second, and the server process's CPU, at 100 and at
  1,000 tabs.

The broadcast baseline sends every tab the whole org at join and every org change after;
at 1,000 tabs it cannot keep up, so its join is capped in time and reported as far as it
got.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from .context import Bench
from .cursor_path import cpu_seconds
from .harness import REPO, ALL_PARTS, StreamlitServer, checkout, tab_messages, tab_token
from .report import Line, Section, fmt, median, percentile, verdict

BASELINE = "0ee242f"
"""The last commit of the broadcast design (every tab gets the whole org)."""
ORG = "bigorg"
PREFIX = "bigorg"
"""The row's own topic prefix on the bench broker."""
JOIN_GOAL_BYTES, JOIN_GOAL_P95 = 64 * 1024, 0.25
CHURN_GOAL_FRAMES = 2.0
CPU_GOAL = 1.0


@dataclass(frozen=True)
class Scale:
    users: int
    rooms: int
    levels: tuple[int, ...]
    joining: int
    churn: int
    """Org presence changes a second."""
    window: float
    baseline: bool


FULL = Scale(users=10_000, rooms=100, levels=(100, 1000), joining=100, churn=100, window=10.0, baseline=True)
QUICK = Scale(users=1_000, rooms=25, levels=(20,), joining=20, churn=50, window=2.0, baseline=False)


def app_text(scale: Scale, *, design: str) -> str:
    """The app file of each design (the broadcast design sends every tab the whole org,
    whatever room it shows: its tabs show the fixed room)."""
    on_demand = "rooms_on_demand: {allow: ['r[0-9]+']}\n" if design == "rooms" else ""
    return (
        f"version: 1\nbroker: {{keepalive: 30, leave_grace: 1, topic_prefix: {PREFIX}}}\norg: {ORG}\nrooms: [lobby]\n{on_demand}limits: {{sockets_per_address: 5000}}\n"
        "identity: {source: query_param}\nwidgets:\n  - type: presence_list\n    counter_above: 30\n"
        "  - type: chat_panel\n  - type: cursor_overlay\n  - type: reactions\n"
    )


def publish_org(bench: Bench, scale: Scale) -> None:
    """The org's users, retained: a third online, a third away, a third offline."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", bench.broker.port)
    client.loop_start()
    now = time.time()
    info = None
    for i in range(scale.users):
        doc = {"status": ("online", "away", "offline")[i % 3], "epoch": int(now * 1000), "since": round(now - i, 3), "name": f"Person {i}", "rooms": [f"r{i % scale.rooms}"]}
        info = client.publish(f"{PREFIX}/presence/{ORG}/u{i:05}/d", json.dumps(doc), qos=1, retain=True)
    if info is not None:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


class Churn:
    """`rate` org members a second flip between online and away, on a thread."""

    def __init__(self, bench: Bench, scale: Scale) -> None:
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.connect("127.0.0.1", bench.broker.port)
        self._client.loop_start()
        self._scale = scale
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-churn", daemon=True)
        self.sent = 0

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.loop_stop()
        self._client.disconnect()

    def _run(self) -> None:
        rng = random.Random(9)
        start, epoch = time.perf_counter(), int(time.time() * 1000) + 1
        while not self._stop.is_set():
            i = rng.randrange(self._scale.users)
            epoch += 1
            doc = {"status": rng.choice(("online", "away")), "epoch": epoch, "since": round(time.time(), 3), "name": f"Person {i}", "rooms": [f"r{i % self._scale.rooms}"]}
            self._client.publish(f"{PREFIX}/presence/{ORG}/u{i:05}/d", json.dumps(doc), qos=0, retain=True)
            self.sent += 1
            wait = start + self.sent / self._scale.churn - time.perf_counter()
            if wait > 0:
                self._stop.wait(wait)


@dataclass
class Tab:
    """A simulated tab: the room it shows, and what it received."""

    room: str
    user: str
    design: str
    frames: int = 0
    bytes: int = 0
    joined_bytes: int = 0
    join_seconds: float | None = None
    socket: object = None
    seen: set[str] = field(default_factory=set)

    def hello(self) -> str:
        if self.design == "rooms":
            watch = {"presence": [{"room": self.room, "limit": 50}], "rooms": {self.room: ALL_PARTS}}
            return json.dumps({"t": "hello", "tokens": [tab_token(user=self.user, org=ORG, rooms=(self.room,))], "device": "tab", "watch": watch})
        # the broadcast design's hello: one token (the baseline ignores the rooms in it)
        return json.dumps({"t": "hello", "token": tab_token(user=self.user, org=ORG), "device": "tab"})

    def ready(self, kind: str) -> bool:
        self.seen.add(kind)
        return {"people", "room"} <= self.seen if self.design == "rooms" else "snapshot" in self.seen

    async def run(self, url: str, opened: asyncio.Event, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect  # noqa: PLC0415 - a test extra

        start = time.perf_counter()
        async with connect(url, open_timeout=120, max_size=None, max_queue=None) as socket:
            self.socket = socket
            await socket.send(self.hello())
            opened.set()
            async for text in socket:
                size = len(text.encode() if isinstance(text, str) else text)
                self.frames += 1
                self.bytes += size
                if self.join_seconds is None:
                    self.joined_bytes += size
                    if any([self.ready(m["t"]) for m in tab_messages(text)]):
                        self.join_seconds = time.perf_counter() - start
                if stop.is_set():
                    return


async def level(server: StreamlitServer, scale: Scale, tabs: list[Tab], *, design: str, join_cap: float) -> dict:
    url = f"ws://127.0.0.1:{server.port}/presence-kit/ws"
    stop = asyncio.Event()
    tasks = []
    for batch in range(0, len(tabs), scale.joining):
        group = tabs[batch:batch + scale.joining]
        events = [asyncio.Event() for _ in group]
        tasks += [asyncio.create_task(tab.run(url, event, stop)) for tab, event in zip(group, events)]
        deadline = time.monotonic() + join_cap
        while time.monotonic() < deadline and not all(t.join_seconds is not None for t in group):
            await asyncio.sleep(0.05)
    joined = [t for t in tabs if t.join_seconds is not None]
    await asyncio.sleep(1.0)  # settle
    frames0, bytes0 = sum(t.frames for t in tabs), sum(t.bytes for t in tabs)
    cpu0, t0 = cpu_seconds(server.process.pid), time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, lambda: time.sleep(scale.window))
    elapsed = time.perf_counter() - t0
    cpu = (cpu_seconds(server.process.pid) - cpu0) / elapsed
    frames = (sum(t.frames for t in tabs) - frames0) / elapsed / len(tabs)
    received = (sum(t.bytes for t in tabs) - bytes0) / elapsed / len(tabs)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"joined": len(joined), "join_seconds": [t.join_seconds for t in joined], "join_bytes": [t.joined_bytes for t in joined],
            "frames": frames, "bytes": received, "cpu": cpu}


def measure(bench: Bench, scale: Scale, *, design: str, repo: Path) -> dict[int, dict]:
    app_file = bench.scratch / f"big-org-{design}.yaml"
    app_file.write_text(app_text(scale, design=design))
    server = StreamlitServer(app_file=app_file, broker_url=bench.broker.url, log_dir=bench.scratch, repo=repo, extra_env={"PRESENCE_DEMO_BOT": "0"})
    results: dict[int, dict] = {}
    try:
        for n in scale.levels:
            tabs = [Tab(room=f"r{i % scale.rooms}", user=f"{design[0]}{n}t{i:04}", design=design) for i in range(n)]
            with Churn(bench, scale):
                results[n] = asyncio.run(level(server, scale, tabs, design=design, join_cap=60.0))
    finally:
        server.stop()
    return results


def run(bench: Bench) -> Section:
    scale = QUICK if bench.quick else FULL
    section = Section("Row 9: big org")
    publish_org(bench, scale)
    designs = {"rooms": measure(bench, scale, design="rooms", repo=REPO)}
    if scale.baseline:
        with checkout(BASELINE, bench.scratch / "baseline") as folder:
            designs["broadcast"] = measure(bench, scale, design="broadcast", repo=folder)
    new, old = designs["rooms"], designs.get("broadcast", {})
    join_n = scale.levels[0]
    r, b = new[join_n], old.get(join_n)
    join_bytes, join_p95 = median(r["join_bytes"]), percentile(r["join_seconds"], 95)
    section.lines.append(Line(
        "9 join bytes", f"bytes a tab receives until it shows its room ({scale.users:,} users, {join_n} tabs joining at once)",
        join_bytes, "bytes", f"max {fmt(max(r['join_bytes']))}",
        f"broadcast: {fmt(median(b['join_bytes']))}" if b and b["join_bytes"] else "", (join_bytes / median(b["join_bytes"])) if b and b["join_bytes"] else None,
        f"<= {JOIN_GOAL_BYTES // 1024} KB", verdict(join_bytes <= JOIN_GOAL_BYTES, why_not="more than the goal")))
    section.lines.append(Line(
        "9 join time", f"seconds until a tab shows its room, p50 (p95 in spread), {join_n} joining {join_n} rooms nobody showed before, at once",
        median(r["join_seconds"]), "s", f"p95 {fmt(join_p95)}",
        f"broadcast: p50 {fmt(median(b['join_seconds']))}, p95 {fmt(percentile(b['join_seconds'], 95))} ({b['joined']}/{join_n} joined)" if b and b["join_seconds"] else "",
        None, f"p95 <= {JOIN_GOAL_P95} s", verdict(join_p95 <= JOIN_GOAL_P95, why_not="p95 over the goal")))
    if len(scale.levels) > 1:  # the next level's tabs join rooms that are watched already
        n = scale.levels[1]
        r, b = new[n], old.get(n)
        warm_p95 = percentile(r["join_seconds"], 95)
        section.lines.append(Line(
            "9 join, room watched", f"seconds until a tab shows its room, p50 (p95 in spread), {n} tabs in batches of {scale.joining} into rooms the server watches already",
            median(r["join_seconds"]), "s", f"p95 {fmt(warm_p95)}",
            f"broadcast: p50 {fmt(median(b['join_seconds']))}, p95 {fmt(percentile(b['join_seconds'], 95))} ({b['joined']}/{n} joined)" if b and b["join_seconds"] else "",
            None, f"p95 <= {JOIN_GOAL_P95} s", verdict(warm_p95 <= JOIN_GOAL_P95, why_not="p95 over the goal")))
    for n in scale.levels:
        r, b = new[n], old.get(n)
        section.lines.append(Line(
            f"9 churn N={n}", f"frames a tab receives a second under {scale.churn} org changes/s",
            r["frames"], "frames/s", f"{fmt(r['bytes'])} bytes/s per tab",
            f"broadcast: {fmt(b['frames'])} frames/s, {fmt(b['bytes'])} bytes/s" if b else "", (r["frames"] / b["frames"]) if b and b["frames"] else None,
            f"<= {CHURN_GOAL_FRAMES}", verdict(r["frames"] <= CHURN_GOAL_FRAMES, why_not="more frames than the goal")))
        section.lines.append(Line(
            f"9 CPU N={n}", f"server CPU, {n} tabs over {scale.rooms} rooms, {scale.churn} changes/s",
            r["cpu"], "cores", f"{r['joined']}/{n} tabs joined",
            f"broadcast: {fmt(b['cpu'])} cores ({b['joined']}/{n} joined)" if b else "", (r["cpu"] / b["cpu"]) if b and b["cpu"] else None,
            f"< {CPU_GOAL} core", verdict(r["cpu"] < CPU_GOAL, why_not="a core or more")))
    if not scale.baseline:
        section.notes.append("quick mode: no broadcast baseline (it checks out and starts the old design; the full run does)")
    section.notes.append(f"Row 9: the broadcast baseline is commit {BASELINE}, run from a git worktree beside this checkout.")
    return section
