"""The page side, rendered by Streamlit's AppTest from app files: identity, the signed
token and the data each widget is mounted with (no server, no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from components.kit import PresenceKit
from components.tokens import process_signer

from helpers import REPO

DEMO_PAGE = str(REPO / "demo_page.py")


def _data(element) -> dict:
    proto = json.loads(element.proto.json)
    return json.loads(proto["json"]) if "json" in proto else proto


def run_demo(monkeypatch, *, app_file: Path, user: str | None) -> AppTest:
    monkeypatch.setenv("PRESENCE_APP_FILE", str(app_file))
    at = AppTest.from_file(DEMO_PAGE, default_timeout=30)
    if user is not None:
        at.query_params["user"] = user
    return at.run()


def test_demo_asks_for_a_name_without_one(monkeypatch) -> None:
    at = run_demo(monkeypatch, app_file=REPO / "examples" / "demo.yaml", user=None)
    assert not at.exception
    assert at.text_input[0].label == "Your display name"
    assert at.get("bidi_component") == []
    at.text_input[0].input("Ana Lima").run()
    settings = PresenceKit.from_app_file(REPO / "examples" / "demo.yaml").settings
    assert sorted(_data(c)["type"] for c in at.get("bidi_component")) == sorted(w.type for w in settings.widgets)


def test_presence_list_is_mounted_with_a_token_for_the_user_and_the_app_file_options(monkeypatch) -> None:
    at = run_demo(monkeypatch, app_file=REPO / "examples" / "demo.yaml", user="Ana")
    assert not at.exception
    (data,) = [_data(c) for c in at.get("bidi_component") if _data(c)["type"] == "presence_list"]
    assert data["options"] == {"id": None, "room": None, "counter_above": 30, "counter_hysteresis": 5, "away_after": 300, "show_devices": True, "title": "Who's here"}
    connection = data["connection"]
    assert (connection["org"], connection["user"], connection["wsPath"]) == ("demo", "Ana", "/presence-kit/ws")
    claims = process_signer().verify(connection["token"])
    assert (claims.user, claims.name, claims.org) == ("Ana", "Ana", "demo")


def test_every_presence_list_of_an_app_file_is_rendered_with_its_room(monkeypatch) -> None:
    # identity from a proxy header, absent here: the demo asks for a name instead
    at = run_demo(monkeypatch, app_file=REPO / "examples" / "big_room.yaml", user=None)
    at.text_input[0].input("Ben").run()
    assert not at.exception
    settings = PresenceKit.from_app_file(REPO / "examples" / "big_room.yaml").settings
    lists = [w for w in settings.widgets if w.type == "presence_list"]
    mounted = [_data(c)["options"] for c in at.get("bidi_component") if _data(c)["type"] == "presence_list"]
    assert [(o["room"], o["counter_above"]) for o in mounted] == [(w.room, w.counter_above) for w in lists]


def test_a_name_that_is_not_an_id_gets_a_safe_id_and_keeps_its_text(monkeypatch) -> None:
    at = run_demo(monkeypatch, app_file=REPO / "examples" / "demo.yaml", user="<b>Zoë</b> a/b")
    connection = _data(at.get("bidi_component")[0])["connection"]
    assert connection["name"] == "<b>Zoë</b> a/b"
    assert connection["user"].startswith("b-Zo-b-a-b-") and "/" not in connection["user"]


def test_readme_lists_every_widget_option_with_its_schema_default() -> None:
    from components.schema_files import load_schema

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    widgets = readme[readme.index("## Widgets"):readme.index("## Bots and agents")]
    for kind, definition in load_schema("app")["$defs"].items():
        if "const" not in definition.get("properties", {}).get("type", {}):
            continue
        assert f"**`{kind}`**" in widgets, kind
        section = widgets[widgets.index(f"**`{kind}`**"):]
        for option, spec in definition["properties"].items():
            if option != "type":
                assert f"| `{option}` |" in section, f"{kind}.{option} missing from the README"
                if isinstance(spec.get("default"), int | float) and not isinstance(spec["default"], bool):
                    assert f"| `{option}` | `{spec['default']}` |" in section, f"{kind}.{option} default"


def test_two_identical_widgets_are_both_mounted(monkeypatch, tmp_path) -> None:
    app_file = tmp_path / "twins.yaml"
    app_file.write_text(
        "version: 1\norg: demo\nidentity: {source: query_param}\n"
        "widgets:\n  - type: presence_list\n  - type: presence_list\n"
    )
    at = run_demo(monkeypatch, app_file=app_file, user="Ana")
    assert not at.exception
    assert [_data(c)["type"] for c in at.get("bidi_component")] == ["presence_list", "presence_list"]


def test_a_room_chosen_at_run_time_puts_every_widget_in_it_and_its_token_names_only_it(monkeypatch) -> None:
    monkeypatch.setenv("PRESENCE_APP_FILE", str(REPO / "examples" / "demo.yaml"))
    at = AppTest.from_file(DEMO_PAGE, default_timeout=30)
    at.query_params["user"] = "Ana"
    at.query_params["room"] = "ticket-42"
    at.run()
    assert not at.exception
    mounted = [_data(c) for c in at.get("bidi_component")]
    assert mounted and {d["options"]["room"] for d in mounted} == {"ticket-42"}, "a widget stayed in its own room"
    assert {process_signer().verify(d["connection"]["token"]).rooms for d in mounted} == {frozenset({"ticket-42"})}


def test_authorize_refuses_a_room_with_a_clear_error_and_no_widget(monkeypatch) -> None:
    kit = PresenceKit.from_app_file(REPO / "examples" / "demo.yaml")
    monkeypatch.setattr(kit, "authorize", lambda me, room: not (room == "payroll" and me.user == "Ana"))
    monkeypatch.setenv("PRESENCE_APP_FILE", str(REPO / "examples" / "demo.yaml"))
    for user, room, allowed in (("Ana", "payroll", False), ("Ben", "payroll", True), ("Ana", "a/b", False)):
        at = AppTest.from_file(DEMO_PAGE, default_timeout=30)
        at.query_params["user"] = user
        at.query_params["room"] = room
        at.run()
        assert not at.exception
        assert bool(at.get("bidi_component")) == allowed, (user, room)
        if not allowed:
            assert at.error and "Presence is unavailable" in at.error[0].value


def test_render_only_places_the_widgets_named_by_id_or_type(monkeypatch) -> None:
    from components.identity import Identity

    kit = PresenceKit.from_app_file(REPO / "examples" / "demo.yaml")
    assert [w.type for w in kit._named(["chat_panel", "presence_list"])] == ["presence_list", "chat_panel"]  # file order
    try:
        kit.render(Identity("ana", "Ana"), only=["chat"])
    except ValueError as exc:
        assert "'chat'" in str(exc) and "chat_panel" in str(exc)
    else:
        raise AssertionError("an unknown name was accepted")
