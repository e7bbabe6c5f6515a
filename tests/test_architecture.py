"""The project's shape, checked from the source alone (``ast``; nothing is imported).

- No import cycle among the modules of ``uniformer/``, ``analysis/`` and ``app/``, counting the
  imports that run when a module is imported (module level, class bodies, ``try`` blocks; not
  imports inside functions, which run later; ``if TYPE_CHECKING:`` blocks never run). Importing
  ``a.b.c`` also runs the packages ``a`` and ``a.b``, so an import of ``a.b.c`` from outside
  ``a.b`` is an edge to ``a.b`` (its ``__init__``) too.
- The layers: ``uniformer/`` imports nothing from ``analysis/`` or ``app/`` and ``analysis/``
  nothing from ``app/``, at any level (function-level imports included).
- No module over ``MAX_LINES`` lines.
- No private timm registry API (``timm.models._registry``, ``_clear_model_entries``) anywhere.
- ``pyproject.toml`` mirrors ``requirements.txt`` / ``requirements-test.txt``, and ``ruff check .`` passes.

``python tests/test_architecture.py`` prints the report: cycles, and the cycles that
function-level imports would close (legal, but a sign that two modules know each other).
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("uniformer", "analysis", "app")
MAX_LINES = 700
# Modules over MAX_LINES today, to be split (the lead empties this set).
KNOWN_LARGE: frozenset[str] = frozenset()
# Module-level cycles that exist today and are being removed in another branch (the lead
# empties this set when it lands); each entry is the sorted tuple of the cycle's modules.
KNOWN_CYCLES: frozenset[tuple[str, ...]] = frozenset()
EXCLUDED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "data", "runs", "outputs", "tmp"}


@dataclass
class ImportGraph:
    """Edges between project modules: ``eager`` run at import time, ``lazy`` inside functions."""

    modules: dict[str, Path]
    eager: dict[str, set[str]] = field(default_factory=dict)
    lazy: dict[str, set[str]] = field(default_factory=dict)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if not EXCLUDED_DIRS.intersection(path.relative_to(REPO).parts):
                out[module_name(path)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, eager: bool = True) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that can run, with whether it runs when the module is imported."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, eager
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _imports(node, eager=False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the body never runs: annotations only
                yield from _imports(ast.Module(body=[child], type_ignores=[]), eager)
        else:
            yield from _imports(node, eager)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """Project modules an import statement loads (the named module or submodules, and parents)."""
    known = set(known)
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = importer.split(".") if is_package else importer.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
        # ``from pkg import sub``: pkg runs as sub's parent; it is a target itself for other names
        names = submodules + ([base] if len(submodules) < len(node.names) else [])
    out = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            inside = importer == target or importer.startswith(target + ".")
            if target in known and target != importer and (i == len(parts) or not inside):
                out.add(target)
    return out


def build_graph() -> ImportGraph:
    graph = ImportGraph(project_modules())
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph.eager[name], graph.lazy[name] = set(), set()
        for node, eager in _imports(tree):
            targets = _targets(node, name, path.name == "__init__.py", graph.modules)
            (graph.eager if eager else graph.lazy)[name].update(targets)
    return graph


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def _merged(a: dict[str, set[str]], b: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: a.get(k, set()) | b.get(k, set()) for k in set(a) | set(b)}


def python_files() -> Iterator[Path]:
    for path in sorted(REPO.rglob("*.py")):
        if not EXCLUDED_DIRS.intersection(path.relative_to(REPO).parts):
            yield path


def private_timm_registry_uses() -> list[str]:
    """``file:line`` of every import of ``timm.models._registry`` and every ``_clear_model_entries``."""
    hits = []
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            bad = False
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("timm"):
                bad = "_registry" in (node.module or "").split(".") or any(a.name == "_registry" for a in node.names)
            elif isinstance(node, ast.Import):
                bad = any(a.name.startswith("timm") and "_registry" in a.name.split(".") for a in node.names)
            elif isinstance(node, ast.Attribute):
                bad = node.attr in ("_clear_model_entries", "_registry") and _mentions_timm(node.value)
                bad = bad or node.attr == "_clear_model_entries"
            elif isinstance(node, ast.Name):
                bad = node.id == "_clear_model_entries"
            if bad:
                hits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return sorted(set(hits))


def _mentions_timm(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "timm" for n in ast.walk(node))


# ------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build_graph()


def test_the_graph_sees_the_project(graph):
    """Guard for the checks below: they must be looking at real modules and real edges."""
    assert {"uniformer.train", "uniformer.train.loop", "uniformer.evaluate", "uniformer.metrics"} <= set(graph.modules)
    assert "uniformer.metrics" in graph.eager["uniformer.train.loop"]
    assert "uniformer.train" in graph.eager["uniformer.evaluate"]  # importing train.config runs train/__init__


def test_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(edges) == [("a", "b", "c")]


def test_no_import_cycles(graph):
    found = set(cycles(graph.eager))
    assert found - KNOWN_CYCLES == set(), f"import cycles: {sorted(found - KNOWN_CYCLES)}"
    assert KNOWN_CYCLES - found == set(), f"fixed, remove from KNOWN_CYCLES: {sorted(KNOWN_CYCLES - found)}"


def test_layers(graph):
    """uniformer <- analysis <- app: no arrow runs back, not even inside a function."""
    allowed = {"uniformer": ("uniformer",), "analysis": ("uniformer", "analysis"), "app": PACKAGES}
    wrong = [
        f"{src} -> {dst}"
        for src in graph.modules
        for dst in sorted(graph.eager[src] | graph.lazy[src])
        if dst.split(".")[0] not in allowed[src.split(".")[0]]
    ]
    assert wrong == []


def test_no_module_over_the_line_limit(graph):
    sizes = {name: len(path.read_text().splitlines()) for name, path in graph.modules.items()}
    large = {name for name, n in sizes.items() if n > MAX_LINES}
    assert large - KNOWN_LARGE == set(), {name: sizes[name] for name in sorted(large - KNOWN_LARGE)}
    assert KNOWN_LARGE - large == set(), f"now small enough, remove from KNOWN_LARGE: {sorted(KNOWN_LARGE - large)}"


def test_no_private_timm_registry_api():
    assert private_timm_registry_uses() == []


def _requirements(name: str) -> list[str]:
    lines = (REPO / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_pyproject_mirrors_the_requirement_files():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "uniformer-lab" and project["requires-python"] == ">=3.11"
    assert project["dependencies"] == _requirements("requirements.txt")
    test = _requirements("requirements-test.txt")
    assert test[0] == "-r requirements.txt" and project["optional-dependencies"]["test"] == test[1:]
    runtime = {r.split("=")[0].split(">")[0].lower() for r in project["dependencies"]}
    assert not runtime & {"pytest", "playwright", "ruff"}, "test tools are not runtime dependencies"


def test_ruff_is_clean():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def main() -> int:
    graph = build_graph()
    eager = cycles(graph.eager)
    lazy_only = [c for c in cycles(_merged(graph.eager, graph.lazy)) if c not in eager]
    print(f"{len(graph.modules)} modules, {sum(map(len, graph.eager.values()))} import-time edges, "
          f"{sum(map(len, graph.lazy.values()))} function-level edges")
    print("import-time cycles:", *(eager or ["none"]), sep="\n  ")
    print("cycles closed by function-level imports:", *(lazy_only or ["none"]), sep="\n  ")
    for component in lazy_only:
        members = set(component)
        for src in component:
            for dst in sorted(graph.lazy[src] & members):
                print(f"    function-level: {src} -> {dst}")
    print("private timm registry uses:", *(private_timm_registry_uses() or ["none"]), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
