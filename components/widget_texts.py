"""Every word the widgets show, one table per language: `components/widgets/texts/{locale}.json`.

A table maps a text's key to a template of plain text with named placeholders
(`"{names} is typing…"`), or, where a count decides the wording, to its plural forms by
CLDR category (`{"one": ..., "other": ...}`; the browser's Intl.PluralRules picks one,
"other" when the language's category is missing). The browser fills the placeholders
as text: counts with Intl.NumberFormat, lists of names with Intl.ListFormat, relative
times ("{ago}") with Intl.RelativeTimeFormat; nothing is ever markup.

The app file chooses a table with `locale` (absent: the browser's language, else
English) and overrides single texts under `labels`; the schema lists every key, and a
test holds the schema and every table to the same keys. English is the reference: a
text may use the placeholders its English template uses, and `count` where a count
decides the wording. Pure: reads the tables, nothing else.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path

TEXTS_DIR = Path(__file__).resolve().parent / "widgets" / "texts"
REFERENCE = "en"
PLURAL_CATEGORIES = ("zero", "one", "two", "few", "many", "other")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

Text = str | Mapping[str, str]
"""A template, or its plural forms by CLDR category."""


@functools.cache
def language_tables() -> dict[str, dict[str, Text]]:
    """The shipped tables by locale, English first (cached; do not mutate them)."""
    paths = sorted(TEXTS_DIR.glob("*.json"), key=lambda p: (p.stem != REFERENCE, p.stem))
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in paths}


def placeholders(text: Text) -> set[str]:
    """The placeholder names a template (or any of its plural forms) uses."""
    forms = text.values() if isinstance(text, Mapping) else (text,)
    return {name for form in forms if isinstance(form, str) for name in _PLACEHOLDER.findall(form)}


def counted(key: str) -> bool:
    """Does a count decide this text's wording (so it may have plural forms)?"""
    reference = language_tables()[REFERENCE][key]
    return isinstance(reference, Mapping) or "count" in placeholders(reference)


def allowed_placeholders(key: str) -> set[str]:
    """What a text of `key` may use: its English template's placeholders, and `count`
    where a count decides the wording."""
    return placeholders(language_tables()[REFERENCE][key]) | ({"count"} if counted(key) else set())


def text_problem(key: str, text: object) -> str | None:
    """Why `text` cannot be the text of `key` (a label or a table entry), or None. The
    shape and length are the schema's; this is what the schema cannot say."""
    unknown = sorted(placeholders(text) - allowed_placeholders(key)) if isinstance(text, str | Mapping) else []
    if unknown:
        allowed = ", ".join(f"{{{name}}}" for name in sorted(allowed_placeholders(key))) or "none"
        return f"{', '.join(f'{{{name}}}' for name in unknown)} is not a placeholder of {key} (it has: {allowed})"
    if isinstance(text, Mapping) and not counted(key):
        return f"{key} takes no count, so it has one form: write it as one text"
    return None


def languages_script() -> str:
    """The tables as JavaScript (`const LANGUAGES = {...};`), put before the widgets'
    shared client once per component, so a page's language costs no bytes per rerun."""
    return f"const LANGUAGES = {json.dumps(language_tables(), ensure_ascii=False)};\n"
