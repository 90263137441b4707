"""The house rules, checked: rooms of one concern, no import cycle, faces that talk to the application layer.

A file over 400 lines, a module importing in a circle, or a face (JSON-RPC methods, HTTP routes, tray, CLI)
that reaches past the application layer into the engine, a provider, the journal or the spool fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DAEMON = REPO_ROOT / "daemon"
MAX_LINES = 400
FACES = ("rpc.methods", "web", "tray", "cli", "picgo")
BEHIND_THE_APP_LAYER = ("engine", "worker", "journal", "spool", "providers", "settings_store")


def modules() -> dict[str, Path]:
    """pixlift's modules by dotted name."""
    out = {}
    for path in DAEMON.rglob("*.py"):
        parts = list(path.relative_to(DAEMON).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["pixlift", *parts])] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The pixlift modules ``name`` imports at run time (imports under ``if TYPE_CHECKING:`` aside)."""
    tree = ast.parse(path.read_text())
    skip = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
            for sub in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


@pytest.mark.parametrize("folder", ["daemon", "ui"])
def test_no_file_is_over_400_lines(folder: str) -> None:
    long = {str(p.relative_to(REPO_ROOT)): n for p in (REPO_ROOT / folder).rglob("*")
            if p.suffix in (".py", ".js", ".css", ".html") and "__pycache__" not in p.parts
            and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_import_cycle() -> None:
    g = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep):], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(g):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_faces_talk_only_to_the_application_layer() -> None:
    g = graph()
    for name, deps in g.items():
        face = next((f for f in FACES if name == f"pixlift.{f}" or name.startswith(f"pixlift.{f}.")), None)
        if face is None:
            continue
        behind = sorted(d for d in deps if any(d == f"pixlift.{b}" or d.startswith(f"pixlift.{b}.")
                                               for b in BEHIND_THE_APP_LAYER))
        assert behind == [], f"{name} reaches past the application layer: {behind}"
