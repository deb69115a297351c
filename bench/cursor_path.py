"""Row 5, the cursor path: N browser-side cursor streams at 20 Hz through the kit's
WebSocket bridge on a real `streamlit run` server to the other tabs.

tab --WebSocket--> bridge --MQTT (device, <= one move a 50 ms tick)--> broker -->
    observer --> bridge (<= one `cursors` frame a room and 25 ms tick) --WebSocket-->
    every tab

Simulated tabs (the `websockets` client, all in this process) send
`{"t":"cursor","room":"lobby","x":..,"y":..}` every 50 ms from a random phase of their
own, or only one of them does (the idle case), with an x that is unique per sender, so the receiving side finds the send time in a log keyed by (user, x). Latency
is from that send to the first frame carrying it at another tab; positions coalesced
away (a newer one went out instead) never arrive and are counted apart. Server CPU is
read from /proc/PID/stat of the server process. Then, with N = 5 real Chromium tabs
sending through the page's shared client (`window.__presenceKit.send`), the Streamlit
script runs are counted (bench/rerun_page.py logs each one) before and after the
traffic. Closing some simulated tabs at the end gives row 2's `tab close` figure
(the bridge's leave grace G, then an explicit offline). In the full run every level
also runs, in turn, on a server of the old design (BASELINE, from git)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path


from components.tab_fanout import CURSOR_TICK

from .context import Bench
from .harness import REPO, StreamlitServer, checkout, tab_hello, tab_messages
from .report import Line, Section, fmt, median, percentile, spread, verdict

BASELINE = "66cfc99"
"""The last commit of the throttle-then-tick cursor path: a strict 50 ms cap in the
device (timed from its last send, so a 20 Hz stream drifts up to a whole period behind),
then the bridge's fixed 50 ms tick."""
HZ = 20.0
GRACE = 2.0
GOAL = "p50 <= 20 ms, p95 <= 50 ms"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APP_FILE = """version: 1
broker: {{keepalive: 30, leave_grace: {grace}}}
org: {org}
rooms: [lobby]
identity: {{source: query_param}}
widgets:
  - type: presence_list
  - type: cursor_overlay
    room: lobby
    region: canvas
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Traffic:
    sent: dict[tuple[str, float], float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    offline_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """(watching user, departed user) -> when the watcher was told the user is offline."""


class Tab:
    def __init__(self, server: StreamlitServer, user: str, traffic: Traffic, *, org: str) -> None:
        self.user = user
        self.traffic = traffic
        self.url = f"ws://127.0.0.1:{server.port}/presence-kit/ws"
        # what a page with a room presence list and a cursor overlay shows
        self.hello = tab_hello(user=user, device="bench", org=org, watch={"presence": [{"room": "lobby", "limit": 500}], "rooms": {"lobby": ["cursors"]}})
        self.online: set[str] = set()
        self.socket = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect  # noqa: PLC0415 - a test extra

        self.socket = await connect(self.url, open_timeout=20, max_queue=None)
        await self.socket.send(self.hello)

    async def send(self, stop: asyncio.Event) -> None:
        """20 Hz from a phase of its own, as people who do not move in step."""
        seq = 0
        await asyncio.sleep(random.uniform(0, 1 / HZ))
        next_at = time.perf_counter()
        while not stop.is_set():
            seq += 1
            x = seq / 100_000
            self.traffic.sent[(self.user, x)] = time.perf_counter()
            await self.socket.send(json.dumps({"t": "cursor", "room": "lobby", "x": x, "y": 0.5}))
            next_at += 1 / HZ
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def receive(self) -> None:
        try:
            async for text in self.socket:
                now = time.perf_counter()
                for message in tab_messages(text):
                    self._take(message, now)
        except Exception:  # noqa: BLE001 - the socket closed: this tab is done
            return

    def _take(self, message: dict, now: float) -> None:
        traffic = self.traffic
        kind = message["t"]
        if kind == "cursors":
            start, end = traffic.window
            for move in message["moves"]:
                if move[0] != self.user and move[2] is not None:
                    sent = traffic.sent.get((move[0], move[2]))
                    if sent is not None and start <= sent < end:
                        traffic.latencies.append(now - sent)
        elif kind in ("people", "people_delta"):
            for user in message.get("members", []) + message.get("upsert", []):
                if user["status"] == "offline":
                    self.online.discard(user["user"])
                    traffic.offline_at.setdefault((self.user, user["user"]), time.monotonic())
                else:
                    self.online.add(user["user"])


async def level(server: StreamlitServer, n: int, seconds: float, *, org: str, tag: str, movers: int | None = None) -> dict:
    """N simulated tabs (the first `movers` of them, default all) sending at 20 Hz for
    `seconds`; then a few of them close."""
    traffic = Traffic()
    tabs = [Tab(server, f"{tag}n{n}u{i}", traffic, org=org) for i in range(n)]
    await asyncio.gather(*(tab.open() for tab in tabs))
    receivers = [asyncio.create_task(tab.receive()) for tab in tabs]
    users = {tab.user for tab in tabs}
    deadline = time.monotonic() + 30
    while not all(users <= tab.online for tab in tabs) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop = asyncio.Event()
    senders = [asyncio.create_task(tab.send(stop)) for tab in tabs[:movers]]
    await asyncio.sleep(1.5)  # warm-up: devices see an audience, ticks settle
    sent0 = server.health()["frames_sent"]  # counted by the server as it sends them
    cpu0, t0 = cpu_seconds(server.process.pid), time.perf_counter()
    traffic.window = (t0, t0 + seconds)
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    cpu = (cpu_seconds(server.process.pid) - cpu0) / elapsed
    frames = (server.health()["frames_sent"] - sent0) / elapsed
    stop.set()
    await asyncio.gather(*senders)
    await asyncio.sleep(0.3)  # the last frames of the window
    sent_in_window = sum(1 for t in traffic.sent.values() if t0 <= t < t0 + seconds)
    # row 2: close a few tabs; the others must show them offline after the grace
    leavers, stayers = tabs[: min(3, n - 1)], tabs[min(3, n - 1):]
    closed_at: dict[str, float] = {}
    for tab in leavers:
        closed_at[tab.user] = time.monotonic()
        await tab.socket.close()
        await asyncio.sleep(0.2)
    deadline = time.monotonic() + GRACE + 10
    while time.monotonic() < deadline and not all((s.user, t.user) in traffic.offline_at for s in stayers for t in leavers):
        await asyncio.sleep(0.05)
    leave = [max(traffic.offline_at[(s.user, t.user)] for s in stayers) - closed_at[t.user] for t in leavers if all((s.user, t.user) in traffic.offline_at for s in stayers)]
    for tab in stayers:
        await tab.socket.close()
    await asyncio.gather(*receivers, return_exceptions=True)
    # the closed tabs' devices leave after the grace: let those offline frames go out
    # now, not inside the next level's window
    await asyncio.sleep(GRACE + 1)
    return {
        "n": n,
        "latencies": traffic.latencies,
        "expected": sent_in_window * (n - 1),
        "movers": len(senders),
        "cpu": cpu,
        "frames": frames,
        "leave": leave,
        "leavers": len(leavers),
    }


def chromium_reruns(server: StreamlitServer, rerun_log: Path, seconds: float, tabs: int = 5) -> dict:
    """N real Chromium tabs move cursors through the page's shared client; count the
    Streamlit script runs during the traffic and the cursor frames the tabs got."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a test extra

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            pages = []
            for i in range(tabs):
                page = browser.new_context(viewport={"width": 900, "height": 700}).new_page()
                user = f"chrome{i}"
                page.goto(f"{server.url}/?user={user}")
                page.locator(f'li.pk-member[data-user="{user}"][data-status="online"]').wait_for(timeout=30_000)
                pages.append(page)
            time.sleep(1.0)  # let the first render's runs finish
            before = len(rerun_log.read_text().splitlines())
            script = """(ms) => { const kit = window.__presenceKit; window.__benchFrames = 0;
                kit.subscribe((m) => { if (m.t === 'cursors') window.__benchFrames += 1; });
                let i = 0; window.__benchTimer = setInterval(() => { i += 1;
                  kit.send({t: 'cursor', room: 'lobby', x: (i % 100) / 100, y: 0.5}); }, ms); }"""
            for page in pages:
                page.evaluate(script, 1000 / HZ)
            time.sleep(seconds)
            for page in pages:
                page.evaluate("() => clearInterval(window.__benchTimer)")
            time.sleep(0.5)
            after = len(rerun_log.read_text().splitlines())
            frames = sum(page.evaluate("() => window.__benchFrames") for page in pages)
        finally:
            browser.close()
    return {"reruns": after - before, "frames": frames, "first_runs": before}


def serve(bench: Bench, design: str, repo: Path) -> StreamlitServer:
    """The kit of `repo` (this checkout or the baseline's) serving the demo page, counted
    (bench.scratch/reruns-DESIGN.log), in an org of the design's own."""
    app_file = bench.scratch / f"cursor-{design}.yaml"
    app_file.write_text(APP_FILE.format(grace=GRACE, org=org_of(design)))
    rerun_log = bench.scratch / f"reruns-{design}.log"
    rerun_log.touch()
    return StreamlitServer(
        app_file=app_file, broker_url=bench.broker.url, log_dir=bench.scratch, repo=repo,
        extra_env={"BENCH_RERUN_LOG": str(rerun_log)}, app=repo / "bench" / "rerun_app.py",
    )


def org_of(design: str) -> str:
    return f"cur{design}"


def measure(bench: Bench, designs: dict[str, Path], levels: list[tuple[int, int | None]], seconds: float) -> tuple[dict[str, list[dict]], dict | None]:
    """Each level on each design's server in turn (side by side in time, so both see the
    same load on a shared machine); then, on this checkout's server, real Chromium tabs."""
    servers: dict[str, StreamlitServer] = {}
    results: dict[str, list[dict]] = {design: [] for design in designs}
    try:
        for design, repo in designs.items():
            servers[design] = serve(bench, design, repo)
        for n, movers in levels:
            for design, server in servers.items():
                results[design].append(asyncio.run(level(server, n, seconds, org=org_of(design), tag=f"t{int(time.time()) % 10000}", movers=movers)))
        chrome = None
        if not bench.quick and os.path.exists(CHROMIUM):
            chrome = chromium_reruns(servers["new"], bench.scratch / "reruns-new.log", seconds)
    finally:
        for server in servers.values():
            server.stop()
    return results, chrome


def latency_line(r: dict, old: dict | None, *, quick: bool) -> Line:
    n, movers, lat = r["n"], r["movers"], r["latencies"]
    who = f"{n} tabs x 20 Hz" if movers == n else f"{movers} of {n} tabs moving at 20 Hz"
    tag = f"5 N={n} latency" if movers == n else f"5 N={n} {movers} mover{'s' * (movers > 1)}"
    if not lat:
        return Line(tag, f"cursor latency, {who}: no cursor frame arrived", None, "ms", goal=GOAL, verdict="not met: nothing arrived")
    p50, p95 = percentile(lat, 50) * 1000, percentile(lat, 95) * 1000
    delivered = len(lat) / r["expected"] if r["expected"] else 0
    if old is not None and old["latencies"]:
        o50, o95 = percentile(old["latencies"], 50) * 1000, percentile(old["latencies"], 95) * 1000
        compared, ratio = f"old design (throttle then tick), same run: p50 {fmt(o50)} ms, p95 {fmt(o95)} ms; ratio p50 new/old (p95 {fmt(p95 / o95)})", p50 / o50
    else:
        compared, ratio = "old design not run (--quick)" if quick else "old design: nothing arrived", None
    return Line(
        tag, f"cursor latency tab to other tabs, {who} (p50; p95 in spread)", p50, "ms",
        f"p95 {fmt(p95)} ms; {len(lat):,} deliveries, {delivered:.0%} of positions sent (rest coalesced)", compared, ratio,
        GOAL, verdict(p50 <= 20 and p95 <= 50, why_not=f"p50 {fmt(p50)} ms, p95 {fmt(p95)} ms"),
    )


def run(bench: Bench) -> Section:
    section = Section("Row 5: cursor path")
    seconds = 2.0 if bench.quick else 5.0
    levels: list[tuple[int, int | None]] = [(5, None)] if bench.quick else [(5, None), (20, None), (50, None), (50, 1)]
    with contextlib.ExitStack() as stack:
        designs = {"new": REPO}
        if not bench.quick:
            designs["old"] = stack.enter_context(checkout(BASELINE, bench.scratch / "cursor-baseline"))
        results, chrome = measure(bench, designs, levels, seconds)
    leave: list[float] = []
    for i, r in enumerate(results["new"]):
        old = results["old"][i] if "old" in results else None
        section.lines.append(latency_line(r, old, quick=bench.quick))
        if r["movers"] < r["n"]:
            continue
        n = r["n"]
        leave += r["leave"]
        section.lines += [
            Line(f"5 N={n} cpu", "server CPU (share of one core) during the traffic", r["cpu"] * 100, "%", "", f"old design: {fmt(old['cpu'] * 100)} %" if old else "prototype: 13 % for 5 users", None, "(information)", ""),
            Line(f"5 N={n} frames", "WebSocket frames sent per second (all tabs)", r["frames"], "frames/s", f"{fmt(r['frames'] / n)} per tab", f"at most one per tab per {fmt(CURSOR_TICK * 1000)} ms tick = {fmt(n / CURSOR_TICK)}", None, f"<= {fmt(1 / CURSOR_TICK)} per tab (one per tick) + presence", verdict(r["frames"] / n <= 1 / CURSOR_TICK + 2, why_not="more than one frame per tick")),
        ]
    if chrome is not None:
        section.lines.append(Line("5 chromium reruns", f"Streamlit reruns while 5 Chromium tabs send cursors at 20 Hz for {fmt(seconds)} s ({chrome['frames']:,} cursor frames reached the tabs)", chrome["reruns"], "reruns", f"{chrome['first_runs']} script runs to open the 5 tabs", "20 Hz through setStateValue: ~80 % of a core per user", None, "0", verdict(chrome["reruns"] == 0, why_not=f"{chrome['reruns']} reruns")))
    else:
        section.lines.append(Line("5 chromium reruns", "Streamlit reruns with 5 Chromium tabs moving cursors", None, "reruns", "skipped (--quick)" if bench.quick else f"skipped: {CHROMIUM} not found", "", None, "0", "not measured"))
    if leave:
        section.lines.append(Line("2 tab close", "graceful leave of a browser tab: WebSocket closed until every other tab shows offline (bridge grace G = 2 s)", median(leave), "s", f"max {fmt(max(leave))} s; {spread(leave, 's')}", f"bound G + 1 s = {fmt(GRACE + 1)} s", None, f"max <= {fmt(GRACE + 1)} s", verdict(max(leave) <= GRACE + 1, why_not=f"max {fmt(max(leave))} s")))
    section.notes += [
        "Simulated tabs and their latency clock run in this process, on one asyncio loop; at N = 50 that loop parses about 1,000 frames a second itself, so the tail latency includes the client side on a shared 2-core machine. Each simulated tab sends at 20 Hz from a random phase of its own (people do not move in step).",
        f"The old design is commit {BASELINE}, run from a git worktree beside this checkout, each level on both servers in turn in the same run (full mode only). There a position waited up to 50 ms in the device's strict 20 Hz cap (timed from its last send, so a 20 Hz stream drifted up to a whole period behind) and up to 50 ms more for the bridge's fixed tick.",
        "Now the device and the bridge each allow one send in each tick of a fixed 50 ms grid: at once when the tick has sent nothing yet, else at the start of the next tick with everything since. A lone mover (the `1 mover` line) goes straight through; with every tab moving every tick is busy, and at most one frame a tab per 50 ms means a move arriving at a random time waits about 25 ms at the median and up to 50 ms before any transport, whatever the design.",
        "Anchors (issue 15): Liveblocks throttles at 100 ms by default (16 ms at its fastest), Ably batches at 25 ms; the prototype's 3 ms had no throttle and no batching.",
        "Reruns are counted by bench/rerun_page.py, which wraps demo_page.py unchanged and appends a line to a log on every script run; a rerun during the traffic would show up as a line.",
    ]
    return section
