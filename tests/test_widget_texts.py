"""The widgets' words: the schema's `locale` and `labels` against the shipped language
tables (components/widgets/texts/*.json), and what an app file may write there. Fast,
pure, no network; how the browser fills the texts in is tests/test_widget_client.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.app_file import load_app_text
from components.errors import ConfigError
from components.schema_files import load_schema
from components.widget_texts import PLURAL_CATEGORIES, placeholders

TABLES_DIR = Path(__file__).resolve().parent.parent / "components" / "widgets" / "texts"
# read here from the files themselves, not through the module under test
TABLES = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(TABLES_DIR.glob("*.json"))}
APP = load_schema("app")
LABELS = APP["properties"]["labels"]
MINIMAL = "version: 1\norg: acme\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_app_text(text, filename="app.yaml", environ={})
    return [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems]


def test_the_five_languages_ship_and_the_schema_offers_exactly_them():
    assert set(TABLES) == {"en", "de", "fr", "es", "pt"}
    assert sorted(APP["properties"]["locale"]["enum"]) == sorted(TABLES)


@pytest.mark.parametrize("locale", sorted(TABLES))
def test_every_label_key_of_the_schema_is_in_every_table_and_no_other(locale):
    schema_keys = set(LABELS["properties"])
    table = set(TABLES[locale])
    assert schema_keys - table == set(), f"{locale}.json lacks {sorted(schema_keys - table)}"
    assert table - schema_keys == set(), f"{locale}.json has keys the schema lacks: {sorted(table - schema_keys)}"


def test_every_label_key_is_described_and_a_count_decides_its_plural_forms():
    for key, spec in LABELS["properties"].items():
        assert spec.get("description"), key
        english = TABLES["en"][key]
        counted = isinstance(english, dict) or "count" in placeholders(english)
        assert spec["$ref"] == ("#/$defs/counted_label" if counted else "#/$defs/label"), key


@pytest.mark.parametrize("locale", sorted(TABLES))
def test_every_shipped_table_is_a_valid_labels_section(locale):
    # the same rules a builder's labels meet: shapes, length, no control characters,
    # only the placeholders each key has, plural forms only where a count decides
    text = MINIMAL + yaml.safe_dump({"labels": TABLES[locale]}, allow_unicode=True)
    assert load_app_text(text, environ={}).labels == TABLES[locale]


@pytest.mark.parametrize("locale", sorted(set(TABLES) - {"en"}))
def test_every_translation_says_what_english_says(locale):
    for key, english in TABLES["en"].items():
        translated = TABLES[locale][key]
        assert placeholders(english) - {"count"} <= placeholders(translated), f"{locale}.{key} drops a placeholder"
        if isinstance(translated, dict):
            assert "other" in translated and set(translated) <= set(PLURAL_CATEGORIES), f"{locale}.{key}"


def test_locale_and_labels_reach_the_settings():
    settings = load_app_text(MINIMAL + "locale: de\nlabels:\n  composer: 'Schreib an #{room}'\n  devices: {one: '{count} Tab', other: '{count} Tabs'}\n", environ={})
    assert settings.locale == "de"
    assert settings.labels == {"composer": "Schreib an #{room}", "devices": {"one": "{count} Tab", "other": "{count} Tabs"}}
    assert load_app_text(MINIMAL, environ={}).locale is None  # the browser's language


def test_an_unknown_locale_is_named_with_a_suggestion():
    assert problems_of(MINIMAL + "locale: deu\n") == ["3:9: $.locale: 'deu' is not one of 'en', 'de', 'fr', 'es', 'pt'; did you mean 'de'?"]


def test_an_unknown_label_key_is_named_with_a_suggestion():
    assert problems_of(MINIMAL + "labels:\n  seen_byy: Gelesen\n") == ["4:3: $.labels.seen_byy: unknown key 'seen_byy'; did you mean 'seen_by'?"]


def test_a_label_may_use_only_its_keys_placeholders():
    assert problems_of(MINIMAL + "labels:\n  typing: '{nmes} tippt'\n  send: 'Senden {room}'\n") == [
        "4:11: $.labels.typing: {nmes} is not a placeholder of typing (it has: {count}, {names})",
        "5:9: $.labels.send: {room} is not a placeholder of send (it has: none)",
    ]


def test_plural_forms_only_where_a_count_decides_and_with_other():
    assert problems_of(MINIMAL + "labels:\n  devices: {one: '{count} Tab'}\n  send: {one: a, other: b}\n") == [
        "4:3: $.labels.devices: missing required key 'other'",
        "5:3: $.labels.send: {'one': 'a', 'other': 'b'} is not of type 'string'",
    ]


def test_label_values_are_plain_text_and_capped():
    found = problems_of(MINIMAL + "labels:\n  send: \"a\\u0007b\"\n  follow: '" + "x" * 301 + "'\n  here: {other: 3}\n")
    assert [line.split(": ")[1] for line in found] == ["$.labels.send", "$.labels.follow", "$.labels.here.other"]
    assert "plain text without control characters" in found[0]
    assert found[1].endswith("is too long") and found[2].endswith("3 is not of type 'string'")
    # markup is no problem: it is shown as the text it is
    assert load_app_text(MINIMAL + "labels: {send: '<b>Send</b>'}\n", environ={}).labels == {"send": "<b>Send</b>"}
