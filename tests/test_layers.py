"""The stairs go one way (docs/contributing.md, "The house"): core -> data, results -> models ->
unlearners, evaluators -> execution -> tuning, meta-evaluation, report -> cli. No module imports a
higher layer, anywhere (function-level and TYPE_CHECKING imports included), and no modules import
each other in a circle."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "erasure"
LAYERS = {
    "": 0, "core": 0,
    "data": 1, "results": 1,
    "models": 2,
    "unlearners": 3, "evaluators": 3,
    "execution": 4,
    "tuning": 5, "meta_eval": 5, "report": 5, "plot": 5, "summarize": 5, "testing": 5,
    "cli": 6, "__main__": 6,
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported erasure module: line}, every import statement of the file."""
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("erasure") and not node.level:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("erasure")]
            for target in targets:
                resolved = resolve(target)
                if resolved and resolved != module:
                    graph[module].setdefault(resolved, node.lineno)
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    assert not {layer(m) for m in modules()} - set(LAYERS), "give new top-level modules a layer in LAYERS"


def test_no_module_imports_a_higher_layer():
    offenders = [f"{m} (line {line}) imports {t}" for m, targets in import_graph().items()
                 for t, line in targets.items() if LAYERS[layer(t)] > LAYERS[layer(m)]]
    assert not offenders, "imports up the stairs:\n" + "\n".join(sorted(offenders))


def test_no_import_cycles_between_modules():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other in a circle: {cycles}"


def test_the_checks_see_a_cycle_and_a_stair_up(tmp_path, monkeypatch):
    """The checks themselves can fail: a planted pair of modules trips both."""
    fake = tmp_path / "erasure"
    (fake / "core").mkdir(parents=True)
    (fake / "execution").mkdir()
    (fake / "core" / "a.py").write_text("from erasure.core.b import x\nfrom erasure.execution.c import y\n")
    (fake / "core" / "b.py").write_text("def f():\n    from erasure.core.a import z\n")
    (fake / "execution" / "c.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    graph = import_graph()
    assert graph["erasure.core.a"] == {"erasure.core.b": 1, "erasure.execution.c": 2}
    assert graph["erasure.core.b"] == {"erasure.core.a": 2}
    for check in (test_no_module_imports_a_higher_layer, test_no_import_cycles_between_modules):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} missed the planted problem")
