"""The import graph of the package: no cycle (deferred imports inside functions count), and the
layers import one way: spiking blocks <- agent and world model (never each other) <- dreaming
<- training <- tools."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spiking_dreamer"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports anywhere in its body
    (top level, functions, ``TYPE_CHECKING`` blocks)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_pkg]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_package_init_edge(graph: dict[str, set[str]], a: str, b: str) -> bool:
    return b == a.rsplit(".", 1)[0] or a == b.rsplit(".", 1)[0]


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    # a package's __init__ re-exporting its modules is not a dependency between modules
    graph = {
        a: {b for b in deps if not _is_package_init_edge(graph, a, b)} for a, deps in graph.items()
    }
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


LAYERS = {
    "snn": {"training", "dreaming", "agent", "world_model", "cli", "bench", "sweep", "report"},
    "agent": {"world_model", "dreaming", "training", "cli", "bench", "sweep", "report"},
    "world_model": {"agent", "dreaming", "training", "cli", "bench", "sweep", "report"},
    "dreaming": {"training", "cli", "bench", "sweep", "report"},
    "training": {"cli", "bench", "sweep", "report"},
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_one_way(layer: str) -> None:
    graph = import_graph()
    above = {f"spiking_dreamer.{m}" for m in LAYERS[layer]}
    wrong = sorted(
        f"{a} -> {b}"
        for a, deps in graph.items()
        if a == f"spiking_dreamer.{layer}" or a.startswith(f"spiking_dreamer.{layer}.")
        for b in deps
        if any(b == m or b.startswith(m + ".") for m in above)
    )
    assert not wrong, wrong
