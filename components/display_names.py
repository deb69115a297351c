"""Display names: free text that anyone may choose, made safe to show next to others.

A name is cleaned where it enters the kit (a received presence or chat payload, a
signed token), so every tab shows the same thing:
- NFC, then every control, format, surrogate, private-use or unassigned character is
  removed: bidi overrides and isolates (`Bob\\u202e nimda` would show as "Bobadmin"),
  zero-width spaces and joiners (`Vic\\u200btim` would pass for a second "Victim"),
  soft hyphens, BOMs. A zero-width joiner between two symbols stays (it builds emoji
  such as 👩‍💻); between letters it goes.
- invisible fillers (Hangul fillers, the combining grapheme joiner) go too;
- whitespace runs become one space, ends are trimmed;
- at most MAX_MARKS combining marks follow one character (no "Zalgo" towers);
- at most MAX_LENGTH characters are kept.
A name that is empty after cleaning is None: widgets then show the user id.

Cleaning does not make names unique: two people may both call themselves "Ana". The
widgets show the user id beside a name that another person in view shares (compared
by `name_key`, NFKC and case-folded), and render names in isolated bidi runs.
Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 200
MAX_MARKS = 3
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
_ZWJ = "\u200d"
_SYMBOL_CATEGORIES = frozenset({"So", "Sk", "Mn"})  # emoji, modifiers, variation selectors


def clean_display_name(text: str | None) -> str | None:
    """The name as the kit shows it, or None when nothing visible is left."""
    if not text:
        return None
    if text.isascii() and text.isprintable() and len(text) <= MAX_LENGTH and "  " not in text and text.strip() == text:
        return text  # most names: nothing to clean (this is on the receive path)
    text = unicodedata.normalize("NFC", text)
    kept: list[str] = []
    marks = 0
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if char == _ZWJ and _joins_symbols(text, index):
            kept.append(char)
            continue
        if char.isspace():  # tabs, newlines and every Unicode space: one plain space
            marks = 0
            if kept and kept[-1] != " ":
                kept.append(" ")
            continue
        if category in _REMOVED_CATEGORIES or char in _INVISIBLE:
            continue
        marks = marks + 1 if category.startswith("M") else 0
        if marks <= MAX_MARKS:
            kept.append(char)
    cleaned = "".join(kept).strip()[:MAX_LENGTH].rstrip()
    return cleaned or None


def _joins_symbols(text: str, index: int) -> bool:
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    return bool(before and after) and unicodedata.category(before) in _SYMBOL_CATEGORIES and unicodedata.category(after) == "So"


def name_key(name: str) -> str:
    """What two names are compared by when deciding whether they look the same."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())
