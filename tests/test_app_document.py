"""The editor's document: a YAML round trip that keeps comments and order, edits that
land where the schema orders them, and saves the checker refuses. Pure, fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.app_document import AppDocument
from components.app_file import load_app_file, load_app_text
from components.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_untouched_file_is_written_back_byte_for_byte(path) -> None:
    assert AppDocument.open(path).text() == path.read_text(encoding="utf-8")


def test_edits_keep_comments_order_and_flow_style(tmp_path) -> None:
    path = tmp_path / "demo.yaml"
    original = (ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    widgets = [w.type for w in load_app_file(path).widgets]
    new = len(widgets)  # where the added widget goes: last
    doc = AppDocument.open(path)
    doc.add_widget("typing_indicator")
    doc.set(("widgets", new, "ttl"), 8)
    doc.set(("rooms",), ["lobby", "side"])
    doc.set(("broker", "keepalive"), 10)
    doc.remove(("widgets", 0, "title"))
    doc.move_widget(new, -1)
    doc.save()
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[:3] == original.splitlines()[:3]  # the comments
    assert "rooms: [lobby, side]\n" in text
    assert text.index("version: 1") < text.index("broker:") < text.index("org: demo")  # the schema's order
    settings = load_app_file(path)
    assert [w.type for w in settings.widgets] == [*widgets[:-1], "typing_indicator", widgets[-1]]
    assert settings.widgets[new - 1].ttl == 8 and settings.widgets[0].title is None and settings.broker.keepalive == 10


def test_removing_the_last_key_of_a_mapping_removes_the_mapping() -> None:
    doc = AppDocument(Path("app.yaml"), "version: 1\norg: acme\nbroker:\n  keepalive: 10\n")
    doc.remove(("broker", "keepalive"))
    assert doc.text() == "version: 1\norg: acme\n"


def test_an_invalid_file_is_not_saved_and_says_why(tmp_path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("version: 1\norg: acme\n", encoding="utf-8")
    doc = AppDocument.open(path)
    doc.add_widget("typing_indicator")
    doc.set(("widgets", 0, "ttl"), 500)
    with pytest.raises(ConfigError) as caught:
        doc.save()
    assert [str(p) for p in caught.value.problems] == ["app.yaml:5:10: $.widgets[0].ttl: 500 is greater than the maximum of 120"]
    assert path.read_text(encoding="utf-8") == "version: 1\norg: acme\n"


def test_a_file_with_unset_variables_saves(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MQTT_PASSWORD", raising=False)
    path = tmp_path / "app.yaml"
    path.write_text("version: 1\norg: acme\nbroker:\n  url: mqtt://h\n  password: ${MQTT_PASSWORD}\n", encoding="utf-8")
    doc = AppDocument.open(path)
    doc.set(("broker", "keepalive"), 12)
    check = doc.save()
    assert [p.path for p in check.unset] == ["$.broker.password"]
    assert "keepalive: 12" in path.read_text(encoding="utf-8")


def test_a_new_file_starts_as_a_minimal_valid_app(tmp_path) -> None:
    doc = AppDocument.open(tmp_path / "team room.yaml")
    settings = load_app_text(doc.text(), environ={})
    assert settings.org == "team-room" and settings.broker.embedded
    assert [w.type for w in settings.widgets] == ["presence_list", "chat_panel"]
    doc.save()
    assert (tmp_path / "team room.yaml").read_text(encoding="utf-8").startswith("# A new app")


@pytest.mark.parametrize("text", ["- a list\n", "key: [unclosed\n", "just text\n"])
def test_what_is_not_a_yaml_mapping_cannot_be_edited(tmp_path, text) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot edit"):
        AppDocument.open(path)
