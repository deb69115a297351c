"""Row 11, the browser under load (issue 15): the demo page in headless Chromium while
50 people move cursors at 20 Hz over its canvas and 100 presence changes a second
arrive, on a real `streamlit run demo_app.py` (examples/demo.yaml, bot off) and the
bench's Mosquitto.

The 50 people are simulated tabs (WebSockets from this process, the tab protocol): each
sends a cursor position every 50 ms from a phase of its own and flips between away and
online every 0.5 s (50 x 2 = 100 presence changes a second, each a retained presence
message through the broker and back). The page's main thread is read twice: long tasks
with a PerformanceObserver (`longtask`: every task over 50 ms), and how busy it is from
Chromium's own task time (CDP `Performance.getMetrics`, TaskDuration), sampled each
second: the share of wall time spent in tasks, with the idle page (same page, no load)
beside it."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from .context import Bench
from .cursor_path import CHROMIUM, CHROMIUM_ARGS, HZ
from .harness import REPO, StreamlitServer, tab_hello
from .report import Line, Section, fmt, median, spread, verdict

PEOPLE = 50
FLIP_EVERY = 0.5
"""Each person flips away/online this often: PEOPLE / FLIP_EVERY changes a second."""
ORG, ROOM, REGION = "demo", "lobby", "canvas"  # what examples/demo.yaml shows
OBSERVE = """() => {
  const kit = window.__presenceKit, seen = {longtasks: [], cursors: 0, presence: 0};
  window.__benchSeen = seen;
  new PerformanceObserver((list) => { for (const e of list.getEntries()) seen.longtasks.push([e.startTime, e.duration]); })
    .observe({type: "longtask", buffered: false});
  kit.subscribe((m) => { if (m.t === "cursors") seen.cursors += 1; else seen.presence += 1; }, ["cursors", "people", "people_delta", "people_batch"]);
}"""


class Person:
    """A simulated tab of the demo org: moves its cursor over the canvas and flips
    between away and online; reads (and drops) what the server sends it."""

    def __init__(self, port: int, user: str) -> None:
        self.user = user
        self.url = f"ws://127.0.0.1:{port}/presence-kit/ws"
        self.hello = tab_hello(user=user, device="bench", org=ORG, rooms=(ROOM,), watch={"presence": [], "rooms": {}})
        self.socket = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect  # noqa: PLC0415 - a test extra

        self.socket = await connect(self.url, open_timeout=20, max_queue=None)
        await self.socket.send(self.hello)

    async def drain(self) -> None:
        try:
            async for _ in self.socket:
                pass
        except Exception:  # noqa: BLE001 - the socket closed: this person is done
            return

    async def move(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.user)
        await asyncio.sleep(rng.uniform(0, FLIP_EVERY))
        x, y, status, next_flip = rng.random(), rng.random(), "online", time.perf_counter() + FLIP_EVERY
        next_at = time.perf_counter()
        while not stop.is_set():
            x, y = min(1.0, max(0.0, x + rng.uniform(-0.03, 0.03))), min(1.0, max(0.0, y + rng.uniform(-0.03, 0.03)))
            await self.socket.send(json.dumps({"t": "cursor", "room": ROOM, "x": x, "y": y, "region": REGION}))
            if time.perf_counter() >= next_flip:
                status = "away" if status == "online" else "online"
                away = {"since": time.time() - 60} if status == "away" else {}
                await self.socket.send(json.dumps({"t": "activity", "status": status, **away}))
                next_flip += FLIP_EVERY
            next_at += 1 / HZ
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


class Crowd:
    """PEOPLE simulated tabs on an event loop of their own (a thread), so the browser can
    be driven from this one."""

    def __init__(self, port: int) -> None:
        self.people = [Person(port, f"mover{i:02}") for i in range(PEOPLE)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-crowd", daemon=True)
        self.stop: asyncio.Event | None = None
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)

    async def _start(self) -> None:
        self.stop = asyncio.Event()
        await asyncio.gather(*(person.open() for person in self.people))
        self.tasks = [asyncio.create_task(p.drain()) for p in self.people] + [asyncio.create_task(p.move(self.stop)) for p in self.people]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _close(self) -> None:
        if self.stop is not None:
            self.stop.set()
        for person in self.people:
            if person.socket is not None:
                await person.socket.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)


PARTS = {"TaskDuration": "busy", "ScriptDuration": "script", "LayoutDuration": "layout", "RecalcStyleDuration": "style"}
"""Chromium's cumulative main-thread times (CDP Performance metrics, seconds) and what
this row calls them: all tasks, and the script, layout and style work inside them."""


def busy_each_second(cdp, seconds: int) -> dict[str, list[float]]:  # noqa: ANN001 - a Playwright CDPSession
    """Per part (PARTS), the share of each second the page's main thread spent on it."""

    def times() -> dict[str, float]:
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return {part: metrics[name] for name, part in PARTS.items()}

    shares: dict[str, list[float]] = {part: [] for part in PARTS.values()}
    before, at = times(), time.perf_counter()
    for _ in range(seconds):
        time.sleep(1.0)
        now, now_at = times(), time.perf_counter()
        for part in shares:
            shares[part].append((now[part] - before[part]) / (now_at - at))
        before, at = now, now_at
    return shares


def measure(server: StreamlitServer, seconds: int) -> dict:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a test extra

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(f"{server.url}/?user=viewer")
            page.locator('li.pk-member[data-user="viewer"][data-status="online"]').wait_for(timeout=30_000)
            page.locator(f".st-key-{REGION}").wait_for(timeout=30_000)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            time.sleep(1.0)  # the first render's work is done
            idle = busy_each_second(cdp, 2)
            crowd = Crowd(server.port)
            crowd.start()
            try:
                page.wait_for_function(
                    "(n) => [...window.__presenceKit.views.values()].some((v) => v.counts.online + v.counts.away >= n)", arg=PEOPLE + 1, timeout=30_000
                )
                time.sleep(1.0)  # cursors drawn, the first flips through
                page.evaluate(OBSERVE)
                started = time.perf_counter()
                busy = busy_each_second(cdp, seconds)
                window = time.perf_counter() - started
                seen = page.evaluate("() => window.__benchSeen")
                drawn = page.evaluate("() => document.querySelectorAll('.pk-cursor').length")
            finally:
                crowd.close()
        finally:
            browser.close()
    return {"idle": idle, "busy": busy, "longtasks": [duration for _, duration in seen["longtasks"]], "window": window,
            "cursor_frames": seen["cursors"] / window, "presence_frames": seen["presence"] / window, "drawn": drawn}


def run(bench: Bench) -> Section:
    section = Section("Row 11: the browser under load")
    if bench.quick:  # a server and Chromium: 15 s more than --quick's budget holds
        for row, unit, goal in (("11 long tasks", "tasks", "0 (no task over 50 ms)"), ("11 busy", "%", "< 20 %")):
            section.lines.append(Line(row, "the demo tab's main thread under cursors and presence changes", None, unit, "skipped (--quick)", "", None, goal, "not measured"))
        return section
    seconds = 10
    server = StreamlitServer(
        app_file=REPO / "examples" / "demo.yaml", broker_url=bench.broker.url, log_dir=bench.scratch, extra_env={"PRESENCE_DEMO_BOT": "0"},
    )
    try:
        r = measure(server, seconds)
    finally:
        server.stop()
    load = f"{PEOPLE} people moving cursors at 20 Hz and {PEOPLE / FLIP_EVERY:.0f} presence changes a second, {seconds} s"
    got = f"{fmt(r['cursor_frames'])} cursor and {fmt(r['presence_frames'])} presence frames a second reached the tab; {r['drawn']} cursors drawn"
    longest = max(r["longtasks"], default=0.0)
    busy = [share * 100 for share in r["busy"]["busy"]]
    parts = ", ".join(f"{part} {fmt(median(r['busy'][part]) * 100)} %" for part in ("script", "layout", "style"))
    section.lines += [
        Line("11 long tasks", f"long tasks (> 50 ms) on the demo tab's main thread, {load} (PerformanceObserver longtask)", len(r["longtasks"]), "tasks",
             f"longest {fmt(longest)} ms" if r["longtasks"] else "none", got, None, "0 (no task over 50 ms)",
             verdict(not r["longtasks"], why_not=f"{len(r['longtasks'])} long tasks, longest {fmt(longest)} ms")),
        Line("11 busy", f"share of the demo tab's main thread spent in tasks, {load} (CDP TaskDuration, per second)", median(busy), "%",
             f"{spread(busy, '%')}; of which {parts}", f"idle page: {fmt(median(r['idle']['busy']) * 100)} %", None, "< 20 %", verdict(median(busy) < 20, why_not=f"{fmt(median(busy))} %")),
    ]
    section.notes += [
        "The page is demo_page.py with examples/demo.yaml unchanged (its presence list becomes a counter above 30 people), opened as one more person; the simulated people are WebSockets from this process on a thread of their own.",
        "Busy is Chromium's TaskDuration: every task on the renderer's main thread. Script, layout and style are the parts CDP names; the rest of the task time is other work inside tasks (paint, compositing, garbage collection, message handling), so with 50 cursors animated every frame, rendering rather than script is most of it.",
        "Headless Chromium on the same shared 2-core machine as the server, the broker and the simulated people: a busy machine shows up as main-thread time here too.",
    ]
    return section
