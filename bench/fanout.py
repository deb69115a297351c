"""Row 7, fan-out: PUBLISH packets the broker delivers per presence change with N tabs
(devices) open in one process. The observer is the process's one subscriber to the
org; each device subscribes only to its own topic. A bare paho client elsewhere flips
one user's presence K times (QoS 1, retained, newer epoch each time); the broker's own
counter `$SYS/broker/publish/messages/sent` is read before and after, less what the
$SYS reader itself was sent."""

from __future__ import annotations

import time

from components import PresenceSession

from .bare import SysReader, client, presence_payload, root
from .context import Bench
from .report import Line, Section, fmt
from .scale import _settled

ORG = "fan"
SENT = "publish/messages/sent"


def measure(bench: Bench, tabs: int, changes: int, sys_reader: SysReader) -> tuple[float, int]:
    settings = bench.settings(prefix=f"b7n{tabs}")
    # no lease: a renewal landing in the window would count here; its cost is row 8's
    session = PresenceSession(settings, org=ORG, rooms=["lobby"], lease=None).start()
    mover = client("bench-mover")
    try:
        devices = [session.open_device(user=f"tab{i}", device="d") for i in range(tabs)]
        deadline = time.monotonic() + 30
        while not (session.synced and all(d.connected for d in devices)) and time.monotonic() < deadline:
            time.sleep(0.05)
        mover.connect(settings.host, settings.port)
        mover.loop_start()
        seen: list[object] = []
        session.subscribe(lambda e: seen.append(e) if getattr(e, "user", None) == "mover" else None)
        before = _settled(sys_reader, (SENT,))[SENT]
        reader_before = sys_reader.received
        epoch = int(time.time() * 1000)
        for n in range(changes):
            info = mover.publish(f"{root(settings)}presence/{ORG}/mover/d", presence_payload(n, epoch=epoch + n, status="online" if n % 2 else "away"), qos=1, retain=True)
            info.wait_for_publish(5)
        after = _settled(sys_reader, (SENT,))[SENT]
        delivered = after - before - (sys_reader.received - reader_before)
        return delivered / changes, len(seen)
    finally:
        mover.disconnect()
        mover.loop_stop()
        session.close(timeout=3.0)


def run(bench: Bench) -> Section:
    section = Section("Row 7: fan-out")
    changes = 20 if bench.quick else 100
    sizes = (1, 50) if bench.quick else (1, 10, 100)
    sys_reader = SysReader(bench.settings(prefix="b7"))
    try:
        for tabs in sizes:
            per_change, seen = measure(bench, tabs, changes, sys_reader)
            section.lines.append(
                Line(
                    f"7 tabs={tabs}",
                    f"broker deliveries per presence change, {tabs} tab(s) open in one process ({changes} changes; the observer saw {seen})",
                    per_change,
                    "msg/change",
                    "",
                    f"one per tab would be {tabs}",
                    None,
                    "1 per process",
                    "met" if round(per_change, 2) <= 1.0 else f"not met: {fmt(per_change)}",
                )
            )
    finally:
        sys_reader.close()
    section.notes.append(
        "Counted by the broker ($SYS/broker/publish/messages/sent, refreshed every second with `sys_interval 1`), less the $SYS messages the counting client itself was sent. The changes come from a client outside the process that does not subscribe, so every delivery counted went to the process with the tabs."
    )
    return section
