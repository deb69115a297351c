"""The benchmark table: one line per figure, rendered as Markdown with the machine it
ran on. Every line says what was measured, its median and spread, what it is compared
with (and the ratio, where it is a speed), the goal, and whether the goal is met or why
not. A line that could not be measured says so instead of a number."""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

from .brokers import nats_binary

COLUMNS = ("row", "measurement", "median", "unit", "spread", "compared with", "ratio", "goal", "verdict")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
NOT_MEASURED = "n/a"


@dataclass
class Line:
    row: str
    """The issue's row number and a short tag, e.g. `1 SIGKILL`."""
    measurement: str
    median: float | None
    unit: str
    spread: str = ""
    compared: str = ""
    ratio: float | None = None
    goal: str = ""
    verdict: str = ""

    def cells(self) -> list[str]:
        return [
            self.row,
            self.measurement,
            NOT_MEASURED if self.median is None else fmt(self.median),
            self.unit,
            self.spread,
            self.compared,
            "" if self.ratio is None else fmt(self.ratio),
            self.goal,
            self.verdict,
        ]


@dataclass
class Section:
    """One row group of the issue: its lines and the notes printed under the table."""

    title: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], unit: str = "") -> str:
    """`min-max (n runs)`, the spread next to a median."""
    suffix = f" {unit}" if unit else ""
    return f"{fmt(min(values))}-{fmt(max(values))}{suffix}, {len(values)} runs"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def verdict(met: bool, *, why_not: str = "") -> str:
    return "met" if met else f"not met: {why_not}" if why_not else "not met"


# -- the machine ----------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _tool_version(command: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(pattern, out)
    return match.group(1) if match else "?"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "paho-mqtt": _version("paho-mqtt"),
        "mosquitto": _tool_version(["mosquitto", "-h"], r"mosquitto version (\S+)"),
        "nats-server": _tool_version([nats_binary() or "nats-server", "--version"], r"nats-server: v(\S+)"),
        "streamlit": _version("streamlit"),
    }


# -- rendering ------------------------------------------------------------------------------------


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def table(sections: Sequence[Section]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for section in sections:
        for line in section.lines:
            out.append("| " + " | ".join(_escape(c) for c in line.cells()) + " |")
    return "\n".join(out)


def render(sections: Sequence[Section], *, facts: dict[str, str], quick: bool, seconds: float, load_before: str, load_after: str) -> str:
    mode = "quick (`--quick`: fewer runs, smaller loads; a smoke test, not the figures)" if quick else "full"
    head = [
        "# Benchmarks",
        "",
        "Produced by `python -m bench" + (" --quick" if quick else "") + "` (see README, *Benchmarks*). Every figure is a median over",
        "repeated runs; every speed is also a ratio to a baseline measured side by side in the same run.",
        "**These figures come from a shared, noisy machine** (2 cores, other engineers running chaos and",
        "browser tests at the same time): read the ratios, not the absolute numbers, and re-run before",
        "drawing conclusions from a small difference. The command never fails because a figure is slow;",
        "people judge the figures, and each line says whether its goal is met and, if not, why.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in facts.items()],
        f"- load average (1/5/15 min) before: {load_before}; after: {load_after}",
        f"- mode: {mode}; took {seconds:.0f} s",
        "",
        "## Table",
        "",
        table(sections),
        "",
        "## Notes",
        "",
    ]
    for section in sections:
        head.append(f"### {section.title}")
        head.append("")
        if section.error:
            head.append(f"**Could not run:** {section.error}")
            head.append("")
        head += [f"- {note}" for note in section.notes]
        head.append("")
    return "\n".join(head).rstrip() + "\n"


def parse_table(markdown: str) -> list[dict[str, str]]:
    """The table's lines back as dicts (for the test that checks it is well formed)."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows
