"""Property-based fuzzing of configs (Hypothesis, derandomized so that every CI run tries the same cases).

Whatever a config holds, the command line answers with an exit code (0 ok, 1 a component failed,
2 a bad config), a one-line message for a bad config, and never a traceback. Most cases go
through ``--validate`` on mutations of configs/proof_of_concept.jsonc (structure and text);
a few run for real on variants of the tiny test config.
"""
from __future__ import annotations

import copy
import io
import itertools
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, TINY_CONFIG
from erasure.cli import main
from erasure.core import registry
from erasure.core.config import read_config

POC = ROOT / "configs" / "proof_of_concept.jsonc"
BASE = read_config(POC)
FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

registry.load_builtins()
CLASS_NAMES = sorted({name for kind in registry.kinds() for name in registry.registry(kind)}) + [
    "torch.nn.Identity", "torch.nn.Linear", "torch.optim.LBFGS", "LBFGS", "SparseAdam", "StepLR", "OneCycleLR",
    "BCEWithLogitsLoss", "MSELoss", "CrossEntropyLoss", "SGD", "antigravity.Fly", "os.system", "builtins.eval",
    "torch.utils.model_dump.__main__.Main", "erasure.cli.main", "__main__.X", "a..b", ".Adam", "erasure.", "",
]
STRINGS = ["../escape", ".profile", "/", "~", "results/../..", "a\u2028b", "line\nbreak", "=HYPERLINK()", "-0.5",
           "x" * 300, "auto", "cpu", "cuda:7", "mps", "\x00", "antigravity", "venv.__main__", "none", "mean"]
KEYS = ["class", "parameters", "label", "epochs", "lr", "seeds", "dir", "enabled", "filename", "imports", "name",
        "batch_size", "optimizer", "loss", "scheduler", "classes", "count", "hidden", "step_size", "reduction"]

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats() | st.text(max_size=12)
           | st.sampled_from(STRINGS + CLASS_NAMES))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3), max_leaves=8)


def json_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path in a parsed config (the root excluded)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    out = []
    for key, value in items:
        out.append(prefix + (key,))
        out += json_paths(value, prefix + (key,))
    return out


def parent_of(config: Any, path: tuple) -> Any:
    for key in path[:-1]:
        config = config[key]
    return config


OPERATIONS = ["leaf", "leaf", "leaf", "class", "class", "replace", "delete", "insert"]


@st.composite
def mutated(draw, base: dict, class_names: list[str] = CLASS_NAMES, new_values=values,
            operations: list[str] = OPERATIONS, most: int = 3) -> dict:
    """``base`` with one to ``most`` mutations: a leaf or a subtree replaced, a class renamed, a key or
    item deleted or added (leaves and class names most often, so that many cases get past the schema)."""
    config = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, most))):
        paths = json_paths(config)
        op = draw(st.sampled_from(operations))
        if op == "class":
            paths = [p for p in paths if p[-1] == "class"] or paths
        elif op == "leaf":
            paths = [p for p in paths if not isinstance(parent_of(config, p)[p[-1]], (dict, list))] or paths
        path = draw(st.sampled_from(paths))
        parent = parent_of(config, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "insert" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = draw(new_values)
        elif op == "insert":
            parent.insert(path[-1], draw(new_values))
        elif op == "class":
            parent[path[-1]] = draw(st.sampled_from(class_names))
        else:
            parent[path[-1]] = draw(scalars if op == "leaf" and new_values is values else new_values)
    return config


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*argv, "--no-progress"])
    return code, out.getvalue(), err.getvalue()


def assert_clean_answer(code: int, err: str, path: Path, allowed: tuple[int, ...]) -> None:
    assert code in allowed, err
    assert "Traceback" not in err, err
    if code == 2:
        lines = [line for line in err.splitlines() if not line.startswith("WARNING")]
        assert len(lines) == 1 and lines[0].startswith(f"config error: {path}"), err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(FUZZ, max_examples=250)
@given(config=mutated(BASE))
def test_validate_mutated_configs(workdir, config):
    path = workdir / "mutated.jsonc"
    path.write_text(json.dumps(config))
    code, _, err = run_cli(str(path), "--validate")
    assert_clean_answer(code, err, path, (0, 2))


TEXT = POC.read_bytes()


@st.composite
def mutated_text(draw) -> bytes:
    """The proof-of-concept file cut, with a span deleted, or with bytes or text inserted."""
    data = TEXT
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 40)))
        op = draw(st.sampled_from(["cut", "delete", "bytes", "text", "nest"]))
        if op == "cut":
            data = data[:i]
        elif op == "delete":
            data = data[:i] + data[j:]
        elif op == "nest":
            depth = draw(st.integers(1, 2000))
            data = data[:i] + b"[" * depth + b"]" * depth + data[i:]
        else:
            insert = draw(st.binary(max_size=8)) if op == "bytes" else draw(st.text(max_size=12)).encode()
            data = data[:i] + insert + data[i:]
    return data


@settings(FUZZ, max_examples=40)
@given(data=mutated_text())
def test_validate_mutated_text(workdir, data):
    path = workdir / "mutated_text.jsonc"
    path.write_bytes(data)
    code, _, err = run_cli(str(path), "--validate")
    assert_clean_answer(code, err, path, (0, 2))


#: Settings of the tiny config: (valid choices, choices a run cannot take). A case breaks at most one.
KNOBS = {
    "epochs": ([1, 2], [0, -1, 2.5]),
    "batch_size": ([32, 1, 7, 10 ** 6], [0, None]),
    "optimizer": (["Adam", "SGD"], ["LBFGS", "NoSuch", "torch.nn.Identity"]),
    "lr": ([1e-3, 0.5, 1e6], [0.0, -1.0, "fast"]),
    "test_fraction": ([0.25, 0.5], [0.001, 0.999, 1.0, 0.0]),
    "classes": ([[0], [1, 2]], [[], [-1], [7], [0, 1, 2]]),
    "seeds": ([[0], [1, 2], [2 ** 32 - 1]], [[], [-1], [2 ** 32]]),
    "label": ([None, "=1+1", "a\u2028b", "x" * 60], ["", "\x00"]),
}


@st.composite
def tiny_variants(draw) -> dict:
    """The tiny test config with drawn unlearners, labels, evaluators, recipe, split, forget set and seeds."""
    broken = draw(st.sampled_from([None, None, None, *KNOBS]))

    def knob(name: str) -> Any:
        valid, invalid = KNOBS[name]
        return draw(st.sampled_from(invalid if name == broken else valid))

    config = copy.deepcopy(TINY_CONFIG)
    unlearners = [{"class": "Identity"}, {"class": "GoldModel"},
                  {"class": "FineTuning", "parameters": {"epochs": knob("epochs"), "lr": knob("lr")}},
                  {"class": "NegGrad", "parameters": {"epochs": knob("epochs"), "lr": knob("lr")}},
                  {"class": "RandomLabels", "parameters": {"epochs": knob("epochs")}}]
    config["unlearners"] = draw(st.lists(st.sampled_from(unlearners), min_size=1, max_size=3,
                                         unique_by=lambda e: e["class"]))
    for entry in config["unlearners"]:
        label = knob("label")
        if label is not None:
            entry["label"] = label
    config["evaluators"] = draw(st.lists(st.sampled_from([{"class": c} for c in ("Accuracy", "RunTime", "UMIA")]),
                                         min_size=1, max_size=3, unique_by=lambda e: e["class"]))
    config["training"].update(epochs=knob("epochs"), batch_size=knob("batch_size"),
                              optimizer={"class": knob("optimizer"), "parameters": {"lr": knob("lr")}})
    config["data"]["split"]["test_fraction"] = knob("test_fraction")
    config["data"]["forget"]["parameters"]["classes"] = knob("classes")
    config["seeds"] = knob("seeds")
    return config


COUNTER = itertools.count()


@settings(FUZZ, max_examples=15)
@given(config=tiny_variants())
def test_real_runs_of_tiny_variants(workdir, config):
    config["output"] = {"dir": str(workdir / f"run{next(COUNTER)}")}
    path = workdir / "run.jsonc"
    path.write_text(json.dumps(config))
    code, _, err = run_cli(str(path))
    assert_clean_answer(code, err, path, (0, 1, 2))
    if code == 1:
        assert not err or err.startswith("error:"), err
