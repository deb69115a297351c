"""Ids (org, room, user, device) and the one rule they obey.

Every id becomes a whole MQTT topic level, so it must never contain `/`, `+` or `#`
and never be empty: `^[A-Za-z0-9_.-]{1,64}$`. Display names are separate free text.
"""

from __future__ import annotations

import re
from typing import Literal

from .errors import InvalidId

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

IdKind = Literal["org", "room", "user", "device"]


def check_id(value: object, *, kind: IdKind) -> str:
    """Return `value` if it is a valid id, else raise InvalidId naming the kind and value."""
    if isinstance(value, str) and ID_PATTERN.fullmatch(value):
        return value
    raise InvalidId(
        f"invalid {kind} id {value!r}: ids are 1-64 characters of A-Z a-z 0-9 _ . - "
        "(no '/', '+', '#' or spaces, so an id is always one whole MQTT topic level)"
    )
