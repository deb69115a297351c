"""A device host: one process running several headless devices of the kit, each with
its own session and proxy port (so the controller can freeze or cut one device), or,
with --broker, every device on that list of broker URLs (a cluster's nodes).

    python -m chaos.host [--broker URL,URL...] user:device[:PORT] ... (see the parser)

Prints `ready` once every device is connected, then obeys lines on stdin:
    type USER DEVICE        typing in the room (ttl 60 s)
    cursor USER DEVICE X Y  move the cursor in the room
End of input closes every device cleanly; a SIGKILL leaves it to the wills.
"""

from __future__ import annotations

import argparse
import sys
import time

from components import BrokerSettings, PresenceSession
from components.capabilities import BrokerCapabilities
from components.lease_keeper import DEFAULT_LEASE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.host")
    parser.add_argument("--org", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--keepalive", type=int, default=2)
    parser.add_argument("--leave-grace", type=float, default=2.0)
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE)
    parser.add_argument("--capability", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--broker", help="comma-separated broker URLs for every device (instead of a port each)")
    parser.add_argument("devices", nargs="+", metavar="USER:DEVICE[:PORT]")
    args = parser.parse_args(argv)
    sessions: dict[str, PresenceSession] = {}  # one per URL: with --broker, one for all (one lease)
    devices = {}
    for spec in args.devices:
        user, device, *port = spec.split(":")
        url = args.broker or f"mqtt://127.0.0.1:{port[0]}"
        if url not in sessions:
            settings = BrokerSettings.from_url(url, keepalive=args.keepalive, topic_prefix=args.topic_prefix, capabilities=BrokerCapabilities.parse(args.capability))
            sessions[url] = PresenceSession(settings, org=args.org, rooms=[args.room], leave_grace=args.leave_grace, lease=args.lease, observe=False).start()
        devices[(user, device)] = sessions[url].open_device(user=user, device=device)
    deadline = time.monotonic() + 15
    while not all(d.connected for d in devices.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    print("ready" if all(d.connected for d in devices.values()) else "not-ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) >= 3 and (device := devices.get((words[1], words[2]))) is not None:
            if words[0] == "type":
                device.typing(args.room, ttl=60)
            elif words[0] == "cursor" and len(words) == 5:
                device.move_cursor(args.room, float(words[3]), float(words[4]))
    for session in sessions.values():
        session.close(timeout=1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
