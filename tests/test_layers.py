"""Layers point one way: erasure/core (config, factory, registry, params, errors, seeding, timing,
cache) imports nothing above it, anywhere in a module (function-level imports included)."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "erasure" / "core"
ABOVE = ("data", "models", "unlearners", "evaluators", "results", "execution", "tuning", "report", "testing")


def test_core_imports_nothing_above_it():
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                          if any(n == f"erasure.{layer}" or n.startswith(f"erasure.{layer}.") for layer in ABOVE)]
    assert not offenders, f"erasure/core imports layers above it: {offenders}"
