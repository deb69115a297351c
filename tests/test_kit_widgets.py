"""One widget on its own from Python (`kit.presence_list(me, ...)`), rendered by
Streamlit's AppTest: options named and checked as in the app file, defaults from the
schema, and a clear error for what the server would not apply."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from components import PresenceKit
from components.schema_files import load_schema
from components.settings import WIDGET_SETTINGS

APP = load_schema("app")
APP_FILE = """version: 1
org: acme
rooms: [design, random]
identity: {source: query_param}
widgets:
  - {type: read_receipts, room: design, private: true}
  - {type: reactions, room: random, max_per_second: 5}
"""


@pytest.mark.parametrize("kind", list(WIDGET_SETTINGS))
def test_each_method_takes_exactly_the_schema_options(kind) -> None:
    parameters = inspect.signature(getattr(PresenceKit, kind)).parameters
    keywords = [name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keywords == [name for name in APP["$defs"][kind]["properties"] if name != "type"]
    assert all(parameters[name].default is None for name in keywords)


def page(tmp_path: Path, body: str) -> AppTest:
    (tmp_path / "app.yaml").write_text(APP_FILE)
    script = tmp_path / "page.py"
    script.write_text(textwrap.dedent(f"""
        from components import Identity, PresenceKit
        kit = PresenceKit.from_app_file({str(tmp_path / 'app.yaml')!r})
        me = Identity("ana", "Ana")
    """) + textwrap.dedent(body))
    return AppTest.from_file(str(script), default_timeout=30).run()


def mounted(at: AppTest) -> list[dict]:
    def data(element) -> dict:
        proto = json.loads(element.proto.json)
        return json.loads(proto["json"]) if "json" in proto else proto

    return [data(c) for c in at.get("bidi_component")]


def test_a_widget_renders_on_its_own_with_the_schema_filling_in_the_rest(tmp_path) -> None:
    at = page(tmp_path, """
        import streamlit as st
        left, right = st.columns(2)
        with left:
            kit.presence_list(me, room="design", counter_above=20)
        with right:
            kit.typing_indicator(me, id="typing-random", room="random")
    """)
    assert not at.exception
    people, typing = mounted(at)
    defaults = APP["$defs"]["presence_list"]["properties"]
    assert people["type"] == "presence_list" and people["connection"]["user"] == "ana"
    assert people["options"] == {
        "id": None, "room": "design", "counter_above": 20, "title": None,
        **{k: defaults[k]["default"] for k in ("counter_hysteresis", "away_after", "show_devices")},
    }
    assert typing["options"] == {"id": "typing-random", "room": "random", "ttl": APP["$defs"]["typing_indicator"]["properties"]["ttl"]["default"]}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("kit.typing_indicator(me, ttl=500)", "kit.typing_indicator: ttl: 500 is greater than the maximum of 120"),
        ("kit.chat_panel(me, room='ops')", "kit.chat_panel: room: room 'ops' is not one of rooms (design, random)"),
        ("kit.cursor_overlay(me, region='a b')", "kit.cursor_overlay: region: 'a b' is not valid: an id is"),
        ("kit.chat_panel(me, room='random', private_receipts=True)",
         "kit.chat_panel: the server publishes read receipts in room 'random': make them private there in the app file"),
        ("kit.reactions(me, room='random')", "kit.reactions: max_per_second: the server limits reactions in room 'random' to 5 a second"),
    ],
)
def test_options_the_schema_or_the_server_refuse_are_named(tmp_path, call, message) -> None:
    at = page(tmp_path, call)
    assert at.exception and "raise ConfigError(" in at.exception[0].stack_trace[-1]
    assert at.exception[0].message.startswith(message)
    assert mounted(at) == []


def test_what_the_app_file_holds_is_accepted(tmp_path) -> None:
    at = page(tmp_path, """
        kit.read_receipts(me, room="design", private=True)
        kit.chat_panel(me, room="design", private_receipts=True, history=5000)
        kit.reactions(me, room="random", max_per_second=5)
    """)
    assert not at.exception
    assert [d["type"] for d in mounted(at)] == ["read_receipts", "chat_panel", "reactions"]
    assert mounted(at)[1]["options"]["history"] == 5000  # read from the history store, not the server's memory


def test_render_names_a_widget_that_is_not_in_the_app_file(tmp_path) -> None:
    at = page(tmp_path, """
        from components.settings import TypingIndicatorSettings
        kit.render(me, [TypingIndicatorSettings(id=None, room="design", ttl=6)])
    """)
    assert at.exception and "raise ValueError(" in at.exception[0].stack_trace[-1]
    assert "is not one of the app file's widgets" in at.exception[0].message
    assert "kit.typing_indicator(me, ...)" in at.exception[0].message
