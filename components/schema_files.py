"""Access to the JSON Schema files under `schemas/`, the single source of truth.

Installed, the schemas are the package `components.schemas` inside the wheel and are
read with importlib.resources. In a plain source checkout (tests run with the repo on
sys.path but not installed) that package name is not mapped, so the repository's
`schemas/` folder beside `components/` is read instead: the same files either way.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def _schema_dir() -> Traversable:
    try:
        return resources.files("components.schemas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def load_schema(name: str) -> dict:
    """The parsed schema `schemas/{name}.schema.json` (cached; do not mutate it)."""
    return json.loads((_schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))
