"""App files: one YAML file that describes an app, checked before anything runs.

    text --read_yaml--> data + where each value is written
         --${NAME} from the environment--> data
         --JSON Schema (schemas/app.schema.json), defaults filled from it--> checked data
         --rooms the widgets name exist--> AppSettings

Every problem found on the way is reported, all at once, as
`FILE:LINE:COL: $.json.path: message` (a ConfigError), never as a traceback. A `${NAME}`
whose variable is not set is an error for an app that starts (load_app_*) and a
warning for a file that is only checked (check_app_*, the editor, `validate`). The schema
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
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TextIO

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import best_match

from .capabilities import BrokerCapabilities
from .errors import ConfigError, ConfigProblem
from .history_url import HistoryUrl, passwords_in, url_problem
from .schema_files import load_schema
from .widget_texts import REFERENCE, language_tables, text_problem
from .settings import (
    AccessSection,
    AppSettings,
    BrokerSection,
    HistorySection,
    IdentitySection,
    LimitsSection,
    PageSettings,
    PresenceListSettings,
    RoomsOnDemandSection,
    TlsSection,
    WIDGET_SETTINGS,
    WidgetSettings,
)
from .yaml_reader import MAX_BYTES, JsonPath, Location, YamlDocument, YamlError, json_path, read_yaml

SUPPORTED_VERSION = 1

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True)
class AppFileCheck:
    """What checking one app file found.

    `problems` make the file invalid. `unset` are the `${NAME}` references whose variable
    is not set here: warnings for a file checked without its secrets (in CI, in the
    editor), errors for an app that starts. `settings` is None when there are problems;
    otherwise an unset variable reads as an empty string in it.
    """

    settings: AppSettings | None
    problems: tuple[ConfigProblem, ...]
    unset: tuple[ConfigProblem, ...]

    def findings(self, *, require_env: bool) -> list[ConfigProblem]:
        """The problems and the unset variables in reading order; with `require_env`
        an unset variable is an error, else a warning."""
        unset = [replace(p, severity="error") for p in self.unset] if require_env else list(self.unset)
        return sorted([*self.problems, *unset], key=_reading_order)

    def settings_or_raise(self) -> AppSettings:
        """The settings, or ConfigError listing every problem and unset variable."""
        if errors := self.findings(require_env=True):
            raise ConfigError(*errors)
        assert self.settings is not None
        return self.settings


def load_app_file(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read, check and type one app file; relative TLS file paths are taken from its
    folder. Every `${NAME}` it refers to must be set."""
    return check_app_file(path, environ=environ).settings_or_raise()


def load_app_text(
    text: str, *, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> AppSettings:
    """Check and type the text of an app file; `filename` only labels the problems."""
    return check_app_text(text, filename=filename, environ=environ).settings_or_raise()


def check_app_file(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> AppFileCheck:
    """Check one app file without requiring its `${NAME}` variables; ConfigError only
    when the file cannot be read as text."""
    path = Path(path)
    try:
        text = _read_text(path)
    except OSError as exc:  # chained, so validate_command can tell unreadable from invalid
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return _check_text(text, filename=str(path), environ=environ, base_dir=path.parent)


def check_app_text(
    text: str, *, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> AppFileCheck:
    """Check the text of an app file without requiring its `${NAME}` variables."""
    return _check_text(text, filename=filename, environ=environ, base_dir=None)


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


def validate_command(files: Sequence[str], *, require_env: bool, stderr: TextIO) -> int:
    """`python -m components validate [--require-env] FILE...`: 0 all valid, 1 any
    invalid, 2 any unreadable. An unset `${NAME}` is a warning line, or with
    `require_env` a problem like any other."""
    status = 0
    for name in files:
        try:
            check = check_app_file(name)
        except ConfigError as exc:
            print(exc, file=stderr)
            status = 2
            continue
        for finding in check.findings(require_env=require_env):
            print(finding, file=stderr)
            if finding.severity == "error":
                status = max(status, 1)
    return status


def check_widget(options: Mapping[str, object], *, rooms: Sequence[str], label: str) -> WidgetSettings:
    """One widget's options as an app file writes them (`{"type": ..., ...}`), checked
    against the schema with its defaults filled in and its room one of `rooms`; else a
    ConfigError with one `label: option: message` line per problem."""
    widget = copy.deepcopy(dict(options))
    problems = [p for error in _widget_validator().iter_errors(widget) for p in _explain(error)]
    if not problems:
        problems = [(path[2:], message, where) for path, message, where in _check_rooms({"rooms": list(rooms), "widgets": [widget]})]
    if problems:
        raise ConfigError(*sorted({f"{label}: {json_path(path)[2:] + ': ' if path else ''}{message}" for path, message, _ in problems}))
    return _widget(widget, tuple(rooms))


def schema_command(*, stdout: TextIO) -> int:
    """`python -m components schema`: print the app-file schema for editors and tools."""
    stdout.write(json.dumps(load_schema("app"), indent=2, ensure_ascii=False) + "\n")
    return 0


# -- the pipeline ------------------------------------------------------------------


def _check_text(text: str, *, filename: str, environ: Mapping[str, str] | None, base_dir: Path | None) -> AppFileCheck:
    try:
        document = read_yaml(text)
    except YamlError as exc:
        problems = _located(filename, None, [(p.path, p.message, p.location) for p in exc.problems])
        return AppFileCheck(None, tuple(problems), ())
    data, problems, unset = _check(document, environ=os.environ if environ is None else environ)
    located = _located(filename, document, problems)
    warnings = tuple(replace(p, severity="warning") for p in _located(filename, document, unset))
    return AppFileCheck(None if located else _settings(data, base_dir=base_dir), tuple(located), warnings)


# A problem before it is placed: the path, the message, and where to point (a Location
# when already known, "at_key" for a key, None for the value).
Found = tuple[JsonPath, str, Any]


def _check(document: YamlDocument, *, environ: Mapping[str, str]) -> tuple[dict, list[Found], list[Found]]:
    """The checked data with the schema's defaults filled in, every problem found, and
    the references to variables that are not set."""
    data = document.data
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string"}.get(type(data), "a single value")
        return {}, [((), f"an app file is a mapping that starts with 'version: {SUPPORTED_VERSION}', not {kind}", None)], []
    if "version" in data and data["version"] != SUPPORTED_VERSION:
        return {}, [(("version",), f"this kit reads app files of version {SUPPORTED_VERSION}, not {data['version']!r}", None)], []

    data, problems, unset = _substitute(data, (), environ)
    placeholders = {path for path, _, _ in problems + unset}  # say nothing more about these values
    for error in _validator().iter_errors(data):  # fills in the schema's defaults as it goes
        problems += (p for p in _explain(error) if p[0] not in placeholders)
    seen = {path for path, _, _ in problems}
    problems += (p for p in _check_rooms(data) + _check_widget_ids(data) + _check_labels(data) if p[0] not in seen)
    return data, problems, unset


def _located(filename: str, document: YamlDocument | None, problems: Iterable[Found]) -> list[ConfigProblem]:
    located = set()
    for path, message, where in problems:
        if document is not None and not isinstance(where, Location):
            where = document.locate(path, at_key=where == "at_key")
        located.add(ConfigProblem(filename, where.line, where.column, json_path(path), message))
    return sorted(located, key=_reading_order)


def _reading_order(problem: ConfigProblem) -> tuple[int, int, str, str]:
    return (problem.line, problem.column, problem.path, problem.message)


# -- ${NAME} from the environment ---------------------------------------------------


class EnvValue(str):
    """A string that came from the environment. Its repr is the reference as written
    (`'${MQTT_PASSWORD}'`), so no message ever prints a secret."""

    reference: str
    whole: bool  # the string was exactly one ${NAME}

    def __repr__(self) -> str:
        return repr(self.reference)


def _substitute(value: object, path: JsonPath, environ: Mapping[str, str]) -> tuple[object, list[Found], list[Found]]:
    """The value with every ${NAME} replaced, the malformed references, and the
    references to variables that are not set (replaced by an empty string)."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        done = {key: _substitute(item, path + (key,), environ) for key, item in items}
        values = {key: v for key, (v, _, _) in done.items()}
        problems = [p for _, found, _ in done.values() for p in found]
        unset = [p for _, _, found in done.values() for p in found]
        return (values if isinstance(value, dict) else list(values.values())), problems, unset
    if not isinstance(value, str) or "$" not in value:
        return value, [], []

    problems: list[Found] = []
    unset: list[Found] = []
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
            unset.append((path, f"the environment variable {name} is not set", None))
            return ""
        return environ[name]

    text = _REFERENCE.sub(replace, value)
    if not used:
        return text, problems, unset
    result = EnvValue(text)
    result.reference = value
    result.whole = bool(_ENV_REFERENCE.fullmatch(value))
    return result, problems, unset


# -- JSON Schema ---------------------------------------------------------------------


@functools.cache
def _validator() -> Draft202012Validator:
    """The app-file validator: Draft 2020-12 with the format checker, two additions:

    - `properties` first fills in each missing property's `default` (a deep copy), so
      the checked data carries every default and Python repeats none. Defaults only sit
      where they always apply (a test holds the schema to that), never under `if`,
      `not`, `anyOf` or `oneOf`, where a branch that fails would still leave them.
    - `x-env-only: true` marks a secret: the value must be exactly one ${NAME}.
    - `x-history-url: true`: a history URL (components.history_url says which), whose
      password, if any, is written as ${NAME} (or the whole URL is one ${NAME}).
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

    def history_url(validator, enabled, instance, schema) -> Iterator[ValidationError]:
        if not enabled or not validator.is_type(instance, "string"):
            return
        if (problem := url_problem(instance)) is not None:
            yield ValidationError(f"not a history URL: {problem}")  # never echoes the URL: it may hold a password
        elif not getattr(instance, "whole", False) and any(
            not _ENV_REFERENCE.fullmatch(p) for p in passwords_in(getattr(instance, "reference", instance))
        ):
            yield ValidationError("never write a password in the app file: write it as ${NAME} (for example "
                                  "postgresql://app:${PGPASSWORD}@db/chat) or set PRESENCE_HISTORY_URL or PGPASSWORD")

    extra = {"properties": fill_then_check, "x-env-only": env_only, "x-history-url": history_url}
    cls = validators.extend(Draft202012Validator, extra)
    return cls(load_schema("app"), format_checker=FormatChecker())


@functools.cache
def _widget_validator() -> Draft202012Validator:
    """The app-file validator for one entry of `widgets`."""
    return _validator().evolve(schema={"$ref": f"{load_schema('app')['$id']}#/$defs/widget"})


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


def _check_widget_ids(data: dict) -> list[Found]:
    """No two widgets share an id (the schema cannot say this across list items)."""
    widgets = data.get("widgets")
    first: dict[object, int] = {}
    problems: list[Found] = []
    for i, widget in enumerate(widgets if isinstance(widgets, list) else []):
        if isinstance(widget, dict) and isinstance(widget.get("id"), str):
            if widget["id"] in first:
                problems.append((("widgets", i, "id"), f"id {widget['id']!r} is already the id of widgets[{first[widget['id']]}]", None))
            first.setdefault(widget["id"], i)
    return problems


def _check_labels(data: dict) -> list[Found]:
    """Each label uses only the placeholders of its key (the schema checks keys and shapes)."""
    labels = data.get("labels")
    if not isinstance(labels, dict):
        return []
    known = language_tables()[REFERENCE]
    return [
        (("labels", key), problem, None)
        for key, text in labels.items()
        if key in known and (problem := text_problem(key, text)) is not None
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
            BrokerSection,
            broker,
            protocol=str(broker["protocol"]),  # YAML reads `protocol: 5` as a number
            tls=None if tls is None else _typed(TlsSection, {k: _file(v, base_dir) for k, v in tls.items()}),
            capabilities=_typed(BrokerCapabilities, broker["capabilities"]),
        ),
        rooms_on_demand=_typed(RoomsOnDemandSection, data["rooms_on_demand"]),
        identity=_typed(IdentitySection, data["identity"]),
        limits=_typed(LimitsSection, data["limits"]),
        access=_typed(AccessSection, data["access"]),
        history=_typed(HistorySection, data["history"], url=HistoryUrl.parse(data["history"]["url"], base_dir=base_dir).url),
        page=_typed(PageSettings, data["page"]),
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
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, str):
        return str(value)  # an EnvValue becomes a plain string
    return value


def _file(value: str, base_dir: Path | None) -> Path:
    path = Path(value)
    return path if base_dir is None or path.is_absolute() else base_dir / path
