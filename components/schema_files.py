"""Access to the JSON Schema files under `schemas/`, the single source of truth.

Installed, the schemas are the package `components.schemas` inside the wheel and are
read with importlib.resources. Imported from a source checkout (tests run with the repo
on sys.path), the checkout's own `schemas/` folder beside `components/` is read, even
when an editable install of another checkout maps `components.schemas` elsewhere (a
git worktree beside the main checkout): the schemas always match the code.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def _schema_dir() -> Traversable:
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if (checkout / "app.schema.json").is_file():
        return checkout
    return resources.files("components.schemas")


@functools.cache
def load_schema(name: str) -> dict:
    """The parsed schema `schemas/{name}.schema.json` (cached; do not mutate it)."""
    return json.loads((_schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))
