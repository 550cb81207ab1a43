"""Imports flow one way: entry points -> export, app, tuning -> training / evaluation -> inference -> prepare ->
models / features / musicnn / data / synth -> config, errors, files. Every import counts, the ones
inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "gtzan_tf"
# Lower number = lower layer; a module may import its own layer or lower ones only.
LAYERS = {
    "gtzan_tf": 0, "gtzan_tf.config": 0, "gtzan_tf.errors": 0, "gtzan_tf.files": 0,
    "gtzan_tf.data": 1, "gtzan_tf.features": 1, "gtzan_tf.musicnn": 1, "gtzan_tf.models": 1, "gtzan_tf.synth": 1,
    "gtzan_tf.prepare": 2,
    "gtzan_tf.inference": 3,
    "gtzan_tf.evaluation": 4, "gtzan_tf.training": 4,
    "gtzan_tf.export": 5, "gtzan_tf.app": 5, "gtzan_tf.tuning": 5,
}
# Within a layer, these directions only (the other one would close a circle of packages).
SAME_LAYER_ALLOWED = {
    ("gtzan_tf.data", "gtzan_tf.features"), ("gtzan_tf.features", "gtzan_tf.musicnn"),
    ("gtzan_tf.musicnn", "gtzan_tf.features"), ("gtzan_tf.musicnn", "gtzan_tf.data"), ("gtzan_tf.models", "gtzan_tf.features"),
    ("gtzan_tf.models", "gtzan_tf.musicnn"),
    ("gtzan_tf.synth", "gtzan_tf.data"), ("gtzan_tf.training", "gtzan_tf.evaluation"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("gtzan_tf")}


def group(module: str) -> str:
    return max((g for g in LAYERS if module == g or module.startswith(g + ".")), key=len)


def module_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def test_every_import_points_down_or_sideways_as_allowed():
    wrong = []
    for module, targets in module_graph().items():
        for target in targets:
            src, dst = group(module), group(target)
            # Layer 0 (config, errors, files) is the base everything may use; circles are the other test's.
            if src == dst or LAYERS[dst] < LAYERS[src] or LAYERS[dst] == 0 or (src, dst) in SAME_LAYER_ALLOWED:
                continue
            wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_circle_between_modules():
    graph = module_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            assert cycle is None, "import circle: " + " -> ".join(cycle)
