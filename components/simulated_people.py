"""Simulated people for the editor's live preview: bots on the preview's session that
join the app's rooms and then type and chat, move their cursors over each cursor
region, react with the app's emojis, read what others wrote and step away for a
while, so a builder sees a lively room and not an empty one.

They act through the session exactly as components.demo_bot does (each is a device with
its own will), paced by timers on the session's network loop: no thread of their own,
a bounded number of actions per second, stopped with `stop()`.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from .device import Device
from .events import ChatMessage, ChatReceived, Event, PresenceChanged, Snapshot
from .network_loop import Timer
from .session import PresenceSession
from .settings import AppSettings, CursorOverlaySettings, ReactionsSettings

log = logging.getLogger(__name__)

PEOPLE = (("sim-ada", "Ada"), ("sim-grace", "Grace"), ("sim-linus", "Linus"))
SIMULATED = frozenset(user for user, _ in PEOPLE)
LINES = (
    "Morning, everyone!",
    "Has anyone seen the new mock-ups?",
    "Looks great to me.",
    "I'll take that one.",
    "Back in five.",
    "Can we ship it today?",
    "Nice work on the demo.",
)
TICK = 0.1
"""Seconds between two steps of the cursors (each person sends at most CURSOR_HZ)."""
CURSOR_HZ = 10.0
ACTION_EVERY = (2.0, 6.0)
"""Seconds between one person's actions (chat, react, read, away), drawn uniformly."""
TYPING_FOR = 1.5


@dataclass(frozen=True)
class Plan:
    """What the people do in an app, read from its settings: where to move cursors,
    which emojis to send, which rooms to be in."""

    rooms: tuple[str, ...]
    cursors: tuple[tuple[str, str | None], ...]  # (room, region)
    emojis: tuple[tuple[str, tuple[str, ...]], ...]  # (room, emojis)

    @classmethod
    def of(cls, settings: AppSettings) -> Plan:
        overlays = [w for w in settings.widgets if isinstance(w, CursorOverlaySettings)]
        return cls(
            rooms=settings.rooms,
            cursors=tuple(dict.fromkeys((w.room, w.region) for w in overlays)),
            emojis=tuple({w.room: w.emojis for w in settings.widgets if isinstance(w, ReactionsSettings)}.items()),
        )


@dataclass
class _Person:
    device: Device
    phase: float
    next_action: float
    away: bool = False


class SimulatedPeople:
    def __init__(self, session: PresenceSession, plan: Plan, *, count: int = len(PEOPLE), seed: int | None = None) -> None:
        self.session = session
        self.plan = plan
        self._count = min(count, len(PEOPLE))
        self._random = random.Random(seed)
        self._people: list[_Person] = []
        self._latest: dict[str, ChatMessage] = {}
        self._watchers: set[str] = set()  # people online who are not simulated
        self._timer: Timer | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._stopped = False
        self.actions = 0

    def start(self) -> SimulatedPeople:
        now = self.session.wiring.monotonic()
        for i, (user, name) in enumerate(PEOPLE[: self._count]):
            device = self.session.open_device(user=user, device="sim", name=name, rooms=self.plan.rooms, cursor_hz=CURSOR_HZ)
            self._people.append(_Person(device, phase=i * 2.1, next_action=now + self._random.uniform(0.3, 2.0)))
        self._unsubscribe = self.session.subscribe(self._on_event)
        self._timer = self.session.network.call_later(TICK, self._tick)
        return self

    def stop(self) -> None:
        """Every person leaves cleanly (explicit offline); blocks until they have."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        for person in self._people:
            person.device.close(timeout=2.0)

    def _on_event(self, event: Event) -> None:
        """Session listener (dispatcher thread): each room's latest message, and who
        is watching (cursors move only then: nobody would see them)."""
        if isinstance(event, ChatReceived):
            self._latest[event.message.room] = event.message
        elif isinstance(event, Snapshot):
            self._watchers = {user for user, p in event.users.items() if p.status != "offline" and user not in SIMULATED}
        elif isinstance(event, PresenceChanged) and event.user not in SIMULATED:
            live = event.presence is not None and event.presence.status != "offline"
            self._watchers = self._watchers | {event.user} if live else self._watchers - {event.user}

    def _tick(self) -> None:
        """Network thread: move every cursor a step; act for whoever's turn it is."""
        if self._stopped:
            return
        try:
            now = self.session.wiring.monotonic()
            for person in self._people:
                if not person.away and self._watchers:
                    for room, region in self.plan.cursors:
                        x = 0.5 + 0.38 * math.sin(now * 0.6 + person.phase)
                        y = 0.5 + 0.34 * math.sin(now * 0.9 + 2 * person.phase)
                        person.device.move_cursor(room, x, y, region=region)
                if now >= person.next_action:
                    person.next_action = now + self._random.uniform(*ACTION_EVERY)
                    self._act(person)
        except Exception:  # noqa: BLE001 - a timer callback must never take the network loop down
            log.exception("simulated people: a step failed")
        self._timer = self.session.network.call_later(TICK, self._tick)

    def _act(self, person: _Person) -> None:
        self.actions += 1
        device, room = person.device, self._random.choice(self.plan.rooms)
        if person.away:
            person.away = False
            device.set_status("online")
            return
        action = self._random.choices(("chat", "react", "read", "away"), weights=(4, 3, 3, 1))[0]
        if action == "chat":
            device.typing(room, ttl=TYPING_FOR + 2)
            line = self._random.choice(LINES)
            self.session.network.call_later(TYPING_FOR, lambda: self._say(device, room, line))
        elif action == "react" and (emojis := dict(self.plan.emojis).get(room)):
            device.react(room, self._random.choice(emojis), count=self._random.randint(1, 3))
        elif action == "read" and (message := self._latest.get(room)) is not None:
            device.mark_read(room, message)
        elif action == "away":
            person.away = True
            device.set_status("away", since=self.session.wiring.wall())

    def _say(self, device: Device, room: str, line: str) -> None:
        if not self._stopped and not device.closed:
            device.typing(room, active=False)
            device.send_chat(room, line)
