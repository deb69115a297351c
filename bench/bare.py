"""Bare paho-mqtt clients: the baselines the kit is measured against, and small tools
(retained seeding, $SYS readers). The kit itself imports paho in one module only;
these are not the kit, so they use paho directly, in its plainest form (its own
network thread via `loop_start`, no decoding, no validation)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from components import BrokerSettings, TopicScheme

PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


def client(name: str, *, protocol: str = "5") -> paho.Client:
    return paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.monotonic_ns()}", protocol=PROTOCOLS[protocol])


def root(settings: BrokerSettings) -> str:
    """What stands before every topic of these settings (`prefix/` or nothing)."""
    return TopicScheme(prefix=settings.topic_prefix).prefix


def presence_payload(i: int, *, epoch: int, status: str | None = None) -> bytes:
    """A valid kit presence document (schemas/presence.schema.json), as the kit sends it."""
    status = status or ("online" if i % 3 == 0 else "offline")
    return json.dumps({"status": status, "epoch": epoch, "since": 1.7e9 + i, "name": f"User {i}"}, separators=(",", ":")).encode()


def seed_retained(settings: BrokerSettings, messages: Iterable[tuple[str, bytes]], *, timeout: float = 60.0) -> int:
    """Publish retained messages (QoS 0, in order), then one QoS 1 marker whose ack
    means the broker has stored all of them. Returns how many were published."""
    pub = client("bench-seed")
    pub.max_queued_messages_set(0)
    pub.connect(settings.host, settings.port)
    pub.loop_start()
    try:
        count = 0
        for topic, payload in messages:
            pub.publish(topic, payload, qos=0, retain=True)
            count += 1
        marker = pub.publish(f"{root(settings)}bench-marker", b"done", qos=1)
        marker.wait_for_publish(timeout)
        return count
    finally:
        pub.disconnect()
        pub.loop_stop()


class Counter:
    """Subscribes to `filter` and counts messages; `done` is set at `target`. It does
    nothing else with a message: the lower bound for any client built on paho."""

    def __init__(self, settings: BrokerSettings, filter: str, *, protocol: str = "5", qos: int = 0, target: int | None = None) -> None:
        self.count = 0
        self.target = target
        self.done = threading.Event()
        self.subscribed = threading.Event()
        self._filter, self._qos = filter, qos
        self._settings = settings
        self._client = client("bench-bare", protocol=protocol)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.on_message = self._on_message

    def start(self) -> Counter:
        self._client.connect(self._settings.host, self._settings.port)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, c, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        c.subscribe(self._filter, qos=self._qos)

    def _on_message(self, c, userdata, message) -> None:  # noqa: ANN001
        self.count += 1
        if self.count == self.target:
            self.done.set()


class SysReader:
    """The broker's own counters: `$SYS/broker/...` topics (set `sys_interval 1` in the
    broker's config so they are fresh every second)."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.values: dict[str, str] = {}
        self.updated: dict[str, float] = {}
        self.received = 0
        """$SYS messages delivered to this reader: they count in the broker's own
        `messages/sent`, so a delta of that counter must leave them out."""
        self._lock = threading.Lock()
        self._client = client("bench-sys", protocol="3.1.1")
        self._client.on_connect = lambda c, *_: c.subscribe("$SYS/broker/#", qos=0)
        self._client.on_message = self._on_message
        self._client.connect(settings.host, settings.port)
        self._client.loop_start()

    def _on_message(self, c, userdata, message) -> None:  # noqa: ANN001
        with self._lock:
            self.received += 1
            self.values[message.topic] = message.payload.decode(errors="replace")
            self.updated[message.topic] = time.monotonic()

    def number(self, name: str) -> float | None:
        with self._lock:
            raw = self.values.get(f"$SYS/broker/{name}")
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    def fresh(self, name: str, *, after: float, timeout: float) -> float | None:
        """The value of `name` published after monotonic time `after`. Mosquitto sends
        most counters only when they change, so a quiet counter keeps its last value."""
        deadline = time.monotonic() + timeout
        key = f"$SYS/broker/{name}"
        while time.monotonic() < deadline:
            with self._lock:
                if self.updated.get(key, 0) > after:
                    break
            time.sleep(0.05)
        return self.number(name)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
