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


# ------------------------------------------------------- files beside the config (docs/security.md)
#: Names and contents an attacker or an accident leaves where erasure reads or writes.
PATH_TEXTS = ["x" * 300, "a/" * 2100, "", ".", "..", "../../etc/passwd", "/dev/zero", "/dev/null", "loop",
              "fifo", "dir", "nul\x00", "{0}", "{", "}{seed}", "~", "link-to-file", "file"]


@pytest.fixture(scope="module")
def surfaces(workdir) -> Path:
    """A folder holding a symbolic-link loop, a FIFO, a directory, a link to a file and a file."""
    import os

    folder = workdir / "surfaces"
    folder.mkdir()
    (folder / "loop").symlink_to(folder / "loop")
    os.mkfifo(folder / "fifo")
    (folder / "dir").mkdir()
    (folder / "file").write_text("{}")
    (folder / "link-to-file").symlink_to(folder / "file")
    return folder


@settings(FUZZ, max_examples=40)
@given(name=st.sampled_from(PATH_TEXTS) | st.text(max_size=20), where=st.sampled_from(["include", "checkpoint"]))
def test_include_and_checkpoint_paths(surfaces, name, where):
    """An include or a checkpoint naming anything (a FIFO, a loop, a device, an over-long name):
    read, or a config error; never a hang or another exception."""
    from erasure.core.config import compose_config
    from erasure.core.errors import ConfigError
    from erasure.execution.experiment import _checkpoint

    path = surfaces / "config.jsonc"
    path.write_text(json.dumps({"name": "x", "include": [name]}))
    try:
        compose_config(path) if where == "include" else _checkpoint({"checkpoint": name})
    except ConfigError as exc:
        assert str(exc).count("\n") == 0 or "\n" in name


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 80), 2 ** 80) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["forget", "x"]), inner,
                                                                                       max_size=2), max_leaves=6)


@settings(FUZZ, max_examples=60)
@given(content=st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
       suffix=st.sampled_from([".json", ".npy"]))
def test_index_files(workdir, content, suffix):
    """Whatever an IndexForget file holds: a list of int64 indices, or a config error."""
    from erasure.core.errors import ConfigError
    from erasure.data.forget import read_indices

    path = workdir / f"indices{suffix}"
    path.write_bytes(content)
    try:
        values = read_indices(str(path), "forget")
    except ConfigError:
        return
    assert all(isinstance(v, int) and 0 <= v < 2 ** 63 for v in values)


@settings(FUZZ, max_examples=40)
@given(cut=st.integers(0, 10 ** 6), insert=st.binary(max_size=12), suffix=st.sampled_from([".pt", ".npz", ".safetensors"]))
def test_tensor_files(workdir, cut, insert, suffix):
    """A TensorFileSource file cut short or with bytes inserted: a dataset, or a clean error naming the file."""
    import numpy as np
    import torch

    from erasure.core.errors import ConfigError
    from erasure.data.sources.tensor_file import TensorFileSource

    path = workdir / f"data{suffix}"
    arrays = {"x": np.zeros((4, 2), np.float32), "y": np.array([0, 1, 0, 1])}
    if suffix == ".npz":
        np.savez(path, **arrays)
    elif suffix == ".pt":
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)
    else:
        from safetensors.numpy import save_file

        save_file(arrays, str(path))
    data = path.read_bytes()
    at = cut % (len(data) + 1)
    path.write_bytes(data[:at] + insert + (data[at:] if insert else b""))
    try:
        TensorFileSource(str(path)).load()
    except ConfigError:
        pass
    except RuntimeError as exc:  # the run reports "data source ... failed to load" (exit 1)
        assert str(path) in str(exc)


@pytest.fixture(scope="module")
def journal_bytes(tmp_path_factory) -> bytes:
    """A study journal as the tuning protocol writes it: trials asked, told, failed and attributed."""
    import optuna

    from erasure.tuning.pruning import journal_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path_factory.mktemp("journal") / "study.journal"
    study = optuna.create_study(study_name="NegGrad", storage=journal_storage(path), direction="minimize")
    d = optuna.distributions
    for i in range(3):
        trial = study.ask({"lr": d.FloatDistribution(1e-4, 1e-1, log=True), "epochs": d.IntDistribution(1, 3)})
        trial.set_user_attr("seed_values", {"100": 0.1 * i})
        study.tell(trial, 0.1 * i if i < 2 else None, state=None if i < 2 else optuna.trial.TrialState.FAIL)
    return path.read_bytes()


@settings(FUZZ, max_examples=40)
@given(op=st.sampled_from(["cut", "delete", "insert", "append"]), at=st.integers(0, 10 ** 6), span=st.integers(0, 60),
       insert=st.binary(max_size=12) | st.sampled_from([b"\n", b'{"op_code": 99}\n', b"{}\n", b'{"op']))
def test_damaged_tuning_journals(workdir, journal_bytes, op, at, span, insert):
    """A journal cut (a kill), with a span deleted or bytes inserted: repaired (a torn last line
    dropped) and then replayable, or a config error naming the file and the remedy."""
    from erasure.core.errors import ConfigError
    from erasure.tuning.pruning import check_journal, journal_storage

    data = journal_bytes
    i = at % (len(data) + 1)
    data = {"cut": data[:i], "delete": data[:i] + data[i + span:], "insert": data[:i] + insert + data[i:],
            "append": data + insert}[op]
    path = workdir / "fuzzed.journal"
    path.write_bytes(data)
    try:
        check_journal(path)
    except ConfigError as exc:
        assert exc.file == str(path) and "delete" in str(exc)
        return
    journal_storage(path).get_all_studies()
    assert path.read_bytes() == b"" or path.read_bytes().endswith(b"\n")


@settings(FUZZ, max_examples=40)
@given(texts=st.lists(st.text(min_size=1, max_size=16) | st.sampled_from(["<script>x</script>", "a|b", "<img onerror=y>",
                                                                          "&amp;", "line\nbreak", "**b**"]),
                      min_size=3, max_size=3))
def test_markdown_tables_escape_labels_metrics_and_titles(report_run, texts):
    """summary.md shows any label, metric name and title as text: no raw HTML tag, no stray column."""
    from erasure.report.data import RunSummary
    from erasure.report.tables import markdown

    label, metric, title = texts
    records = [{**r, "unlearner": label if r["unlearner"] == "Identity" else r["unlearner"],
                "metric": metric if r["metric"] == "accuracy_test" else r["metric"]} for r in report_run.records]
    text = markdown([RunSummary(report_run.results, title, records)])
    assert "<" not in text and ">" not in text
    for line in text.splitlines():
        if line.startswith("| "):
            cells = line.replace("\\|", "").split("|")
            assert len(cells) == line.count("|") + 1 - line.count("\\|")
    widths = {line.replace("\\|", "").count("|") for line in text.splitlines()
              if line.startswith("| ") and "metric | target" in text}
    assert widths


@pytest.fixture(scope="module")
def report_run(workdir):
    from conftest import make_runner, tiny_config
    from erasure.report.data import load_run

    make_runner(tiny_config(workdir / "report", unlearners=[{"class": "Identity"}, {"class": "GoldModel"}])).run()
    return load_run(workdir / "report" / "out")


@settings(FUZZ, max_examples=30)
@given(planted=st.sampled_from(["none", "file", "link", "dangling link", "directory", "fifo"]),
       text=st.text(max_size=30))
def test_atomic_writes_of_results_and_reports(workdir, planted, text):
    """Whatever sits where a report or result file goes, it is replaced whole, or the write is
    refused; nothing is written through a link."""
    import os

    from erasure.core.errors import ConfigError
    from erasure.results.files import atomic_write_text

    folder = workdir / f"atomic-{next(COUNTER)}"
    folder.mkdir()
    victim = folder / "victim"
    victim.write_text("keep")
    target = folder / "summary.md"
    if planted == "file":
        target.write_text("old")
    elif planted == "link":
        target.symlink_to(victim)
    elif planted == "dangling link":
        target.symlink_to(folder / "nowhere")
    elif planted == "directory":
        target.mkdir()
    elif planted == "fifo":
        os.mkfifo(target)
    try:
        atomic_write_text(target, text)
    except ConfigError:
        assert planted in ("link", "dangling link", "directory")
    else:
        assert target.read_text(encoding="utf-8") == text and not target.is_symlink()
    assert victim.read_text() == "keep" and not (folder / "nowhere").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["summary.md", "victim"]
