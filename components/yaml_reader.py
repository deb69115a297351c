"""Read YAML into plain JSON-like data and remember where each value was written.

PyYAML's loaders are not enough for a file a person edits and a schema checks: they keep
the last of two duplicate keys without a word, turn `2024-05-01` into a date, expand an
alias bomb until memory runs out, and forget the line of every value. So we let PyYAML
compose its node tree (which keeps the marks) and build the values ourselves:

- only strings, integers, finite floats, booleans, null, lists and mappings come out;
  timestamps stay the strings they were written as, other tags are refused;
- keys become the strings they were written as (`1:` gives "1", `on:` gives "on");
  duplicate keys and merge keys (`<<`) are refused;
- the text is capped at MAX_BYTES and the values built, aliases expanded, at MAX_VALUES;
- every path (`("widgets", 1, "ttl")`) maps to where its key and value are written.

Pure: no I/O. Problems come out as YamlError, never as a PyYAML traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 256 * 1024
MAX_VALUES = 100_000

JsonPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_PLAIN_SCALARS = {_TAG + "null", _TAG + "bool", _TAG + "int", _TAG + "float"}
_AS_WRITTEN = {_TAG + "str", _TAG + "timestamp"}


@dataclass(frozen=True)
class Location:
    """A place in the text, 1-based like every editor shows it."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark) -> Location:
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class Place:
    """Where one value is written: its key (for a mapping member) and the value itself."""

    key: Location | None
    value: Location
    scalar: bool


@dataclass(frozen=True)
class YamlProblem:
    location: Location
    path: JsonPath
    message: str


class YamlError(Exception):
    """The text is not a YAML document we accept; `problems` says where and why."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        super().__init__("\n".join(p.message for p in problems))
        self.problems = problems


@dataclass
class YamlDocument:
    data: object
    places: dict[JsonPath, Place] = field(default_factory=dict)

    def locate(self, path: JsonPath, *, at_key: bool = False) -> Location:
        """Where to point for a problem at `path`.

        At the key when asked (an unknown key) or when the value is a list or mapping
        (which starts on a later line); at the value for a scalar. A path that is not
        written in the text (a default filled in later) points at its nearest ancestor.
        """
        while path not in self.places and path:
            path = path[:-1]
        place = self.places.get(path)
        if place is None:
            return Location(1, 1)
        if place.key is not None and (at_key or not place.scalar):
            return place.key
        return place.value


def json_path(path: JsonPath) -> str:
    """`("widgets", 1, "ttl")` -> `$.widgets[1].ttl`; odd keys are quoted: `$['a b']`."""
    text = "$"
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}"
        else:
            text += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return text


def read_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raise YamlError listing every problem found."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlError([_problem((1, 1), f"the file is {size} bytes; app files are limited to {MAX_BYTES // 1024} KiB")])
    node = _compose(text)
    if node is None:
        raise YamlError([_problem((1, 1), "the file holds no YAML document")])
    return _Builder().build_document(node)


def _problem(line_col: tuple[int, int], message: str, path: JsonPath = ()) -> YamlProblem:
    return YamlProblem(Location(*line_col), path, message)


def _compose(text: str) -> Node | None:
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or exc.context or "not YAML"
        if exc.context and message.startswith("but "):  # the composer's "expected X" / "but found Y"
            message = f"{exc.context}, {message}"
        elif exc.context and exc.problem:
            started = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            message += f" ({exc.context}{started})"
        raise YamlError([_problem(where, f"YAML syntax error: {message}")]) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        where = (before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        raise YamlError([_problem(where, f"the file holds a character YAML does not allow: U+{exc.character:04X}")]) from None
    except RecursionError:
        raise YamlError([_problem((1, 1), "the document is nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()


class _TooMuch(Exception):
    """Building stopped early: the problem that stopped it is already recorded."""


class _Builder:
    def __init__(self) -> None:
        self.places: dict[JsonPath, Place] = {}
        self.problems: list[YamlProblem] = []
        self.count = 0
        self.open: set[int] = set()  # the containers being built, to catch an alias that contains itself
        self.constructor = SafeConstructor()

    def build_document(self, node: Node) -> YamlDocument:
        try:
            data = self.build(node, (), None)
        except _TooMuch:
            data = None
        except RecursionError:
            self.refuse(node, (), "the document is nested too deeply")
            data = None
        if self.problems:
            raise YamlError(self.problems)
        return YamlDocument(data, self.places)

    def refuse(self, node: Node, path: JsonPath, message: str) -> None:
        self.problems.append(YamlProblem(Location.of(node.start_mark), path, message))

    def build(self, node: Node, path: JsonPath, key: Node | None) -> object:
        self.count += 1
        if self.count > MAX_VALUES:
            # Point at the top-level key being built, not deep inside the expansion.
            top = self.places[path[:1]]
            self.problems.append(YamlProblem(top.key or top.value, path[:1], (
                f"the document expands to more than {MAX_VALUES} values once its aliases "
                "are expanded (an alias bomb?); app files are never that big")))
            raise _TooMuch
        self.places[path] = Place(
            key=Location.of(key.start_mark) if key is not None else None,
            value=Location.of(node.start_mark),
            scalar=isinstance(node, ScalarNode),
        )
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:
            self.refuse(node, path, "an alias refers to the list or mapping it is part of")
            raise _TooMuch
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode) and node.tag == _TAG + "seq":
                return [self.build(item, path + (i,), None) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode) and node.tag == _TAG + "map":
                return self.mapping(node, path)
            self.refuse(node, path, f"unsupported YAML tag {node.tag!r}: use a plain list or mapping")
            return None
        finally:
            self.open.discard(id(node))

    def mapping(self, node: MappingNode, path: JsonPath) -> dict[str, object]:
        result: dict[str, object] = {}
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.refuse(key_node, path, "a key must be a plain string, not a list or mapping")
                continue
            if key_node.tag == _TAG + "merge":
                self.refuse(key_node, path + ("<<",), "merge keys ('<<') are not supported: write the keys out")
                continue
            key = key_node.value
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                self.refuse(key_node, path + (key,), f"duplicate key {key!r} (first written on line {line})")
                continue
            first_seen[key] = key_node
            result[key] = self.build(value_node, path + (key,), key_node)
        return result

    def scalar(self, node: ScalarNode, path: JsonPath) -> object:
        if node.tag in _AS_WRITTEN:
            return node.value
        if node.tag in _PLAIN_SCALARS:
            try:
                value = self.constructor.yaml_constructors[node.tag](self.constructor, node)
            except ValueError:  # Python refuses to convert integers of more than 4,300 digits
                self.refuse(node, path, f"the number written here has {len(node.value)} characters; no setting needs that many")
                return None
            if isinstance(value, float) and not math.isfinite(value):
                self.refuse(node, path, f"{node.value!r} is not a finite number")
            return value
        self.refuse(node, path, f"unsupported YAML tag {node.tag!r}: use a plain string, number, boolean or null")
        return None
