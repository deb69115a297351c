"""Shared test helpers: waiting with deadlines, child processes of the kit's CLI, and a
watcher that records what a real observer session saw, with timestamps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components import PresenceChanged, PresenceSession, Snapshot, UserPresence

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until truthy or `timeout` seconds pass; never a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def kit_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python_child(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    """A Python child process running with the repository importable."""
    return subprocess.Popen(
        [sys.executable, *args], env=kit_env(), stdout=stdout, stderr=subprocess.PIPE, text=True
    )


def end_process(proc: subprocess.Popen[str]) -> None:
    """End a child we started: resume it if frozen, then SIGKILL it by its pid."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


@dataclass(frozen=True)
class Seen:
    at: float
    user: str
    presence: UserPresence | None


class Watcher:
    """An observer session that records every user change it is told about."""

    def __init__(self, session: PresenceSession) -> None:
        self.session = session
        self.history: list[Seen] = []
        self._lock = threading.Lock()
        session.subscribe(self._on_event)

    def _on_event(self, event: object) -> None:
        now = time.monotonic()
        with self._lock:
            if isinstance(event, Snapshot):
                self.history += [Seen(now, u, p) for u, p in event.users.items()]
            elif isinstance(event, PresenceChanged):
                self.history.append(Seen(now, event.user, event.presence))

    def current(self, user: str) -> UserPresence | None:
        return self.session.state.presence.user(user)

    def status(self, user: str) -> str | None:
        presence = self.current(user)
        return presence.status if presence else None

    def statuses(self, user: str) -> list[str]:
        with self._lock:
            return [s.presence.status if s.presence else "gone" for s in self.history if s.user == user]

    def wait_status(self, user: str, status: str, *, timeout: float) -> float | None:
        """Seconds until `user` showed `status` (None if it did not within timeout)."""
        start = time.monotonic()
        if wait_for(lambda: self.status(user) == status, timeout=timeout, interval=0.005):
            return time.monotonic() - start
        return None


def join_process(settings, *, user: str, device: str, org: str = "acme", keepalive: int = 5, grace: float = 2.0) -> subprocess.Popen[str]:
    """`python -m components join ...` as a child; returns once it is online."""
    proc = python_child(
        "-m", "components", "join",
        "--broker", f"mqtt://{settings.host}:{settings.port}",
        "--org", org, "--user", user, "--device", device,
        "--keepalive", str(keepalive), "--leave-grace", str(grace),
        "--protocol", settings.protocol, "--topic-prefix", settings.topic_prefix,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if '"joined"' not in line:
        end_process(proc)
        raise AssertionError(f"join did not come online: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc


class RawSubscriber:
    """A plain paho client subscribed to `topic_filter`, recording (topic, payload):
    what any other MQTT client on the broker would receive."""

    def __init__(self, port: int, topic_filter: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(topic_filter, qos=1)
        self._client.loop_start()
        if not subscribed.wait(5):
            raise TimeoutError("no SUBACK")

    def topics(self, prefix: str) -> list[str]:
        return [topic for topic, _ in self.messages if topic.startswith(prefix)]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
