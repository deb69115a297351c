"""Cursor timing (issue 15), on a fake clock: a room's first move after an idle tick goes
to its tabs at once; under load each tab still gets at most one cursor frame a tick, and
every move reaches it within one tick or is replaced by a newer move of the same person
in the same frame, never lost. A device's own cap (the same components/throttle.py) lets
a tab that throttles itself to 20 Hz through despite jitter, and still holds a tab that
sends faster to one move a tick."""

from __future__ import annotations

import json
import random

import pytest

from components.events import Cursor, CursorMoved, RoomSnapshot
from components.tab_fanout import CURSOR_TICK, Fanout, Tab
from components.tab_history import HistorySource
from components.tab_protocol import TabEncoder
from components.tab_views import Watch
from components.throttle import Throttle
from components.tokens import Claims
from helpers import FakeLoop

ROOM = "r"


class Frames:
    """A tab's queue that stamps each frame with the fake clock."""

    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.got: list[tuple[float, dict]] = []

    def put_nowait(self, text: str) -> None:
        self.got.append((self.loop.time(), json.loads(text)))

    def qsize(self) -> int:
        return 0

    def cursors(self) -> list[tuple[float, dict]]:
        return [(at, frame) for at, frame in self.got if frame["t"] == "cursors"]


@pytest.fixture
def loop() -> FakeLoop:
    return FakeLoop()


@pytest.fixture
def fanout(loop: FakeLoop) -> Fanout:
    history = HistorySource(read=lambda room, **page: [], recent=lambda room: (), submit=lambda work, done: done(work(), None))
    return Fanout(encoder=TabEncoder(), room_state=lambda room: RoomSnapshot(), history=history, count=lambda why: None, timers=loop)


def watcher(fanout: Fanout, loop: FakeLoop, user: str = "watcher") -> Frames:
    frames = Frames(loop)
    claims = Claims(user=user, name=user, org="acme", expires=0, issued=0, nonce="n", rooms=frozenset({ROOM}))
    watch = Watch(frozenset(), {ROOM: frozenset({"cursors"})})
    fanout.add(Tab(websocket=None, claims=claims, device_id="d", rooms=claims.rooms, watch=watch, asked=watch, queue=frames))  # type: ignore[arg-type]
    return frames


def move(fanout: Fanout, user: str, x: float) -> None:
    fanout.handle(CursorMoved(ROOM, user, "d", Cursor(x, 0.5, None, True)))


def positions(frame: dict) -> dict[str, float]:
    return {m[0]: m[2] for m in frame["moves"]}


def test_a_move_after_an_idle_tick_goes_at_once_and_a_busy_tick_waits(fanout: Fanout, loop: FakeLoop) -> None:
    tab = watcher(fanout, loop)
    t0 = loop.time()
    move(fanout, "ana", 0.1)
    move(fanout, "ben", 0.2)  # in the same turn of the loop: the same frame
    loop.advance(0)
    assert [(at - t0, positions(f)) for at, f in tab.cursors()] == [(0, {"ana": 0.1, "ben": 0.2})]
    loop.advance(0.6 * CURSOR_TICK)
    move(fanout, "ana", 0.3)  # within the tick of that frame: this tick is busy
    loop.advance(0.38 * CURSOR_TICK)
    assert len(tab.cursors()) == 1, "two cursor frames within one tick"
    loop.advance(0.02 * CURSOR_TICK)
    at, frame = tab.cursors()[-1]
    assert at - t0 == pytest.approx(CURSOR_TICK) and positions(frame) == {"ana": 0.3}
    loop.advance(1.6 * CURSOR_TICK)  # a tick without moves
    move(fanout, "ben", 0.4)
    loop.advance(0)
    at, frame = tab.cursors()[-1]
    assert at - t0 == pytest.approx(2.6 * CURSOR_TICK) and positions(frame) == {"ben": 0.4}, "the move after an idle tick waited"


def test_under_load_one_frame_per_tick_and_no_move_lost(fanout: Fanout, loop: FakeLoop) -> None:
    tab = watcher(fanout, loop)
    rng = random.Random(15)
    sent: list[tuple[float, str, float]] = []  # (when, who, x): x grows per person
    people = [f"u{i}" for i in range(20)]
    seconds = 2.0
    for user in people:  # each moves every 5-60 ms, at its own phase
        at, x = rng.uniform(0, 0.05), 0.0
        while at < seconds:
            x += 0.0001
            loop.call_later(at, lambda user=user, x=x: (sent.append((loop.time(), user, x)), move(fanout, user, x)))
            at += rng.uniform(0.005, 0.06)
    loop.advance(seconds + 1)
    frames = tab.cursors()
    assert one_a_tick([at for at, _ in frames]), "two cursor frames in one tick"
    assert len(frames) <= seconds / CURSOR_TICK + 2
    for when, user, x in sent:  # within one tick a frame carries this move or a newer one
        later = [(at, positions(f)[user]) for at, f in frames if at >= when and user in positions(f)]
        assert later and later[0][0] - when <= CURSOR_TICK + 1e-9 and later[0][1] >= x, f"{user}'s move at {when} was lost or late"
    last = {user: x for _, user, x in sent}
    held: dict[str, float] = {}
    for _, frame in frames:
        held.update(positions(frame))
    assert held == last, "a tab does not end where each person stopped"


def test_a_room_nobody_shows_any_more_keeps_no_timer(fanout: Fanout, loop: FakeLoop) -> None:
    tab = watcher(fanout, loop)
    move(fanout, "ana", 0.1)
    loop.advance(0.01)
    move(fanout, "ana", 0.2)  # waits for the end of the tick
    [held] = [t for t in list(fanout._tabs)]
    fanout.remove(held)
    assert loop.pending() == 0
    loop.advance(1)
    move(fanout, "ana", 0.3)
    loop.advance(1)
    assert [positions(f) for _, f in tab.cursors()] == [{"ana": 0.1}]


def one_a_tick(times: list[float], period: float = CURSOR_TICK) -> bool:
    """At most one of `times` in each tick of the grid that starts at the first (the
    first flush goes at once, so it opens the throttle's grid)."""
    ticks = [int((at - times[0]) / period + 1e-9) for at in times]
    return len(set(ticks)) == len(ticks)


def stream(arrivals: list[float]) -> list[float]:
    """When a throttle flushes, each arrival poking it at its time."""
    loop, flushed = FakeLoop(start=0.0), []
    throttle = Throttle(period=0.05, flush=lambda: flushed.append(loop.time()), call_later=loop.call_later, clock=loop.time)
    for at in arrivals:
        loop.call_later(at, throttle.poke)
    loop.advance(max(arrivals) + 1)
    return flushed


def test_a_device_passes_a_jittery_20_hz_tab_at_once_and_caps_a_faster_one() -> None:
    rng = random.Random(20)
    for lateness in (0.0, 0.001, 0.004):  # a tab's 50 ms timer fires this late every time
        sent_at = [0.1 + k * (0.05 + lateness) for k in range(200)]
        jittery = sorted(at + rng.uniform(0, 0.01) for at in sent_at)  # and the network's jitter
        flushed = stream(jittery)
        assert len(flushed) == len(jittery), "moves of a 20 Hz tab were coalesced away"
        waits = sorted(f - a for f, a in zip(flushed, jittery))
        assert waits[len(waits) // 2] == 0 and waits[-1] <= 0.01 + 1e-9, f"a 20 Hz tab's move waited {waits[-1] * 1000:.1f} ms"
    flood = [k * 0.001 for k in range(2000)]  # 1,000 moves a second for 2 s
    flushes = stream(flood)
    assert one_a_tick(flushes, 0.05) and len(flushes) <= 2.0 / 0.05 + 1, f"{len(flushes)} sends in 2 s"
