"""Child processes, watchers and servers shared by the tests and the benchmarks:
waiting with deadlines, `python -m components join` devices, a watcher that records
what a real observer session saw (with timestamps), and a real `streamlit run` server.

Moved here from tests/helpers.py and tests/streamlit_server.py (which re-export them)
so that `python -m bench` measures with exactly the machinery the tests check with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components import PresenceChanged, PresenceSession, Snapshot, UserPresence
from components.embedded_broker import free_port

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


def python_child(*args: str, stdout: int | None = subprocess.PIPE, stdin: int | None = None) -> subprocess.Popen[str]:
    """A Python child process running with the repository importable."""
    return subprocess.Popen(
        [sys.executable, *args], env=kit_env(), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True
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
    for stream in (proc.stdin, proc.stdout, proc.stderr):
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


def join_process(
    settings, *, user: str, device: str, org: str = "acme", keepalive: int = 5, grace: float = 2.0, lease: float | None = None
) -> subprocess.Popen[str]:
    """`python -m components join ...` as a child (on every URL of `settings`, in
    order); returns once it is online."""
    proc = python_child(
        "-m", "components", "join",
        "--broker", settings.url,
        "--org", org, "--user", user, "--device", device,
        "--keepalive", str(keepalive), "--leave-grace", str(grace),
        "--protocol", settings.protocol, "--topic-prefix", settings.topic_prefix,
        *(["--lease", str(lease)] if lease is not None else []),
        *(arg for item in settings.capabilities.items() for arg in ("--capability", item)),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if '"joined"' not in line:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        errors = proc.stderr.read() if proc.stderr else ""
        end_process(proc)
        raise AssertionError(f"join did not come online: {line!r} {errors}")
    return proc


# -- a real Streamlit server ---------------------------------------------------------------

TOKEN_KEY = "e2e-test-token-key-0123456789abcdef"


MOSQUITTO_KEEPALIVE_SWEEP = 6.0
"""Mosquitto 2.0 checks keepalives on a 5 s sweep with a whole-second clock
(src/keepalive.c), so a silent client is noticed up to ~6 s after 1.5 x keepalive: the
"broker's keepalive sweep" in DESIGN.md's bound for a frozen client."""


class StreamlitServer:
    """`streamlit run APP` (default: the demo) as a child process on a free loopback port."""

    def __init__(
        self,
        *,
        app_file: Path,
        broker_url: str,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        app: Path = REPO / "demo_app.py",
        wait_for_broker: bool = True,
    ) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"streamlit-{self.port}.log"
        env = kit_env()
        env.update({"PRESENCE_APP_FILE": str(app_file), "MQTT_URL": broker_url, "PRESENCE_TOKEN_KEY": TOKEN_KEY, **(extra_env or {})})
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app),
             "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.wait_healthy(broker=wait_for_broker)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict | None:
        """The health route's JSON (also when it answers 503: broker unreachable)."""
        try:
            with urllib.request.urlopen(f"{self.url}/presence-kit/health", timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())
        except (OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 60.0, *, broker: bool = True) -> None:
        """Until the server answers (and, with `broker`, has its snapshot from the broker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            health = self.health()
            if health and (health["broker"]["synced"] or not broker):
                return
            time.sleep(0.2)
        raise TimeoutError(f"streamlit not healthy within {timeout} s: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
