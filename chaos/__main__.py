"""`python -m chaos [--cluster] [--rounds N] [--soak SECONDS] ...`: see chaos.controller
(one Mosquitto behind a freezing proxy) and chaos.cluster (a NATS cluster, node kills)."""

from __future__ import annotations

import argparse
import json
import sys

from components.lease_keeper import DEFAULT_LEASE

from .cluster import CLUSTER_LEASE, run_cluster
from .controller import Config, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description="chaos run of the presence kit against a local Mosquitto, or a local NATS cluster")
    parser.add_argument("--cluster", action="store_true", help="a 3-node NATS JetStream cluster: node kills and restarts among the faults")
    parser.add_argument("--lease", type=float, default=None, metavar="SECONDS", help="the devices' lease (default: 20 with --cluster, else the kit's 60)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds to run (default 4)")
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="keep running rounds until this many seconds have passed")
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--users", type=int, default=15)
    parser.add_argument("--hosts", type=int, default=5, help="device-host processes")
    parser.add_argument("--keepalive", type=int, default=2)
    parser.add_argument("--leave-grace", type=float, default=2.0)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    lease = args.lease if args.lease is not None else (CLUSTER_LEASE if args.cluster else None)
    cfg = Config(rounds=args.rounds, soak=args.soak, devices=args.devices, users=args.users, hosts=args.hosts,
                 keepalive=args.keepalive, grace=args.leave_grace, lease=lease, seed=args.seed)  # fmt: skip
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    figures = run_cluster(cfg, log=log) if args.cluster else run(cfg, log=log)
    print(json.dumps(figures.to_json(), indent=2))
    return 0 if figures.bounds_kept(cfg.grace, lease=lease or DEFAULT_LEASE) and not figures.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
