"""`python -m bench --quick` runs and writes a well-formed table: every row of the
issue present, every median a number (or n/a for a part it skips), every ratio a
number when given. It checks that the command works, not how fast anything is."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness import REPO, kit_env
from bench.report import NUMBER, NOT_MEASURED, parse_table

pytestmark = pytest.mark.integration


def test_quick_bench_writes_a_well_formed_table(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO, env=kit_env(), capture_output=True, text=True, timeout=240,
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "## Machine" in text and "shared, noisy machine" in text
    rows = parse_table(text)
    assert {row["row"].split()[0] for row in rows} == {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}
    for row in rows:
        assert row["median"] == NOT_MEASURED or NUMBER.match(row["median"]), row
        assert row["ratio"] == "" or NUMBER.match(row["ratio"]), row
        assert row["goal"], row
    assert "**Could not run:**" not in text
    assert {"1 NATS SIGKILL", "1 NATS SIGSTOP", "1 NATS node+process", "10 lease n=100"} <= {row["row"] for row in rows}
    assert took < 120, f"--quick took {took:.0f} s"
