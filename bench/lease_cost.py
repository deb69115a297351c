"""Row 10, what the lease costs: messages on the broker for renewing the leases of N
devices in one process, counted by a plain subscriber to everything under the row's
prefix while the devices sit online. One retained message per process per renewal
interval, max(lease / 2, lease - 15 s), whatever N; a per-device renewal (re-publishing
each presence) would cost N per interval, and at least one per device per lease."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from components import PresenceSession
from components.lease_keeper import DEFAULT_LEASE, RENEWAL_MARGIN, renewal_interval

from .context import Bench
from .harness import wait_for
from .report import Line, Section, fmt, verdict

TEST_LEASE = 10.0
"""Measured with a short lease (renewed every 10/3 s) so a run takes seconds; the count per
interval is what scales to the default."""
GOAL_PER_HOUR = 60.0
"""The issue: well under one message per device per minute."""


class _Counter:
    def __init__(self, bench: Bench, prefix: str) -> None:
        self.topics: list[str] = []
        subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda c, u, m: self.topics.append(m.topic)
        self._client.on_subscribe = lambda *a: subscribed.set()
        self._client.connect("127.0.0.1", bench.broker.port)
        self._client.subscribe(f"{prefix}/#", qos=0)
        self._client.loop_start()
        if not subscribed.wait(5):
            raise TimeoutError("no SUBACK")

    def count(self, kind: str) -> int:
        return sum(1 for topic in self.topics if topic.split("/")[1] == kind)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def run(bench: Bench) -> Section:
    section = Section("Row 10: what the lease costs")
    intervals = 1 if bench.quick else 6
    for devices in (100,) if bench.quick else (1, 10, 100):
        prefix = f"b8n{devices}"
        counter = _Counter(bench, prefix)
        session = PresenceSession(bench.settings(prefix=prefix), org="lease", lease=TEST_LEASE, observe=False).start()
        try:
            opened = [session.open_device(user=f"u{i}", device="tab") for i in range(devices)]
            if not wait_for(lambda: all(d.connected for d in opened), timeout=30):
                raise TimeoutError("devices did not connect")
            time.sleep(1.0)
            # start right after a renewal: the window then holds exactly `intervals` of them
            leases = counter.count("lease")
            if not wait_for(lambda: counter.count("lease") > leases, timeout=renewal_interval(TEST_LEASE) + 2):
                raise TimeoutError("no lease renewal seen")
            leases, presences = counter.count("lease"), counter.count("presence")
            start = time.monotonic()
            time.sleep(intervals * renewal_interval(TEST_LEASE) + 0.5)
            renewals = counter.count("lease") - leases
            republished = counter.count("presence") - presences
            took = time.monotonic() - start
        finally:
            session.close(timeout=1.0)
            counter.close()
        per_interval = renewals / intervals
        per_device_hour = per_interval * 3600 / renewal_interval(DEFAULT_LEASE) / devices
        section.lines.append(
            Line(
                f"10 lease n={devices}",
                f"lease renewals per device per hour at the default lease ({fmt(DEFAULT_LEASE)} s, renewed every {fmt(renewal_interval(DEFAULT_LEASE))} s), "
                f"{devices} device(s) in one process (measured: {renewals} renewals and {republished} presences re-published in {fmt(took)} s with a {fmt(TEST_LEASE)} s lease)",
                per_device_hour,
                "msg/device/h",
                f"{fmt(per_interval)} per process per renewal",
                f"per-device renewal: >= {fmt(3600 / DEFAULT_LEASE)} (one per device per lease)",
                per_device_hour / (3600 / DEFAULT_LEASE),
                f"well under {fmt(GOAL_PER_HOUR)} (one a minute) once a process has a few devices",
                verdict(republished == 0 and per_device_hour < GOAL_PER_HOUR,
                        why_not="a device re-published its presence to renew" if republished
                        else f"{fmt(per_device_hour)} >= {fmt(GOAL_PER_HOUR)}: a lone device pays the whole renewal, the floor of any 60 s lease (notes)"),
            )  # fmt: skip
        )
    section.notes += [
        f"A lease of L seconds bounds a ghost to L after its last renewal, so whoever renews must do so at least every L: per device that is at least {fmt(3600 / DEFAULT_LEASE)} messages an hour at the default L = {fmt(DEFAULT_LEASE)} s, not well under one a minute. So the process renews one retained lease for all its devices (`lease/{{org}}/{{owner}}/{{holder}}`), every max(L/3, L - {fmt(RENEWAL_MARGIN)} s): {fmt(3600 / renewal_interval(DEFAULT_LEASE))} messages an hour per process, {fmt(3600 / renewal_interval(DEFAULT_LEASE) / 20)} per device for a server with 20 open tabs. A process with a single device (a bot, `python -m components join`) pays the whole {fmt(3600 / renewal_interval(DEFAULT_LEASE))}; that is the floor for any lease of 60 s.",
        "The count is every message under the row's topic prefix (lease documents and presence), so a per-device re-publish would show here as `presences re-published`.",
    ]
    return section
