"""A config never executes code, and writes stay where they belong (see docs/security.md).

Each attack is played with a harmless stand-in: a pickle or a module that would create a marker
file if its code ran."""
from __future__ import annotations

import csv
import json
import pickle
import signal
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from conftest import make_runner, tiny_config
from erasure.cli import main
from erasure.core.errors import ConfigError
from erasure.data.sources.pyg import PyGSource
from erasure.results.files import atomic_write_text
from erasure.results.summary import write_summary
from erasure.results.writers import CSVWriter, RunInfo, read_rows

sys.path.insert(0, str(Path(__file__).parent))
from real_formats import write_planetoid  # noqa: E402


class Payload:
    """Unpickling this creates ``marker``: the stand-in for code planted in a data file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (Path(self.marker), "code ran")


def run_cli(tmp_path: Path, config: dict, capsys, *extra: str) -> tuple[int, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main([str(path), "--no-progress", *extra])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------ PyG data files are data, never code
@pytest.fixture
def cora(tmp_path) -> Path:
    """A Planetoid Cora folder in PyG's raw format, processed once (so processed/*.pt exist)."""
    write_planetoid(tmp_path, "Cora", n_train=14, n_all=520, n_test=20)
    PyGSource("Cora", str(tmp_path), download=False).load()
    assert (tmp_path / "Cora" / "processed" / "pre_transform.pt").exists()
    return tmp_path


@pytest.mark.filterwarnings("ignore:Weights only load failed")  # PyG's own warning before its fallback
@pytest.mark.parametrize("planted", ["processed/pre_transform.pt", "processed/data.pt"])
def test_planted_processed_file_does_not_run(cora, tmp_path, planted):
    marker = tmp_path / "marker"
    torch.save(Payload(marker), cora / "Cora" / planted)
    with pytest.raises(RuntimeError, match="refusing to unpickle"):
        PyGSource("Cora", str(cora), download=False).load()
    assert not marker.exists(), "PyG unpickled a planted file with weights_only=False"


def test_planted_raw_planetoid_file_does_not_run(tmp_path):
    write_planetoid(tmp_path, "Cora", n_train=14, n_all=520, n_test=20)
    marker = tmp_path / "marker"
    (tmp_path / "Cora" / "raw" / "ind.cora.x").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(RuntimeError, match="refusing to unpickle"):
        PyGSource("Cora", str(tmp_path), download=False).load()
    assert not marker.exists()


def test_planted_file_under_a_configs_root_fails_the_run_cleanly(cora, tmp_path, capsys):
    marker = tmp_path / "marker"
    torch.save(Payload(marker), cora / "Cora" / "processed" / "pre_transform.pt")
    config = tiny_config(tmp_path, model={"class": "GCN"})
    config["data"] = {"source": {"class": "PyGSource", "parameters": {"dataset": "Cora", "root": str(cora),
                                                                      "download": False}},
                      "forget": {"class": "RandomForget", "parameters": {"count": 2}}}
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 1 and "refusing to unpickle" in err and "Traceback" not in err
    assert not marker.exists()


def test_planetoid_files_as_published_still_load(tmp_path):
    """The real raw files are Python 2 pickles of scipy sparse matrices, numpy arrays and a defaultdict."""
    import scipy.sparse

    write_planetoid(tmp_path, "Cora", n_train=14, n_all=520, n_test=20)
    raw = tmp_path / "Cora" / "raw"
    dense = {}
    for key in ("x", "tx", "allx"):
        dense[key] = pickle.loads((raw / f"ind.cora.{key}").read_bytes())
        (raw / f"ind.cora.{key}").write_bytes(pickle.dumps(scipy.sparse.csr_matrix(dense[key]), protocol=2))
    graph = defaultdict(list, pickle.loads((raw / "ind.cora.graph").read_bytes()))
    (raw / "ind.cora.graph").write_bytes(pickle.dumps(graph, protocol=2))
    ds = PyGSource("Cora", str(tmp_path), download=False).load()
    assert torch.equal(ds.inputs.x[:520], torch.from_numpy(dense["allx"]))
    assert ds.inputs.edge_index.shape[1] == 1080


# ------------------------------------------------------------------ imports: plugins only, checked before import
def write_module(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(body)


def marker_body(marker: Path) -> str:
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"


@pytest.mark.parametrize("module", ["antigravity", "this", "venv.__main__", "torch.utils.model_dump.__main__",
                                    "erasure_test_plugins.__main__"])
def test_imports_refuse_the_standard_library_and_main_modules(tmp_path, capsys, module):
    assert module not in sys.modules
    code, err = run_cli(tmp_path, tiny_config(tmp_path, imports=[module]), capsys, "--validate")
    assert code == 2 and "imports[0]" in err and "refusing to import" in err, err
    assert module not in sys.modules, "refused only after importing it"


def test_command_line_import_is_checked_too(tmp_path, capsys):
    code, err = run_cli(tmp_path, tiny_config(tmp_path), capsys, "--validate", "--import", "antigravity")
    assert code == 2 and "--import[0]" in err and "standard library" in err
    assert "antigravity" not in sys.modules


def test_dotted_class_path_into_a_main_module_is_refused_before_import(tmp_path, capsys):
    module = "torch.utils.model_dump.__main__"
    config = tiny_config(tmp_path, unlearners=[{"class": f"{module}.Unlearner"}])
    code, err = run_cli(tmp_path, config, capsys, "--validate")
    assert code == 2 and "unlearners[0].class" in err and "__main__" in err
    assert module not in sys.modules


def test_own_module_is_imported_like_a_plugin_and_undeclared_ones_are_not(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "marker"
    write_module(tmp_path / "lab", "mylab_marker", marker_body(marker))
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    config = tiny_config(tmp_path, unlearners=[{"class": "mylab_marker.Nothing"}])
    code, err = run_cli(tmp_path, config, capsys, "--validate")
    assert code == 2 and "refusing to import" in err and not marker.exists()
    code, err = run_cli(tmp_path, tiny_config(tmp_path, imports=["mylab_marker"]), capsys, "--validate")
    assert code == 0 and marker.exists(), "a declared module runs, as documented"


def test_installed_package_needs_an_entry_point(tmp_path, capsys, monkeypatch):
    site = tmp_path / "site-packages"
    marker = tmp_path / "marker"
    write_module(site / "fakelab", "__init__", marker_body(marker))
    monkeypatch.syspath_prepend(str(site))
    code, err = run_cli(tmp_path, tiny_config(tmp_path, imports=["fakelab"]), capsys, "--validate")
    assert code == 2 and "does not declare an 'erasure.plugins' entry point" in err
    assert not marker.exists() and "fakelab" not in sys.modules
    info = site / "fakelab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakelab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[erasure.plugins]\nfakelab = fakelab\n")
    code, err = run_cli(tmp_path, tiny_config(tmp_path, imports=["fakelab"]), capsys, "--validate")
    assert code == 0, err
    assert marker.exists()


@pytest.mark.parametrize("statement, said", [("raise SystemExit(3)", "called sys.exit(3)"),
                                             ("raise KeyboardInterrupt", "raised KeyboardInterrupt")])
def test_exit_and_interrupt_inside_an_import_are_config_errors(tmp_path, capsys, monkeypatch, statement, said):
    name = "mylab_exit" if "Exit" in statement else "mylab_interrupt"
    write_module(tmp_path / "lab", name, statement + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    code, err = run_cli(tmp_path, tiny_config(tmp_path, imports=[name]), capsys, "--validate")
    assert code == 2 and f"imports[0]: importing module '{name}' {said}" in err


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test (a shell's background job starts with SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_real_ctrl_c_during_an_import_still_stops(tmp_path, capsys, monkeypatch, default_sigint):
    write_module(tmp_path / "lab", "mylab_ctrl_c", "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
                                                   "time.sleep(5)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    code, err = run_cli(tmp_path, tiny_config(tmp_path, imports=["mylab_ctrl_c"]), capsys, "--validate")
    assert code == 130 and "interrupted" in err


# ------------------------------------------------------------------ writes stay in the output directory
@pytest.mark.parametrize("key, value, fragment", [
    ("name", "../escape", "name: expected a plain file name"),
    ("name", ".profile", "name: expected a plain file name"),
    ("output.dir", "results/../../escape", "output.dir: expected a directory without '..'"),
    ("filename", "../results.csv", "output.writers[0].parameters.filename: expected a plain file name"),
    ("filename", "/tmp/results.csv", "output.writers[0].parameters.filename: expected a plain file name"),
    ("filename", ".profile", "output.writers[0].parameters.filename: expected a plain file name"),
])
def test_names_cannot_leave_the_output_directory(tmp_path, capsys, key, value, fragment):
    config = tiny_config(tmp_path)
    if key == "name":
        config["name"] = value
    elif key == "output.dir":
        config["output"]["dir"] = value
    else:
        config["output"]["writers"] = [{"class": "CSVWriter", "parameters": {"filename": value}}]
    code, err = run_cli(tmp_path, config, capsys, "--validate")
    assert code == 2 and fragment in err, err


@pytest.mark.parametrize("target", ["config.resolved.json", "summary.csv"])
def test_result_files_are_never_written_through_a_symlink(tmp_path, capsys, target):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    config = tiny_config(tmp_path)
    out = Path(config["output"]["dir"])
    out.mkdir(parents=True)
    (out / target).symlink_to(victim)
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "symbolic link" in err, err
    assert victim.read_text() == "precious"


def test_atomic_write_replaces_whole_files_and_refuses_links(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["a.json"], "no temporary file left"
    (tmp_path / "link").symlink_to(path)
    with pytest.raises(ConfigError, match="symbolic link"):
        atomic_write_text(tmp_path / "link", "three")
    assert path.read_text() == "two"


def test_results_file_that_is_not_ours_is_not_replaced(tmp_path, capsys):
    config = tiny_config(tmp_path)
    out = Path(config["output"]["dir"])
    out.mkdir(parents=True)
    (out / "results.csv").write_text("name,salary\nalice,1\n")
    code, err = run_cli(tmp_path, config, capsys, "--overwrite")
    assert code == 2 and "is not an erasure results file" in err
    assert (out / "results.csv").read_text() == "name,salary\nalice,1\n"


FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tTab", "'quoted", "-0.5"]


def test_formula_cells_are_neutralised_and_read_back_exactly(tmp_path):
    import pandas as pd

    writer = CSVWriter()
    writer.open(RunInfo(tmp_path, "x", "run", "hash", {}))
    rows = [{"run_id": "run", "config_hash": "hash", "seed": 0, "unlearner": label, "parameters": "{}",
             "metric": "=m", "value": -0.5, "status": "ok", "error": "=ERR()"} for label in FORMULAS]
    for row in rows:
        writer.write([row])
    writer.close()
    with open(tmp_path / "results.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    assert all(r["unlearner"] == "'" + label for r, label in zip(raw, FORMULAS)), "every formula-like cell escaped"
    assert all(r["metric"] == "'=m" and r["error"] == "'=ERR()" and r["value"] == "-0.5" for r in raw)
    back = read_rows(tmp_path / "results.csv")
    assert [r["unlearner"] for r in back] == FORMULAS and {r["metric"] for r in back} == {"=m"}
    frame = pd.read_csv(tmp_path / "results.csv")
    assert frame["value"].tolist() == [-0.5] * len(FORMULAS), "numbers stay numbers"
    write_summary([{"unlearner": "=cmd", "metric": "-x", "mean": -0.5}], tmp_path / "summary.csv")
    summary = next(csv.DictReader(open(tmp_path / "summary.csv", newline="")))
    assert summary["unlearner"] == "'=cmd" and summary["metric"] == "'-x" and summary["mean"] == "-0.5"


def test_formula_labels_through_a_run(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "Identity", "label": "=1+1"}])
    report = make_runner(config).run()
    assert {r["unlearner"] for r in read_rows(report.results_path)} == {"=1+1"}
    assert "'=1+1" in report.results_path.read_text()
    assert make_runner(config).run().skipped == 1, "the escaped label still identifies the job"
