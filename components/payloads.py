"""Wire payloads: JSON documents checked against the published schemas.

Each payload kind has a schema under `schemas/`; a validator is compiled once from that
file (jsonschema-rs, well under a microsecond a document) so validation never dominates
the receive path. Decoding never raises anything but InvalidPayload; the caller drops
and counts such messages.
"""

from __future__ import annotations

import json
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


def decode(kind: PayloadKind, raw: bytes) -> dict[str, Any]:
    """Parse and validate one payload of `kind`; raise InvalidPayload saying why not."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(f"{kind} payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        doc = _DECODER.decode(raw.decode())  # MQTT payloads of the kit are UTF-8 JSON
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
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
