"""A presence flood from its own process: `python -m bench.flood --port P --root R
--org O --users N --rate R --seconds S`. Raw MQTT 3.1.1 over a socket, QoS 0, in 10 ms
batches at `rate` messages a second, so the publisher is never the bottleneck (paho
publishes about 20k msg/s here). Every message is a valid presence document with a
newer epoch than the last one for that user, alternating online and away, so each one
changes the user's state. Prints the number sent when done."""

from __future__ import annotations

import argparse
import json
import socket
import time


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _length(len(body)) + body


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--port", "--users", "--rate"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--root", default="")
    parser.add_argument("--org", required=True)
    args = parser.parse_args()
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
    connect = _string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(f"bench-flood-{time.monotonic_ns()}")
    sock.sendall(_packet(0x10, connect))
    if sock.recv(4)[:2] != b"\x20\x02":
        raise SystemExit("flood: no CONNACK")
    topics = [_string(f"{args.root}presence/{args.org}/f{i}/d") for i in range(args.users)]
    epoch = int(time.time() * 1000)
    per_batch = max(1, args.rate // 100)
    sent, start = 0, time.monotonic()
    deadline = start + args.seconds
    while time.monotonic() < deadline:
        batch = bytearray()
        for _ in range(per_batch):
            i = sent % args.users
            status = "online" if (sent // args.users) % 2 else "away"
            doc = json.dumps({"status": status, "epoch": epoch + sent, "since": 1.7e9, "name": f"F{i}"}, separators=(",", ":")).encode()
            batch += _packet(0x30, topics[i] + doc)
            sent += 1
        sock.sendall(batch)
        ahead = start + sent / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    sock.sendall(b"\xe0\x00")
    sock.close()
    print(sent, flush=True)


if __name__ == "__main__":
    main()
