"""The package map holds: dependencies point one way, no import cycles, every module imports alone.

Layers, lowest first (docs/ARCHITECTURE.md): core (`olr.errors`, `olr.workspace`, `olr.atomic`)
< data < training < analysis < workflows < the command line (`olr.cli`, `olr.__main__`);
`olr.runs` sits beside training and imports only core. A module may import its own layer and
the layers below. Imports inside functions count too: they are where cycles used to hide.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from olr.workspace import REPO_ROOT

PACKAGE = REPO_ROOT / "olr"
CORE = {"olr", "olr.errors", "olr.workspace", "olr.atomic"}
ENTRY = {"olr.cli", "olr.__main__"}
#: what each layer may import, besides itself
ALLOWED = {
    "core": {"core"},
    "data": {"core"},
    "runs": {"core"},
    "training": {"core", "data", "runs"},
    "analysis": {"core", "data", "runs", "training"},
    "workflows": {"core", "data", "runs", "training", "analysis"},
    "entry": {"core", "data", "runs", "training", "analysis", "workflows"},
}
#: the ML core imports nothing of olr but the error type, the backbone table (which the
#: options read too, without Keras) and the numpy loaders (which share their augmentation
#: strengths with the tf.data pipelines without importing TensorFlow)
PURE = {
    "olr.training.models",
    "olr.training.backbones",
    "olr.training.losses",
    "olr.training.pipelines",
    "olr.training.loaders",
    "olr.analysis.metrics",
}
PURE_MAY_IMPORT = {"olr.errors", "olr.training.backbones", "olr.training.loaders"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> str:
    if name in CORE:
        return "core"
    if name in ENTRY:
        return "entry"
    return name.split(".")[1]


def imported_modules(name: str) -> set[str]:
    """The olr modules `name` imports anywhere in its body (`from olr.x import y`: olr.x.y if a module)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "olr"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] != "olr":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported_modules(name) for name in MODULES}


def test_every_layer_imports_only_the_layers_below_it():
    wrong = [
        f"{name} ({layer(name)}) imports {dep} ({layer(dep)})"
        for name, deps in GRAPH.items()
        for dep in sorted(deps)
        if layer(dep) != layer(name) and layer(dep) not in ALLOWED[layer(name)]
    ]
    assert not wrong, "imports against the layer rule:\n" + "\n".join(wrong)


def test_the_ml_core_imports_nothing_of_olr_but_errors():
    wrong = {name: GRAPH[name] - PURE_MAY_IMPORT for name in PURE if GRAPH[name] - PURE_MAY_IMPORT}
    assert not wrong, f"the ML core should stand alone: {wrong}"


def test_olr_never_imports_streamlit():
    users = [name for name, path in MODULES.items() if "streamlit" in _top_level_names(path)]
    assert not users, f"olr must not import streamlit: {users}"


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    # a package's __init__ importing its own modules is how a package presents itself, not a cycle
    graph = {name: {d for d in deps if not name.startswith(d + ".")} for name, deps in GRAPH.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("chunk", range(2))
def test_every_module_imports_alone_in_a_fresh_interpreter(chunk):
    names = sorted(set(MODULES) - {"olr.__main__"})[chunk::2]  # __main__ runs the CLI when imported

    def import_alone(name: str) -> str | None:
        proc = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
        )
        return None if proc.returncode == 0 else f"{name}: {proc.stderr.strip().splitlines()[-1:]}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(import_alone, names) if f]
    assert not failures, "modules that fail to import alone:\n" + "\n".join(failures)
