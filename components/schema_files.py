"""The JSON Schema files under `schemas/`, read once and shared.

Every schema the kit uses (the app file, the wire payloads) is a file under the
repository's top-level `schemas/` folder; those files are the single source of truth,
and nothing in Python repeats their rules.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from importlib.resources.abc import Traversable
from pathlib import Path


def load_schema(name: str) -> dict:
    """Return the parsed schema `schemas/{name}.schema.json` (e.g. "app", "presence").

    The result is cached and shared by every caller: treat it as read-only.
    """
    return _load(name)


@functools.cache
def _load(name: str) -> dict:
    text = (_schema_folder() / f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _schema_folder() -> Traversable:
    """Where the schema files are, installed or not.

    The wheel ships `schemas/` as the package `components.schemas` (a package-dir
    mapping in pyproject.toml), so an installed kit, editable or not, finds them with
    importlib.resources. A plain source checkout on PYTHONPATH has no such package:
    `components/schemas/` does not exist on disk, only `schemas/` next to `components/`.
    There (and only there) we read that folder directly, so the tests and the other
    engineers' checkouts work without `pip install -e`, which would hijack the import
    of `components` for every other worktree on the machine.
    """
    try:
        return importlib.resources.files("components.schemas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "schemas"
