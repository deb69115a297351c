"""An app file being edited: its YAML as a round-trip document (ruamel.yaml), so a save
keeps the comments, key order, quoting, flow style and indentation of everything the
edit left alone, and the edits the editor makes on it: set or remove a value, add, move
or remove a widget.

What the file says is never read from this document: its text goes through the same
checker as `validate` (components.app_file), so the editor says exactly what `validate`
says, and a save that checker refuses does not happen.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from .app_file import AppFileCheck, check_app_text
from .errors import ConfigError
from .ids import ID_PATTERN
from .schema_files import load_schema
from .yaml_reader import JsonPath, YamlError, read_yaml

NEW_APP = """\
# A new app: who is here, and a chat. No broker url, so an embedded broker starts;
# people come with ?user=NAME (for trying it out: set identity for real use).
version: 1
org: {org}
rooms: [lobby]
identity:
  source: query_param
widgets:
  - type: presence_list
    title: Who's here
  - type: chat_panel
"""


TOP_ORDER = tuple(load_schema("app")["properties"])


class AppDocument:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self._yaml = YAML()  # round-trip
        self._yaml.preserve_quotes = True
        self._yaml.width = 4096  # never fold a long line the author wrote on one
        try:
            _, sequence_indent, offset = load_yaml_guess_indent(text)  # the author's indentation
            self._yaml.indent(mapping=2, sequence=sequence_indent or 4, offset=offset if offset is not None else 2)
            data = self._yaml.load(text)
        except YAMLError as exc:
            raise ConfigError(f"{path}: cannot edit: not YAML: {exc}".replace("\n", " ")) from None
        if not isinstance(data, CommentedMap):
            raise ConfigError(f"{path}: cannot edit: an app file is a YAML mapping (version: 1, org: ...)")
        self.data = data

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> AppDocument:
        """The file as it is, or a minimal app (org named after the file) if it does not
        exist yet; ConfigError when it cannot be read or is not a YAML mapping."""
        path = Path(path)
        if not path.exists():
            if not path.parent.is_dir():
                raise ConfigError(f"{path}: cannot edit: the folder {path.parent} does not exist")
            return cls(path, NEW_APP.format(org=_org_for(path)))
        try:
            return cls(path, path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None

    # -- what it says -------------------------------------------------------------------
    def text(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.data, out)
        return out.getvalue()

    def check(self) -> AppFileCheck:
        return check_app_text(self.text(), filename=self.path.name)

    def plain(self) -> Any:
        """The document as the checker reads it (plain strings, numbers, lists, dicts)."""
        try:
            return read_yaml(self.text()).data
        except YamlError:
            return None

    # -- edits --------------------------------------------------------------------------
    def set(self, path: JsonPath, value: Any, *, order: Sequence[str] = ()) -> None:
        """Write `value` at `path`, making the mappings on the way. A new key goes where
        `order` (the schema's order of the keys beside it) puts it among those written;
        a list that is already there is refilled in place, so it keeps its style."""
        parent = self._container(path[:-1], create=True)
        key = path[-1]
        current = _get(parent, key)
        if isinstance(current, CommentedSeq) and isinstance(value, list):
            current[:] = value
        elif current is None and isinstance(parent, CommentedMap) and isinstance(key, str):
            parent.insert(_place(parent, key, order), key, _flow(value) if isinstance(value, list) else value)
        else:
            parent[key] = _flow(value) if isinstance(value, list) else value

    def remove(self, path: JsonPath) -> None:
        """Remove the value at `path` (its default applies again); a mapping left empty
        by it goes too."""
        parent = self._container(path[:-1], create=False)
        if parent is None or _get(parent, path[-1]) is None:
            return
        del parent[path[-1]]
        if not parent and len(path) > 1 and isinstance(parent, CommentedMap):
            self.remove(path[:-1])

    def widgets(self) -> CommentedSeq:
        widgets = self.data.get("widgets")
        if not isinstance(widgets, CommentedSeq):
            widgets = self.data["widgets"] = CommentedSeq()
        return widgets

    def add_widget(self, kind: str) -> None:
        self.widgets().append(CommentedMap(type=kind))

    def move_widget(self, index: int, by: int) -> None:
        widgets = self.widgets()
        target = index + by
        if 0 <= index < len(widgets) and 0 <= target < len(widgets):
            widgets.insert(target, widgets.pop(index))

    def remove_widget(self, index: int) -> None:
        widgets = self.widgets()
        if 0 <= index < len(widgets):
            del widgets[index]

    # -- saving ---------------------------------------------------------------------------
    def save(self) -> AppFileCheck:
        """Write the file (atomically) if the checker finds no problem; else ConfigError
        with every problem and the file untouched. Unset ${NAME} variables do not stop
        a save: they are set where the app runs."""
        check = self.check()
        if check.problems:
            raise ConfigError(*check.problems)
        text = self.text()
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            if self.path.exists():
                os.chmod(temporary, self.path.stat().st_mode & 0o777)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return check

    def _container(self, path: Sequence[str | int], *, create: bool) -> Any:
        node: Any = self.data
        for depth, key in enumerate(path):
            child = _get(node, key)
            if child is None:
                if not create or not isinstance(key, str) or not isinstance(node, CommentedMap):
                    return None
                child = CommentedMap()
                # a new mapping at the top (`broker:`) takes the schema's place among the top keys
                node.insert(_place(node, key, TOP_ORDER if depth == 0 else ()), key, child)
            node = child
        return node


def _get(node: Any, key: str | int) -> Any:
    if isinstance(node, dict) and isinstance(key, str):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


def _place(mapping: CommentedMap, key: str, order: Sequence[str]) -> int:
    """Where a new key goes: before the first written key that `order` puts after it
    (at the end when `order` does not know it)."""
    if key not in order:
        return len(mapping)
    later = set(order[order.index(key) + 1:])
    return next((i for i, written in enumerate(mapping) if written in later), len(mapping))


def _flow(values: list[Any]) -> CommentedSeq:
    """A new list written on one line (`[a, b]`), as the examples write short lists."""
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _org_for(path: Path) -> str:
    org = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.")[:64]
    return org if ID_PATTERN.fullmatch(org) else "my-app"
