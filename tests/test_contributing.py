"""docs/contributing.md is runnable as written: its files, its config and its tests."""
from __future__ import annotations

import importlib
import re
import sys

from conftest import ROOT
from erasure.cli import main
from erasure.results.writers import read_rows

GUIDE = ROOT / "docs" / "contributing.md"


def files_of_the_guide() -> dict[str, str]:
    """Every fenced block whose first line names a file (``# mylab/x.py``, ``// mylab.jsonc``)."""
    files = {}
    for block in re.findall(r"```(?:python|jsonc)\n(.*?)```", GUIDE.read_text(), flags=re.S):
        first = block.splitlines()[0]
        match = re.fullmatch(r"(?:#|//) ([\w/]+\.(?:py|jsonc))", first.strip())
        if match:
            files[match[1]] = block
    return files


def test_the_contributor_guide_runs_as_written(tmp_path, monkeypatch):
    files = files_of_the_guide()
    assert {"mylab/unlearners.py", "mylab/evaluators.py", "mylab/sources.py", "mylab.jsonc",
            "tests/test_mylab.py"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "mylab" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["mylab.jsonc", "--no-progress"]) == 0
    rows = read_rows(tmp_path / "results" / "mylab" / "results.csv")
    assert {r["unlearner"] for r in rows} == {"Identity", "GoldModel", "ForgetByNoise"}
    assert any(r["metric"] == "confidence_gap" for r in rows)
    sys.path.insert(0, str(tmp_path / "tests"))
    try:
        guide_tests = importlib.import_module("test_mylab")
        for name in dir(guide_tests):
            if name.startswith("test_"):
                getattr(guide_tests, name)()
    finally:
        sys.path.remove(str(tmp_path / "tests"))
