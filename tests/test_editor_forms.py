"""The visual editor's forms come from the schema: every widget type and every option,
checked against the schema file itself, and a schema with one more option and one more
widget type gives an editor with them and no other change. Rendered by AppTest (the
preview is off there: it needs the server `python -m components edit` starts)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from components import app_form

from helpers import REPO

PAGE = str(REPO / "components" / "apps" / "editor_page.py")
SCHEMA = json.loads((REPO / "schemas" / "app.schema.json").read_text(encoding="utf-8"))
INPUTS = ("text_input", "number_input", "toggle", "selectbox", "multiselect")


def editor(monkeypatch, tmp_path: Path, text: str) -> tuple[AppTest, Path]:
    path = tmp_path / "app.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PRESENCE_APP_FILE", str(path))
    return AppTest.from_file(PAGE, default_timeout=30).run(), path


def inputs(at: AppTest) -> dict[str, tuple[str, object]]:
    """Every input of the page by key: (its kind, the element)."""
    return {element.key: (kind, element) for kind in INPUTS for element in getattr(at, kind) if element.key}


def add(at: AppTest, kind: str) -> AppTest:
    at.selectbox(key="add-kind").set_value(kind).run()
    return at.button(key="add-widget").click().run()


def expected_input(spec: dict) -> str:
    spec = {**SCHEMA["$defs"].get(spec.get("$ref", "#/$defs/").split("/")[-1], {}), **spec}
    if "enum" in spec:
        return "selectbox"
    if isinstance(spec.get("type"), list):  # e.g. [boolean, null]: one YAML value
        return "text_input"
    return {"boolean": "toggle", "integer": "number_input", "number": "number_input", "array": "multiselect"}.get(spec.get("type"), "text_input")


def assert_input_for(found: dict, key: str, name: str, spec: dict) -> None:
    assert key in found, f"no input for {key}"
    kind, element = found[key]
    assert kind == expected_input(spec), key
    assert element.label.split(" ")[0] == name
    assert spec["description"] in element.help, key
    if "minimum" in spec and "maximum" in spec:
        assert f"From {spec['minimum']:g} to {spec['maximum']:g}." in element.help, key
    if "default" in spec:
        assert f"Default: {spec['default']!r}." in element.help, key


def test_every_widget_type_and_option_of_the_schema_has_its_input(monkeypatch, tmp_path) -> None:
    at, _ = editor(monkeypatch, tmp_path, "version: 1\norg: acme\nwidgets: []\n")
    kinds = SCHEMA["$defs"]["widget"]["properties"]["type"]["enum"]
    assert at.selectbox(key="add-kind").options == [f"{k}: {SCHEMA['$defs'][k]['description']}" for k in kinds]
    for kind in kinds:
        at = add(at, kind)
    assert not at.exception
    found = inputs(at)
    for uid, kind in enumerate(kinds):
        for name, spec in SCHEMA["$defs"][kind]["properties"].items():
            if name != "type":
                assert_input_for(found, f"w{uid}.{name}", name, spec)


def test_every_app_setting_of_the_schema_has_its_input(monkeypatch, tmp_path) -> None:
    at, _ = editor(monkeypatch, tmp_path, "version: 1\norg: acme\n")
    found = inputs(at)

    def walk(properties: dict, key: str) -> None:
        for name, spec in properties.items():
            if "const" in spec or name == "widgets":
                continue
            if spec.get("type") == "object":
                walk(spec["properties"], f"{key}.{name}")
            else:
                assert_input_for(found, f"{key}.{name}", name, spec)

    walk(SCHEMA["properties"], "app")


def test_an_option_and_a_widget_type_added_to_the_schema_appear_with_no_other_change(monkeypatch, tmp_path) -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["$defs"]["typing_indicator"]["properties"]["glow"] = {"description": "Make the line glow.", "type": "boolean", "default": False}
    schema["$defs"]["poll"] = {
        "description": "A one-question poll.", "type": "object", "additionalProperties": False,
        "properties": {"type": {"description": "The widget type.", "const": "poll"},
                       "question": {"description": "What to ask.", "type": "string"},
                       "choices": {"description": "How many answers.", "type": "integer", "minimum": 2, "maximum": 9, "default": 3}},
    }
    schema["$defs"]["widget"]["properties"]["type"]["enum"].append("poll")
    schema["$defs"]["widget"]["allOf"].append({"if": {"properties": {"type": {"const": "poll"}}, "required": ["type"]}, "then": {"$ref": "#/$defs/poll"}})
    monkeypatch.setattr(app_form, "load_schema", lambda name: schema)

    at, path = editor(monkeypatch, tmp_path, "version: 1\norg: acme\nwidgets:\n  - type: typing_indicator\n")
    at = add(at, "poll")
    found = inputs(at)
    assert_input_for(found, "w0.glow", "glow", schema["$defs"]["typing_indicator"]["properties"]["glow"])
    for name in ("question", "choices"):
        assert_input_for(found, f"w1.{name}", name, schema["$defs"]["poll"]["properties"][name])
    at.toggle(key="w0.glow").set_value(True).run()
    at.text_input(key="w1.question").input("Lunch?").run()
    text = at.session_state["doc"].text()
    assert "  - type: typing_indicator\n    glow: true\n" in text and "  - type: poll\n    question: Lunch?\n" in text


def test_a_value_out_of_range_shows_the_validate_message_and_is_not_saved(monkeypatch, tmp_path) -> None:
    at, path = editor(monkeypatch, tmp_path, "version: 1\norg: acme\nwidgets:\n  - type: typing_indicator\n")
    at.number_input(key="w0.ttl").set_value(500).run()
    assert [e.value for e in at.error] == ["1 problem(s): the file cannot be saved until they are fixed.", "500 is greater than the maximum of 120"]
    at.button(key="save").click().run()
    assert any(e.value.startswith("Not saved") for e in at.error)
    assert path.read_text(encoding="utf-8") == "version: 1\norg: acme\nwidgets:\n  - type: typing_indicator\n"
    at.number_input(key="w0.ttl").set_value(7.5).run()
    at.button(key="save").click().run()
    assert not at.error and path.read_text(encoding="utf-8").endswith("  - type: typing_indicator\n    ttl: 7.5\n")
