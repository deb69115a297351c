"""App files: one YAML file that describes an app, checked before anything runs.

    text --read_yaml--> data + where each value is written
         --${NAME} from the environment--> data
         --JSON Schema (schemas/app.schema.json), defaults filled from it--> checked data
         --rooms the widgets name exist--> AppSettings

Every problem found on the way is reported, all at once, as
`FILE:LINE:COL: $.json.path: message` (a ConfigError), never as a traceback. The schema
is the single source of truth: its defaults are filled in while validating, and no rule
or default is written again here. Pure apart from reading the file: no sockets, no
threads, no Streamlit.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match

from .capabilities import BrokerCapabilities
from .errors import ConfigError, ConfigProblem
from .schema_files import load_schema
from .settings import (
    AppSettings,
    BrokerConfig,
    IdentityConfig,
    PresenceListSettings,
    TlsConfig,
    WIDGET_SETTINGS,
    WidgetSettings,
)
from .yaml_reader import MAX_BYTES, JsonPath, Location, YamlDocument, YamlError, json_path, read_yaml

SUPPORTED_VERSION = 1

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_app_file(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read, check and type one app file; relative TLS file paths are taken from its folder."""
    path = Path(path)
    try:
        text = _read_text(path)
    except OSError as exc:  # chained, so validate_command can tell unreadable from invalid
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return _load(text, filename=str(path), environ=environ, base_dir=path.parent)


def load_app_text(
    text: str, *, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> AppSettings:
    """Check and type the text of an app file; `filename` only labels the problems."""
    return _load(text, filename=filename, environ=environ, base_dir=None)


def _read_text(path: Path) -> str:
    """The text of an app file. OSError when it cannot be read, ConfigError when it is
    too big or not UTF-8 (it was read: it is simply not a valid app file)."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise ConfigError(ConfigProblem(str(path), 1, 1, "$", f"the file is larger than {MAX_BYTES // 1024} KiB, the limit for app files"))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(ConfigProblem(str(path), line, column, "$", "the file is not UTF-8 text")) from None


def validate_command(files: Sequence[str], *, stderr: TextIO) -> int:
    """`python -m components validate FILE...`: 0 all valid, 1 any invalid, 2 any unreadable."""
    status = 0
    for name in files:
        try:
            load_app_file(name)
        except ConfigError as exc:
            print(exc, file=stderr)
            status = max(status, 2 if isinstance(exc.__cause__, OSError) else 1)
    return status


def schema_command(*, stdout: TextIO) -> int:
    """`python -m components schema`: print the app-file schema for editors and tools."""
    stdout.write(json.dumps(load_schema("app"), indent=2, ensure_ascii=False) + "\n")
    return 0


# -- the pipeline ------------------------------------------------------------------


def _load(text: str, *, filename: str, environ: Mapping[str, str] | None, base_dir: Path | None) -> AppSettings:
    try:
        document = read_yaml(text)
    except YamlError as exc:
        raise ConfigError(*_located(filename, None, [(p.path, p.message, p.location) for p in exc.problems])) from None
    data, problems = _check(document, environ=os.environ if environ is None else environ)
    if problems:
        raise ConfigError(*_located(filename, document, problems))
    return _settings(data, base_dir=base_dir)


# A problem before it is placed: the path, the message, and where to point (a Location
# when already known, "at_key" for a key, None for the value).
Found = tuple[JsonPath, str, Any]


def _check(document: YamlDocument, *, environ: Mapping[str, str]) -> tuple[dict, list[Found]]:
    """The checked data with the schema's defaults filled in, and every problem found."""
    data = document.data
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string"}.get(type(data), "a single value")
        return {}, [((), f"an app file is a mapping that starts with 'version: {SUPPORTED_VERSION}', not {kind}", None)]
    if "version" in data and data["version"] != SUPPORTED_VERSION:
        return {}, [(("version",), f"this kit reads app files of version {SUPPORTED_VERSION}, not {data['version']!r}", None)]

    data, problems = _substitute(data, (), environ)
    unset = {path for path, _, _ in problems}  # their values are placeholders: say nothing more
    for error in _validator().iter_errors(data):  # fills in the schema's defaults as it goes
        problems += (p for p in _explain(error) if p[0] not in unset)
    seen = {path for path, _, _ in problems}
    problems += (p for p in _check_rooms(data) if p[0] not in seen)
    return data, problems


def _located(filename: str, document: YamlDocument | None, problems: Iterable[Found]) -> list[ConfigProblem]:
    located = set()
    for path, message, where in problems:
        if document is not None and not isinstance(where, Location):
            where = document.locate(path, at_key=where == "at_key")
        located.add(ConfigProblem(filename, where.line, where.column, json_path(path), message))
    return sorted(located, key=lambda p: (p.line, p.column, p.path, p.message))


# -- ${NAME} from the environment ---------------------------------------------------


class EnvValue(str):
    """A string that came from the environment. Its repr is the reference as written
    (`'${MQTT_PASSWORD}'`), so no message ever prints a secret."""

    reference: str
    whole: bool  # the string was exactly one ${NAME}

    def __repr__(self) -> str:
        return repr(self.reference)


def _substitute(value: object, path: JsonPath, environ: Mapping[str, str]) -> tuple[object, list[Found]]:
    if isinstance(value, dict):
        problems: list[Found] = []
        result = {}
        for key, item in value.items():
            result[key], found = _substitute(item, path + (key,), environ)
            problems += found
        return result, problems
    if isinstance(value, list):
        pairs = [_substitute(item, path + (i,), environ) for i, item in enumerate(value)]
        return [v for v, _ in pairs], [p for _, found in pairs for p in found]
    if not isinstance(value, str) or "$" not in value:
        return value, []

    problems = []
    used = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used
        if match.group(0) == "$${":
            return "${"  # an escaped, literal ${
        name = match.group(1)
        if not match.group(0).endswith("}") or not _ENV_NAME.fullmatch(name or ""):
            problems.append((path, f"{match.group(0)!r} is not a reference: write ${{NAME}} (or $${{ for a literal ${{)", None))
            return ""
        used = True
        if name not in environ:
            problems.append((path, f"the environment variable {name} is not set", None))
            return ""
        return environ[name]

    text = _REFERENCE.sub(replace, value)
    if not used:
        return text, problems
    result = EnvValue(text)
    result.reference = value
    result.whole = bool(re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value))
    return result, problems


# -- JSON Schema ---------------------------------------------------------------------


@functools.cache
def _validator() -> Draft202012Validator:
    """The app-file validator: Draft 2020-12 with the format checker, two additions:

    - `properties` first fills in each missing property's `default` (a deep copy), so
      the checked data carries every default and Python repeats none. Defaults only sit
      where they always apply (a test holds the schema to that), never under `if`,
      `not`, `anyOf` or `oneOf`, where a branch that fails would still leave them.
    - `x-env-only: true` marks a secret: the value must be exactly one ${NAME}.
    """
    properties = Draft202012Validator.VALIDATORS["properties"]

    def fill_then_check(validator, subschemas, instance, schema) -> Iterator[ValidationError]:
        if validator.is_type(instance, "object"):
            for name, subschema in subschemas.items():
                if name not in instance and isinstance(subschema, dict) and "default" in subschema:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from properties(validator, subschemas, instance, schema)

    def env_only(validator, enabled, instance, schema) -> Iterator[ValidationError]:
        if enabled and validator.is_type(instance, "string") and not getattr(instance, "whole", False):
            yield ValidationError("never write a secret in the app file: write a reference such as "
                                  "'${MQTT_PASSWORD}' and set that environment variable")

    cls = validators.extend(Draft202012Validator, {"properties": fill_then_check, "x-env-only": env_only})
    return cls(load_schema("app"), format_checker=FormatChecker())


def _explain(error: ValidationError) -> list[Found]:
    """Turn one validation error into what a YAML author needs to read."""
    error = best_match([error])  # descends into anyOf/oneOf where one branch clearly fits
    found = _describe(error)
    if isinstance(error.instance, EnvValue):
        found = [(path, f"{message} (after substituting the environment)", where) for path, message, where in found]
    return found


def _describe(error: ValidationError) -> list[Found]:
    path = tuple(error.absolute_path)
    instance, expected, schema = error.instance, error.validator_value, error.schema
    if error.validator == "additionalProperties":
        known = list(schema.get("properties", {}))
        return [(path + (key,), _unknown_key(key, known), "at_key")
                for key in instance if key not in known]
    if error.validator == "required":
        return [(path, f"missing required key {key!r}", None) for key in expected if key not in instance]
    if error.validator == "dependentRequired":
        return [(path, f"missing key {needed!r}, which {key!r} needs", None)
                for key, needs in expected.items() if key in instance
                for needed in needs if needed not in instance]
    if error.validator == "enum":
        message = f"{instance!r} is not one of {', '.join(map(repr, expected))}"
        return [(path, message + _did_you_mean(instance, expected), None)]
    if error.validator == "const":
        message = f"expected {expected!r}, got {instance!r}"
        relative = list(error.relative_schema_path)
        if "dependentSchemas" in relative:
            message += f" when {relative[relative.index('dependentSchemas') + 1]!r} is set"
        return [(path, message, None)]
    if error.validator == "pattern" and "description" in schema:
        return [(path, f"{instance!r} is not valid: {schema['description']}", None)]
    if error.validator in ("anyOf", "oneOf"):  # no branch fits clearly better: name them all
        why = {}
        for branch in error.context:
            why.setdefault(branch.relative_schema_path[0], _explain(branch)[0][1])
        choices = "; ".join(f"{s.get('description', 'choice').rstrip('.')} ({why[i]})"
                            for i, s in enumerate(expected) if i in why)
        return [(path, f"{instance!r} fits none of the choices: {choices}", None)]
    return [(path, error.message, None)]


def _unknown_key(key: str, known: list[str]) -> str:
    hint = _did_you_mean(key, known)
    return f"unknown key {key!r}" + (hint or f" (allowed here: {', '.join(known)})")


def _did_you_mean(value: object, choices: Iterable[object]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- what the schema cannot say -------------------------------------------------------


def _check_rooms(data: dict) -> list[Found]:
    """Each widget's room must be one of rooms. Runs on data that may be invalid
    elsewhere, so that this problem is listed together with the schema's."""
    rooms, widgets = data.get("rooms"), data.get("widgets")
    if not isinstance(rooms, list) or not isinstance(widgets, list):
        return []
    return [
        (("widgets", i, "room"), f"room {w['room']!r} is not one of rooms ({', '.join(map(str, rooms))})"
         + _did_you_mean(w["room"], rooms), None)
        for i, w in enumerate(widgets)
        if isinstance(w, dict) and isinstance(w.get("room"), str) and w["room"] not in rooms
    ]


# -- typed settings --------------------------------------------------------------------


def _settings(data: dict, *, base_dir: Path | None) -> AppSettings:
    broker = data["broker"]
    tls = broker.get("tls")
    rooms = tuple(data["rooms"])
    return _typed(
        AppSettings,
        data,
        broker=_typed(
            BrokerConfig,
            broker,
            protocol=str(broker["protocol"]),  # YAML reads `protocol: 5` as a number
            tls=None if tls is None else _typed(TlsConfig, {k: _file(v, base_dir) for k, v in tls.items()}),
            capabilities=_typed(BrokerCapabilities, broker["capabilities"]),
        ),
        identity=_typed(IdentityConfig, data["identity"]),
        widgets=tuple(_widget(w, rooms) for w in data["widgets"]),
    )


def _widget(options: dict, rooms: tuple[str, ...]) -> WidgetSettings:
    cls = WIDGET_SETTINGS[options["type"]]
    # A widget without a room shows the first room; a presence list shows the whole org.
    room = options.get("room", None if cls is PresenceListSettings else rooms[0])
    return _typed(cls, {k: v for k, v in options.items() if k != "type"}, room=room)


def _typed(cls: type, values: Mapping[str, object], **given: object) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:  # the schema and settings.py disagree: a bug in the kit, not in the file
        raise AssertionError(f"{cls.__name__} has no field for {sorted(unknown)}")
    return cls(**{name: _plain(values.get(name)) for name in names - set(given)} | given)


def _plain(value: object) -> object:
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, str):
        return str(value)  # an EnvValue becomes a plain string
    return value


def _file(value: str, base_dir: Path | None) -> Path:
    path = Path(value)
    return path if base_dir is None or path.is_absolute() else base_dir / path
