"""Who the person behind this Streamlit session is, from the app file's `identity`:

- `streamlit_login`: Streamlit's own login (`st.user`), email or subject as the id;
- `header`: a header set by a trusted reverse proxy (never trust it without one);
- `query_param`: `?user=NAME`, for demos and tests only.

Raw identities (emails, names) are mapped to ids that obey the id rule: the allowed
characters are kept, anything else makes the id `<cleaned>-<hash>` so two different
raw identities never share an id. The raw text stays as the display name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import streamlit as st

from .ids import ID_PATTERN
from .settings import IdentitySection

_NOT_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    name: str
    avatar: str | None = None


def user_id_for(raw: str) -> str:
    """A valid id for a raw identity (email, login name, display name)."""
    raw = raw.strip()
    if ID_PATTERN.fullmatch(raw):
        return raw
    cleaned = _NOT_ID.sub("-", raw).strip("-.")[:48] or "user"
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    return f"{cleaned}-{digest}"


def identify(config: IdentitySection) -> Identity | None:
    """The identity for this session, or None when there is none (not logged in, no
    header, no query parameter)."""
    if config.source == "streamlit_login":
        if not st.user.is_logged_in:
            return None
        raw = str(st.user.get("email") or st.user.get("sub") or "")
        name = str(st.user.get("name") or raw)
        picture = st.user.get("picture")
        return Identity(user_id_for(raw), name, str(picture) if picture else None) if raw else None
    if config.source == "header":
        value = st.context.headers.get(config.header or "")
        return Identity(user_id_for(value), value) if value else None
    value = st.query_params.get("user")
    return Identity(user_id_for(value), value) if value else None


def ask_for_name() -> Identity | None:
    """A display name typed on the page, or None until there is one. Like `?user=`,
    for demos and tests only: anyone can claim any name."""
    name = st.text_input("Your display name", max_chars=60, placeholder="e.g. Ana").strip()
    return Identity(user_id_for(name), name) if name else None
