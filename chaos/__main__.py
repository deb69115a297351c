"""`python -m chaos [--rounds N] [--soak SECONDS] ...`: see chaos.controller."""

from __future__ import annotations

import argparse
import json
import sys

from .controller import Config, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description="chaos run of the presence kit against a local Mosquitto")
    parser.add_argument("--rounds", type=int, default=4, help="rounds to run (default 4)")
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="keep running rounds until this many seconds have passed")
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--users", type=int, default=15)
    parser.add_argument("--hosts", type=int, default=5, help="device-host processes")
    parser.add_argument("--keepalive", type=int, default=2)
    parser.add_argument("--leave-grace", type=float, default=2.0)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    cfg = Config(rounds=args.rounds, soak=args.soak, devices=args.devices, users=args.users, hosts=args.hosts,
                 keepalive=args.keepalive, grace=args.leave_grace, seed=args.seed)  # fmt: skip
    figures = run(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(figures.to_json(), indent=2))
    return 0 if figures.bounds_kept(cfg.grace) and not figures.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
