"""Child processes, watchers and servers shared by the tests and the benchmarks:
waiting with deadlines, `python -m components join` devices, a watcher that records
what a real observer session saw (with timestamps), and a real `streamlit run` server.

Moved here from tests/helpers.py and tests/streamlit_server.py (which re-export them)
so that `python -m bench` measures with exactly the machinery the tests check with.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from components import HistoryStore, PresenceChanged, PresenceSession, Snapshot, UserPresence, open_history_store
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


def kit_env(repo: Path = REPO) -> dict[str, str]:
    """The environment of a child that imports the kit of `repo` (this checkout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
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


# -- chat history databases -----------------------------------------------------------------

POSTGRES_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
"""The machines' PostgreSQL (trust auth, database `test`), as whichever user exists."""


def postgres_url() -> tuple[str | None, str]:
    """A URL of the PostgreSQL on 127.0.0.1:5432 that accepts us, or None and why not."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install -e '.[test]')"
    why = ""
    for url in POSTGRES_URLS:
        try:
            psycopg.connect(url, connect_timeout=3).close()
            return url, ""
        except psycopg.Error as exc:
            why = str(exc).strip().splitlines()[0]
    return None, f"no PostgreSQL on 127.0.0.1:5432 ({why})"


@dataclass(frozen=True)
class HistoryPlace:
    """Where a test or a benchmark keeps chat history: a SQLite file or a schema of its
    own in PostgreSQL (`schema.chat`, dropped by `drop()`). `rows()` reads it back with
    the bare driver, never through the store under test."""

    url: str
    table: str

    @classmethod
    def sqlite(cls, folder: Path) -> HistoryPlace:
        return cls(f"sqlite:///{folder / 'history.sqlite3'}", "presence_chat")

    @classmethod
    def postgres(cls, url: str, *, name: str) -> HistoryPlace:
        return cls(url, f"{name}.chat")

    def store(self, **options) -> HistoryStore:
        return open_history_store(self.url, table=self.table, **options)

    def rows(self, *, room: str | None = None) -> list[tuple[str, str, str, str, str]]:
        """(org, room, id, sender, text) of every stored row (of `room`), sorted."""
        sql = f"SELECT org, room, id, sender, text FROM {self.table}" + (" WHERE room = ?" if room else "") + " ORDER BY org, room, id"
        params = (room,) if room else ()
        if self.url.startswith("sqlite:///"):
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=10)) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def ids(self, *, room: str | None = None) -> list[str]:
        return [row[2] for row in self.rows(room=room)]

    def drop(self) -> None:
        if "." in self.table:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.table.split('.')[0]} CASCADE")


# -- a real Streamlit server ---------------------------------------------------------------

TOKEN_KEY = "e2e-test-token-key-0123456789abcdef"


ALL_PARTS = ["typing", "chat", "receipts", "cursors", "reactions"]


def tab_messages(frame: str | bytes) -> list[dict]:
    """The messages of one frame the kit's socket sent (several queued together come as
    a JSON array)."""
    data = json.loads(frame)
    return data if isinstance(data, list) else [data]


def tab_token(*, user: str, org: str, rooms: tuple[str, ...] = ("lobby",), name: str | None = None, key: str = TOKEN_KEY) -> str:
    """A page token for `user` showing `rooms`, signed with the servers' key (TOKEN_KEY)."""
    from components.tokens import TokenSigner  # noqa: PLC0415 - servers and sessions need none of this

    return TokenSigner(key.encode()).sign(user=user, name=name or user, org=org, rooms=rooms)


def tab_hello(*, user: str, device: str, org: str, name: str | None = None, rooms: tuple[str, ...] = ("lobby",),
              watch: dict | None = None, token: str | None = None) -> str:
    """The first frame a tab sends on the kit's socket: its page token, device id and what
    it shows (by default: the org's presence, 500 members, and everything of `rooms`)."""
    watch = watch if watch is not None else {"presence": [{"room": None, "limit": 500}], "rooms": {room: ALL_PARTS for room in rooms}}
    token = token or tab_token(user=user, org=org, rooms=rooms, name=name)
    return json.dumps({"t": "hello", "tokens": [token], "device": device, "watch": watch})


MOSQUITTO_KEEPALIVE_SWEEP = 6.0
"""Mosquitto 2.0 checks keepalives on a 5 s sweep with a whole-second clock
(src/keepalive.c), so a silent client is noticed up to ~6 s after 1.5 x keepalive: the
"broker's keepalive sweep" in DESIGN.md's bound for a frozen client."""


@contextlib.contextmanager
def checkout(commit: str, folder: Path) -> Iterator[Path]:
    """This repository at `commit`, checked out from git into `folder` (a git worktree,
    removed after): an earlier design to run as a baseline beside this one."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), commit], check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], capture_output=True)


class StreamlitServer:
    """`streamlit run APP` (default: the demo), or `python -m components CLI...` (`run
    FILE`, `edit FILE`), as a child process on a free loopback port."""

    def __init__(
        self,
        *,
        app_file: Path,
        broker_url: str,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        repo: Path = REPO,
        app: Path | None = None,
        cli: Sequence[str] = (),
        wait_for_broker: bool = True,
    ) -> None:
        """`repo`: the checkout whose kit runs (another one for a baseline); `app`: the
        st.App module (default: that checkout's demo)."""
        self.port = free_port()
        self.log_path = log_dir / f"streamlit-{self.port}.log"
        app = app or repo / "demo_app.py"
        env = kit_env(repo)
        env.update({"PRESENCE_APP_FILE": str(app_file), "MQTT_URL": broker_url, "PRESENCE_TOKEN_KEY": TOKEN_KEY, **(extra_env or {})})
        self._log = open(self.log_path, "w")
        command = ["-m", "components", *cli] if cli else ["-m", "streamlit", "run", str(app)]
        self.process = subprocess.Popen(
            [sys.executable, *command,
             "--server.port", str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            env=env, cwd=repo, stdout=self._log, stderr=subprocess.STDOUT,
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
            if health and (not broker or health.get("broker", {}).get("synced")):
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
