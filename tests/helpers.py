"""Shared test helpers. They live in bench/harness.py, shared with the benchmarks
(`python -m bench`), and are re-exported here for the tests."""

import contextlib
import heapq
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from bench.harness import (
    REPO, HistoryPlace, Seen, Watcher, end_process, join_process, kit_env, postgres_url, python_child, tab_hello, tab_messages,
    wait_for,
)

__all__ = [
    "REPO", "FakeLoop", "HistoryPlace", "RawSubscriber", "RawTab", "Seen", "Watcher", "die_while_the_broker_is_down", "end_process",
    "join_process", "kit_env", "postgres_url", "python_child", "tab_messages", "wait_for",
]


def die_while_the_broker_is_down(broker, proc: subprocess.Popen[str]) -> float:  # noqa: ANN001 - a MosquittoBroker
    """Have a persistent broker save its retained state, kill it, SIGKILL `proc` while
    nobody can fire its will, and start the broker again; returns when it was back
    (monotonic seconds)."""
    broker.save()
    broker.kill()
    os.kill(proc.pid, signal.SIGKILL)
    end_process(proc)
    broker.start()
    return time.monotonic()


class RawTab:
    """A tab without a browser: the kit's WebSocket opened with a hello as `user`, every
    message it is sent kept in `messages` (read on a thread of its own), and `closed`
    set to the close code when the server ends the socket."""

    def __init__(self, port: int, *, user: str, device: str, org: str, name: str | None = None,
                 hello: str | None = None, origin: str | None = None) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        self.messages: list[dict] = []
        self.closed: int | None = None
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(connect(f"ws://127.0.0.1:{port}/presence-kit/ws", open_timeout=5, origin=origin))  # type: ignore[arg-type]
        with contextlib.suppress(ConnectionClosed):  # a socket refused at once: see `closed`
            self.socket.send(hello if hello is not None else tab_hello(user=user, device=device, org=org, name=name))
        self._reader = threading.Thread(target=self._read, name=f"raw-tab-{user}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for text in self.socket:
                self.messages += tab_messages(text)
        except ConnectionClosed:
            pass
        rcvd = getattr(self.socket.protocol, "close_rcvd", None)
        self.closed = rcvd.code if rcvd is not None else 1006

    def send(self, message: dict | str) -> None:
        self.socket.send(message if isinstance(message, str) else json.dumps(message))

    def seen(self, predicate: Callable[[dict], bool]) -> list[dict]:
        return [m for m in list(self.messages) if predicate(m)]

    def wait(self, predicate: Callable[[dict], bool], *, timeout: float = 5) -> bool:
        return wait_for(lambda: self.seen(predicate), timeout=timeout)

    def wait_closed(self, *, timeout: float = 5) -> int | None:
        wait_for(lambda: self.closed is not None, timeout=timeout)
        return self.closed

    def online(self, user: str) -> bool:
        """Has this tab been told that `user` is online (in any presence view)?"""
        return any(m["user"] == user and m["status"] == "online" for m in self.members())

    def members(self) -> list[dict]:
        """Every member entry this tab was sent, in order (views' pages and their deltas)."""
        found: list[dict] = []
        for message in list(self.messages):
            found += message.get("members", []) if message["t"] == "people" else message.get("upsert", []) if message["t"] == "people_delta" else []
        return found

    def chat_texts(self, room: str) -> list[str]:
        """The texts of `room`'s chat this tab was sent, live or in a history page (a
        message sent before the room's first page arrives is in that page, not repeated)."""
        found: list[str] = []
        for message in list(self.messages):
            if message["t"] in ("chat", "history"):
                found += [m["text"] for m in message.get("messages", [message.get("message")]) if m["room"] == room]
        return found

    def close(self) -> None:
        self._stack.close()
        self._reader.join(5)


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


class FakeLoop:
    """An event loop's timers on a fake clock (`time`, `call_later`, as asyncio's):
    nothing runs until `advance(seconds)`, which runs what falls due in time order, the
    clock standing at each callback's due time while it runs."""

    class Handle:
        def __init__(self, when: float, callback: Callable[[], None]) -> None:
            self.when, self.callback, self.cancelled = when, callback, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._due: list[tuple[float, int, FakeLoop.Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> "FakeLoop.Handle":
        handle = FakeLoop.Handle(self.now + max(0.0, delay), callback)
        heapq.heappush(self._due, (handle.when, next(self._order), handle))
        return handle

    def pending(self) -> int:
        return sum(not handle.cancelled for _, _, handle in self._due)

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._due and self._due[0][0] <= until:
            when, _, handle = heapq.heappop(self._due)
            if not handle.cancelled:
                self.now = when
                handle.callback()
        self.now = until
