"""The app-file format: schema, loader, examples. Fast, pure, no network."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from components import ids
from components.app_file import load_app_file, load_app_text
from components.errors import ConfigError, ConfigProblem
from components.schema_files import load_schema
from components.settings import (
    AppSettings,
    BrokerSection,
    ChatPanelSettings,
    HistorySection,
    IdentitySection,
    PageSettings,
    TlsSection,
    TypingIndicatorSettings,
    WIDGET_SETTINGS,
)
from components.yaml_reader import MAX_BYTES

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILES = sorted((ROOT / "schemas").glob("*.json"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID_EXAMPLES = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
EXAMPLE_ENV = {"MQTT_USERNAME": "presence-bot", "MQTT_PASSWORD": "not-a-real-secret"}
APP = load_schema("app")
MINIMAL = "version: 1\norg: acme\n"


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_app_text(text, filename="app.yaml", environ=environ or {})
    return list(caught.value.problems)


def only_problem(text: str, environ: dict[str, str] | None = None) -> ConfigProblem:
    problems = problems_of(text, environ)
    assert len(problems) == 1, problems
    return problems[0]


# -- the schemas ---------------------------------------------------------------------


def test_there_are_schemas_to_check():
    assert ROOT / "schemas" / "app.schema.json" in SCHEMA_FILES


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_shipped_schema_passes_check_schema(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert load_schema(path.name.removesuffix(".schema.json")) == schema


def subschemas(schema: dict, where: tuple = ()):
    """Every (location, subschema) pair of a schema, depth first."""
    yield where, schema
    for key, value in schema.items():
        if key in ("default", "const", "enum", "examples", "dependentRequired"):
            continue
        if isinstance(value, dict) and key in ("properties", "$defs", "dependentSchemas"):
            for name, sub in value.items():
                yield from subschemas(sub, where + (key, name))
        elif isinstance(value, dict):
            yield from subschemas(value, where + (key,))
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                if isinstance(sub, dict):
                    yield from subschemas(sub, where + (key, i))


def declarations(schema: dict):
    """The subschemas that declare the data (not the conditions under if/dependentSchemas)."""
    for where, sub in subschemas(schema):
        if not {"if", "dependentSchemas"} & set(map(str, where)):
            yield where, sub


def test_app_schema_is_versioned_closed_and_described():
    assert re.search(r"/v1\.schema\.json$", APP["$id"])
    assert APP["properties"]["version"]["const"] == 1
    for where, schema in declarations(APP):
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"no description on {where + ('properties', name)}"
        if "properties" in schema and where != ("$defs", "widget"):  # each widget type is closed
            assert schema.get("additionalProperties") is False, f"{where} is open"


def test_defaults_sit_only_where_they_always_apply():
    # Defaults are filled in while validating, so one under a conditional branch would
    # leak into data the branch does not describe.
    for where, schema in subschemas(APP):
        if "default" in schema:
            assert not {"if", "not", "anyOf", "oneOf", "else", "dependentSchemas"} & set(map(str, where)), where


def test_every_default_is_valid_for_its_own_property():
    validator = Draft202012Validator(APP)
    for where, schema in subschemas(APP):
        if "default" in schema:
            assert validator.evolve(schema=schema).is_valid(schema["default"]), where


def test_the_schema_id_rule_is_the_python_id_rule():
    assert APP["$defs"]["id"]["pattern"] == ids.ID_PATTERN.pattern


def widget_defs():
    return {name: APP["$defs"][name] for name in WIDGET_SETTINGS}


def test_schema_lists_exactly_the_widget_types_settings_knows():
    assert APP["$defs"]["widget"]["properties"]["type"]["enum"] == list(WIDGET_SETTINGS)


@pytest.mark.parametrize(
    ("cls", "schema"),
    [
        (AppSettings, APP),
        (BrokerSection, APP["properties"]["broker"]),
        (TlsSection, APP["properties"]["broker"]["properties"]["tls"]),
        (IdentitySection, APP["properties"]["identity"]),
        (HistorySection, APP["properties"]["history"]),
        (PageSettings, APP["properties"]["page"]),
        *[(WIDGET_SETTINGS[name], schema) for name, schema in widget_defs().items()],
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_settings_fields_are_the_schema_keys(cls, schema):
    keys = set(schema["properties"]) - {"type"}
    assert {f.name for f in dataclasses.fields(cls)} == keys


# -- defaults come out of the schema ---------------------------------------------------


def test_top_level_and_broker_defaults_come_from_the_schema():
    app = load_app_text(MINIMAL, environ={})
    top = APP["properties"]
    assert app.rooms == tuple(top["rooms"]["default"])
    assert app.identity == IdentitySection(source=top["identity"]["default"]["source"], header=None)
    assert app.widgets == ()
    assert app.broker.embedded and app.broker.url is None and app.broker.tls is None
    for name, prop in top["broker"]["properties"].items():
        if "default" in prop:
            value = getattr(app.broker, name)
            if dataclasses.is_dataclass(value):  # capabilities: every key's own default
                value, prop = dataclasses.asdict(value), {"default": {k: p["default"] for k, p in prop["properties"].items()}}
            assert value == prop["default"], name


def test_a_broker_url_list_and_capabilities_in_the_app_file():
    app = load_app_text(
        "version: 1\norg: acme\nbroker:\n  url: [mqtt://a:1883, mqtt://b:1883]\n  lease: 30\n"
        "  capabilities: {retained_to_wildcards: false, receive_maximum: 10}\n",
        environ={},
    )
    assert app.broker.url == ("mqtt://a:1883", "mqtt://b:1883") and app.broker.lease == 30
    assert (app.broker.capabilities.retained_to_wildcards, app.broker.capabilities.will_delay) == (False, None)
    assert app.broker.capabilities.receive_maximum == 10
    problem = only_problem("version: 1\norg: acme\nbroker:\n  capabilities: {wildcards: false}\n")
    assert (problem.path, problem.line) == ("$.broker.capabilities.wildcards", 4)
    problem = only_problem("version: 1\norg: acme\nbroker:\n  url: [mqtt://a, 'http://b']\n")
    assert problem.path == "$.broker.url[1]" and "'http://b' is not valid: mqtt://host[:port] or mqtts://host[:port]" in problem.message


@pytest.mark.parametrize("kind", list(WIDGET_SETTINGS))
def test_widget_defaults_come_from_the_schema(kind):
    app = load_app_text(f"{MINIMAL}rooms: [first, second]\nwidgets:\n  - type: {kind}\n", environ={})
    (widget,) = app.widgets
    assert type(widget) is WIDGET_SETTINGS[kind] and widget.type == kind
    for name, prop in APP["$defs"][kind]["properties"].items():
        if "default" in prop:
            expected = prop["default"]
            assert getattr(widget, name) == (tuple(expected) if isinstance(expected, list) else expected), name
    # A widget without a room shows the first room; a presence list the whole org.
    assert widget.room == (None if kind == "presence_list" else "first")


def test_a_changed_default_in_the_schema_changes_the_settings(monkeypatch):
    from components import app_file

    schema = json.loads(json.dumps(APP))
    schema["$defs"]["typing_indicator"]["properties"]["ttl"]["default"] = 9
    monkeypatch.setattr(app_file, "load_schema", lambda name: schema)
    app_file._validator.cache_clear()
    try:
        app = load_app_text(f"{MINIMAL}widgets: [{{type: typing_indicator}}]\n", environ={})
    finally:
        app_file._validator.cache_clear()
    assert app.widgets == (TypingIndicatorSettings(id=None, room="lobby", ttl=9),)


def test_written_values_win_over_defaults_and_are_typed():
    app = load_app_text(
        f"{MINIMAL}broker: {{protocol: 5, keepalive: 12}}\n"
        "widgets:\n  - {type: reactions, emojis: ['🚀']}\n  - {type: chat_panel, height: 480}\n",
        environ={},
    )
    assert app.broker.protocol == "5" and app.broker.keepalive == 12
    assert app.widgets[0].emojis == ("🚀",)
    assert app.widgets[1] == ChatPanelSettings(id=None, room="lobby", history=200, typing_ttl=6, private_receipts=False, collapse_above=3, height=480)
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.org = "other"  # type: ignore[misc]


# -- the examples ---------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path):
    app = load_app_file(path, environ=EXAMPLE_ENV)
    assert app.version == 1
    assert all(w.room is None or w.room in app.rooms for w in app.widgets)


def test_the_examples_cover_what_the_issue_asks_for():
    names = {p.stem for p in EXAMPLES}
    assert {"minimal_presence", "chat_room", "big_room", "secured_broker"} <= names
    chat = load_app_file(ROOT / "examples" / "chat_room.yaml", environ={})
    assert {w.type for w in chat.widgets} == set(WIDGET_SETTINGS)
    secured = load_app_file(ROOT / "examples" / "secured_broker.yaml", environ=EXAMPLE_ENV)
    assert secured.broker.password == EXAMPLE_ENV["MQTT_PASSWORD"]
    assert "not-a-real-secret" not in repr(secured)
    assert secured.broker.tls.ca_file == ROOT / "examples" / "certs" / "ca.pem"


def expectations(path: Path) -> set[tuple[int, str]]:
    found = re.findall(r"^# expect: (\d+): (\S+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f"{path.name} names no expected error"
    return {(int(line), json_path) for line, json_path in found}


@pytest.mark.parametrize("path", INVALID_EXAMPLES, ids=lambda p: p.name)
def test_every_invalid_example_fails_where_it_says(path):
    with pytest.raises(ConfigError) as caught:
        load_app_file(path, environ={})
    problems = caught.value.problems
    assert {(p.line, p.path) for p in problems} == expectations(path)
    for problem in problems:
        assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: {problem.path}: ")
        assert "Traceback" not in problem.message and "\n" not in problem.message


# -- messages ---------------------------------------------------------------------------


def test_problem_format_and_one_line_per_problem():
    error = None
    try:
        load_app_text("version: 1\nwidgets:\n  - type: typing_indicator\n    ttl: -1\n", filename="a.yaml", environ={})
    except ConfigError as exc:
        error = exc
    assert str(error).splitlines() == [
        "a.yaml:1:1: $: missing required key 'org'",
        "a.yaml:4:10: $.widgets[0].ttl: -1 is less than the minimum of 1",
    ]


def test_misspelt_key_gets_a_suggestion_and_points_at_the_key():
    problem = only_problem(f"{MINIMAL}broker:\n  leave_grase: 3\n")
    assert (problem.line, problem.column, problem.path) == (4, 3, "$.broker.leave_grase")
    assert "did you mean 'leave_grace'?" in problem.message


def test_unknown_key_without_close_match_lists_the_allowed_keys():
    problem = only_problem(f"{MINIMAL}identity: {{source: header, header: X-User, zzz: 1}}\n")
    assert problem.path == "$.identity.zzz" and "allowed here: source, header" in problem.message


def test_unknown_widget_type_is_named_with_a_suggestion():
    problem = only_problem(f"{MINIMAL}widgets:\n  - type: typing\n    ttl: 3\n")
    assert problem.path == "$.widgets[0].type" and "did you mean 'typing_indicator'?" in problem.message


def test_best_match_for_any_of():
    # One branch clearly fits (an integer): its error is shown, not "not valid under any".
    problem = only_problem(f"{MINIMAL}widgets: [{{type: chat_panel, height: 5000}}]\n")
    assert problem.message == "5000 is greater than the maximum of 4000"
    # None fits better than the other: both are named.
    problem = only_problem(f"{MINIMAL}widgets: [{{type: chat_panel, height: tall}}]\n")
    assert "Height in pixels" in problem.message and "Fit the page" in problem.message


def test_ids_are_checked_everywhere_an_id_goes():
    for text, path in [
        ("version: 1\norg: 'a b'\n", "$.org"),
        (f"{MINIMAL}rooms: ['#']\n", "$.rooms[0]"),
        (f"{MINIMAL}widgets: [{{type: cursor_overlay, region: 'x/y'}}]\n", "$.widgets[0].region"),
        (f"{MINIMAL}rooms: ['{'x' * 65}']\n", "$.rooms[0]"),
        (f"{MINIMAL}broker: {{topic_prefix: 'a/+/b'}}\n", "$.broker.topic_prefix"),
    ]:
        problem = only_problem(text)
        assert problem.path == path and "is not valid" in problem.message, text


def test_widget_room_must_be_listed():
    problem = only_problem(f"{MINIMAL}rooms: [a, b]\nwidgets:\n  - type: presence_list\n    room: c\n")
    assert (problem.line, problem.path) == (6, "$.widgets[0].room")
    assert "not one of rooms (a, b)" in problem.message
    # Listed together with the schema's problems, not only once those are fixed.
    problems = problems_of(f"{MINIMAL}rooms: [a]\nwidgets:\n  - type: chat_panel\n    room: b\n    history: -1\n")
    assert {p.path for p in problems} == {"$.widgets[0].room", "$.widgets[0].history"}


def test_widget_ids_are_ids_and_unique():
    text = f"{MINIMAL}widgets:\n  - {{type: presence_list, id: people}}\n  - {{type: chat_panel, id: talk}}\n  - {{type: chat_panel, id: people}}\n"
    problem = only_problem(text)
    assert (problem.line, problem.path, problem.message) == (6, "$.widgets[2].id", "id 'people' is already the id of widgets[0]")
    assert only_problem(f"{MINIMAL}widgets: [{{type: reactions, id: 'a b'}}]\n").path == "$.widgets[0].id"
    app = load_app_text(text.replace("id: people}\n", "id: more}\n", 2).replace("id: more", "id: people", 1), environ={})
    assert [w.id for w in app.widgets] == ["people", "talk", "more"]


def test_page_settings_default_from_the_schema():
    assert load_app_text(MINIMAL, environ={}).page == PageSettings(title=None, icon=None, layout="centered")
    page = load_app_text(f"{MINIMAL}page: {{title: Team room, icon: '🟢', layout: wide}}\n", environ={}).page
    assert page == PageSettings(title="Team room", icon="🟢", layout="wide")
    assert only_problem(f"{MINIMAL}page: {{layout: full}}\n").message == "'full' is not one of 'centered', 'wide'"


def test_identity_header_rules():
    assert load_app_text(f"{MINIMAL}identity: {{source: header, header: X-User}}\n", environ={}).identity.header == "X-User"
    assert only_problem(f"{MINIMAL}identity: {{source: header}}\n").message == "missing required key 'header'"
    problem = only_problem(f"{MINIMAL}identity: {{source: query_param, header: X-User}}\n")
    assert problem.path == "$.identity.source" and "when 'header' is set" in problem.message


def test_tls_client_certificate_needs_its_key():
    problem = only_problem(f"{MINIMAL}broker: {{url: 'mqtts://h', tls: {{cert_file: c.pem}}}}\n")
    assert problem.message == "missing key 'key_file', which 'cert_file' needs"


@pytest.mark.parametrize("url", ["mqtt://127.0.0.1:1883", "mqtts://mqtt.example.com", "mqtt://[::1]:1883", "mqtts://h:65535"])
def test_broker_urls_accepted(url):
    assert load_app_text(f"{MINIMAL}broker: {{url: '{url}'}}\n", environ={}).broker.url == url


@pytest.mark.parametrize("url", ["http://h", "mqtt://", "mqtt://user:pw@h", "mqtt://h:0", "mqtt://h:65536", "mqtt://h/x", "h:1883"])
def test_broker_urls_refused(url):
    assert only_problem(f"{MINIMAL}broker: {{url: '{url}'}}\n").path == "$.broker.url"


def test_unsupported_version_is_the_only_problem_reported():
    problem = only_problem("version: 2\nwidgets: nonsense\n")
    assert (problem.path, problem.message) == ("$.version", "this kit reads app files of version 1, not 2")


# -- environment variables ---------------------------------------------------------------


def test_environment_references_are_substituted_in_strings():
    app = load_app_text(
        "version: 1\norg: ${ORG}\nbroker:\n  url: mqtt://${HOST}:1883\n  username: $${literal}\n",
        environ={"ORG": "acme", "HOST": "broker.internal"},
    )
    assert (app.org, app.broker.url, app.broker.username) == ("acme", "mqtt://broker.internal:1883", "${literal}")
    assert type(app.org) is str


def test_unset_variable_is_named_with_its_path():
    problem = only_problem(f"{MINIMAL}broker:\n  url: mqtt://h\n  password: ${{MQTT_PASSWORD}}\n")
    assert (problem.line, problem.path) == (5, "$.broker.password")
    assert problem.message == "the environment variable MQTT_PASSWORD is not set"


def test_a_checked_file_may_leave_its_variables_unset_but_an_app_may_not():
    from components.app_file import check_app_text

    text = f"{MINIMAL}broker:\n  url: mqtt://h\n  username: ${{MQTT_USER}}\n  password: ${{MQTT_PASSWORD}}\n"
    check = check_app_text(text, filename="app.yaml", environ={"MQTT_USER": "bot"})
    assert check.problems == ()
    (warning,) = check.unset
    assert str(warning) == "app.yaml:6:13: $.broker.password: warning: the environment variable MQTT_PASSWORD is not set"
    assert check.settings is not None and check.settings.broker.username == "bot"
    assert [p.severity for p in check.findings(require_env=True)] == ["error"]
    with pytest.raises(ConfigError, match=r"app.yaml:6:13: \$.broker.password: the environment variable"):
        check.settings_or_raise()
    # an unset variable hides no other problem
    invalid = check_app_text(text + "widgets: [{type: chat}]\n", filename="app.yaml", environ={})
    assert [p.path for p in invalid.findings(require_env=False)] == ["$.broker.username", "$.broker.password", "$.widgets[0].type"]
    assert invalid.settings is None


def test_malformed_reference_is_refused():
    assert "is not a reference" in only_problem(f"{MINIMAL}broker: {{username: '${{a b}}'}}\n").message
    assert "is not a reference" in only_problem(f"{MINIMAL}broker: {{username: 'x${{OPEN'}}\n").message


def test_literal_password_is_refused_without_echoing_it():
    for text in ["password: hunter2", "password: 'x${PW}'", "password: ${PW}${PW}"]:
        problem = only_problem(f"{MINIMAL}broker:\n  {text}\n", environ={"PW": "hunter2"})
        assert problem.path == "$.broker.password" and "never write a secret" in problem.message
        assert "hunter2" not in problem.message


def test_values_from_the_environment_are_never_echoed():
    problem = only_problem(f"{MINIMAL}broker: {{url: '${{URL}}'}}\n", environ={"URL": "http://u:s3cret@h"})
    assert "s3cret" not in problem.message and "'${URL}'" in problem.message


# -- chat history ---------------------------------------------------------------------------


def test_history_defaults_come_from_the_schema_and_sit_beside_the_app_file(tmp_path):
    app_file = tmp_path / "app.yaml"
    app_file.write_text(MINIMAL)
    history = load_app_file(app_file, environ={}).history
    defaults = {name: prop["default"] for name, prop in APP["properties"]["history"]["properties"].items()}
    assert defaults["url"] == "sqlite:///.presence-kit/history.sqlite3"
    assert history.url == f"sqlite:///{tmp_path}/.presence-kit/history.sqlite3"
    assert (history.keep, history.table) == (defaults["keep"], defaults["table"]) == (30 * 86400, "presence_chat")
    app_file.write_text(f"{MINIMAL}history: {{url: 'sqlite:////srv/chat.db', keep: 3600, table: chat}}\n")
    assert load_app_file(app_file, environ={}).history == HistorySection(url="sqlite:////srv/chat.db", keep=3600, table="chat")


def test_history_url_passwords_come_only_from_the_environment():
    env = {"PW": "hunter2", "URL": "postgresql://app:hunter2@db/chat"}
    for url in ["postgresql://app:hunter2@db/chat", "postgresql://db/chat?password=hunter2", "postgresql://app:x${PW}@db/chat"]:
        problem = only_problem(f"{MINIMAL}history: {{url: '{url}'}}\n", environ=env)
        assert problem.path == "$.history.url" and "never write a password" in problem.message
        assert "hunter2" not in problem.message
    for url in ["postgresql://app:${PW}@db/chat", "${URL}", "postgres://db/chat?sslmode=require"]:
        assert load_app_text(f"{MINIMAL}history: {{url: '{url}'}}\n", environ=env).history.url.startswith("postgres")
    assert "hunter2" not in repr(load_app_text(f"{MINIMAL}history: {{url: '${{URL}}'}}\n", environ=env))


def test_bad_history_settings_are_refused_without_echoing_the_url():
    env = {"URL": "mysql://app:hunter2@db/chat"}
    problem = only_problem(f"{MINIMAL}history: {{url: '${{URL}}'}}\n", environ=env)
    assert problem.path == "$.history.url" and "not a history URL" in problem.message and "hunter2" not in problem.message
    assert only_problem(f"{MINIMAL}history: {{url: 'sqlite:///'}}\n").path == "$.history.url"
    assert only_problem(f"{MINIMAL}history: {{keep: 10}}\n").path == "$.history.keep"
    assert only_problem(f"{MINIMAL}history: {{table: 'Chat; drop'}}\n").path == "$.history.table"
    assert "did you mean 'keep'" in only_problem(f"{MINIMAL}history: {{kept: 60}}\n").message


def test_the_schema_table_rule_is_the_python_table_rule():
    from components.history import TABLE_PATTERN

    assert APP["properties"]["history"]["properties"]["table"]["pattern"] == TABLE_PATTERN.pattern


def test_presence_history_url_wins_over_the_app_file(tmp_path):
    from components import history_store_for

    config = load_app_text(f"{MINIMAL}history: {{url: 'sqlite:////srv/chat.db', keep: 600, table: chat}}\n", environ={}).history
    assert history_store_for(config, environ={}).url.path == Path("/srv/chat.db")
    store = history_store_for(config, environ={"PRESENCE_HISTORY_URL": f"sqlite:///{tmp_path}/env.db"})
    assert (store.url.path, store.table, store.keep) == (tmp_path / "env.db", "chat", 600)


# -- what plain PyYAML would let through ------------------------------------------------------


def test_duplicate_keys_are_refused():
    problem = only_problem("version: 1\norg: a\norg: b\n")
    assert (problem.line, problem.column, problem.path) == (3, 1, "$.org")
    assert problem.message == "duplicate key 'org' (first written on line 2)"


def test_syntax_error_carries_the_parser_position():
    problem = only_problem("version: 1\norg: [acme\n")
    assert (problem.line, problem.path) == (3, "$") and problem.message.startswith("YAML syntax error: ")


@pytest.mark.parametrize(("text", "kind"), [("- a\n", "a list"), ("just text\n", "a string"), ("42\n", "a single value")])
def test_non_mapping_documents_are_refused(text, kind):
    assert only_problem(text).message.endswith(f"not {kind}")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_documents_are_refused(text):
    problems = problems_of(text)
    assert len(problems) == 1 and problems[0].path == "$"


def test_oversized_text_is_refused():
    problem = only_problem(MINIMAL + "#" * MAX_BYTES + "\n")
    assert "256 KiB" in problem.message


def test_oversized_file_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(MINIMAL.encode() + b"#" * (4 * MAX_BYTES))
    with pytest.raises(ConfigError, match="larger than 256 KiB"):
        load_app_file(big, environ={})


def test_alias_bomb_and_self_reference_are_refused():
    bomb = "version: 1\norg: a\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 8)}]\n" for i in range(1, 12)
    )
    assert "alias bomb" in only_problem(bomb).message
    assert "refers to the list or mapping it is part of" in only_problem("version: 1\norg: a\nx: &x [*x]\n").message


def test_timestamps_and_keys_stay_as_written():
    app = load_app_text(f"{MINIMAL}widgets: [{{type: presence_list, title: 2024-05-01}}]\n", environ={})
    assert app.widgets[0].title == "2024-05-01"
    assert only_problem(f"{MINIMAL}1: x\n").path == "$['1']"
    assert "on" in only_problem(f"{MINIMAL}on: x\n").message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{MINIMAL}widgets: !!set {{a}}\n", "unsupported YAML tag"),
        (f"{MINIMAL}x: !!binary aGk=\n", "unsupported YAML tag"),
        (f"{MINIMAL}broker: {{leave_grace: .nan}}\n", "not a finite number"),
        (f"{MINIMAL}base: &b {{keepalive: 5}}\nbroker:\n  <<: *b\n", "merge keys"),
    ],
)
def test_other_yaml_features_are_refused(text, message):
    assert any(message in p.message for p in problems_of(text))


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_app_file(tmp_path / "missing.yaml", environ={})


def test_non_utf8_file_names_the_position(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\norg: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_app_file(path, environ={})
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.message) == (2, 9, "the file is not UTF-8 text")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("version: 1\norg:acme-[]{}&*!|>'\"#%@`,?$~\t -widgets type")), max_size=120))
def test_any_text_gives_settings_or_config_error(text):
    try:
        load_app_text(text, environ={})
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, ConfigProblem) for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
))
def test_any_structure_under_a_valid_header_gives_settings_or_config_error(value):
    text = json.dumps({"version": 1, "org": "acme", "widgets": [value], "broker": value})
    try:
        load_app_text(text, environ={})
    except ConfigError as exc:
        assert exc.problems


def test_a_number_with_thousands_of_digits_is_a_problem_not_a_traceback() -> None:
    with pytest.raises(ConfigError) as raised:
        load_app_text("version: 1\norg: acme\nbroker:\n  keepalive: " + "9" * 5000 + "\n", filename="big.yaml")
    assert str(raised.value) == "big.yaml:4:14: $.broker.keepalive: the number written here has 5000 characters; no setting needs that many"
