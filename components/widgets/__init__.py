"""The widgets' Streamlit side: components v2 built from the assets in this folder.

Every widget's JavaScript is the language tables (components.widget_texts), the shared
client (`client.js`: one WebSocket per tab, the widget base, the shared renderers and
the one way widgets word things) and the widget's own module; its CSS is the shared
`client.css` followed by its own. Assets are read once per process (packaged file
paths are not resolved by components v2, so the text is passed inline).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import streamlit as st

from ..widget_texts import languages_script


@functools.cache
def _asset(name: str) -> str:
    path = resources.files(__package__) / name
    return path.read_text(encoding="utf-8") if path.is_file() else ""


@functools.cache
def _component(kind: str) -> Any:
    return st.components.v2.component(
        f"presence_kit_{kind}",
        css=f"{_asset('client.css')}\n{_asset(f'{kind}.css')}",
        js=f"{languages_script()}{_asset('client.js')}\n{_asset(f'{kind}.js')}",
    )


def mount(kind: str, *, key: str, data: dict[str, Any]) -> Any:
    """Mount widget `kind` with `data`; the key keeps it mounted across reruns."""
    return _component(kind)(key=key, data=data, on_token_expired_change=lambda: None)
