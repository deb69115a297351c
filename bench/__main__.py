"""`python -m bench [--quick] [--out docs/BENCHMARKS.md] [--rows 1,3]`

Starts its own Mosquitto (and, for row 1's cluster lines, a 3-node NATS cluster) on free
loopback ports, runs the row groups, prints one
table and writes it, with the machine it ran on, to --out. Exit status: 0 when every
row ran (whatever its figures: people judge them, not CI), 1 when a row could not run
(its error is in the table's notes), 2 when nothing can run (no mosquitto).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import big_org, browser_load, cluster, cursor_path, detection, fanout, history, lease_cost, scale, snapshot, throughput
from .context import Bench
from .report import Section, load_average, machine, render, table

GROUPS: list[tuple[frozenset[int], str, Callable[[Bench], Section]]] = [
    (frozenset({1, 2}), "Rows 1 and 2: crash detection and graceful leave", detection.run),
    (frozenset({1}), "Row 1 on a NATS cluster: crash detection across nodes", cluster.run),
    (frozenset({3}), "Row 3: late-joiner snapshot", snapshot.run),
    (frozenset({4}), "Row 4: observer throughput", throughput.run),
    (frozenset({2, 5}), "Row 5: cursor path", cursor_path.run),
    (frozenset({6}), "Row 6: scale in one process", scale.run),
    (frozenset({7}), "Row 7: fan-out", fanout.run),
    (frozenset({8}), "Row 8: chat history", history.run),
    (frozenset({9}), "Row 9: big org", big_org.run),
    (frozenset({10}), "Row 10: what the lease costs", lease_cost.run),
    (frozenset({11}), "Row 11: the browser under load", browser_load.run),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Measure the presence kit against bare paho-mqtt and the anchors.")
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller loads, under a minute (checks the command works)")
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"), help="where to write the table (default docs/BENCHMARKS.md)")
    parser.add_argument("--rows", default="1,2,3,4,5,6,7,8,9,10,11", help="comma-separated row numbers to run (default all)")
    args = parser.parse_args(argv)
    try:
        rows = {int(r) for r in args.rows.split(",") if r.strip()}
    except ValueError:
        parser.error(f"--rows takes numbers such as 1,3, not {args.rows!r}")
    if shutil.which("mosquitto") is None:
        print("error: mosquitto is not installed (apt-get install mosquitto); nothing can be measured", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    started, load_before = time.monotonic(), load_average()
    bench = Bench(quick=args.quick).start()
    sections: list[Section] = []
    try:
        for numbers, title, run in GROUPS:
            if not numbers & rows:
                continue
            print(f"... {title}", file=sys.stderr, flush=True)
            try:
                sections.append(run(bench))
            except Exception as exc:  # noqa: BLE001 - one row failing must not hide the others
                traceback.print_exc()
                sections.append(Section(title, error=f"{type(exc).__name__}: {exc}"))
    finally:
        bench.close()
    text = render(sections, facts=machine(), quick=args.quick, seconds=time.monotonic() - started, load_before=load_before, load_after=load_average())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(table(sections))
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    raise SystemExit(main())
