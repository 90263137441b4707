"""The house rules, checked: rooms of one concern, signed doors, one-way dependencies, faces side by side.

``daemon/`` keeps a short top level (the composition root, the application layer, the errors, the public
client) and one subpackage per concern. Each subpackage's ``__init__.py`` is a sign on the door that says what
the room holds, what it may import and who uses it; the signs are read here and held to the code: a module
the sign does not name, or an import the sign does not allow, fails. Rooms depend on each other in one
direction (a room and each top-level module counted as one node; imports under ``TYPE_CHECKING`` aside), and
the faces (the HTTP face, the CLI, the tray) never import one another nor reach past the application layer
into the engine, the journal or a provider.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DAEMON = REPO_ROOT / "daemon"
MAX_LINES = 400
MAX_TOP_LEVEL = 12
FACES = ("api", "cli", "tray")
BEHIND_THE_APP_LAYER = ("engine", "journal", "providers")


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


def rooms() -> list[str]:
    return sorted(p.name for p in DAEMON.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def node(name: str) -> str:
    """The node of the room graph a module belongs to: its room, or itself at the top level."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "pixlift"


def room_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, deps in graph().items():
        edges.setdefault(node(name), set()).update(node(d) for d in deps if node(d) != node(name))
    return edges


def sign(room: str) -> dict[str, str]:
    """The sign on a room's door: its ``Holds:``, ``May import:`` and ``Used by:`` parts."""
    doc = ast.get_docstring(ast.parse((DAEMON / room / "__init__.py").read_text())) or ""
    parts = re.split(r"^(Holds|May import|Used by):", doc, flags=re.M)
    return {parts[i]: " ".join(parts[i + 1].split()) for i in range(1, len(parts) - 1, 2)}


def test_the_top_level_is_short() -> None:
    top = sorted(p.name for p in DAEMON.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top
    assert len(rooms()) >= 8, rooms()


@pytest.mark.parametrize("room", rooms())
def test_every_room_is_signed(room: str) -> None:
    said = sign(room)
    assert set(said) == {"Holds", "May import", "Used by"}, f"{room}/__init__.py's docstring lacks a part: {said}"
    held = {p.stem for p in (DAEMON / room).glob("*.py") if p.stem != "__init__"}
    held |= {p.name for p in (DAEMON / room).iterdir() if (p / "__init__.py").exists()}
    named = set(re.findall(r"``(\w+)``", said["Holds"]))
    assert held - named == set(), f"{room}'s sign does not name {sorted(held - named)}"
    allowed = {w.strip(" .") for w in said["May import"].split(",")}
    imported = room_graph().get(room, set())
    assert imported - allowed == set(), f"{room} imports {sorted(imported - allowed)}, which its sign does not allow"


def test_rooms_depend_in_one_direction() -> None:
    edges = room_graph()
    cycles = []

    def reach(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    for a, targets in sorted(edges.items()):
        cycles += [f"{a} <-> {b}" for b in sorted(targets) if a in reach(b)]
    assert cycles == []


def test_faces_stand_side_by_side_on_the_application_layer() -> None:
    edges = room_graph()
    for face in FACES:
        wrong = sorted(edges.get(face, set()) & {*FACES, *BEHIND_THE_APP_LAYER})
        assert wrong == [], f"the face {face} imports {wrong}: another face, or a room behind the application layer"
