"""Wire payloads: JSON documents checked against the published schemas.

Each payload kind has a schema under `schemas/`; a validator is compiled once from that
file (jsonschema-rs, well under a microsecond a document) so validation never dominates
the receive path. Decoding never raises anything but InvalidPayload; the caller drops
and counts such messages.

Every string a payload carries must survive a strict UTF-8 encode: JSON may escape a
lone surrogate (`"\\ud800"`), which `json.loads` and a schema accept but which no
WebSocket frame or MQTT payload can carry again, so such a payload is invalid here,
where it enters, and never reaches a tab.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import jsonschema_rs

from .errors import InvalidPayload
from .schema_files import load_schema

PayloadKind = Literal["presence", "lease", "typing", "cursor", "receipt", "chat", "reaction", "tab-message"]
PAYLOAD_KINDS: tuple[PayloadKind, ...] = ("presence", "lease", "typing", "cursor", "receipt", "chat", "reaction", "tab-message")
"""MQTT payloads, plus `tab-message`: what a browser tab sends over the kit's WebSocket."""

MAX_PAYLOAD_BYTES = 16 * 1024
"""Larger payloads are refused before parsing: no kit payload comes near this."""

_VALIDATORS = {kind: jsonschema_rs.Draft202012Validator(load_schema(kind)) for kind in PAYLOAD_KINDS}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""Built once: `json.loads(raw, parse_constant=...)` builds a decoder per call, a
third of the JSON cost on the observer's receive path (python -m bench, row 3)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(_has_surrogate, value))
    return False


def decode(kind: PayloadKind, raw: bytes) -> dict[str, Any]:
    """Parse and validate one payload of `kind`; raise InvalidPayload saying why not."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(f"{kind} payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = raw.decode()  # MQTT payloads of the kit are UTF-8 JSON (strict: no surrogates)
        doc = _DECODER.decode(text)
        # only a \u escape can make a surrogate; the walk is skipped for most payloads
        if "\\u" in text and _has_surrogate(doc):
            raise ValueError("a string holds a lone surrogate (not encodable as UTF-8)")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidPayload(f"{kind} payload is not JSON: {exc}") from None
    if not _VALIDATORS[kind].is_valid(doc):
        raise InvalidPayload(f"{kind} payload breaks its schema: {_first_error(kind, doc)}")
    return doc


def _first_error(kind: PayloadKind, doc: Any) -> str:
    for error in _VALIDATORS[kind].iter_errors(doc):
        return str(error.message)
    return "invalid"


def encode(kind: PayloadKind, doc: dict[str, Any]) -> bytes:
    """Serialise a payload the kit publishes; it must satisfy its own schema."""
    if not _VALIDATORS[kind].is_valid(doc):
        raise InvalidPayload(f"refusing to publish an invalid {kind} payload: {_first_error(kind, doc)}")
    try:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise InvalidPayload(f"refusing to publish a {kind} payload with a lone surrogate") from None
