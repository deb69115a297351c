"""Access to the JSON Schema files under `schemas/`, the single source of truth.

Installed, the schemas are the package `components.schemas` inside the wheel. In a
source checkout (tests run with the repo on sys.path) they are the repository's
`schemas/` folder beside `components/`. The folder that belongs to the imported
package is read first: an editable install of another checkout maps the package name
`components.schemas` to *that* checkout's folder, which may hold other schemas.
importlib.resources is the fallback (e.g. a zipped install).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def _schema_dir() -> Traversable:
    package = Path(__file__).resolve().parent
    for folder in (package / "schemas", package.parent / "schemas"):  # a wheel, a checkout
        if (folder / "app.schema.json").is_file():
            return folder
    return resources.files("components.schemas")


@functools.cache
def load_schema(name: str) -> dict:
    """The parsed schema `schemas/{name}.schema.json` (cached; do not mutate it)."""
    return json.loads((_schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))
