"""The layers import one way (docs/architecture.md, "Layers"): a walk of the import graph.

Every ``.py`` of the project's packages is parsed with ``ast`` (nothing is imported, so a module
with import-time work or a missing optional dependency is read all the same); every ``import`` and
``from ... import`` counts, absolute or relative, at the top of a module or inside a function or
an ``if``. The graph's nodes are project modules; an import of anything else is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "data": 0,
    "features": 1,
    "training": 2,
    "monitoring": 3,
    "serving": 4,
    "otd_risk": 5,
}
"""Each package's floor. A module may import its own package and any lower floor. ``serving``
sits above ``monitoring``: the API serves the summary monitoring wrote (``monitoring.summary``),
while monitoring reads the scoring runs through a ``RunLog`` the CLI hands it, never through
serving's store. ``otd_risk`` (settings and the CLI) is the top: nothing below imports it."""

Edge = tuple[str, str, int]
"""(importing module, imported module, line)."""


def module_name(root: Path, path: Path) -> str:
    """``serving/routers/risk.py`` -> ``serving.routers.risk``; ``data/__init__.py`` -> ``data``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages=tuple(LAYERS)) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported dotted name lands in (``serving.app.create_app`` ->
    ``serving.app``), or None when it is not the project's."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """The project modules ``module`` imports, with the line of each import."""
    is_package = path.name == "__init__.py"
    edges = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # A package's own name is its anchor for ``.``; a module's is its package.
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import mod`` imports ``pkg.mod``; ``from mod import f``, ``mod``.
            names = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                edges.append((module, target, node.lineno))
    return edges


def import_graph(root: Path, packages=tuple(LAYERS)) -> list[Edge]:
    modules = project_modules(root, packages)
    edges = [edge for name, path in modules.items() for edge in imports_of(name, path, modules)]
    return list(dict.fromkeys(edges))  # ``from m import a, b`` is one edge


def _package(module: str) -> str:
    return module.split(".")[0]


def wrong_way(edges: list[Edge]) -> list[str]:
    """Imports against the floors: up a floor, or across to the other package of a floor."""
    found = []
    for source, target, line in edges:
        low, high = _package(source), _package(target)
        if low == high:
            continue
        if high == "otd_risk":
            why = "imports otd_risk (settings and the CLI): declare what it needs in its layer"
        elif LAYERS[high] > LAYERS[low]:
            why = f"imports up a floor ({low} < {high})"
        elif LAYERS[high] == LAYERS[low]:
            why = f"imports across a floor ({low} and {high} share one)"
        else:
            continue
        found.append(f"{source} (line {line}) imports {target}: {why}")
    return found


def _graph(edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    return graph


def cycles(edges: list[Edge]) -> list[tuple[list[str], list[str]]]:
    """One cycle per group of modules that import each other round (a strongly connected
    component of two or more): a path that ends where it starts, ``[a, b, a]``, and the group's
    other modules when the path does not pass them all."""
    graph = _graph(edges)
    found = []
    for group in cyclic_groups(graph):
        path = _cycle_in(graph, group)
        found.append((path, sorted(group - set(path))))
    return sorted(found)


def cyclic_groups(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        # Recursive: the project's import chains are a few dozen deep at most.
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest way from the group's first module back to itself (breadth first)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle in the group {sorted(group)}")  # Tarjan's groups have one


# The project's own graph.


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph(ROOT)


def test_the_walk_sees_the_project(edges):
    """Guards the tests below against passing on an empty graph: every package is read, and
    imports inside functions count (the CLI imports its commands' work lazily)."""
    modules = project_modules(ROOT)
    assert {_package(m) for m in modules} == set(LAYERS)
    assert len(modules) > 60
    assert ("otd_risk.commands.serve_cmds", "serving.scoring") in {(s, t) for s, t, _ in edges}


def test_no_lower_layer_imports_otd_risk(edges):
    upward = [
        f"{s} (line {line}) imports {t}"
        for s, t, line in edges
        if _package(t) == "otd_risk" and _package(s) != "otd_risk"
    ]
    assert upward == [], "lower layers import the top package:\n" + "\n".join(upward)


def test_imports_run_down_the_floors(edges):
    found = wrong_way(edges)
    assert found == [], "imports against the layers:\n" + "\n".join(found)


def test_no_import_cycle(edges):
    found = [
        " -> ".join(path) + (f" (in one cycle with {', '.join(rest)})" if rest else "")
        for path, rest in cycles(edges)
    ]
    assert found == [], "import cycles:\n" + "\n".join(found)


# The walk itself, on small trees written here.


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in LAYERS:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "training/registry.py": "from otd_risk.settings import Settings\n",
                "otd_risk/settings.py": "",
            },
            ["training.registry (line 1) imports otd_risk.settings: imports otd_risk"],
        ),
        (
            {"data/load.py": "def f():\n    from features import build\n", "features/build.py": ""},
            ["data.load (line 2) imports features.build: imports up a floor (data < features)"],
        ),
        (
            {"monitoring/m.py": "import serving.state as s\n", "serving/state.py": ""},
            [
                "monitoring.m (line 1) imports serving.state: "
                + "imports up a floor (monitoring < serving)"
            ],
        ),
        (
            {"otd_risk/cli.py": "from serving import app\nimport data\n", "serving/app.py": ""},
            [],
        ),
    ],
)
def test_wrong_way_imports_are_found(tmp_path, files, expected):
    found = wrong_way(import_graph(_tree(tmp_path, files)))
    assert [f[: len(e)] for f, e in zip(found, expected, strict=True)] == expected


def test_a_cycle_is_reported_as_its_path(tmp_path):
    root = _tree(
        tmp_path,
        {
            "serving/db.py": "from serving import keys\n",
            "serving/keys.py": "from .runs import x\n",
            "serving/runs.py": "def f():\n    import serving.db\n",
            "serving/app.py": "from serving.db import engine\n",
            "data/a.py": "from . import b, c\n",
            "data/b.py": "from data.a import f\n",
            "data/c.py": "import data.a\n",
        },
    )
    assert cycles(import_graph(root)) == [
        (["data.a", "data.b", "data.a"], ["data.c"]),
        (["serving.db", "serving.keys", "serving.runs", "serving.db"], []),
    ]


def test_relative_imports_resolve_from_the_package(tmp_path):
    root = _tree(
        tmp_path,
        {
            "serving/routers/__init__.py": "from . import risk\n",
            "serving/routers/risk.py": "from ..deps import ModelDep\nfrom .. import state\n",
            "serving/deps.py": "",
            "serving/state.py": "",
        },
    )
    assert sorted((s, t) for s, t, _ in import_graph(root)) == [
        ("serving.routers", "serving.routers.risk"),
        ("serving.routers.risk", "serving.deps"),
        ("serving.routers.risk", "serving.state"),
    ]
