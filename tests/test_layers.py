"""The layers hold: read every module's imports (statically, with ast) and fail when
the pure core reaches the session or anything with sockets or threads (a module that
starts one; a lock alone is not a thread), when paho is
imported outside its one module, or Streamlit/Starlette outside the Streamlit edge
(the bridge, the widgets, the kit and identity, and the scripts in components/apps).
Then check at run time, in a fresh interpreter, that `import components` to read an
app file starts no thread and imports neither paho nor Streamlit."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from helpers import REPO, kit_env

PACKAGE = REPO / "components"
CORE = {f"components.{name}" for name in (
    "topics", "payloads", "presence", "rooms", "org_state", "app_file", "settings", "ids", "yaml_reader", "events", "fields",
)}
SESSION = {f"components.{name}" for name in ("session", "device", "observer", "reconnecting", "network_loop", "mqtt_connection")}
SOCKETS = {"socket", "selectors", "ssl", "asyncio", "subprocess", "multiprocessing"}
THREAD_STARTERS = {"Thread", "ThreadPoolExecutor", "start_new_thread"}
"""A module has threads when it names one of these (a lock alone starts nothing)."""
UI = {"streamlit", "starlette", "uvicorn", "tornado"}
PAHO_MODULE = "components.mqtt_connection"
# the bridge and the widgets, the kit and identity they need, and the Streamlit scripts
# that `python -m components run/edit` serve (components/apps)
STREAMLIT_EDGE = ("components.bridge", "components.kit", "components.identity", "components.widgets", "components.apps")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def starts_threads(path: Path) -> bool:
    return any(
        (isinstance(node, ast.Name) and node.id in THREAD_STARTERS) or (isinstance(node, ast.Attribute) and node.attr in THREAD_STARTERS)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports anywhere (functions included), as absolute names;
    imports only a type checker runs are left out."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x` imports a module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}
THREADED = {module_name(p) for p in PACKAGE.rglob("*.py") if starts_threads(p)}


def internal(names: set[str]) -> set[str]:
    return {n for n in names if n in MODULES}


def closure(module: str) -> set[str]:
    """The package modules `module` loads: what it imports, their parent packages, and so on."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parents = {".".join(current.split(".")[:i]) for i in range(1, current.count(".") + 1)}
        todo += internal(MODULES[current]) | (parents & set(MODULES))
    return seen


def top_level(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_the_module_list_is_read() -> None:
    assert CORE | SESSION | {PAHO_MODULE, "components", "components.kit"} <= set(MODULES)


def test_the_pure_core_reaches_no_session_socket_thread_or_ui() -> None:
    for module in sorted(CORE):
        for reached in sorted(closure(module)):
            impure = top_level(MODULES[reached]) & (SOCKETS | UI | {"paho"})
            assert reached not in SESSION, f"{module} reaches the session through {reached}"
            assert not impure, f"{module} reaches {reached}, which imports {sorted(impure)}"
            assert reached not in THREADED, f"{module} reaches {reached}, which starts threads"


def test_the_thread_check_sees_threads() -> None:
    assert {"components.session", "components.network_loop"} <= THREADED


def test_paho_is_imported_by_one_module() -> None:
    users = {m for m, names in MODULES.items() if "paho" in top_level(names)}
    assert users == {PAHO_MODULE}


def test_streamlit_and_starlette_only_at_the_edge() -> None:
    for module, names in sorted(MODULES.items()):
        if UI & top_level(names):
            assert module.startswith(STREAMLIT_EDGE), f"{module} imports {sorted(UI & top_level(names))}"


def test_import_components_to_read_an_app_file_starts_nothing() -> None:
    script = """
import json, sys, threading
import components
settings = components.load_app_text("version: 1\\norg: acme\\nwidgets: [{type: presence_list}]\\n")
before = {"threads": threading.active_count(), "paho": any(m.split(".")[0] == "paho" for m in sys.modules),
          "streamlit": "streamlit" in sys.modules, "widgets": len(settings.widgets)}
components.PresenceSession  # the session does bring paho in (so this test can fail)
after = any(m.split(".")[0] == "paho" for m in sys.modules)
print(json.dumps({**before, "paho_after_session": after}))
"""
    result = subprocess.run([sys.executable, "-c", script], env=kit_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"threads": 1, "paho": False, "streamlit": False, "widgets": 1, "paho_after_session": True}
