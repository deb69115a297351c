"""The visual editor's forms, generated from the app-file schema at run time.

Every input the editor shows is a Field built here from one property of
`schemas/app.schema.json`: its name, description, default, bounds, choices and whether
it is required. Nothing about a widget's options is written in the editor, so a new
option (or a new widget type) in the schema is a new input with no other change.

    schema property                         Field.kind
    "type": "boolean"                       boolean
    "type": ["boolean", "null"]             choice of true / false, unset meaning null
    "type": [T, "null"] otherwise           as T, unset meaning null
    "type": "integer" / "number"            integer / number (bounds kept, not enforced:
                                            the validator explains what is out of range)
    "enum" or "const" choices               choice
    "type": "array" of strings              list
    "type": "object" with properties        group (its fields inside)
    "type": "string" (an id, a title...)    text
    anything else ("anyOf" of a number      value: text read as one YAML value, so "600"
    and "auto", ...)                        is a number and "auto" a string

Pure: no Streamlit, no I/O beyond reading the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .schema_files import load_schema

FieldKind = Literal["boolean", "integer", "number", "choice", "list", "group", "text", "value"]
WIDGET_LIST = "widgets"
"""The app file's property that holds the widgets, each picked by its `type`."""


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Field:
    """One input: a property of the schema and what the form needs to show it."""

    name: str
    kind: FieldKind
    description: str
    required: bool = False
    default: Any = NO_DEFAULT
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    fields: tuple[Field, ...] = ()  # a group's own fields
    secret: bool = False  # a value that must be a ${NAME} reference

    @property
    def hint(self) -> str:
        """What the input is for, with its bounds and default, for the help text."""
        parts = [self.description]
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"From {self.minimum:g} to {self.maximum:g}.")
        elif self.minimum is not None:
            parts.append(f"At least {self.minimum:g}.")
        elif self.maximum is not None:
            parts.append(f"At most {self.maximum:g}.")
        if self.default is not NO_DEFAULT:
            parts.append(f"Default: {self.default!r}.")
        return " ".join(parts)


@dataclass(frozen=True)
class WidgetForm:
    """The form of one widget type: what it is and its options (all but `type`)."""

    kind: str
    description: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class AppForm:
    fields: tuple[Field, ...]  # the app file's settings, the widget list left out
    widgets: dict[str, WidgetForm]  # in the schema's order
    order: tuple[str, ...]  # every top-level key, in the schema's order


def app_form(schema: Mapping[str, Any] | None = None) -> AppForm:
    """The editor's forms for `schema` (default: the shipped app-file schema)."""
    schema = load_schema("app") if schema is None else schema
    resolve = _Resolver(schema)
    top = resolve(schema)
    fields = tuple(
        field for name, prop in top["properties"].items()
        if name != WIDGET_LIST and (field := _field(name, prop, resolve, required=name in top.get("required", ()))) is not None
    )
    return AppForm(fields=fields, widgets=_widget_forms(top["properties"][WIDGET_LIST], resolve), order=tuple(top["properties"]))


def _widget_forms(widget_list: Mapping[str, Any], resolve: _Resolver) -> dict[str, WidgetForm]:
    """Each `if: {type: const K} then: {$ref: ...}` branch of the widget schema is a form."""
    union = resolve(widget_list["items"])
    branches = {
        branch["if"]["properties"]["type"]["const"]: resolve(branch["then"])
        for branch in union.get("allOf", ())
        if "const" in branch.get("if", {}).get("properties", {}).get("type", {})
    }
    forms = {}
    for kind in resolve(union["properties"]["type"])["enum"]:
        definition = branches.get(kind, {})
        options = definition.get("properties", {})
        forms[kind] = WidgetForm(
            kind=kind,
            description=definition.get("description", ""),
            fields=tuple(f for name, prop in options.items() if name != "type" and (f := _field(name, prop, resolve)) is not None),
        )
    return forms


def _field(name: str, prop: Mapping[str, Any], resolve: _Resolver, *, required: bool = False) -> Field | None:
    """The Field of one property; None for a constant (nothing to choose)."""
    spec = {**resolve(prop), **{k: v for k, v in prop.items() if k != "$ref"}}  # the property's own words win
    common: dict[str, Any] = {
        "name": name,
        "description": spec.get("description", ""),
        "required": required,
        "default": spec.get("default", NO_DEFAULT),
        "secret": bool(spec.get("x-env-only")),
    }
    if "const" in spec:
        return None
    if "enum" in spec:
        return Field(kind="choice", choices=_distinct(spec["enum"]), **common)
    kind, nullable = _base_type(spec.get("type"))
    if kind == "boolean":  # a toggle cannot say "not set", so a nullable one is a choice
        return Field(kind="choice", choices=(True, False), **common) if nullable else Field(kind="boolean", **common)
    if kind in ("integer", "number"):
        return Field(kind=kind, minimum=spec.get("minimum"), maximum=spec.get("maximum"), **common)
    if kind == "array" and resolve(spec.get("items", {})).get("type") == "string":
        return Field(kind="list", **common)
    if kind == "object" and "properties" in spec:
        needed = set(spec.get("required", ()))
        inner = tuple(f for n, p in spec["properties"].items() if (f := _field(n, p, resolve, required=n in needed)) is not None)
        return Field(kind="group", fields=inner, **common)
    # a value may still have bounds (an integer or null): the hint says them
    return Field(kind="text" if kind == "string" else "value", minimum=spec.get("minimum"), maximum=spec.get("maximum"), **common)


def _base_type(kind: Any) -> tuple[Any, bool]:
    """`["boolean", "null"]` is a boolean that may be left unset (null: the kit decides)."""
    if isinstance(kind, list) and "null" in kind and len(kind) == 2:
        return next(k for k in kind if k != "null"), True
    return kind, False


def _distinct(values: list[Any]) -> tuple[Any, ...]:
    """Choices as the form shows them: `5` and `"5"` are one choice (the string)."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(str(value), value if isinstance(value, str) else seen.get(str(value), value))
    return tuple(seen.values())


class _Resolver:
    """Follows local `$ref`s (`#/$defs/...`) within one schema document."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def __call__(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(32):  # a chain of references, never a cycle
            ref = node.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return node
            target: Any = self._root
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
        raise ValueError("the schema's $ref chain is too long")
