"""The package's layers, read from its source: no import cycle, and the lower layers never
reach up into the engine. Every import statement counts, those inside functions too (a
lazy import only hides a cycle until the function runs)."""

from __future__ import annotations

import ast
from pathlib import Path

import ftlab

SRC = Path(ftlab.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module -> the ftlab modules it imports`` (``from pkg import sub`` names ``pkg.sub``
    where that is a module, else ``pkg``)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in targets if t in modules and t != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``a -> b -> ... -> a``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_the_engine_and_its_parts():
    graph = import_graph()
    assert {"ftlab.engine.supervised", "ftlab.engine.policy"} <= graph["ftlab.engine.lifecycle"]
    assert "ftlab.engine.part" in graph["ftlab.engine.policy"]


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_instruments_and_rewards_never_import_the_engine():
    """``evaluate`` and ``rlhf`` measure and reward; the engine calls them, never the
    other way round."""
    graph = import_graph()
    offenders = {m: sorted(t for t in deps if t.startswith("ftlab.engine"))
                 for m, deps in graph.items()
                 if m.startswith(("ftlab.evaluate", "ftlab.rlhf"))}
    assert not {m: d for m, d in offenders.items() if d}
