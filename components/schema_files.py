"""Access to the JSON Schema files under `schemas/`, the single source of truth.

Installed, the schemas are the package `components.schemas` inside the wheel and are
read with importlib.resources. In a source checkout (tests run with the repo on
sys.path) the repository's `schemas/` folder beside `components/` is read instead,
even when some checkout of the kit is also installed in editable mode: its
`components.schemas` would be that other checkout's files.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent / "schemas"


def _schema_dir() -> Traversable:
    if (_CHECKOUT / "app.schema.json").is_file():
        return _CHECKOUT
    return resources.files("components.schemas")


@functools.cache
def load_schema(name: str) -> dict:
    """The parsed schema `schemas/{name}.schema.json` (cached; do not mutate it)."""
    return json.loads((_schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))
