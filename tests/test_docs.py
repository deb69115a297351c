"""What the documentation shows is what runs: every code block of README.md, docs/*.md
and deploy/README.md is run here, or carries the reason it cannot be.

The rules (README.md's "Set-up" points here):
- A **marker** is an HTML comment on the line just above a fenced block, which Markdown
  renders as nothing: `<!-- doctest: DIRECTIVE -->`, several separated by `;`. A marker
  anywhere else (a blank line below it, say) is an error, not silently ignored.
- `skip REASON`: the block is not run; the reason (the rest of the comment) is
  required. Every block that is not one of the kinds below needs it (nginx, sh, ...);
  indented code blocks are refused: fence them and name their language.
- `python`: runs with `python` in a fresh folder, with no MQTT_* or PRESENCE_* variables
  set, against a Mosquitto of its own in place of `mqtt://127.0.0.1:1883`; it must exit 0
  within 60 s, and what it prints must be the ```text block just below it marked
  `output`, or nothing. A block that imports streamlit is a page: Streamlit's AppTest
  runs it as `?user=ana` and it must raise nothing. A block whose first line is
  `# NAME.py: ...` is also saved as NAME.py for the blocks after it, and `after NAME.py`
  runs a block at the end of that file (a snippet of it). The folder holds a
  `presence.yaml` for pages (PRESENCE_YAML below) unless a block above saved another.
- `yaml`: an app file, which must be valid (an unset `${NAME}` is only a warning).
  `file NAME` saves it as NAME instead, for a console block after it that shows what
  checking it says.
- `console`: each `$ ` line runs with bash in the folder (`python` is the interpreter
  running the tests; `$?` is the previous command's status), with the broker replaced as
  for Python. The lines under a command are what it prints, stdout and stderr together
  as a terminal shows them: all of it for a command that exits; its first lines for one
  still running a second after they appeared (a server, `watch`, `join`), which keeps
  running until the block ends, then gets SIGTERM. A command ending with `&` that shows
  no output does not hold up the next one.
- `varies TOKEN...` (console and output blocks): each TOKEN, wherever it appears in the
  shown output, stands for any text, e.g. `varies 40117 /home/ana 1764480000.5` for a
  port, a path and a time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from helpers import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "deploy" / "README.md"]
BROKER = "127.0.0.1:1883"
"""The broker the examples name; each block gets a Mosquitto of its own instead."""
PRESENCE_YAML = """\
version: 1
org: acme
rooms: [lobby, design]
identity:
  source: query_param
"""
RUNS = ("python", "yaml", "console")
DIRECTIVES = ("skip", "output", "varies", "file", "after")
TIMEOUT = 60.0
SETTLE = 1.0
"""Seconds a console command that printed its shown lines has to exit before it counts
as still running (a server, `watch`)."""
MARKER = re.compile(r"<!--\s*doctest:(?P<body>.*?)-->", re.DOTALL)
FILE_LINE = re.compile(r"#\s*(?P<name>[\w.-]+\.py):")
IMPORTS_STREAMLIT = re.compile(r"^(import streamlit|from streamlit)\b", re.MULTILINE)


@dataclass
class Block:
    document: Path
    line: int
    """1-based line of the opening fence."""
    language: str
    text: str
    directives: dict[str, str] = field(default_factory=dict)
    output: Block | None = None
    """The `output` block that follows a Python block."""

    @property
    def where(self) -> str:
        name = self.document.relative_to(REPO) if self.document.is_relative_to(REPO) else self.document.name
        return f"{name}:{self.line}"

    @property
    def saves(self) -> str | None:
        """The file name this block is saved under for the blocks after it."""
        if "file" in self.directives:
            return self.directives["file"]
        first = self.text.splitlines()[0] if self.text else ""
        match = FILE_LINE.match(first) if self.language == "python" else None
        return match["name"] if match else None

    def varies(self) -> list[str]:
        return self.directives.get("varies", "").split()


def parse(document: Path) -> tuple[list[Block], list[int]]:
    """Every code block of `document`, with the directives of the marker above it, and
    the lines of markers that stand above no block (a blank line between, say)."""
    tokens = MarkdownIt("commonmark").parse(document.read_text(encoding="utf-8"))
    found: list[Block] = []
    markers: dict[int, tuple[int, str]] = {}
    """By the line after the marker: its own line (1-based) and its body."""
    for token in tokens:
        if token.type == "html_block" and (match := MARKER.search(token.content)) and token.map:
            markers[token.map[1]] = (token.map[0] + 1, match["body"])
        elif token.type in ("fence", "code_block") and token.map:
            if token.type == "code_block":
                language = "(indented)"
            else:
                language = token.info.split()[0] if token.info.strip() else "(none)"
            block = Block(document, token.map[0] + 1, language, token.content)
            block.directives = directives(markers.pop(token.map[0], (0, ""))[1], where=block.where)
            found.append(block)
    for before, block in zip(found, found[1:]):
        if "output" in block.directives:
            before.output = block
    return found, [line for line, _ in markers.values()]


def directives(body: str, *, where: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    rest = body.strip()
    while rest:
        name, rest = re.match(r"([^\s;]*)(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
        assert name in DIRECTIVES, f"{where}: unknown doctest directive {name!r} (known: {', '.join(DIRECTIVES)})"
        value, _, rest = (rest, "", "") if name == "skip" else rest.partition(";")  # a reason may hold `;`
        parsed[name] = value.strip()
        rest = rest.strip()
    return parsed


PARSED = {document: parse(document) for document in DOCUMENTS}
ALL_BLOCKS = [block for blocks, _ in PARSED.values() for block in blocks]


def needs_broker(block: Block) -> bool:
    return block.language == "console" or (block.language == "python" and BROKER in block.text)


def runnable() -> Iterator[object]:
    for block in ALL_BLOCKS:
        if "skip" in block.directives or "output" in block.directives or block.language not in RUNS:
            continue
        marks = [pytest.mark.integration] if needs_broker(block) else []
        yield pytest.param(block, id=f"{block.where}:{block.language}", marks=marks)


# -- the rules themselves --------------------------------------------------------------------


def test_every_block_runs_or_says_why_not() -> None:
    assert len(ALL_BLOCKS) >= 15, "the documents were not parsed"
    problems = [
        f"{document.relative_to(REPO)}:{line}: a doctest marker must be on the line just above a fenced block"
        for document, (_, stray) in PARSED.items()
        for line in stray
    ]
    for i, block in enumerate(ALL_BLOCKS):
        d = block.directives
        if "skip" in d:
            if not d["skip"]:
                problems.append(f"{block.where}: `skip` needs its reason")
        elif "output" in d:
            if block.language != "text" or i == 0 or ALL_BLOCKS[i - 1].language != "python" or ALL_BLOCKS[i - 1].output is not block:
                problems.append(f"{block.where}: `output` is a ```text block just below a Python block")
        elif block.language == "(indented)":
            problems.append(f"{block.where}: an indented code block: fence it with its language (```console, ```python, ...)")
        elif block.language not in RUNS:
            problems.append(f"{block.where}: a {block.language} block that is not run needs `<!-- doctest: skip REASON -->` just above it")
        if "file" in d:
            later = [b for b in ALL_BLOCKS[i + 1:] if b.document == block.document and b.language == "console"]
            if not any(d["file"] in b.text for b in later):
                problems.append(f"{block.where}: `file {d['file']}` is used by no console block after it")
        if "after" in d and d["after"] not in [b.saves for b in ALL_BLOCKS[:i] if b.document == block.document]:
            problems.append(f"{block.where}: `after {d['after']}`: no block above saves {d['after']}")
        if "varies" in d and block.language not in ("console", "text"):
            problems.append(f"{block.where}: `varies` is for console and output blocks")
    assert not problems, "\n".join(problems)


def test_the_rules_catch_what_they_should(tmp_path: Path) -> None:
    """The rule test above could not fail if the parser saw no markers or no blocks."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Text.\n<!-- doctest: skip needs nginx -->\n```nginx\nx\n```\n\n    indented\n\n"
        "```python\nprint(1)\n```\n<!-- doctest: output; varies 1 -->\n```text\n1\n```\n"
        "<!-- doctest: skip astray -->\n\n```yaml\nversion: 1\n```\n",
        encoding="utf-8",
    )
    (nginx, indented, python, output, yaml), stray = parse(doc)
    assert stray == [16] and yaml.directives == {}
    assert (nginx.directives, nginx.line) == ({"skip": "needs nginx"}, 3)
    assert indented.language == "(indented)" and not indented.directives
    assert python.output is output and output.varies() == ["1"]
    with pytest.raises(AssertionError, match="unknown doctest directive 'skipp'"):
        directives("skipp why", where="doc.md:1")
    assert directives("varies 1 2; skip why; and why not", where="doc.md:1") == {"varies": "1 2", "skip": "why; and why not"}
    assert matches(["a 7 b"], ["a 1 b"], varies=["1"]) and not matches(["a 7 b c"], ["a 1 b"], varies=["1"])


# -- running them ----------------------------------------------------------------------------


@pytest.mark.parametrize("block", list(runnable()))
def test_block_runs_as_shown(block: Block, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = prepare_folder(block, tmp_path)
    broker = f"127.0.0.1:{request.getfixturevalue('own_broker').port}" if needs_broker(block) else BROKER
    if block.language == "yaml":
        check_app_file(block, folder)
    elif block.language == "python":
        run_python(block, folder, broker=broker, monkeypatch=monkeypatch)
    else:
        run_console(block, folder, broker=broker)


def prepare_folder(block: Block, tmp_path: Path) -> Path:
    """A folder with presence.yaml and the files the blocks above `block` saved."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "presence.yaml").write_text(PRESENCE_YAML, encoding="utf-8")
    for earlier in ALL_BLOCKS[: ALL_BLOCKS.index(block)]:
        if earlier.document == block.document and earlier.saves and "skip" not in earlier.directives:
            (folder / earlier.saves).write_text(earlier.text, encoding="utf-8")
    return folder


def clean_env() -> dict[str, str]:
    """The user's environment without the kit's variables, with this interpreter as
    `python` and the kit of this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "PRESENCE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def check_app_file(block: Block, folder: Path) -> None:
    from components import check_app_file as check

    if "file" in block.directives:
        return  # a console block after it shows what checking it says
    path = folder / f"example-{block.line}.yaml"
    path.write_text(block.text, encoding="utf-8")
    problems = [f"{p}" for p in check(path).problems]
    assert not problems, f"{block.where}: this app file is not valid:\n" + "\n".join(problems)


def run_python(block: Block, folder: Path, *, broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source = block.text
    if "after" in block.directives:
        source = (folder / block.directives["after"]).read_text(encoding="utf-8") + source
    source = source.replace(BROKER, broker)
    if IMPORTS_STREAMLIT.search(source):
        assert block.output is None, f"{block.where}: a page's output is not compared; show what it renders in words"
        run_page(block, folder, source, monkeypatch=monkeypatch)
        return
    script = folder / f"block-{block.line}.py"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, script.name], cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{block.where} exited {result.returncode}:\n{result.stderr}"
    shown = block.output.text.splitlines() if block.output else []
    printed = result.stdout.splitlines()
    assert matches(printed, shown, varies=block.output.varies() if block.output else []), (
        f"{block.where} printed what its output block does not show:\n{compare(printed, shown)}\n{result.stderr}"
    )


def run_page(block: Block, folder: Path, source: str, *, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    for name in [k for k in os.environ if k.startswith(("MQTT_", "PRESENCE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(folder)
    at = AppTest.from_string(source, default_timeout=30)
    at.query_params["user"] = "ana"
    at.run()
    assert not at.exception, f"{block.where} raised in AppTest: {[e.message for e in at.exception]}"


# -- console sessions -------------------------------------------------------------------------


@dataclass
class Command:
    line: str
    shown: list[str]

    @property
    def background(self) -> bool:
        return self.line.rstrip().endswith("&")


def commands(text: str) -> list[Command]:
    found: list[Command] = []
    continued = False
    for line in text.splitlines():
        if continued:
            found[-1].line += "\n" + line
        elif line.startswith("$ "):
            found.append(Command(line[2:], []))
        else:
            assert found, f"output before the first command: {line!r}"
            found[-1].shown.append(line)
        continued = line.endswith("\\")
    return found


class Running:
    """A command started with bash, its output (stdout and stderr) read line by line."""

    def __init__(self, command: str, *, folder: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            ["bash", "-c", command], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="doc-console-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, count: int, *, timeout: float) -> bool:
        """Until the command ended (False), or printed `count` lines and did not end
        within SETTLE seconds after (True: it keeps running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if count and len(self.lines) >= count:
                try:
                    self.process.wait(SETTLE)
                except subprocess.TimeoutExpired:
                    return True
            if self.process.poll() is not None:
                self._reader.join(5)
                return False
            time.sleep(0.02)
        raise AssertionError(f"still running after {timeout} s with {len(self.lines)} of {count} lines: {self.lines}")

    def stop(self) -> None:
        """SIGTERM to the command's process group (it has one of its own), then SIGKILL."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout:
            self.process.stdout.close()


def run_console(block: Block, folder: Path, *, broker: str) -> None:
    env = clean_env()
    bin_dir = folder.parent / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    status = 0
    running: list[Running] = []
    try:
        for command in commands(block.text):
            line = command.line.rstrip().removesuffix("&").replace(BROKER, broker)
            started = Running(f"(exit {status}); {line}", folder=folder, env=env)
            running.append(started)
            want = len(command.shown)
            if command.background and not want:
                continue
            still_running = started.wait_for(want, timeout=TIMEOUT)
            got = started.lines[:want] if still_running else started.lines
            assert matches(got, command.shown, varies=block.varies()), (
                f"{block.where}: `$ {command.line}` printed what the block does not show:\n{compare(got, command.shown)}"
            )
            if not still_running:
                status = started.process.returncode
    finally:
        for started in reversed(running):
            started.stop()


# -- comparing output ------------------------------------------------------------------------


def matches(got: list[str], shown: list[str], *, varies: list[str]) -> bool:
    return len(got) == len(shown) and all(line_matches(g.rstrip(), s.rstrip(), varies) for g, s in zip(got, shown))


def line_matches(got: str, shown: str, varies: list[str]) -> bool:
    tokens = sorted((t for t in varies if t in shown), key=len, reverse=True)
    if not tokens:
        return got == shown
    pattern = "".join(".+?" if part in tokens else re.escape(part) for part in re.split(f"({'|'.join(map(re.escape, tokens))})", shown))
    return re.fullmatch(pattern, got) is not None


def compare(got: list[str], shown: list[str]) -> str:
    return "shown:\n" + "\n".join(f"  {s}" for s in shown) + "\ngot:\n" + "\n".join(f"  {g}" for g in got)
