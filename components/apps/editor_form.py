"""The editor's inputs: one Streamlit input per schema Field (components.app_form),
each writing to the AppDocument when it changes, each followed by the checker's
messages for its path, the same text `validate` prints.

Inputs keep no bounds of their own: an out-of-range number is written, and the schema's
message says what is wrong right under it. A value left empty (or "(default ...)") is
removed from the file, so the schema's default applies again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st
import yaml

from components.app_document import AppDocument
from components.app_form import NO_DEFAULT, Field
from components.errors import ConfigProblem
from components.yaml_reader import JsonPath, json_path


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def field_key(path: JsonPath) -> str:
    """The key of the container around a field's input and messages
    (`field-widgets-5-ttl`), for page CSS and browser tests."""
    return "field-" + "-".join(map(str, path))


class FormRenderer:
    def __init__(self, doc: AppDocument, problems: Sequence[ConfigProblem]) -> None:
        self.doc = doc
        self.problems: dict[str, list[ConfigProblem]] = {}
        for problem in problems:
            self.problems.setdefault(problem.path, []).append(problem)

    def fields(
        self, fields: Sequence[Field], path: JsonPath, values: object, *, key: str, order: Sequence[str] = (), columns: int = 1
    ) -> None:
        """Inputs for `fields` of the mapping at `path` (whose plain data is `values`),
        in `columns`; `key` prefixes the input keys and must stay with the mapping when
        it moves; `order` is the schema's order of the mapping's keys (default: the fields')."""
        values = values if isinstance(values, Mapping) else {}
        order = list(order) or [f.name for f in fields]
        places = st.columns(columns) if columns > 1 else [st.container()]
        for index, field in enumerate(fields):
            with places[index % len(places)]:
                self._field(field, path, values, key=key, order=order)

    def _field(self, field: Field, path: JsonPath, values: Mapping[str, Any], *, key: str, order: list[str]) -> None:
        here = (*path, field.name)
        if field.kind == "group":
            inside = [p for p in self.problems if p.startswith(json_path(here))]
            with st.expander(field.name, expanded=bool(inside)):
                st.caption(field.description)
                self.messages(here)
                self.fields(field.fields, here, values.get(field.name), key=f"{key}.{field.name}", columns=2)
            return
        with st.container(key=field_key(here)):
            self._input(field, here, values.get(field.name, UNSET), key=f"{key}.{field.name}", order=order)
            self.messages(here)

    def messages(self, path: JsonPath) -> None:
        for problem in self.problems.get(json_path(path), ()):
            st.error(problem.message, icon=":material/error:")

    def _input(self, field: Field, path: JsonPath, value: Any, *, key: str, order: list[str]) -> None:
        if key not in st.session_state:
            st.session_state[key] = _shown(field, value)
        common: dict[str, Any] = {"key": key, "help": field.hint, "on_change": self._changed, "args": (field, path, key, order)}
        label = field.name + (" *" if field.required else "")
        if field.kind == "boolean":
            st.toggle(label, **common)
        elif field.kind in ("integer", "number"):
            integer = field.kind == "integer"
            st.number_input(label, step=1 if integer else 1.0, format="%d" if integer else "%g", placeholder=_placeholder(field), **common)
        elif field.kind == "choice":
            st.selectbox(label, options=[UNSET, *field.choices], format_func=lambda v: _choice_text(field, v), **common)
        elif field.kind == "list":
            options = st.session_state[key]
            st.multiselect(label, options=options, accept_new_options=True, placeholder=_placeholder(field), **common)
        else:  # text, value
            placeholder = "${NAME}" if field.secret else _placeholder(field)
            st.text_input(label, placeholder=placeholder, **common)

    def _changed(self, field: Field, path: JsonPath, key: str, order: list[str]) -> None:
        value = _written(field, st.session_state[key])
        if value is UNSET:
            self.doc.remove(path)
        else:
            self.doc.set(path, value, order=order)


def _shown(field: Field, value: Any) -> Any:
    """What the input starts with: the written value, or empty (the default applies)."""
    if field.kind == "boolean":
        return bool(value) if value is not UNSET else field.default is True
    if field.kind in ("integer", "number"):
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if field.kind == "choice":
        return next((c for c in field.choices if str(c) == str(value)), UNSET) if value is not UNSET else UNSET
    if field.kind == "list":
        return list(value) if isinstance(value, list) else []
    if value is UNSET or value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _written(field: Field, shown: Any) -> Any:
    """What an input's value writes to the file (UNSET: remove the key)."""
    if field.kind == "boolean":
        return bool(shown)
    if field.kind in ("integer", "number"):
        if shown is None:
            return UNSET
        return int(shown) if isinstance(shown, float) and shown.is_integer() and math.isfinite(shown) else shown
    if field.kind == "list":
        return list(shown) if shown else UNSET
    if field.kind == "choice":
        return shown
    text = str(shown).strip()
    if not text and not field.required:
        return UNSET
    if field.kind == "value":
        try:
            return yaml.safe_load(text)  # "600" is 600, "auto" is "auto"
        except yaml.YAMLError:
            return text
    return text


def _placeholder(field: Field) -> str:
    if field.default is NO_DEFAULT:
        return "not set"
    default = ", ".join(map(str, field.default)) if isinstance(field.default, list) else field.default
    return f"{default} (default)"


def _choice_text(field: Field, value: Any) -> str:
    if value is UNSET:
        return f"{_yaml_word(field.default)} (default)" if field.default is not NO_DEFAULT else "(not set)"
    return _yaml_word(value)


def _yaml_word(value: Any) -> str:
    """A value as the app file spells it: null, true, false, 5, text."""
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)
